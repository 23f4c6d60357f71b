"""Ingest benchmark: Shouwang's consumer draining a QoS 1 backlog into PostgreSQL, against a bare paho
subscriber draining the same backlog on the same broker, for MQTT 3.1.1 and MQTT 5 in one run.

Method (per protocol, on one private Mosquitto started from config/mosquitto.conf):

1. the consumer's and the bare subscriber's client ids connect once with a persistent session, subscribe
   at QoS 1 and disconnect;
2. a publisher process publishes N native events at QoS 1 (every one acknowledged by the broker), which
   the broker queues in both sessions: nobody consumes while it publishes;
3. the bare paho subscriber (auto-ack, counts messages) reconnects and drains its backlog: timed from its
   connect to its N-th message;
4. Shouwang's ``sensors.consumer.Consumer`` (QoS 1, batches, commit to PostgreSQL, PUBACKs after the
   commit) reconnects and drains its backlog: timed from its start to the N-th stored event;
5. the events table is counted: lost = N - distinct events stored, duplicates = rows beyond those.

Prints one JSON line per protocol on stdout and replaces the "ingest" section of docs/benchmarks.md.

    python -m bench.ingest                # 200,000 events, 10,000 devices, MQTT 3.1.1 and 5
    python -m bench.ingest --quick        # 20,000 events, 1,000 devices
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import text
from sqlalchemy.engine import make_url

from alerts.db import make_engine, upgrade
from alerts.models import Base
from bench.common import (
    BENCH_URL,
    ensure_database,
    machine,
    postgres_version,
    today,
    write_section,
)
from tests.helpers import PrivateMosquitto, mosquitto_version

TOPIC_BASE = "bench/events"
ROUTE = {"topic": f"{TOPIC_BASE}/#", "format": "native"}
SHARE_GROUP = "bench"
SESSION_EXPIRY_S = 3600
CTX = mp.get_context("spawn")
STATS = 4  # per consumer: seconds in record_batch + commit, batches, CPU seconds, peak RSS (MB)
DETAILS: dict[str, list[str]] = {}  # where each consumer's time went
LOADS: dict[str, tuple[float, float]] = {}  # 1-minute load average before and after each protocol


# -- database ---------------------------------------------------------------------------------------------
def prepare_database(url: str, devices: int, residents: int) -> None:
    """Migrate, empty every table, then load residents and devices with two INSERT ... SELECTs."""
    ensure_database(url)
    upgrade(url)
    engine = make_engine(url, pool=False)
    names = ", ".join(t.name for t in Base.metadata.sorted_tables)
    with engine.begin() as conn:
        conn.execute(text(f"TRUNCATE {names} RESTART IDENTITY CASCADE"))
        conn.execute(text(
            "INSERT INTO residents (id, name, address, away_until_activity, created_at) "
            "SELECT g, 'bench resident ' || g, '', false, now() FROM generate_series(1, :n) AS g"
        ), {"n": residents})
        conn.execute(text(
            "INSERT INTO devices (id, external_id, resident_id, kind, name, online, created_at) "
            "SELECT g, 'bench-d' || lpad(g::text, 7, '0'), ((g - 1) % :r) + 1, 'motion', '', true, now() "
            "FROM generate_series(1, :n) AS g"
        ), {"n": devices, "r": residents})
        conn.execute(text("SELECT setval('residents_id_seq', :n)"), {"n": residents})
        conn.execute(text("SELECT setval('devices_id_seq', :n)"), {"n": devices})
    engine.dispose()
    vacuum(url)


def reset_state(url: str) -> None:
    """Before each protocol: no events, no alarms, residents and devices as never heard from."""
    engine = make_engine(url, pool=False)
    with engine.begin() as conn:
        conn.execute(text("TRUNCATE events, quarantine, alarms RESTART IDENTITY CASCADE"))
        conn.execute(text("UPDATE residents SET last_activity_at = NULL, due_at = NULL "
                          "WHERE last_activity_at IS NOT NULL OR due_at IS NOT NULL"))
        conn.execute(text("UPDATE devices SET last_seen_at = NULL, offline_due_at = NULL, battery = NULL, "
                          "occupied = NULL WHERE last_seen_at IS NOT NULL"))
    engine.dispose()
    vacuum(url)


def vacuum(url: str) -> None:
    engine = make_engine(url, pool=False).execution_options(isolation_level="AUTOCOMMIT")
    with engine.connect() as conn:
        conn.execute(text("VACUUM ANALYZE residents, devices, events"))
    engine.dispose()


def count_events(url: str) -> tuple[int, int, int]:
    """(rows, distinct events, quarantined): an event is one (device, device time) the publisher sent once."""
    engine = make_engine(url, pool=False)
    with engine.connect() as conn:
        rows, distinct = conn.execute(text(
            "SELECT count(*), count(DISTINCT (device_id, device_time)) FROM events")).one()
        held = conn.execute(text("SELECT count(*) FROM quarantine")).scalar_one()
    engine.dispose()
    return int(rows), int(distinct), int(held)


# -- MQTT helpers (run in child processes) -----------------------------------------------------------------
def _client(protocol: str, client_id: str, manual_ack: bool = False) -> Any:
    import paho.mqtt.client as mqtt
    from paho.mqtt.enums import CallbackAPIVersion

    v5 = protocol == "5"
    return mqtt.Client(CallbackAPIVersion.VERSION2, client_id=client_id,
                       protocol=mqtt.MQTTv5 if v5 else mqtt.MQTTv311,
                       clean_session=None if v5 else False, manual_ack=manual_ack)


def _connect(client: Any, port: int, protocol: str, fresh: bool) -> None:
    """Connect with a persistent session (``fresh``: start it anew)."""
    from paho.mqtt.packettypes import PacketTypes
    from paho.mqtt.properties import Properties

    if protocol == "5":
        properties = Properties(PacketTypes.CONNECT)
        properties.SessionExpiryInterval = SESSION_EXPIRY_S
        properties.ReceiveMaximum = 2000
        client.connect("127.0.0.1", port, keepalive=60, clean_start=fresh, properties=properties)
    else:  # 3.1.1: the session persists by clean_session=False; client ids are new in every run
        client.connect("127.0.0.1", port, keepalive=60)


def _subscribe_options(protocol: str) -> Any:
    from paho.mqtt.subscribeoptions import SubscribeOptions

    return SubscribeOptions(qos=1) if protocol == "5" else 1


def create_session(port: int, protocol: str, client_id: str, topic_filter: str, timeout: float = 10.0) -> None:
    """Connect ``client_id`` once with a persistent session, subscribe at QoS 1, disconnect."""
    import threading

    client = _client(protocol, client_id)
    subscribed = threading.Event()
    client.on_subscribe = lambda *_args: subscribed.set()
    client.on_connect = lambda c, *_args: c.subscribe([(topic_filter, _subscribe_options(protocol))])
    _connect(client, port, protocol, fresh=True)
    client.loop_start()
    try:
        if not subscribed.wait(timeout):
            raise RuntimeError(f"{client_id}: no SUBACK within {timeout}s")
    finally:
        client.disconnect()
        client.loop_stop()


def drop_session(port: int, protocol: str, client_id: str, timeout: float = 10.0) -> None:
    """Connect ``client_id`` with a clean session that expires at once, so the broker forgets it."""
    import threading

    import paho.mqtt.client as mqtt
    from paho.mqtt.enums import CallbackAPIVersion
    from paho.mqtt.packettypes import PacketTypes
    from paho.mqtt.properties import Properties

    v5 = protocol == "5"
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=client_id,
                         protocol=mqtt.MQTTv5 if v5 else mqtt.MQTTv311, clean_session=None if v5 else True)
    connected = threading.Event()
    client.on_connect = lambda *_args: connected.set()
    if v5:
        properties = Properties(PacketTypes.CONNECT)
        properties.SessionExpiryInterval = 0
        client.connect("127.0.0.1", port, keepalive=60, clean_start=True, properties=properties)
    else:
        client.connect("127.0.0.1", port, keepalive=60)
    client.loop_start()
    connected.wait(timeout)
    client.disconnect()
    client.loop_stop()


def render_events(events: int, devices: int, uid_share: float, base: datetime, part: int = 0,
                  parts: int = 1) -> list[tuple[str, bytes]]:
    """N native motion events (every ``parts``-th from ``part``), device after device; each has a device
    time of its own (so an event can be recognised in the table), a share of them an event_id, every
    50th a battery level."""
    from sensors.formats import native

    stride = 7919 if devices % 7919 else 1  # spread consecutive events over the homes
    every = round(1 / uid_share) if uid_share > 0 else 0
    out = []
    for i in range(part, events, parts):
        device = f"bench-d{(i * stride) % devices + 1:07d}"
        out.append(native.render(
            device, "motion", ts=base + timedelta(microseconds=i),
            event_id=f"e{i}" if every and i % every == 0 else None,
            battery=90 if i % 50 == 0 else None, base=TOPIC_BASE,
        ))
    return out


def publisher(port: int, protocol: str, events: int, devices: int, uid_share: float, base_ts: float,
              part: int, parts: int, result: Any, timeout: float) -> None:
    """Child process: publish its share of the events at QoS 1 and wait for all the broker's PUBACKs."""
    import threading

    messages = render_events(events, devices, uid_share, datetime.fromtimestamp(base_ts, UTC), part, parts)
    events = len(messages)
    client = _client(protocol, f"bench-pub-{uuid.uuid4().hex[:8]}")
    client.max_inflight_messages_set(1000)
    client.max_queued_messages_set(0)
    acked = 0
    done = threading.Event()
    room = threading.Condition()
    window = 2000  # unacknowledged publishes at most: paho scans its whole queue on every PUBACK

    def on_publish(*_args: Any) -> None:
        nonlocal acked
        with room:
            acked += 1
            room.notify()
        if acked >= events:
            done.set()

    client.on_publish = on_publish
    _connect(client, port, protocol, fresh=True)
    client.loop_start()
    started = time.perf_counter()
    deadline = started + timeout
    for sent, (topic, payload) in enumerate(messages):
        with room:
            while sent - acked >= window and time.perf_counter() < deadline:
                room.wait(0.5)
        client.publish(topic, payload, qos=1)
    done.wait(max(0.0, deadline - time.perf_counter()))
    result.value = time.perf_counter() - started if done.is_set() else -1.0
    client.disconnect()
    client.loop_stop()


def bare_subscriber(port: int, protocol: str, client_id: str, topic_filter: str, events: int,
                    ready: Any, go: Any, result: Any, received: Any, timeout: float) -> None:
    """Child process: a bare paho subscriber (QoS 1, paho's automatic PUBACK) that only counts."""
    import threading

    client = _client(protocol, client_id)
    client.max_inflight_messages_set(2000)
    count = 0
    last = 0.0
    done = threading.Event()

    def on_message(*_args: Any) -> None:
        nonlocal count, last
        count += 1
        if count >= events:
            last = time.perf_counter()
            done.set()

    client.on_message = on_message
    client.on_connect = lambda c, *_args: c.subscribe([(topic_filter, _subscribe_options(protocol))])
    ready.set()
    go.wait(60)
    started = time.perf_counter()
    _connect(client, port, protocol, fresh=False)
    client.loop_start()
    done.wait(timeout)
    time.sleep(0.5)  # anything beyond N would be a redelivery: count it too
    received.value = count
    result.value = last - started if done.is_set() else -1.0
    client.disconnect()
    client.loop_stop()


def shouwang_consumer(port: int, protocol: str, client_id: str, share_group: str, url: str, ready: Any,
                      go: Any, stop: Any, committed: Any, stats: Any, index: int,
                      tuning: dict[str, Any]) -> None:
    """Child process: Shouwang's own consumer, as ``shouwang serve`` builds it, committing to ``url``."""
    from alerts.metrics import Metrics
    from api.runtime import ingest_policy
    from config.clocks import SystemClock
    from config.settings import load_settings
    from sensors.consumer import Consumer

    settings = load_settings(
        database={"url": url},
        mqtt={"url": f"mqtt://127.0.0.1:{port}", "protocol": protocol, "client_id": client_id,
              "share_group": share_group, "session_expiry": f"{SESSION_EXPIRY_S}s", "routes": [ROUTE],
              **tuning},
    )
    engine = make_engine(url)
    with engine.connect() as conn:  # open the pool's first connection before the clock starts
        conn.execute(text("SELECT 1"))
    metrics = Metrics()
    consumer = Consumer(settings.mqtt, engine, SystemClock(), ingest_policy(settings), settings.tz, metrics)
    ready.set()
    go.wait(120)
    cpu = time.process_time()
    consumer.start()
    while not stop.is_set():
        committed[index] = consumer.committed
        stop.wait(0.005)
    committed[index] = consumer.committed
    # where the time went: seconds inside record_batch + commit (the worker thread), batches, CPU seconds
    stats[STATS * index] = metrics.registry.get_sample_value("shouwang_batch_commit_seconds_sum") or 0.0
    stats[STATS * index + 1] = metrics.registry.get_sample_value("shouwang_batch_commit_seconds_count") or 0.0
    stats[STATS * index + 2] = time.process_time() - cpu
    stats[STATS * index + 3] = peak_rss_mb()
    consumer.stop()
    engine.dispose()


def peak_rss_mb() -> float:
    """The peak resident set size of this process and its children still running, in MB (``VmHWM``)."""
    total = 0.0
    pids = [os.getpid(), *(p.pid for p in mp.active_children())]
    for pid in pids:
        try:
            status = Path(f"/proc/{pid}/status").read_text()
        except OSError:
            continue
        for line in status.splitlines():
            if line.startswith("VmHWM:"):
                total += int(line.split()[1]) / 1024
    return total


# -- one protocol -----------------------------------------------------------------------------------------
def run_protocol(broker: PrivateMosquitto, protocol: str, consumers: int, args: argparse.Namespace,
                 url: str) -> dict[str, Any]:
    reset_state(url)
    load_before = os.getloadavg()[0]
    tag = f"{protocol.replace('.', '')}-{uuid.uuid4().hex[:6]}"
    bare_id = f"bench-bare-{tag}"
    consumer_ids = [f"bench-ingest-{tag}-{i}" for i in range(consumers)]
    share = f"{SHARE_GROUP}{tag.replace('-', '')}" if consumers > 1 else ""
    plain_filter = ROUTE["topic"]
    consumer_filter = f"$share/{share}/{plain_filter}" if share else plain_filter

    create_session(broker.port, protocol, bare_id, plain_filter)
    for cid in consumer_ids:
        create_session(broker.port, protocol, cid, consumer_filter)

    base_ts = (datetime.now(UTC) - timedelta(seconds=60)).timestamp()
    publish_s = [CTX.Value("d", 0.0) for _ in range(args.publishers)]
    pubs = [CTX.Process(target=publisher, args=(broker.port, protocol, args.events, args.devices, args.uid_share,
                                                base_ts, i, args.publishers, publish_s[i], args.timeout))
            for i in range(args.publishers)]
    for pub in pubs:
        pub.start()
    for pub in pubs:
        pub.join(args.timeout + 60)
        if pub.is_alive():
            pub.kill()
            raise RuntimeError("publisher did not finish")
    if any(v.value < 0 for v in publish_s):
        raise RuntimeError("publisher: not every event was acknowledged by the broker in time")
    took = max(v.value for v in publish_s)
    log(f"[{protocol}] {args.publishers} publisher processes published {args.events} events at QoS 1 in "
        f"{took:.1f}s ({args.events / took:,.0f}/s); the broker holds them for {1 + len(consumer_ids)} sessions")

    # (b) bare paho
    ready, go, bare_s, received = CTX.Event(), CTX.Event(), CTX.Value("d", 0.0), CTX.Value("q", 0)
    bare = CTX.Process(target=bare_subscriber, args=(broker.port, protocol, bare_id, plain_filter, args.events,
                                                     ready, go, bare_s, received, args.timeout))
    bare.start()
    ready.wait(60)
    go.set()
    bare.join(args.timeout + 30)
    if bare.is_alive():
        bare.kill()
    if bare_s.value <= 0:
        raise RuntimeError(f"bare subscriber received {received.value} of {args.events} in {args.timeout}s")
    bare_rate = args.events / bare_s.value
    log(f"[{protocol}] bare paho drained {received.value} messages in {bare_s.value:.2f}s ({bare_rate:,.0f}/s)")

    # (a) Shouwang's consumer(s)
    go, stop = CTX.Event(), CTX.Event()
    committed = CTX.Array("q", consumers)
    stats = CTX.Array("d", STATS * consumers)
    readies = [CTX.Event() for _ in consumer_ids]
    procs = [CTX.Process(target=shouwang_consumer, args=(broker.port, protocol, cid, share, url, readies[i], go,
                                                         stop, committed, stats, i, tuning(args)))
             for i, cid in enumerate(consumer_ids)]
    for p in procs:
        p.start()
    for r in readies:
        r.wait(120)
    started = time.perf_counter()
    go.set()
    deadline = started + args.timeout
    last_total, last_change = 0, started
    elapsed = -1.0
    while time.perf_counter() < deadline:
        total = sum(committed[:])
        now = time.perf_counter()
        if total >= args.events:
            elapsed = now - started
            break
        if total != last_total:
            last_total, last_change = total, now
        elif now - last_change > args.stall:
            break
        time.sleep(0.005)
    time.sleep(0.5)  # let a straggling batch or a redelivery land before counting
    stop.set()
    for p in procs:
        p.join(30)
        if p.is_alive():
            p.kill()
    rows, distinct, held = count_events(url)
    for cid in [bare_id, *consumer_ids]:  # the next protocol's backlog must not be queued for these too
        drop_session(broker.port, protocol, cid)
    load_after = os.getloadavg()[0]
    if elapsed < 0:
        log(f"[{protocol}] consumer did not store all events: {distinct} of {args.events} "
            f"(stalled or timed out)")
    rate = args.events / elapsed if elapsed > 0 else 0.0
    log(f"[{protocol}] Shouwang consumer x{consumers} stored {rows} rows in "
        f"{elapsed:.2f}s ({rate:,.0f}/s); quarantined {held}")
    for i in range(consumers):
        commit_s, batches, cpu_s = stats[STATS * i], stats[STATS * i + 1], stats[STATS * i + 2]
        line = (f"consumer {i}: drained in {elapsed:.1f}s; {batches:.0f} batches, {commit_s:.1f}s of it in "
                f"record_batch + commit ({1000 * commit_s / max(batches, 1):.0f} ms per batch), "
                f"{cpu_s:.1f}s CPU in the consumer process, peak RSS {stats[STATS * i + 3]:.0f} MB")
        DETAILS.setdefault(f"MQTT {protocol}, {consumers} process(es)", []).append(line)
        log(f"[{protocol}]   {line}")
    LOADS[f"MQTT {protocol}, {consumers} process(es)"] = (load_before, load_after)
    return {
        "protocol": protocol,
        "consumers": consumers,
        "events_per_s": round(rate),
        "bare_paho_events_per_s": round(bare_rate),
        "ratio": round(rate / bare_rate, 2) if bare_rate else None,
        "lost": args.events - distinct,
        "duplicates": rows - distinct,
        "rss_mb": round(max(stats[STATS * i + 3] for i in range(consumers))),
    }


def tuning(args: argparse.Namespace) -> dict[str, Any]:
    """Consumer settings that differ from the production defaults (none unless asked for)."""
    options = {"batch_size": args.batch_size, "db_workers": args.db_workers}
    return {key: value for key, value in options.items() if value is not None}


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def document(results: list[dict[str, Any]], args: argparse.Namespace, url: str) -> None:
    command = "python -m bench.ingest" + (" --quick" if args.quick else "")
    if make_url(url).database != make_url(BENCH_URL).database:
        command += f" --database {make_url(url).database}"
    if not args.quick:
        command += (f" --events {args.events} --devices {args.devices} "
                    f"--consumers {','.join(str(n) for n in args.consumers)}")
    command += "".join(f" --{key.replace('_', '-')} {value}" for key, value in tuning(args).items())
    lines = [
        "## Ingest: MQTT QoS 1 -> PostgreSQL, against a bare paho subscriber",
        "",
        f"Run {today()} on {machine()}; Mosquitto {mosquitto_version()} (config/mosquitto.conf, own port), "
        f"PostgreSQL {postgres_version(url)} (database `{make_url(url).database}`), all on 127.0.0.1.",
        "",
        "| protocol | consumer processes | Shouwang events/s | bare paho events/s | ratio | lost | duplicates "
        "| peak RSS of a consumer process |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in results:
        lines.append(f"| MQTT {r['protocol']} | {r['consumers']} | {r['events_per_s']:,} | "
                     f"{r['bare_paho_events_per_s']:,} | {r['ratio']} | {r['lost']} | {r['duplicates']} | "
                     f"{r['rss_mb']} MB |")
    lines += ["", "Where the consumer's time went:", ""]
    lines += [f"- {p}: {line}" for p, entries in DETAILS.items() for line in entries]
    loads = "; ".join(f"{p}: {a:.1f} before, {b:.1f} after" for p, (a, b) in LOADS.items())
    lines += [
        "",
        f"1-minute load average of the machine (2 cores; other work may share it): {loads}.",
        "",
        "Targets: SPEC section 7, >= 20,000 events/s and a ratio >= 0.7; issue 16, one consumer process >= 0.8 "
        "and two >= 1.0 of the bare subscriber of the same run, a consumer process's RSS <= 150 MB with 10,000 "
        f"devices. {args.events:,} native motion events "
        f"over {args.devices:,} devices ({args.devices:,} residents), {args.uid_share:.0%} of them with an "
        "`event_id`, every 50th with a battery level.",
        "",
        "Method: a **backlog drain**. Per protocol and number of consumer processes, the consumer's and the bare "
        "subscriber's client ids first "
        "connect once with a persistent session (3.1.1: clean session off; 5: clean start off, session expiry "
        "1 h) and subscribe to `bench/events/#` at QoS 1, then disconnect. A publisher process publishes every "
        "event at QoS 1 (all acknowledged by the broker) while nobody consumes, so the broker queues them in "
        "both sessions. Then the bare paho subscriber (one process, paho's automatic PUBACK, it only counts) "
        "reconnects and is timed from its connect to its N-th message; then Shouwang's "
        "`sensors.consumer.Consumer` (in its own process, or in each of N processes on one shared subscription "
        "`$share/...` as `serve` runs them with `mqtt.consumers = N`; production defaults unless the command "
        "below says "
        "otherwise: batches of up to 1,000, 50 ms batch wait, Receive Maximum 2,000, one dispatcher thread "
        "converting the next batch while one writer thread (`mqtt.db_workers`) records and commits the "
        "previous one, PUBACKs only after the commit, in receive order) is timed from its start to the N-th "
        "event stored in PostgreSQL. \"In record_batch + commit\" adds up the writers' time; peak RSS is the "
        "consumer process's `VmHWM` at the end (the largest of the processes). "
        "Lost = N - distinct events in `events` (an event is its device and device "
        "time); duplicates = rows beyond those. Residents, devices and events are reset between measurements.",
        "",
        "Reproduce (Mosquitto at /usr/sbin/mosquitto, PostgreSQL on 127.0.0.1:5432, trust auth; the script "
        f"creates `{make_url(url).database}`):",
        "",
        "```sh",
        command,
        "```",
    ]
    write_section("ingest", "\n".join(lines))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, default=200_000)
    parser.add_argument("--devices", type=int, default=10_000)
    parser.add_argument("--residents", type=int, default=None, help="default: one per device")
    parser.add_argument("--protocols", default="3.1.1,5", help="comma-separated: 3.1.1,5")
    parser.add_argument("--consumers", default="1,2",
                        help="consumer processes, comma-separated: one measurement each (>1: a shared subscription)")
    parser.add_argument("--publishers", type=int, default=2, help="publisher processes filling the backlog")
    parser.add_argument("--uid-share", type=float, default=0.5, help="share of events carrying an event_id")
    parser.add_argument("--quick", action="store_true", help="a smoke run: 20,000 events, 1,000 devices")
    parser.add_argument("--timeout", type=float, default=240.0, help="seconds allowed for each phase")
    parser.add_argument("--stall", type=float, default=20.0, help="give up after this long without progress")
    parser.add_argument("--db-workers", type=int, default=None, help="consumer writer threads (default: settings)")
    parser.add_argument("--batch-size", type=int, default=None, help="consumer batch size (default: settings)")
    parser.add_argument("--no-doc", action="store_true", help="do not write docs/benchmarks.md")
    parser.add_argument("--url", default=BENCH_URL,
                        help="the benchmark database (default: SHOUWANG_BENCH_PG, else shouwang_bench)")
    parser.add_argument("--database", help="the database name on the --url server, e.g. bench_ingest")
    args = parser.parse_args(argv)
    if args.database:
        args.url = make_url(args.url).set(database=args.database).render_as_string(hide_password=False)
    if args.quick:
        args.events, args.devices = 20_000, 1_000
    args.residents = args.residents or args.devices
    protocols = [p.strip() for p in args.protocols.split(",") if p.strip()]
    if any(p not in ("3.1.1", "5") for p in protocols):
        parser.error("--protocols takes 3.1.1 and/or 5")
    try:
        args.consumers = [int(n) for n in str(args.consumers).split(",") if n.strip()]
    except ValueError:
        parser.error("--consumers takes numbers, e.g. 1,2")
    if not args.consumers or not all(1 <= n <= 8 for n in args.consumers) or args.events < 1 or args.devices < 1:
        parser.error("--consumers 1..8, --events and --devices positive")

    log(f"preparing {args.url}: {args.devices} devices, {args.residents} residents")
    prepare_database(args.url, args.devices, args.residents)
    results = []
    with tempfile.TemporaryDirectory(prefix="shouwang-bench-") as tmp:
        broker = PrivateMosquitto(Path(tmp)).start()
        log(f"mosquitto on port {broker.port}")
        try:
            for consumers in args.consumers:
                for protocol in protocols:
                    result = run_protocol(broker, protocol, consumers, args, args.url)
                    print(json.dumps(result), flush=True)
                    results.append(result)
        finally:
            broker.stop()
    if not args.no_doc:
        document(results, args, args.url)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
