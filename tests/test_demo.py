"""The README's demo command: embedded broker, SQLite, simulated homes; an alarm for the silent home
appears in the API and its escalation runs through with simulated answers. Run faster than the
default (6000x) so the 14 h window passes in ~8 s."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import httpx2 as httpx

from tests.helpers import free_port, wait_for


def test_the_demo_raises_an_alarm_for_the_silent_home(tmp_path: Path) -> None:
    port = free_port()
    log = open(tmp_path / "demo.log", "wb")  # noqa: SIM115
    demo = subprocess.Popen([sys.executable, "-m", "api.cli", "demo", "--homes", "6", "--speed", "6000",
                             "--port", str(port), "--data", str(tmp_path / "data")], stdout=log, stderr=log)
    tokens = tmp_path / "data" / "tokens.json"
    try:
        wait_for(tokens.exists, timeout=60, message="the demo's tokens")
        headers = {"Authorization": f"Bearer {json.loads(tokens.read_text())['admin']}"}

        def alarms() -> list[dict[str, object]]:
            try:
                return httpx.get(f"http://127.0.0.1:{port}/api/alarms", timeout=2, headers=headers).json()
            except httpx.HTTPError:
                return []

        raised = wait_for(lambda: [a for a in alarms() if a["kind"] == "inactivity"], timeout=90,
                          every=0.5, message="the demo's inactivity alarm")
        residents = {r["id"]: r for r in httpx.get(f"http://127.0.0.1:{port}/api/residents", headers=headers).json()}
        silent = residents[raised[0]["resident_id"]]
        assert silent["last_activity_at"] is None and silent["status"] == "alarm"
        active = [r for r in residents.values() if r["last_activity_at"]]
        assert len(active) >= 4, "the other homes (all but the silent one) report activity"
        assert httpx.get(f"http://127.0.0.1:{port}/healthz").json()["broker"]["connected"]
        # the chain runs through with the demo's simulated people: nobody answers the check call, the
        # grid worker is called (with family in parallel) and presses 1
        url = f"http://127.0.0.1:{port}/api/alarms/{raised[0]['id']}"
        detail = wait_for(lambda: (d := httpx.get(url, headers=headers).json())["state"] == "acknowledged" and d,
                          timeout=60, every=0.5, message="acknowledged")
        targets = {(a["target"], a["channel"]) for a in detail["attempts"]}
        assert {("resident", "voice"), ("grid_worker", "voice"), ("grid_worker", "sms"), ("family", "voice")} <= targets
        assert "网格员" in detail["acknowledged_by"]
    finally:
        demo.terminate()
        try:
            demo.wait(timeout=20)
        except subprocess.TimeoutExpired:
            demo.kill()
        log.close()
        print((tmp_path / "demo.log").read_text(errors="replace")[-3000:])
