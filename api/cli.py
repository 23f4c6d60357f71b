"""The ``shouwang`` command: the one composition root. Nothing imports this module.

    shouwang demo                 embedded broker + SQLite + simulated homes + API, on a fast clock
    shouwang serve                ingest + rules + API on the configured broker and database
    shouwang db upgrade           apply the database migrations
    shouwang load FILE            load a community (grids, workers, residents, devices) from TOML
    shouwang clock show|set|advance   the manual clock shared through the database
    shouwang simulate             publish virtual homes to a broker

What it prints for a person (its refusals, the domain errors, the lines it reports) follows
``notify.language``, Chinese by default: the words are the ``cli_*`` codes of :data:`alerts.refusals.REFUSALS`,
the domain errors (:class:`~alerts.refusals.Refusal`: a bad community file, an admin or policy error) are
worded by their code, and other errors (an OS error, a bad TOML file) get a worded frame around the system's
own text. When the settings themselves cannot be loaded, their error is worded in the ``notify.language``
that can still be read: ``SHOUWANG_NOTIFY__LANGUAGE``, else ``[notify] language`` in the config file;
Chinese when neither can be read (the default, and the first language of the product: a second copy in
English would only double what the operator must read). What is data rather than words stays as it is:
tokens, ISO instants, JSON Schema, TOML, ``--help`` (argparse's own English), and the logs.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import signal
import socket
import sys
import threading
import tomllib
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import Engine
from sqlalchemy.orm import Session

from alerts.clock import FastClock, ManualClock, make_clock
from alerts.db import make_engine, upgrade
from alerts.escalation.notifiers.console import ConsoleProvider
from alerts.escalation.templates import Language
from alerts.models import ManualClockRow
from alerts.refusals import Refusal, word
from alerts.registry.community import load_community
from api import accounts
from api.consumers import ConsumerProcesses, parent_gone
from api.errors import validation_msg
from api.runtime import Runtime, watch_policy
from config.clocks import SystemClock
from config.logging import setup_logging
from config.settings import FormatRoute, Settings, SettingsError, load_settings, parse_duration
from sensors.embedded_broker import EmbeddedBroker, free_port
from sensors.payloads import native_schema_json
from simulator.devices import FORMATS
from simulator.homes import Community, to_toml
from simulator.load import load_messages
from simulator.people import SimulatedPeople, demo_script
from simulator.publisher import Publisher, is_loopback
from simulator.scenario import Scenario, load_scenario, parse_offset, shipped_scenarios

log = logging.getLogger("shouwang")


NEW_PASSWORD_ENV = "SHOUWANG_NEW_PASSWORD"


def main(argv: list[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    if not getattr(args, "command", None):
        parser.print_help()
        return 2
    # the password for `user add` is the command's input, not a setting: take it out before the settings
    # loader (which refuses unknown SHOUWANG_* names) and out of the environment children would inherit
    args.env_password = os.environ.pop(NEW_PASSWORD_ENV, None)
    try:
        settings = load_settings(args.config)
    except SettingsError as exc:
        print(f"shouwang: {_settings_error(exc, _raw_language(args.config))}", file=sys.stderr)
        return 2
    language = settings.notify.language
    setup_logging(settings.log_level, settings.log_format)
    # SIGTERM (systemd, containers) stops as Ctrl+C does: the ``finally`` blocks run, the broker gets a DISCONNECT
    signal.signal(signal.SIGTERM, _interrupt)
    try:
        return int(args.handler(settings, args) or 0)
    except (Refusal, OSError, ValueError) as exc:
        print(f"shouwang: {_error(exc, language)}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:  # a signal while starting or stopping: what had started has been stopped
        print(f"shouwang: {word('cli_stopped', language)}", file=sys.stderr)
        return 130


def _refuse(settings: Settings, code: str, status: int = 2, **params: Any) -> int:
    """Say ``code`` of :data:`alerts.refusals.REFUSALS` on stderr in ``notify.language``; returns ``status``."""
    print(f"shouwang: {word(code, settings.notify.language, params)}", file=sys.stderr)
    return status


def _say(settings: Settings, code: str, **params: Any) -> None:
    """Print ``code`` in ``notify.language`` (a line a person reads)."""
    print(word(code, settings.notify.language, params), flush=True)


def _error(exc: BaseException, language: Language) -> str:
    """A command's error for the operator: a domain error in their language, a system one framed in it."""
    if isinstance(exc, Refusal):
        return exc.worded(language)
    if isinstance(exc, FileNotFoundError) and exc.filename:
        return word("cli_no_file", language, {"file": exc.filename})
    if isinstance(exc, PermissionError) and exc.filename:
        return word("cli_file_denied", language, {"file": exc.filename})
    if isinstance(exc, OSError):
        return word("cli_os_error", language, {"why": str(exc)})
    if isinstance(exc, tomllib.TOMLDecodeError):
        return word("cli_toml", language, {"why": str(exc)})
    return str(exc)


def _raw_language(config: str | None) -> Language:
    """``notify.language`` as written, for when the settings as a whole cannot be loaded: the environment,
    else the config file; Chinese when neither can be read."""
    language: Any = os.environ.get("SHOUWANG_NOTIFY__LANGUAGE")
    path = config or os.environ.get("SHOUWANG_CONFIG")
    if language is None and path:
        try:
            language = tomllib.loads(Path(path).read_text(encoding="utf-8")).get("notify", {}).get("language")
        except (OSError, ValueError, AttributeError):
            language = None
    return "en" if language == "en" else "zh"


def _settings_error(exc: SettingsError, language: Language) -> str:
    """What is wrong in the settings: the heading, then each invalid setting with its variable."""
    lines = [word(exc.code, language, {"text": str(exc), **exc.params})]
    for problem in exc.problems:
        if problem["type"] == "extra_forbidden":
            why = word("settings_unknown", language)
        elif "code" in problem:
            why = word(problem["code"], language, problem["params"])
        elif language == "en":
            why = problem["msg"]
        else:
            why = validation_msg({"type": problem["type"], "msg": problem["msg"], "ctx": problem["ctx"]}, language)
        lines.append(word("settings_problem", language, {"where": problem["where"], "env": problem["env"], "why": why}))
    return "\n".join(lines)


def _interrupt(_signum: int, _frame: object) -> None:
    raise KeyboardInterrupt


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="shouwang", description="Shouwang 守望: watches over elders living alone.")
    parser.add_argument("--config", help="TOML settings file (else SHOUWANG_CONFIG; env SHOUWANG_* overrides)")
    commands = parser.add_subparsers(dest="command")

    serve = commands.add_parser("serve", help="run ingest, rules and the API on the configured broker/database")
    serve.add_argument("--process", default=os.environ.get("HOSTNAME", "main"), help="name of this process")
    serve.add_argument("--client-id", help="MQTT client id (default: mqtt.client_id)")
    serve.add_argument("--no-api", action="store_true", help="run ingest and rules without the HTTP API")
    serve.add_argument("--role", action="append", choices=["ingest", "rules", "api"],
                       help="run only this part (repeatable; default: settings.roles, all three)")
    serve.add_argument("--consumers", type=int, metavar="N",
                       help="consumer processes on the shared subscription (default: mqtt.consumers)")
    serve.add_argument("--parent", type=int, help=argparse.SUPPRESS)  # a consumer process started by serve
    serve.set_defaults(handler=_serve)

    demo = commands.add_parser(
        "demo", help="everything embedded: broker, SQLite, simulated homes, API",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
        description="Everything in one process: an embedded MQTT broker, a SQLite database, simulated homes and "
                    "the API with the map screen and the phone page, on a fast clock (600x: the 14 h inactivity "
                    "window passes in 84 s). Calls and SMS are printed, not sent.",
        epilog=f"shipped scenarios: {', '.join(shipped_scenarios())} (the format: docs/simulator.md). "
               "WARNING: each start deletes the database in --data (shouwang.db) and writes a new one, with "
               "the tokens and the worker's PIN in tokens.json (readable by you only).")
    demo.add_argument("--homes", type=int, default=122, help="number of simulated homes")
    demo.add_argument("--scenario", default="demo",
                      help="a shipped scenario's name or a scenario TOML file ('demo': a fall, a dead sensor and a "
                           "panic press)")
    demo.add_argument("--speed", type=float, default=600.0, help="simulated seconds per real second")
    demo.add_argument("--port", type=int, default=0,
                      help="HTTP port (0: 8000 if free, else any free one); a port in use is refused")
    demo.add_argument("--data", default="data/demo",
                      help="folder of the demo's SQLite database: an existing database there is DELETED at start")
    demo.add_argument("--seed", type=int, default=1,
                      help="random seed of the homes' names, places, rhythms and devices: the same seed gives "
                           "the same community and messages")
    demo.set_defaults(handler=_demo)

    db = commands.add_parser("db", help="database maintenance")
    db_commands = db.add_subparsers(dest="db_command", required=True)
    db_commands.add_parser("upgrade", help="apply migrations up to the newest").set_defaults(handler=_db_upgrade)

    load = commands.add_parser("load", help="load a community from a TOML file")
    load.add_argument("file")
    load.set_defaults(handler=_load)

    clock = commands.add_parser("clock", help="show or move the manual clock (clock.mode = manual)")
    clock.add_argument("action", choices=["show", "set", "advance"])
    clock.add_argument("value", nargs="?", help="ISO instant for set; duration (90s, 10m, 14h) for advance")
    clock.set_defaults(handler=_clock)

    user = commands.add_parser("user", help="centre accounts: shouwang user add NAME --role admin|operator|screen")
    user.add_argument("action", choices=["add"])
    user.add_argument("username")
    user.add_argument("--role", choices=["admin", "operator", "screen"], required=True)
    user.add_argument("--name", default="")
    user.add_argument("--password", help="default: read from the SHOUWANG_NEW_PASSWORD environment variable")
    user.set_defaults(handler=_user)

    pin = commands.add_parser("pin", help="set a worker's PIN for the phone page: shouwang pin PHONE PIN")
    pin.add_argument("phone")
    pin.add_argument("pin")
    pin.set_defaults(handler=_pin)

    token = commands.add_parser("screen-token", help="print a long-lived read-only token for a wall screen")
    token.add_argument("--label", default="wall screen")
    token.set_defaults(handler=_screen_token)

    integration = commands.add_parser(
        "integration-token", help="print a long-lived token for another system (e.g. the canteen's meal cards) "
                                  "that may only report signs of life")
    integration.add_argument("name", help="what the system is, e.g. canteen")
    integration.add_argument("--days", type=int, default=365, help="how long the token lives (default 365)")
    integration.set_defaults(handler=_integration_token)

    schema = commands.add_parser("schema", help="print the JSON Schema of the native MQTT payload")
    schema.set_defaults(handler=_schema)

    simulate = commands.add_parser(
        "simulate", help="publish virtual homes (daily rhythms, scripted incidents) to the configured broker",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Virtual homes around a centre point, each a resident with a daily rhythm, publishing over "
                    "MQTT (QoS 1)\nto the broker of the settings (mqtt.url) in any of the device formats. Time "
                    "follows the settings' clock:\nwith clock.mode = 'fast' the simulator and the service read "
                    "the same simulated time.",
        epilog="modes:\n"
               "  shouwang simulate --print-community > community.toml   then: shouwang load community.toml\n"
               "  shouwang simulate --print-routes                        the [[mqtt.routes]] the service needs\n"
               "  shouwang simulate --scenario demo                       follow the clock, publish as time passes\n"
               "  shouwang simulate --scenario incidents --until 15h      publish 15 simulated hours now, then exit\n"
               "  shouwang simulate --until 2h --dry-run                  print those messages instead\n"
               "  shouwang simulate --load 2000 --count 100000 --duration 60   benchmark load (127.0.0.1 only)\n"
               f"shipped scenarios: {', '.join(shipped_scenarios())}; the scenario format: docs/simulator.md")
    simulate.add_argument("--scenario", help="scenario TOML file, or the name of a shipped one (default: 122 "
                          "homes, no incidents)")
    simulate.add_argument("--homes", type=int, help="number of homes (default: the scenario's, else 122)")
    simulate.add_argument("--seed", type=int, help="random seed of names, rhythms and devices (default: the "
                          "scenario's, else 1); the same seed gives the same messages")
    simulate.add_argument("--format", choices=list(FORMATS),
                          help="one format for every home (default: the scenario's mix, else native)")
    simulate.add_argument("--prefix", default="", help="put before every topic, e.g. 'site1/' (default none)")
    simulate.add_argument("--start", help="start of the timeline, an ISO instant with zone (default: the clock's now)")
    simulate.add_argument("--until", help="publish (or print) the timeline up to start + this duration as fast "
                          "as possible, then exit (e.g. 90m, 14h30m, 2d)")
    simulate.add_argument("--dry-run", action="store_true", help="print the messages instead of publishing")
    simulate.add_argument("--print-community", action="store_true",
                          help="print the community as TOML for 'shouwang load' and exit")
    simulate.add_argument("--print-routes", action="store_true",
                          help="print the mqtt.routes the service needs for these homes (TOML) and exit")
    simulate.add_argument("--load", type=float, metavar="RATE",
                          help="load mode: RATE motion messages a second from every motion sensor in turn, to a "
                          "broker on 127.0.0.1 only; bounded by --count and/or --duration")
    simulate.add_argument("--count", type=int, metavar="N", help="load mode: stop after N messages")
    simulate.add_argument("--duration", type=float, metavar="S", help="load mode: stop after S seconds")
    simulate.set_defaults(handler=_simulate)
    return parser


def _serve(settings: Settings, args: argparse.Namespace) -> int:
    if args.client_id:
        settings.mqtt.client_id = args.client_id
    if args.role:
        settings.roles = list(dict.fromkeys(args.role))
    if args.no_api and "api" in settings.roles:
        settings.roles = [role for role in settings.roles if role != "api"] or ["rules"]
    consumers = args.consumers if args.consumers is not None else settings.mqtt.consumers
    if "ingest" in settings.roles and consumers > 1:
        if not settings.mqtt.share_group:
            return _refuse(settings, "cli_share_group")
        if not settings.database.url.startswith("postgresql"):
            return _refuse(settings, "cli_consumers_postgres")
    if args.parent is None:  # a consumer process of a serve: its parent has migrated the database
        upgrade(settings.database.url)
    children = None
    if "ingest" in settings.roles and consumers > 1:
        children = ConsumerProcesses(consumers - 1, settings.mqtt.client_id, args.process, args.config).start()
    try:
        runtime = Runtime(settings, process=args.process)
        runtime.start()
        log.info("serving", extra={"broker": settings.mqtt.url, "database": _safe_url(settings.database.url),
                                   "api": f"http://{settings.api.host}:{settings.api.port}",
                                   "consumers": consumers if "ingest" in settings.roles else 0})
        try:
            if "api" not in settings.roles:
                _wait_for_signal(args.parent)
            else:
                runtime.serve_http(settings.api.host, settings.api.port)
        finally:
            runtime.stop()
    finally:
        if children is not None:
            children.stop()
    return 0


def _demo(settings: Settings, args: argparse.Namespace) -> int:
    if args.port and not _port_free(args.port):
        return _refuse(settings, "cli_port_in_use", port=args.port)
    data = Path(args.data)
    data.mkdir(parents=True, exist_ok=True)
    database = data / "shouwang.db"
    for leftover in data.glob("shouwang.db*"):
        leftover.unlink()
    broker = EmbeddedBroker()
    broker.start()
    start = datetime.now(UTC).replace(microsecond=0)
    simulation = load_scenario(args.scenario).build(start, settings.tz, homes=args.homes, seed=args.seed)
    community = simulation.community
    settings = settings.model_copy(update={
        "database": settings.database.model_copy(update={"url": f"sqlite:///{database}"}),
        "mqtt": settings.mqtt.model_copy(update={"url": broker.url, "protocol": "3.1.1", "share_group": "",
                                                 "client_id": "shouwang-demo",
                                                 "routes": [FormatRoute(**r) for r in simulation.routes()]}),
        "clock": settings.clock.model_copy(update={"mode": "fast", "start": start, "speed": args.speed}),
    })
    upgrade(settings.database.url)
    clock = FastClock(start, args.speed)
    falls = [i for i in simulation.incidents if i.kind == "fall"]
    fallen = community.home(falls[0].home if falls and falls[0].home else 1)  # silent: its window runs out first
    engine = make_engine(settings.database.url)
    with Session(engine) as session, session.begin():
        policy = watch_policy(settings)
        load_community(session, community.as_data(), clock.now(), policy.limits, actor="demo",
                       offline_after=policy.device_limits.offline_after)
    engine.dispose()

    grid_worker = next(w["phone"] for w in community.as_data()["workers"] if w["role"] == "grid_worker")
    runtime = Runtime(settings, process="demo", clock=clock, script=demo_script(grid_worker))
    with Session(runtime.engine) as session, session.begin():
        screen = accounts.screen_token(session, clock.now(), timedelta(days=365), "demo screen")
        admin = accounts.token_for(session, clock.now(), "admin", username="demo-admin", ttl=timedelta(days=365))
        accounts.set_pin(session, grid_worker, DEMO_PIN)
    _write_private(data / "tokens.json", json.dumps({"screen": screen, "admin": admin, "worker_phone": grid_worker,
                                                     "worker_pin": DEMO_PIN}))
    runtime.start()
    people = _people(runtime, clock)
    publisher = Publisher(broker.host, broker.port)
    publisher.connect()
    sim = threading.Thread(target=publisher.run, args=(simulation.timeline(), clock), name="simulator", daemon=True)
    sim.start()
    port = args.port or (8000 if _port_free(8000) else free_port())
    if not _port_free(port):
        return _refuse(settings, "cli_port_taken", port=port)
    window_real = clock.real_seconds(settings.rules.inactivity_window)
    _say(settings, "cli_demo", homes=args.homes, speed=args.speed, window=window_real, name=fallen.name,
         ref=fallen.ref, expect=window_real + 5, port=port, screen=screen, worker=grid_worker, pin=DEMO_PIN,
         tokens=data / "tokens.json")
    try:
        runtime.serve_http("127.0.0.1", port)
    finally:
        people.set()
        publisher.close()
        runtime.stop()
        broker.stop()
    return 0


DEMO_PIN = "1234"


def _people(runtime: Runtime, clock: FastClock) -> threading.Event:
    """The demo's simulated people act at their own simulated instants (simulator.people), checked every
    50 ms of real time (30 simulated seconds at 600x). Returns the event that stops them."""
    stop = threading.Event()
    if not isinstance(runtime.provider, ConsoleProvider):
        return stop
    people = SimulatedPeople(runtime.engine, runtime.provider, runtime.chain)

    def run() -> None:
        while not stop.wait(0.05):
            try:
                people.act(clock.now())
            except Exception:  # a failed act is retried on the next round; the demo goes on
                logging.getLogger(__name__).exception("simulated people")

    threading.Thread(target=run, name="simulated-people", daemon=True).start()
    return stop


def _db_upgrade(settings: Settings, _args: argparse.Namespace) -> int:
    upgrade(settings.database.url)
    _say(settings, "cli_db_upgraded", url=_safe_url(settings.database.url))
    return 0


def _load(settings: Settings, args: argparse.Namespace) -> int:
    try:
        data = tomllib.loads(Path(args.file).read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as exc:
        return _refuse(settings, "cli_not_toml", 1, file=args.file, why=str(exc))
    engine, now = _database(settings)
    with Session(engine) as session, session.begin():
        policy = watch_policy(settings)
        counts = load_community(session, data, now, policy.limits, actor=f"cli:{args.file}",
                                offline_after=policy.device_limits.offline_after)
    _say(settings, "cli_loaded", counts={language: (", " if language == "en" else "、").join(
        word(f"cli_count_{kind}", language, {"n": n}) for kind, n in counts.items()) for language in ("zh", "en")})
    if _manual_clock_unset(settings, engine):
        _refuse(settings, "cli_clock_unset", now=now.isoformat())
    return 0


def _manual_clock_unset(settings: Settings, engine: Engine) -> bool:
    if settings.clock.mode != "manual" or settings.clock.start is not None:
        return False
    with Session(engine) as session:
        return session.get(ManualClockRow, 1) is None


def _clock(settings: Settings, args: argparse.Namespace) -> int:
    if settings.clock.mode != "manual":
        return _refuse(settings, "cli_clock_manual")
    if args.action in ("set", "advance") and not args.value:
        return _refuse(settings, "cli_clock_value", action=args.action)
    upgrade(settings.database.url)
    engine = make_engine(settings.database.url)
    clock = ManualClock(engine, settings.clock.start)
    if args.action == "set":
        instant = _instant(args.value)
        if instant is None:
            return _refuse(settings, "cli_instant", value=args.value)
        if instant.tzinfo is None:
            return _refuse(settings, "cli_instant_zone")
        clock.set(instant)
    elif args.action == "advance":
        try:
            step = parse_duration(args.value)
        except ValueError:
            return _refuse(settings, "duration", value=args.value)
        clock.advance(step)
    print(clock.now().isoformat())
    return 0


def _simulate(settings: Settings, args: argparse.Namespace) -> int:
    scenario = load_scenario(args.scenario) if args.scenario else Scenario()
    clock = _simulation_clock(settings)
    start = _instant(args.start) if args.start else clock.now()
    if start is None:
        return _refuse(settings, "cli_instant", value=args.start)
    if start.tzinfo is None:
        return _refuse(settings, "cli_start_zone")
    simulation = scenario.build(start, settings.tz, prefix=args.prefix, homes=args.homes, seed=args.seed,
                                fmt=args.format)
    if args.print_community:
        sys.stdout.write(to_toml(simulation.community.as_data()))
        return 0
    if args.print_routes:
        sys.stdout.write(to_toml({"routes": simulation.routes()}).replace("[[routes]]", "[[mqtt.routes]]"))
        return 0
    if args.load is not None:
        return _simulate_load(settings, args, simulation.community)
    until = start + parse_offset(args.until, "--until") if args.until else None
    timeline = simulation.timeline(until=until)
    if args.dry_run:
        if until is None:
            return _refuse(settings, "cli_dry_run_until")
        for message in timeline:
            flags = "".join(f for f, on in ((" retain", message.retain), (" activity", message.activity)) if on)
            print(f"{message.at.isoformat()} {message.topic} {message.payload[:200]!r}{flags}")
        return 0
    publisher = Publisher(settings.mqtt.host, settings.mqtt.port, client_id=f"shouwang-simulator-{os.getpid()}",
                          protocol=settings.mqtt.protocol, username=settings.mqtt.username,
                          password=settings.mqtt.password)
    publisher.connect()
    try:
        if until is not None:
            sent = publisher.publish_until(timeline, until)
            _say(settings, "cli_published", sent=sent, homes=len(simulation.community.homes),
                 start=start.isoformat(), until=until.isoformat())
            return 0
        log.info("simulating", extra={"homes": len(simulation.community.homes), "scenario": scenario.name,
                                      "broker": settings.mqtt.url, "start": start.isoformat()})
        thread = threading.Thread(target=publisher.run, args=(timeline, clock), name="simulator", daemon=True)
        thread.start()
        _wait_for_signal()
    finally:
        publisher.close(clear_retained=until is None)
    return 0


def _instant(text: str) -> datetime | None:
    """An ISO instant, or ``None`` when ``text`` is not one."""
    try:
        return datetime.fromisoformat(text)
    except ValueError:
        return None


def _simulation_clock(settings: Settings) -> FastClock | ManualClock | SystemClock:
    """The clock the service reads too, so both agree on the simulated time."""
    if settings.clock.mode == "fast":
        return FastClock(settings.clock.start or datetime.now(UTC), settings.clock.speed)
    if settings.clock.mode == "manual":
        return ManualClock(make_engine(settings.database.url), settings.clock.start)
    return SystemClock()


def _simulate_load(settings: Settings, args: argparse.Namespace, community: Community) -> int:
    if not is_loopback(settings.mqtt.host):
        return _refuse(settings, "cli_load_loopback", host=settings.mqtt.host)
    if args.count is None and args.duration is None:
        return _refuse(settings, "cli_load_bound")
    publisher = Publisher(settings.mqtt.host, settings.mqtt.port, client_id=f"shouwang-load-{os.getpid()}",
                          protocol=settings.mqtt.protocol, username=settings.mqtt.username,
                          password=settings.mqtt.password)
    publisher.connect()
    try:
        sent, seconds = publisher.publish_at_rate(load_messages(community, settings.tz, SystemClock().now),
                                                  args.load, count=args.count, duration=args.duration)
    finally:
        publisher.close()
    _say(settings, "cli_published_load", sent=sent, seconds=seconds, rate=sent / max(seconds, 1e-9), asked=args.load,
         homes=len(community.homes))
    return 0


def _user(settings: Settings, args: argparse.Namespace) -> int:
    password = args.password or getattr(args, "env_password", None)
    if not password or len(password) < 8:
        return _refuse(settings, "cli_password")
    engine, now = _database(settings)
    with Session(engine) as session, session.begin():
        accounts.add_user(session, args.username, args.role, password, now, name=args.name)
    _say(settings, "cli_user_saved", username=args.username, role=args.role)
    return 0


def _pin(settings: Settings, args: argparse.Namespace) -> int:
    upgrade(settings.database.url)
    engine = make_engine(settings.database.url)
    with Session(engine) as session, session.begin():
        if not accounts.set_pin(session, args.phone, args.pin):
            return _refuse(settings, "cli_no_worker", 1, phone=args.phone)
    _say(settings, "cli_pin_set", phone=args.phone)
    return 0


def _screen_token(settings: Settings, args: argparse.Namespace) -> int:
    days = timedelta(days=settings.api.screen_token_days)
    return _print_token(settings, lambda session, now: accounts.screen_token(session, now, days, args.label))


def _integration_token(settings: Settings, args: argparse.Namespace) -> int:
    days = timedelta(days=args.days)
    return _print_token(settings, lambda session, now: accounts.integration_token(session, now, args.name, days))


def _print_token(settings: Settings, issue: Callable[[Session, datetime], str]) -> int:
    engine, now = _database(settings)
    with Session(engine) as session, session.begin():
        token = issue(session, now)
    print(token)
    return 0


def _database(settings: Settings) -> tuple[Engine, datetime]:
    """The configured database, migrated to the newest schema, and the service clock's now."""
    upgrade(settings.database.url)
    engine = make_engine(settings.database.url)
    return engine, make_clock(settings.clock, engine).now()


def _schema(_settings: Settings, _args: argparse.Namespace) -> int:
    sys.stdout.write(native_schema_json())
    return 0


def _wait_for_signal(parent: int | None = None) -> None:
    """Until SIGINT or SIGTERM; with ``parent``, also until that process is gone (a consumer process whose
    ``serve`` was killed stops by itself)."""
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    while not stop.wait(1.0 if parent is not None else None):
        if parent is not None and parent_gone(parent):
            log.warning("the serve process that started this consumer is gone: stopping")
            return


def _write_private(path: Path, text: str) -> None:
    """Write a file only its owner can read (0600), whatever the umask; an older file is replaced."""
    path.unlink(missing_ok=True)
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(descriptor, "w", encoding="utf-8") as handle:
        handle.write(text)


def _port_free(port: int) -> bool:
    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) != 0


def _safe_url(url: str) -> str:
    if "@" in url and "://" in url:
        scheme, rest = url.split("://", 1)
        return f"{scheme}://***@{rest.split('@', 1)[1]}"
    return url


if __name__ == "__main__":
    sys.exit(main())
