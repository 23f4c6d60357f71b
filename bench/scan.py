"""Deadline scan benchmark: 1,000,000 residents on PostgreSQL; how long the tick takes to find the newly
overdue ones, to claim 1,000 of them, and to raise a mass silence.

The residents get deadlines spread evenly over a 14-hour window (one every ~50 ms), 2 % have none (an
alarm open, away), and they belong to 1,000 micro-grids in 100 grids. Timed, each inside a transaction
that is rolled back, median over ``--repeat`` runs:

* find: the tick's own query (``alerts.inactivity.due_residents``: the queue ``deadlines`` with
  ``due_at <= now`` joined to the residents and their grid, ``ORDER BY due_at LIMIT 1000 FOR UPDATE OF
  residents SKIP LOCKED``) at an instant where a tick's worth (about 20) are newly due;
* claim 1,000: the same query at an instant where more than 1,000 are due (after an outage);
* claim and reschedule 1,000: the claim plus one ``UPDATE residents SET due_at = ...`` for the 1,000 rows it
  locked (the triggers move their rows of ``deadlines``).

Then the tick raising a mass silence (``--raise N``, 10,000 and 100,000 by default): N residents, one
motion sensor each, all due at one instant, in a second database (``<database>_raise``); timed is one
``alerts.service.tick`` at that instant (no serve, no screens).

Prints one JSON line per figure and replaces the "scan" section of docs/benchmarks.md.

    python -m bench.scan
"""

from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import sys
import time
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import Engine, func, select, text, update
from sqlalchemy.dialects import postgresql
from sqlalchemy.engine import make_url

from alerts.db import claim, make_engine, one_of, upgrade
from alerts.inactivity import CLAIM_BATCH, due_residents
from alerts.models import Alarm, AlarmKind, Deadline, Resident
from alerts.service import tick
from api.runtime import watch_policy
from bench import live
from bench.common import BENCH_URL, empty_organisation, ensure_database, machine, postgres_version, today, write_section
from config.settings import Settings

WINDOW_S = 14 * 3600
T0 = datetime(2026, 11, 23, 0, 0, tzinfo=UTC)  # the first deadline
STRIDE = 7919  # a prime: resident g gets the ((g - 1) * STRIDE mod n)-th deadline


def load(engine: Engine, residents: int) -> None:
    """Empty the tables, then load the residents with INSERT ... SELECT generate_series, and ANALYZE."""
    spacing = WINDOW_S / residents
    with engine.begin() as conn:
        empty_organisation(conn)
        # resident g is due at T0 + k * spacing, k = (g - 1) * STRIDE mod n: deadlines follow activity, not
        # the order rows were stored in (so the rows due together lie on different pages); every 50th has
        # no deadline (alarm open, away)
        conn.execute(text(
            "INSERT INTO residents (id, micro_grid_id, external_ref, name, address, away_until_activity, "
            "last_activity_at, due_at, created_at) "
            "SELECT g, (g - 1) % 1000 + 1, 'r' || g, 'resident ' || g, '', false, "
            "       :t0 + make_interval(secs => k * :spacing - :window), "
            "       CASE WHEN g % 50 = 0 THEN NULL ELSE :t0 + make_interval(secs => k * :spacing) END, "
            "       :t0 - interval '30 days' "
            "FROM generate_series(1, :n) AS g, LATERAL (SELECT (g - 1)::bigint * :stride % :n AS k) AS rank"
        ), {"t0": T0, "spacing": spacing, "window": WINDOW_S, "n": residents,
            "stride": STRIDE if math.gcd(STRIDE, residents) == 1 else 1})
        conn.execute(text("SELECT setval('residents_id_seq', :n)"), {"n": residents})
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.execute(text("VACUUM ANALYZE communities, grids, micro_grids, residents, deadlines"))


def due_query(now: datetime) -> Any:
    """The tick's own query (alerts.inactivity.due_residents), claimed as the tick claims it."""
    return claim(due_residents(now, CLAIM_BATCH), postgresql.dialect(), of=Resident)


def timed(engine: Engine, repeat: int, step: Any) -> tuple[float, Any]:
    """Median milliseconds of ``step(conn)`` inside a transaction rolled back each time; its last result."""
    samples: list[float] = []
    result: Any = None
    for _ in range(repeat):
        with engine.connect() as conn:
            trans = conn.begin()
            started = time.perf_counter()
            result = step(conn)
            samples.append((time.perf_counter() - started) * 1000)
            trans.rollback()
    return statistics.median(samples), result


def raise_mass_silence(url: str, residents: int) -> dict[str, Any]:
    """N residents due at one instant (``bench.live.load_district``); one tick at that instant, timed."""
    engine = make_engine(url)
    try:
        live.load_district(engine, residents, T0)
        policy = watch_policy(Settings())
        started = time.perf_counter()
        result = tick(engine, T0 + timedelta(seconds=1), policy)
        seconds = time.perf_counter() - started
        with engine.connect() as conn:
            alarms = conn.execute(select(func.count()).select_from(Alarm)
                                  .where(Alarm.kind == AlarmKind.INACTIVITY)).scalar_one()
    finally:
        engine.dispose()
    if alarms != residents or len(result.raised) != residents:
        print(f"WARNING: {alarms} alarms for {residents} residents", file=sys.stderr)
    return {"residents": residents, "alarms": alarms, "seconds_tick_raise": round(seconds, 2)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--residents", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=50)
    parser.add_argument("--raise", dest="mass", type=int, action="append",
                        help="residents due at one instant for the tick (repeatable; default 10,000 and 100,000; "
                             "0: none)")
    parser.add_argument("--no-load", action="store_true", help="reuse the residents loaded by the last run")
    parser.add_argument("--no-doc", action="store_true", help="do not write docs/benchmarks.md")
    parser.add_argument("--url", default=BENCH_URL)
    args = parser.parse_args(argv)
    mass = [n for n in (args.mass or [10_000, 100_000]) if n]
    if not 1000 < args.residents <= 10_000_000 or not 1 <= args.repeat <= 1000 or any(n > 1_000_000 for n in mass):
        parser.error("--residents 1001..10,000,000, --repeat 1..1000, --raise up to 1,000,000")

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

    def claim_1000(conn: Any) -> list[int]:
        return [row[0] for row in conn.execute(due_query(claim_now).with_only_columns(Resident.id)).all()]

    def requeue_1000(conn: Any) -> int:  # activity moved their deadlines later: only the queue moves
        ids = claim_1000(conn)
        conn.execute(update(Deadline).where(one_of(Deadline.resident_id, ids, conn.dialect, "queued"))
                     .values(due_at=claim_now + timedelta(hours=14)).execution_options(synchronize_session=False))
        return len(ids)

    def reschedule_1000(conn: Any) -> int:  # the rule moves their deadlines: residents, then the queue
        ids = claim_1000(conn)
        conn.execute(update(Resident).where(one_of(Resident.id, ids, conn.dialect, "ids"))
                     .values(due_at=claim_now + timedelta(hours=14)).execution_options(synchronize_session=False))
        conn.execute(update(Deadline).values(due_at=Resident.due_at)
                     .where(Deadline.resident_id == Resident.id, Deadline.due_at != Resident.due_at,
                            one_of(Deadline.resident_id, ids, conn.dialect, "queued"))
                     .execution_options(synchronize_session=False))
        return len(ids)

    timed(engine, 3, find)  # warm the cache and psycopg's prepared statements
    find_ms, found = timed(engine, args.repeat, find)
    timed(engine, 3, claim_1000)
    claim_ms, claimed_ids = timed(engine, args.repeat, claim_1000)
    requeue_ms, _ = timed(engine, args.repeat, requeue_1000)
    reschedule_ms, rescheduled = timed(engine, args.repeat, reschedule_1000)

    compiled = due_query(find_now).compile(dialect=postgresql.dialect(), compile_kwargs={"literal_binds": True})
    with engine.connect() as conn:
        plan = [r[0] for r in conn.execute(text(f"EXPLAIN (ANALYZE, COSTS OFF) {compiled}"))]
        conn.rollback()
    engine.dispose()
    index_lines = [line.strip() for line in plan if "ix_deadlines_due_at" in line]
    result = {"residents": args.residents, "find_ms_median": round(find_ms, 3),
              "claim_1000_ms_median": round(claim_ms, 3), "claim_and_requeue_1000_ms_median": round(requeue_ms, 3),
              "claim_and_reschedule_1000_ms_median": round(reschedule_ms, 3)}
    print(json.dumps(result), flush=True)
    print(f"find returned {found} rows; claim locked {len(claimed_ids)}, rescheduled {rescheduled}; plan:\n  "
          + "\n  ".join(plan), file=sys.stderr)
    if not index_lines:
        print("WARNING: the plan does not use ix_deadlines_due_at", file=sys.stderr)
    raised = []
    if mass:
        raise_url = str(make_url(args.url).set(database=f"{make_url(args.url).database}_raise")
                        .render_as_string(hide_password=False))
        ensure_database(raise_url)
        upgrade(raise_url)
        for n in mass:
            raised.append(raise_mass_silence(raise_url, n))
            print(json.dumps(raised[-1]), flush=True)
    if not args.no_doc:
        document(result, found, len(claimed_ids), plan, index_lines, raised, args)
    return 0


def document(result: dict[str, Any], found: int, claimed: int, plan: list[str], index_lines: list[str],
             raised: list[dict[str, Any]], args: argparse.Namespace) -> None:
    server = next((line.strip() for line in plan if line.strip().startswith("Execution Time")), "")
    url = make_url(args.url)
    lines = [
        "## Deadline scan: 1,000,000 residents; a mass silence raised by the tick",
        "",
        f"Run {today()} on {machine()}; PostgreSQL {postgres_version(args.url)} (database `{url.database}`). "
        f"1-minute load average of the machine when done: {os.getloadavg()[0]:.1f} (2 cores; other work may "
        "share it).",
        "",
        "| residents | find the newly due | claim 1,000 due | claim and requeue 1,000 | claim and reschedule 1,000 |",
        "|---|---|---|---|---|",
        f"| {result['residents']:,} | {result['find_ms_median']} ms ({found} rows) | "
        f"{result['claim_1000_ms_median']} ms ({claimed} rows) | {result['claim_and_requeue_1000_ms_median']} ms | "
        f"{result['claim_and_reschedule_1000_ms_median']} ms |",
        "",
        "Targets (SPEC section 7): finding <= 5 ms per tick, claiming 1,000 <= 10 ms.",
        "",
        "The deadlines are found in `deadlines`, a narrow queue (`resident_id`, `due_at`, indexed by "
        "`(due_at, resident_id)`) that triggers keep at or before `residents.due_at` (migration 0015: "
        "written when a deadline appears, comes forward or goes; a deadline moved later by activity leaves "
        "it alone, the tick requeues such a resident when it comes due); `residents.due_at` is no longer "
        "indexed, so ingest's update of a resident's row adds no index entry and no queue write. "
        "*Claim*: the tick's query where thousands are due, "
        "`FOR UPDATE OF residents SKIP LOCKED`: a row lock each, nothing written (medians). *Claim and "
        "requeue*: the claim plus one `UPDATE deadlines` moving the 1,000 queue rows 14 hours on: what the tick "
        "writes for residents whose activity moved their deadline later since they were queued (the usual "
        "claim once the queue is lazy: about one per resident per window). *Claim and reschedule*: "
        "the claim plus one `UPDATE residents SET due_at = ... WHERE id = ANY(:ids)` for the 1,000 rows it "
        "locked, plus one `UPDATE deadlines ... FROM residents` moving their queue rows to the new deadline "
        "(what the tick writes for residents found not due). The find query's own server "
        f"time (`EXPLAIN ANALYZE`): {server.removeprefix('Execution Time: ')}.",
        "",
        "Method: residents loaded with `INSERT ... SELECT generate_series`, deadlines one every "
        f"{WINDOW_S / result['residents'] * 1000:.1f} ms over 14 hours in an order unrelated to the rows' "
        f"(resident g gets the ((g - 1) * {STRIDE} mod n)-th), every 50th without one, spread over "
        f"1,000 micro-grids in 100 grids; `VACUUM ANALYZE` after loading. Medians of {args.repeat} runs, each "
        "in a transaction rolled back. Times are from the client (SQLAlchemy Core + psycopg, "
        "loopback), not only the server's.",
        "",
        "Plan lines of the find query (`EXPLAIN ANALYZE`):",
        "",
        "```",
        *(index_lines or ["(ix_deadlines_due_at NOT used:)", *plan]),
        "```",
    ]
    if raised:
        lines += [
            "",
            "**Mass silence, the tick alone.** N residents (one motion sensor each, `bench.live.load_district`) "
            f"all due at one instant, in the database `{url.database}_raise`; timed: one `alerts.service.tick` "
            "at that instant (every step of the tick, no serve, no screens), to its last commit.",
            "",
            "| residents due | alarms | tick |",
            "|---|---|---|",
            *(f"| {r['residents']:,} | {r['alarms']:,} | {r['seconds_tick_raise']} s |" for r in raised),
        ]
    lines += ["", "Reproduce: `python -m bench.scan` (PostgreSQL on 127.0.0.1:5432; it creates the databases).",
              "", "```", json.dumps(result), *(json.dumps(r) for r in raised), "```"]
    write_section("scan", "\n".join(lines))


if __name__ == "__main__":
    raise SystemExit(main())
