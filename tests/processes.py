"""Whole ``shouwang serve`` processes for end-to-end tests: a TOML config in the test's tmp_path, the
process's output in a log file next to it, printed when the test fails.

    with ProcessGroup(tmp_path) as group:
        serve = group.serve("a", settings, client_id="x", api=True).start()
        ...

Leaving the ``with`` block kills every process it started; if the block raised, the logs are printed
(pytest shows them with the failure).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import urllib.error
import urllib.request
from datetime import datetime
from pathlib import Path
from types import TracebackType
from typing import Any

from sqlalchemy import Engine, func, select
from sqlalchemy.orm import Session

from alerts.models import Event, WatchStatus
from simulator.homes import to_toml
from tests.helpers import ROOT, PrivateMosquitto, TestPublisher, free_port, wait_for

# the shared helper writes its persistence file as the user running the tests
PersistentMosquitto = PrivateMosquitto


def serve_settings(database_url: str, mqtt_url: str, topic_base: str, *, share_group: str = "",
                   start: datetime | None = None, **groups: dict[str, Any]) -> dict[str, Any]:
    """Settings for a test's ``serve``: MQTT 5 with a persistent session, native events on this test's
    topics, the manual clock, a 0.1 s tick. ``groups`` add to or override a group, e.g. ``rules={...}``."""
    data: dict[str, Any] = {
        "log_level": "INFO",
        "database": {"url": database_url},
        "mqtt": {"url": mqtt_url, "protocol": "5", "share_group": share_group, "session_expiry": "600s",
                 "batch_wait": "10ms", "routes": [{"topic": f"{topic_base}/events/#", "format": "native"}]},
        "clock": {"mode": "manual"},
        "rules": {"tick": "0.1s"},
    }
    if start is not None:
        data["clock"]["start"] = start.isoformat()
    for name, values in groups.items():
        data.setdefault(name, {}).update(values)
    return data


class ServeProcess:
    """One ``shouwang serve`` subprocess; ``start`` may be called again after ``kill``/``stop``."""

    def __init__(self, workdir: Path, name: str, settings: dict[str, Any], *, client_id: str,
                 api: bool = False) -> None:
        self.name = name
        self.client_id = client_id
        self.settings = json.loads(json.dumps(settings))  # a copy of our own
        self.api_port = free_port() if api else None
        if self.api_port is not None:
            self.settings["api"] = {"host": "127.0.0.1", "port": self.api_port}
        self.config = workdir / f"{name}.toml"
        self.config.write_text(to_toml(self.settings), encoding="utf-8")
        self.log_path = workdir / f"{name}.log"
        self.process: subprocess.Popen[bytes] | None = None
        self.process_name = name
        self.ended_on_purpose = False

    def start(self, process_name: str | None = None) -> ServeProcess:
        assert self.process is None or self.process.poll() is not None, f"{self.name} is already running"
        self.process_name = process_name or self.name
        self.ended_on_purpose = False
        command = [sys.executable, "-m", "api.cli", "--config", str(self.config), "serve",
                   "--process", self.process_name, "--client-id", self.client_id]
        if self.api_port is None:
            command.append("--no-api")
        env = {k: v for k, v in os.environ.items() if not k.startswith("SHOUWANG_")}
        env["PYTHONUNBUFFERED"] = "1"
        with open(self.log_path, "ab") as log:
            log.write(f"\n===== start {' '.join(command)}\n".encode())
            log.flush()
            self.process = subprocess.Popen(command, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
        return self

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def check_alive(self) -> None:
        """Fail at once, with the log, if the process died on its own."""
        if self.process is not None and self.process.poll() is not None and not self.ended_on_purpose:
            raise AssertionError(f"serve process {self.name} exited with {self.process.returncode}:\n"
                                 f"{self.log_tail()}")

    def kill(self) -> None:
        """kill -9: no cleanup, no goodbye to the broker."""
        self.ended_on_purpose = True
        if self.running:
            assert self.process is not None
            os.kill(self.process.pid, signal.SIGKILL)
            self.process.wait()
            with open(self.log_path, "ab") as log:
                log.write(b"\n===== killed with SIGKILL\n")

    def stop(self) -> None:
        self.ended_on_purpose = True
        if self.running:
            assert self.process is not None
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.kill()

    def log(self) -> str:
        return self.log_path.read_text(encoding="utf-8", errors="replace") if self.log_path.exists() else ""

    def log_tail(self, lines: int = 80) -> str:
        """The last lines of the log, without APScheduler's notes of ticks skipped while one still runs."""
        kept = [line for line in self.log().splitlines() if "maximum number of running instances" not in line]
        return "\n".join(kept[-lines:])

    def get(self, path: str) -> tuple[int, bytes]:
        """An HTTP GET on this process's API: (status, body); (0, b"") while nothing answers."""
        assert self.api_port is not None, f"{self.name} runs without the API"
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.api_port}{path}", timeout=5) as response:
                return response.status, response.read()
        except urllib.error.HTTPError as exc:
            return exc.code, exc.read()
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            return 0, b""

    def health(self) -> dict[str, Any] | None:
        self.check_alive()
        status, body = self.get("/healthz")
        return json.loads(body) if status in (200, 503) else None

    def metric(self, name: str) -> float:
        """The value of an unlabelled Prometheus sample of this process (0 when absent)."""
        self.check_alive()
        status, body = self.get("/metrics")
        assert status == 200, f"/metrics answered {status}"
        for line in body.decode().splitlines():
            if line.startswith(name + " "):
                return float(line.split()[1])
        return 0.0

    def wait_connected(self, timeout: float = 30.0) -> None:
        """Until this process's consumer is connected and has drained what the broker had for it."""
        if self.api_port is not None:
            def ready() -> bool:
                health = self.health()
                broker = (health or {}).get("broker") or {}
                return bool(broker.get("connected") and broker.get("caught_up"))
            wait_for(ready, timeout=timeout, every=0.1, message=f"{self.name} connected to the broker")
        else:
            raise AssertionError("without the API, wait with tick_status(...) on the database")


class ProcessGroup:
    """Starts serve processes for one test; kills them all at the end, prints their logs on failure."""

    def __init__(self, workdir: Path, extra_logs: tuple[Path, ...] = ()) -> None:
        self.workdir = workdir
        self.processes: list[ServeProcess] = []
        self.extra_logs = list(extra_logs)

    def serve(self, name: str, settings: dict[str, Any], *, client_id: str, api: bool = False) -> ServeProcess:
        process = ServeProcess(self.workdir, name, settings, client_id=client_id, api=api)
        self.processes.append(process)
        return process

    def check_alive(self) -> None:
        for process in self.processes:
            process.check_alive()

    def __enter__(self) -> ProcessGroup:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        for process in self.processes:
            process.kill()
        if exc_type is not None:
            for process in self.processes:
                print(f"\n----- log of serve process {process.name} ({process.log_path}) -----")
                print(process.log_tail(200))
            for path in self.extra_logs:
                if path.exists():
                    print(f"\n----- {path} -----")
                    print("\n".join(path.read_text(errors="replace").splitlines()[-50:]))


def publish_until_stored(publisher: TestPublisher, engine: Engine, topic: str, payload: bytes, event_uid: str,
                         group: ProcessGroup, timeout: float = 30.0) -> None:
    """Publish an event carrying ``event_uid`` (stored once however often it comes) every half second until
    it is stored: then the consumer's subscription is certainly in place."""

    def stored() -> bool:
        group.check_alive()
        publisher.publish(topic, payload, wait=False)
        with Session(engine) as session:
            return session.scalar(select(func.count()).select_from(Event).where(Event.event_uid == event_uid)) == 1

    wait_for(stored, timeout=timeout, every=0.5, message=f"the event {event_uid!r} stored")


def tick_status(engine: Engine, process: str) -> tuple[datetime, dict[str, Any]] | None:
    """(clock time of the last tick of ``process``, its detail), from the ``watch_status`` table."""
    with Session(engine) as session:
        row = session.get(WatchStatus, f"tick:{process}")
        return (row.updated_at, dict(row.detail or {})) if row is not None else None


def ticked_since(engine: Engine, process: str, instant: datetime, *, rules_ran: bool = True) -> bool:
    """``process`` has finished a tick at ``instant`` or later (one that ran the rules, by default)."""
    status = tick_status(engine, process)
    if status is None or status[0] < instant:
        return False
    return not rules_ran or not status[1].get("skipped_rules", True)
