"""What the benchmarks share: the benchmark database, a private Mosquitto, the machine, the report file.

Everything talks to 127.0.0.1 only. The benchmark database is ``shouwang_bench`` (never ``test``, which
the test suite empties); ``SHOUWANG_BENCH_PG`` overrides the URL.
"""

from __future__ import annotations

import os
import platform
import re
import shutil
import signal
import socket
import subprocess
import time
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

ROOT = Path(__file__).resolve().parent.parent
DOC = ROOT / "docs" / "benchmarks.md"
BENCH_URL = os.environ.get("SHOUWANG_BENCH_PG", "postgresql+psycopg://postgres@127.0.0.1:5432/shouwang_bench")

DOC_HEADER = """# Benchmarks

Measured by the scripts under `bench/` (they are not tests: nothing fails on a figure). Each script
replaces its own section below when it runs; the figures are the ones printed by that run, verbatim.
The targets are those of SPEC section 7.
"""


# -- database -----------------------------------------------------------------------------------------
def ensure_database(url: str = BENCH_URL) -> None:
    """Create the benchmark database if it is missing (connecting to the server's ``postgres`` database)."""
    parsed = make_url(url)
    name = parsed.database
    if not name or name == "test":
        raise SystemExit("refusing to benchmark on the 'test' database (the test suite empties it)")
    admin = create_engine(parsed.set(database="postgres"), isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            exists = conn.execute(text("SELECT 1 FROM pg_database WHERE datname = :n"), {"n": name}).first()
            if exists is None:
                conn.execute(text(f'CREATE DATABASE "{name}"'))
    finally:
        admin.dispose()


def postgres_version(url: str = BENCH_URL) -> str:
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            full = str(conn.execute(text("SHOW server_version")).scalar_one())
    finally:
        engine.dispose()
    return full.split()[0]


# -- the machine ----------------------------------------------------------------------------------------
def machine() -> str:
    cpu = platform.processor() or "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return f"{cores} cores ({cpu}), Python {platform.python_version()}, {platform.system()} {platform.release()}"


def today() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")


# -- a private Mosquitto ----------------------------------------------------------------------------------
def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def mosquitto_binary() -> str:
    return shutil.which("mosquitto") or "/usr/sbin/mosquitto"


def mosquitto_version() -> str:
    try:
        out = subprocess.run([mosquitto_binary(), "-h"], capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return "unknown"
    match = re.search(r"mosquitto version (\S+)", out.stdout + out.stderr)
    return match.group(1) if match else "unknown"


class PrivateBroker:
    """Mosquitto from the repo's ``config/mosquitto.conf`` (copied, plus a listener on a free loopback
    port and a persistence directory of its own), stopped with SIGTERM."""

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.port = free_port()
        self.process: subprocess.Popen[bytes] | None = None
        self.config = workdir / "mosquitto.conf"
        data = workdir / "mosquitto-data"
        data.mkdir(parents=True, exist_ok=True)
        base = (ROOT / "config" / "mosquitto.conf").read_text()
        self.config.write_text(f"{base}\nlistener {self.port} 127.0.0.1\npersistence_location {data}/\n")

    @property
    def url(self) -> str:
        return f"mqtt://127.0.0.1:{self.port}"

    def start(self, timeout: float = 10.0) -> PrivateBroker:
        log = open(self.workdir / "mosquitto.log", "ab")  # noqa: SIM115 - lives as long as the process
        self.process = subprocess.Popen([mosquitto_binary(), "-c", str(self.config)], stdout=log, stderr=log)
        deadline = time.monotonic() + timeout
        while True:
            with socket.socket() as sock:
                if sock.connect_ex(("127.0.0.1", self.port)) == 0:
                    return self
            if self.process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"mosquitto did not start on port {self.port}; see {self.workdir}/mosquitto.log")
            time.sleep(0.05)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.process = None


# -- the report -----------------------------------------------------------------------------------------
def write_section(name: str, body: str, doc: Path = DOC) -> None:
    """Replace (or append) the section between ``<!-- bench:<name> -->`` markers in docs/benchmarks.md."""
    start, end = f"<!-- bench:{name}:start -->", f"<!-- bench:{name}:end -->"
    block = f"{start}\n{body.strip()}\n{end}"
    current = doc.read_text(encoding="utf-8") if doc.exists() else DOC_HEADER
    if start in current and end in current:
        before, rest = current.split(start, 1)
        after = rest.split(end, 1)[1]
        updated = before + block + after
    else:
        updated = current.rstrip("\n") + "\n\n" + block + "\n"
    doc.parent.mkdir(parents=True, exist_ok=True)
    doc.write_text(updated, encoding="utf-8")
