"""What the benchmarks share: the benchmark database, the machine, the report file (a private Mosquitto and
bounded waits come from :mod:`tests.helpers`, shared with the tests).

Everything talks to 127.0.0.1 only. The benchmark database is ``shouwang_bench`` (never ``test``, which
the test suite empties); ``SHOUWANG_BENCH_PG`` overrides the URL.
"""

from __future__ import annotations

import json
import os
import platform
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy import Connection, create_engine, text
from sqlalchemy.engine import make_url

from alerts.models import Base
from tests.helpers import ROOT

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


def json_block(lines: list[dict[str, object]], reproduce: str) -> list[str]:
    """The end of a section: how to reproduce it, then the JSON lines the run printed, verbatim."""
    return ["", f"Reproduce: `{reproduce}`.", "", "```", *(json.dumps(line) for line in lines), "```"]


def empty_organisation(conn: Connection) -> None:
    """Empty every table of the benchmark database and give it one community of 100 grids of 10
    micro-grids each (ids 1..100 and 1..1000), for residents loaded with ``generate_series``."""
    names = ", ".join(t.name for t in Base.metadata.sorted_tables)
    conn.execute(text(f"TRUNCATE {names} RESTART IDENTITY CASCADE"))
    conn.execute(text("INSERT INTO communities (id, name) VALUES (1, 'bench')"))
    conn.execute(text("INSERT INTO grids (id, community_id, name) "
                      "SELECT g, 1, 'grid ' || g FROM generate_series(1, 100) AS g"))
    conn.execute(text("INSERT INTO micro_grids (id, grid_id, name) "
                      "SELECT g, (g - 1) % 100 + 1, 'micro-grid ' || g FROM generate_series(1, 1000) AS g"))
