"""What a scenario sends out: runs a shipped scenario (default ``gateway-dark``) through a whole Shouwang
process on the manual clock (SQLite in a temporary folder, the machine's Mosquitto on 127.0.0.1:1883),
stepping five simulated minutes at a time, and prints as JSON how many alarms of each kind opened and how
many calls and SMS went out (by target), during the outage and in all.

    python -m bench.outage [--scenario gateway-dark] [--until 20h]
"""

from __future__ import annotations

import argparse
import json
import tempfile
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

from alerts.db import upgrade
from config.settings import load_settings, parse_duration
from simulator.scenario import load_scenario
from tests.scenario_run import ScenarioRun, steps

T0 = datetime(2026, 11, 23, 8, 0, tzinfo=UTC)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--scenario", default="gateway-dark")
    parser.add_argument("--until", default="20h")
    args = parser.parse_args()
    base = f"bench-{uuid.uuid4().hex[:8]}"
    with tempfile.TemporaryDirectory() as folder:
        url = f"sqlite:///{Path(folder) / 'outage.db'}"
        upgrade(url)
        settings = load_settings(
            database={"url": url},
            mqtt={"url": "mqtt://127.0.0.1:1883", "protocol": "5", "client_id": f"{base}-svc", "share_group": "",
                  "session_expiry": "120s", "batch_wait": "10ms"},
            clock={"mode": "manual", "start": T0.isoformat()}, rules={"tick": "0.1s"},
            notify={"provider": "console"},
        )
        scenario = load_scenario(args.scenario)
        run = ScenarioRun(settings, base, scenario, T0)
        dark = next((i for i in run.sim.incidents if i.kind == "gateway_dark"), None)
        try:
            during: dict[str, object] = {}
            for instant in steps(T0, T0 + parse_duration(args.until), timedelta(minutes=5)):
                run.step(instant)
                if dark is not None and dark.until is not None and instant <= dark.until:
                    during = run.counts()
            total = run.counts()
        finally:
            run.close()
    print(json.dumps({"scenario": args.scenario, "until": args.until,
                      "outage": None if dark is None else {"at": dark.at.isoformat(), "until": str(dark.until),
                                                           "backlog": dark.backlog},
                      "during_outage": during, "total": total}, ensure_ascii=False, indent=1, default=str))


if __name__ == "__main__":
    main()
