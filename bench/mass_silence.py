"""Mass silence: N residents on PostgreSQL whose deadlines all pass at one instant of the manual clock,
a ``serve`` (rules + API roles) running and 20 SSE screens connected. Timed from the clock step: until
every alarm is committed, and until every screen's KPI shows them all open.

Prints one JSON line per size and replaces the "mass_silence" section of docs/benchmarks.md.

    python -m bench.mass_silence --residents 10000 --residents 100000
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import threading
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from alerts.clock import ManualClock
from alerts.db import make_engine, upgrade
from alerts.models import Alarm, AlarmKind, Attempt
from bench.common import BENCH_URL, ensure_database, json_block, machine, postgres_version, today, write_section
from bench.live import T0, Screen, Serve, load_district, print_json, screen_token, start_screens


def run(url: str, residents: int, screens: int, split: bool = True) -> dict[str, Any]:
    engine = make_engine(url)
    load_district(engine, residents, T0)
    token = screen_token(engine)
    with tempfile.TemporaryDirectory() as workdir:
        rules = Serve(Path(workdir), url, ("rules",)).start() if split else None
        serve = Serve(Path(workdir), url, ("api",) if split else ("rules", "api")).start()
        seen: dict[Screen, float] = {}
        lock = threading.Lock()
        started = [0.0]

        def on_event(screen: Screen, kind: str, data: dict[str, Any], at: float) -> None:
            figures = data.get("kpis")
            if started[0] and figures and figures.get("open_alarms", 0) >= residents:
                with lock:
                    seen.setdefault(screen, at - started[0])

        clients = [Screen(serve.port, token, on_event, 900) for _ in range(screens)]
        try:
            start_screens(clients)
            rss = serve.rss_mb()
            rules_rss = rules.rss_mb() if rules is not None else 0.0
            ManualClock(engine).set(T0 + timedelta(seconds=1))
            started[0] = time.monotonic()
            committed = None
            deadline = started[0] + 900
            while time.monotonic() < deadline and (committed is None or len(seen) < screens):
                if committed is None:
                    with Session(engine) as session:
                        count = session.scalar(select(func.count()).select_from(Alarm).where(
                            Alarm.kind == AlarmKind.INACTIVITY)) or 0
                    if count >= residents:
                        committed = time.monotonic() - started[0]
                rss = max(rss, serve.rss_mb())
                if rules is not None:
                    rules_rss = max(rules_rss, rules.rss_mb())
                time.sleep(0.05)
            result = {"residents": residents, "alarms": residents,
                      "seconds_to_all_alarms_committed": round(committed, 2) if committed is not None else None,
                      "seconds_to_all_screens_updated": round(max(seen.values()), 2) if len(seen) == screens
                      else None, "serve_rss_mb": round(rss)}
            if rules is not None:
                result["rules_rss_mb"] = round(rules_rss)
            with Session(engine) as session:
                result["attempts_placed"] = session.scalar(select(func.count()).select_from(Attempt)) or 0
            result["load_average"] = round(os.getloadavg()[0], 1)
        finally:
            for client in clients:
                client.stop_flag.set()
            serve.stop()
            if rules is not None:
                rules.stop()
    engine.dispose()
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--residents", type=int, action="append")
    parser.add_argument("--screens", type=int, default=20)
    parser.add_argument("--no-doc", action="store_true")
    parser.add_argument("--url", default=os.environ.get("SHOUWANG_MASS_SILENCE_PG", BENCH_URL),
                        help="the benchmark database (default: $SHOUWANG_MASS_SILENCE_PG, else $SHOUWANG_BENCH_PG)")
    parser.add_argument("--single", action="store_true",
                        help="one `serve --role rules --role api` process instead of two (rules; api)")
    parser.add_argument("--doc-from", metavar="FILE",
                        help="write the section from the JSON lines of an earlier run (no run)")
    args = parser.parse_args(argv)
    sizes = args.residents or [10_000, 100_000]
    if not all(100 <= n <= 1_000_000 for n in sizes) or not 1 <= args.screens <= 100:
        parser.error("--residents 100..1,000,000, --screens 1..100")
    if args.doc_from:
        lines = Path(args.doc_from).read_text(encoding="utf-8").splitlines()
        results = [json.loads(line) for line in lines if line.startswith("{")]
        write_doc(results, args.url, args.screens, not args.single)
        return 0
    ensure_database(args.url)
    upgrade(args.url)
    results = []
    for n in sizes:
        load_before = os.getloadavg()[0]
        result = run(args.url, n, args.screens, split=not args.single)
        print_json(result)
        results.append(result)
        print(f"load average {load_before:.1f} before, {os.getloadavg()[0]:.1f} after", file=sys.stderr)
    if not args.no_doc:
        write_doc(results, args.url, args.screens, not args.single)
    return 0


def verdict(results: list[dict[str, Any]]) -> str:
    biggest = max(results, key=lambda r: r["residents"])
    shown = biggest["seconds_to_all_screens_updated"]
    if biggest["residents"] < 100_000:
        return "Not measured at 100,000 in this run."
    return "Met." if shown is not None and shown <= 2 else "Missed."


def write_doc(results: list[dict[str, Any]], url: str, screens: int, split: bool) -> None:
    def seconds(value: float | None) -> str:
        return f"{value} s" if value is not None else "not within 900 s"

    rows = []
    for r in results:
        committed, shown = r["seconds_to_all_alarms_committed"], r["seconds_to_all_screens_updated"]
        lag = round(shown - committed, 2) if committed is not None and shown is not None else None
        rows.append(f"| {r['residents']:,} | {seconds(committed)} | {seconds(shown)} | {seconds(lag)} | "
                    f"{r['serve_rss_mb']} MB | {r.get('rules_rss_mb', '-')} MB | {r.get('attempts_placed', '-')} | "
                    f"{r.get('load_average', '-')} |")
    processes = ("two processes, `shouwang serve --role rules` and `shouwang serve --role api`" if split
                 else "one `shouwang serve --role rules --role api` process")
    write_section("mass_silence", "\n".join([
        "## Mass silence: every deadline passes at one instant, 20 screens connected",
        "",
        f"Run {today()} on {machine()}; PostgreSQL {postgres_version(url)}. The machine is shared with "
        "other people's work: the 1-minute load average at the end of each run is in the table (2 cores).",
        "",
        "| residents | all alarms committed | all 20 screens show them | screens after the last commit | "
        "API RSS | rules RSS | calls placed meanwhile | load |",
        "|---|---|---|---|---|---|---|---|",
        *rows,
        "",
        f"Target (SPEC section 7): <= 2 s to every screen at 100,000. **{verdict(results)}**",
        "",
        "What limits it now: the database's own work per alarm, on the same two cores as everything else. "
        "The tick raises the alarms in batches (`alerts/inactivity.py`: 1,000, then 10,000 by two connections "
        "at once, each batch a few set-based statements and one commit). Measured on this machine with one "
        "connection and nothing else running (`EXPLAIN ANALYZE`, batches of 10,000, per alarm): the alarm row "
        "and its five indexes ~9 us plus ~6 us for its two foreign-key checks; its history row ~4 us plus ~4 us "
        "for its foreign-key check and ~4 us for the screens' change-log row; its audit entry ~4 us; the "
        "resident's deadline cleared (a HOT update, the queue row deleted by trigger) ~6 us; the claim ~3 us "
        "and the devices-offline look-up ~2.5 us: ~45 us of PostgreSQL CPU per alarm, 4.5 s for 100,000, "
        "which two connections on two cores halve at best while the API process (20 screens) and the rules "
        "process's Python (~12 us per alarm: claim rows, rule decisions, grouping) share the cores. Raising "
        "100,000 with one connection took 5.5-5.8 s; with the three foreign keys dropped, 4.3-4.8 s (tried, not "
        "kept: the database's guarantee that no alarm outlives its resident and no history row its alarm is "
        "worth more here than a second). The screens show each commit within a fraction of a second (the "
        "column after the last commit): the API's screen model reads a batch's alarms in one statement, "
        "holds open alarms slim, reads the KPIs at most every 0.3 s and sends every screen one delta of "
        "marker columns per commit. With the manual clock the step is seen at the next tick (`rules.tick` "
        "1 s: up to a second of each figure); on the system clock a tick that finds a deadline before the "
        "next tick runs the inactivity step at that instant (`alerts/scheduler.py`). Also in this run: the "
        "correlated-silence pass no longer reads every device of the district when no silence could be "
        "found (~1.3 s of the first tick at 100,000 before), the escalation claims due chains from two "
        "index-ordered scans instead of sorting every due chain each second (~120 ms a second, spilled to "
        "disk, while 100,000 chains were due), and its audit no longer locks every open alarm. Before issue "
        "16's work (one `serve --role rules --role api` process, the model reloading every changed resident, "
        "every check call placed at once): 10,000 in 24.4 s committed and 31.4 s to the screens, 100,000 in "
        "243.4 s committed and the screens never caught up within 900 s, serve RSS 2,460 MB (2026-12-01 01:44 "
        "UTC, load 7 to 15).",
        "",
        f"Method: residents, one motion sensor and a phone each, loaded with `generate_series` into the "
        f"benchmark database, every deadline at one instant; {processes} (manual clock, 1 s tick, the console "
        f"provider at its default rate: 1 call a second, a burst of 30) with {screens} SSE clients connected to "
        "the API as the map page connects (`transitions=0`), each holding the whole picture. The clock is then "
        "stepped past the deadline; timed from the step to the count of inactivity alarms in the database "
        "reaching N (polled every 50 ms), and to the last screen receiving KPIs with N open alarms. RSS: "
        "highest sampled. Calls placed: escalation attempts in the database when the screens had it all.",
        *json_block(results, "python -m bench.mass_silence --residents 10000 --residents 100000"),
    ]))


if __name__ == "__main__":
    raise SystemExit(main())
