"""Deadline scan benchmark: 1,000,000 residents on PostgreSQL; how long the tick takes to find the newly
overdue ones, and to claim 1,000 of them.

The residents get deadlines spread evenly over a 14-hour window (one every ~50 ms), 2 % have none (an
alarm open, away), and they belong to 1,000 micro-grids in 100 grids. Timed, each inside a transaction
that is rolled back, median over ``--repeat`` runs:

* find: the tick's own query (``alerts.service._raise_due_inactivity``: residents with ``due_at <= now``,
  joined to their grid, ``ORDER BY due_at LIMIT 1000 FOR UPDATE OF residents SKIP LOCKED``) at an
  instant where a tick's worth (about 20) are newly due;
* claim 1,000: the same query at an instant where more than 1,000 are due (after an outage), plus one
  ``UPDATE residents SET due_at = ...`` for the 1,000 rows it locked.

Prints one JSON line and replaces the "scan" section of docs/benchmarks.md.

    python -m bench.scan
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import Engine, text, update
from sqlalchemy.dialects import postgresql

from alerts.db import claim, make_engine, one_of, upgrade
from alerts.models import Resident
from alerts.service import CLAIM_BATCH, due_residents
from bench.common import BENCH_URL, empty_organisation, ensure_database, machine, postgres_version, today, write_section

WINDOW_S = 14 * 3600
T0 = datetime(2026, 11, 23, 0, 0, tzinfo=UTC)  # the first deadline


def load(engine: Engine, residents: int) -> None:
    """Empty the tables, then load the residents with INSERT ... SELECT generate_series, and ANALYZE."""
    spacing = WINDOW_S / residents
    with engine.begin() as conn:
        empty_organisation(conn)
        # resident g is due at T0 + (g - 1) * spacing, but every 50th has no deadline (alarm open, away)
        conn.execute(text(
            "INSERT INTO residents (id, micro_grid_id, external_ref, name, address, away_until_activity, "
            "last_activity_at, due_at, created_at) "
            "SELECT g, (g - 1) % 1000 + 1, 'r' || g, 'resident ' || g, '', false, "
            "       :t0 + make_interval(secs => (g - 1) * :spacing - :window), "
            "       CASE WHEN g % 50 = 0 THEN NULL ELSE :t0 + make_interval(secs => (g - 1) * :spacing) END, "
            "       :t0 - interval '30 days' "
            "FROM generate_series(1, :n) AS g"
        ), {"t0": T0, "spacing": spacing, "window": WINDOW_S, "n": residents})
        conn.execute(text("SELECT setval('residents_id_seq', :n)"), {"n": residents})
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.execute(text("VACUUM ANALYZE communities, grids, micro_grids, residents"))


def due_query(now: datetime) -> Any:
    """The tick's own query (alerts.service.due_residents), claimed as the tick claims it."""
    return claim(due_residents(now, CLAIM_BATCH), postgresql.dialect(), of=Resident)


def timed(engine: Engine, repeat: int, step: Any) -> tuple[float, int]:
    """Median milliseconds of ``step(conn)`` inside a transaction rolled back each time; its last result."""
    samples, result = [], 0
    for _ in range(repeat):
        with engine.connect() as conn:
            trans = conn.begin()
            started = time.perf_counter()
            result = step(conn)
            samples.append((time.perf_counter() - started) * 1000)
            trans.rollback()
    return statistics.median(samples), result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--residents", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=50)
    parser.add_argument("--no-load", action="store_true", help="reuse the residents loaded by the last run")
    parser.add_argument("--no-doc", action="store_true", help="do not write docs/benchmarks.md")
    parser.add_argument("--url", default=BENCH_URL)
    args = parser.parse_args(argv)
    if not 1000 < args.residents <= 10_000_000 or not 1 <= args.repeat <= 1000:
        parser.error("--residents 1001..10,000,000, --repeat 1..1000")

    ensure_database(args.url)
    upgrade(args.url)
    engine = make_engine(args.url)
    spacing = WINDOW_S / args.residents
    if not args.no_load:
        started = time.perf_counter()
        load(engine, args.residents)
        print(f"loaded {args.residents:,} residents in {time.perf_counter() - started:.1f}s", file=sys.stderr)

    # a tick's instant: about one second of deadlines (~20 residents) is newly due
    find_now = T0 + timedelta(seconds=1)
    # after an outage: several thousand are due, the tick claims them 1,000 at a time
    claim_now = T0 + timedelta(seconds=3 * CLAIM_BATCH * spacing)

    def find(conn: Any) -> int:
        return len(conn.execute(due_query(find_now)).all())

    def lock_1000(conn: Any) -> list[int]:
        return [row[0] for row in conn.execute(due_query(claim_now).with_only_columns(Resident.id)).all()]

    def claim_1000(conn: Any) -> int:
        ids = lock_1000(conn)
        conn.execute(update(Resident).where(one_of(Resident.id, ids, conn.dialect, "ids"))
                     .values(due_at=claim_now + timedelta(hours=14)).execution_options(synchronize_session=False))
        return len(ids)

    timed(engine, 3, find)  # warm the cache and psycopg's prepared statements
    find_ms, found = timed(engine, args.repeat, find)
    timed(engine, 3, lock_1000)
    lock_ms, _ = timed(engine, args.repeat, lock_1000)
    claim_ms, claimed = timed(engine, args.repeat, claim_1000)
    print(f"of the claim: select + lock alone {lock_ms:.1f} ms (median)", file=sys.stderr)

    compiled = due_query(find_now).compile(dialect=postgresql.dialect(), compile_kwargs={"literal_binds": True})
    with engine.connect() as conn:
        plan = [r[0] for r in conn.execute(text(f"EXPLAIN (ANALYZE, COSTS OFF) {compiled}"))]
        conn.rollback()
    engine.dispose()
    index_lines = [line.strip() for line in plan if "ix_residents_due_at" in line]
    result = {"residents": args.residents, "find_ms_median": round(find_ms, 3),
              "claim_1000_ms_median": round(claim_ms, 3)}
    print(json.dumps(result), flush=True)
    print(f"find returned {found} rows; claim locked and updated {claimed}; plan:\n  " + "\n  ".join(plan),
          file=sys.stderr)
    if not index_lines:
        print("WARNING: the plan does not use ix_residents_due_at", file=sys.stderr)
    if not args.no_doc:
        document(result, found, claimed, lock_ms, plan, index_lines, args, args.url)
    return 0


def document(result: dict[str, Any], found: int, claimed: int, lock_ms: float, plan: list[str],
             index_lines: list[str], args: argparse.Namespace, url: str) -> None:
    server = next((line.strip() for line in plan if line.strip().startswith("Execution Time")), "")
    lines = [
        "## Deadline scan: 1,000,000 residents",
        "",
        f"Run {today()} on {machine()}; PostgreSQL {postgres_version(url)} (database `shouwang_bench`).",
        "",
        "| residents | find the newly due (median) | claim 1,000 due (median) |",
        "|---|---|---|",
        f"| {result['residents']:,} | {result['find_ms_median']} ms ({found} rows) | "
        f"{result['claim_1000_ms_median']} ms ({claimed} rows) |",
        "",
        f"Of the claim, the locking `SELECT` alone takes {lock_ms:.1f} ms (median); the rest is the `UPDATE` "
        "of 1,000 rows. The find query's own server time (`EXPLAIN ANALYZE`): "
        f"{server.removeprefix('Execution Time: ')}. "
        f"1-minute load average of the machine when done: {os.getloadavg()[0]:.1f} (2 cores; other work may "
        "share it).",
        "",
        "Targets (SPEC section 7): finding <= 5 ms per tick, claiming 1,000 <= 10 ms.",
        "",
        "Method: residents loaded with `INSERT ... SELECT generate_series`, deadlines one every "
        f"{WINDOW_S / result['residents'] * 1000:.1f} ms over 14 hours, every 50th without one, spread over "
        f"1,000 micro-grids in 100 grids; `VACUUM ANALYZE` after loading. Medians of {args.repeat} runs, each "
        "in a transaction rolled back. *Find*: the tick's query (`alerts.service._raise_due_inactivity`, "
        "`... WHERE due_at IS NOT NULL AND due_at <= now ORDER BY due_at LIMIT 1000 FOR UPDATE OF residents "
        "SKIP LOCKED`, joined to micro-grid and grid) at an instant where a second's worth of deadlines is "
        "due. *Claim*: the same query where thousands are due, then one `UPDATE residents SET due_at = ... WHERE "
        "id = ANY(:ids)` for the 1,000 rows it locked. Times are from the client (SQLAlchemy Core + psycopg, "
        "loopback), not only the server's.",
        "",
        "Plan line of the find query (`EXPLAIN ANALYZE`):",
        "",
        "```",
        *(index_lines or ["(ix_residents_due_at NOT used:)", *plan]),
        "```",
        "",
        "Reproduce: `python -m bench.scan` (PostgreSQL on 127.0.0.1:5432; it creates `shouwang_bench`).",
    ]
    write_section("scan", "\n".join(lines))


if __name__ == "__main__":
    raise SystemExit(main())
