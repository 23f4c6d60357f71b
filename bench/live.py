"""What the live-screen benchmarks share: a district loaded with generate_series, a ``serve`` process
(rules + API roles, the manual clock) and SSE screen clients that time what they receive.

Everything on 127.0.0.1; the database is the benchmark database (``SHOUWANG_BENCH_PG``).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx2 as httpx
import orjson
from sqlalchemy import Engine, text
from sqlalchemy.orm import Session

from api import accounts
from bench.common import ROOT, empty_organisation
from tests.helpers import free_port

WINDOW_S = 14 * 3600
T0 = datetime(2026, 11, 23, 0, 0, tzinfo=UTC)  # every deadline


def load_district(engine: Engine, residents: int, due_at: datetime | None) -> None:
    """Empty the tables; ``residents`` homes in 100 grids of 10 micro-grids, one motion sensor and a phone
    each (their check call), last active a window before ``due_at`` (all due at that one instant), spread
    over ~10 km."""
    with engine.begin() as conn:
        empty_organisation(conn)
        conn.execute(text(
            "INSERT INTO residents (id, micro_grid_id, external_ref, name, address, latitude, longitude, phone, "
            "away_until_activity, last_activity_at, due_at, created_at) "
            "SELECT g, (g - 1) % 1000 + 1, 'r' || g, '住户 ' || g, '', 31.15 + (g % 317) * 0.0003, "
            "       121.40 + ((g / 317) % 317) * 0.0003, '+86139' || lpad(g::text, 8, '0'), false, :last, :due, "
            "       :created "
            "FROM generate_series(1, :n) AS g"
        ), {"last": (due_at or T0) - timedelta(seconds=WINDOW_S), "due": due_at, "created": T0 - timedelta(days=30),
            "n": residents})
        conn.execute(text(
            "INSERT INTO devices (id, external_id, resident_id, kind, name, online, last_seen_at, offline_due_at, "
            "created_at) SELECT g, 'pir-' || g, g, 'motion', '', true, :seen, :offline, :created "
            "FROM generate_series(1, :n) AS g"
        ), {"seen": T0, "offline": T0 + timedelta(days=30), "created": T0 - timedelta(days=30), "n": residents})
        conn.execute(text("SELECT setval('residents_id_seq', :n)"), {"n": residents})
        conn.execute(text("SELECT setval('devices_id_seq', :n)"), {"n": residents})
        conn.execute(text("INSERT INTO manual_clock (id, now) VALUES (1, :now)"), {"now": T0 - timedelta(minutes=1)})
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.execute(text("VACUUM ANALYZE residents, devices, screen_changes"))


def screen_token(engine: Engine) -> str:
    with Session(engine) as session, session.begin():
        return accounts.screen_token(session, datetime.now(UTC), timedelta(days=1), "bench screen")


class Serve:
    """``shouwang serve --role rules --role api`` on the benchmark database, manual clock (``roles``: the
    roles of this process, e.g. ``("rules",)`` and ``("api",)`` as two processes; ``extra``: more settings,
    TOML lines added at the top)."""

    def __init__(self, workdir: Path, url: str, roles: tuple[str, ...] = ("rules", "api"), extra: str = "") -> None:
        self.roles = roles
        self.port = free_port()
        name = "-".join(roles)
        self.config = workdir / f"serve-{name}.toml"
        self.config.write_text(
            f'log_level = "WARNING"\n{extra}[database]\nurl = "{url}"\n[clock]\nmode = "manual"\n'
            f'[rules]\ntick = "1s"\ndevice_offline_after = "30d"\n'
            f'[api]\nhost = "127.0.0.1"\nport = {self.port}\n', encoding="utf-8")
        self.log = workdir / f"serve-{name}.log"
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> Serve:
        env = {k: v for k, v in os.environ.items() if not k.startswith("SHOUWANG_")}
        with open(self.log, "ab") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "api.cli", "--config", str(self.config), "serve", "--process",
                 f"bench-{'-'.join(self.roles)}", *(arg for role in self.roles for arg in ("--role", role))],
                cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
        if "api" not in self.roles:  # no HTTP to ask: alive after a few seconds is up
            time.sleep(3)
            if self.process.poll() is not None:
                raise SystemExit(f"serve exited; see {self.log}")
            return self
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"http://127.0.0.1:{self.port}/healthz", timeout=2).status_code in (200, 503):
                    return self
            except httpx.HTTPError:
                pass
            if self.process.poll() is not None:
                raise SystemExit(f"serve exited; see {self.log}")
            time.sleep(0.2)
        raise SystemExit(f"serve did not answer; see {self.log}")

    def rss_mb(self) -> float:
        assert self.process is not None
        for line in Path(f"/proc/{self.process.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
        return 0.0

    def cpu_seconds(self) -> float:
        assert self.process is not None
        fields = Path(f"/proc/{self.process.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


class Screen(threading.Thread):
    """One SSE client as the map page connects (``transitions=0``); ``on_event(kind, data, at)`` is
    called for every ``state`` and ``delta`` with the receive time; counts the bytes of deltas."""

    def __init__(self, port: int, token: str, on_event: Callable[[Screen, str, dict[str, Any], float], None],
                 seconds: float) -> None:
        super().__init__(daemon=True)
        self.url = f"http://127.0.0.1:{port}/api/stream?transitions=0"
        self.token = token
        self.on_event = on_event
        self.seconds = seconds
        self.connected = threading.Event()
        self.stop_flag = threading.Event()
        self.delta_bytes = 0
        self.deltas = 0
        self.error: str | None = None

    def run(self) -> None:
        try:
            self._read()
        except Exception as exc:
            if not self.stop_flag.is_set():
                self.error = repr(exc)

    def _read(self) -> None:
        headers = {"Authorization": f"Bearer {self.token}"}
        ends = time.monotonic() + self.seconds
        with httpx.stream("GET", self.url, headers=headers, timeout=httpx.Timeout(60, read=120)) as response:
            kind, data = "", []
            for line in response.iter_lines():
                if self.stop_flag.is_set() or time.monotonic() > ends:
                    return
                if line.startswith("event:"):
                    kind = line[6:].strip()
                elif line.startswith("data:"):
                    data.append(line[5:].lstrip())
                elif not line:
                    if kind in ("state", "delta") and data:
                        raw = "\n".join(data)
                        at = time.monotonic()
                        if kind == "delta":
                            self.delta_bytes += len(raw.encode())
                            self.deltas += 1
                        self.on_event(self, kind, orjson.loads(raw), at)
                        if kind == "state":
                            self.connected.set()
                    kind, data = "", []


def print_json(result: dict[str, Any]) -> None:
    print(json.dumps(result), flush=True)


def start_screens(clients: list[Screen], wait: float = 600) -> None:
    """Connect every screen and wait until each has its whole picture."""
    for client in clients:
        client.start()
    for client in clients:
        if not client.connected.wait(wait):
            raise SystemExit(f"a screen got no picture: {client.error}")
