"""The watch watches itself (SPEC section 3): every way Shouwang can go blind is an alarm and a banner,
never silence.

A :class:`BlindWatch` runs in every process, the API-only ones too, on real time (a thread, once a
second), independent of the rule scheduler it watches:

* **database unreachable** — a ``SELECT 1`` fails: the state is kept in memory and shown at once to the
  screens this process serves (the stream sends ``blind``), ``/healthz`` fails; when the database is back,
  a ``system`` alarm records the outage with its start and end;
* **scheduler not ticking** — every tick writes a heartbeat (``watch_status`` ``tick:<process>``, with
  its real time); when no process has ticked for ``tick_stale_after`` the ``system`` alarm
  ``scheduler`` opens (one for all processes: its key is unique), and closes when a tick is seen again;
* **ingest behind** — this process's consumer holds a message received and not committed for longer than
  ``ingest_behind_after``: the ``system`` alarm ``ingest:<client>``;
* **consumer cut off from the broker** — raised by the tick itself (:func:`alerts.service._broker_alarm`).

While anything is blind, the optional dead man's switch (:class:`Watchdog`) pings ``<url>/fail``.
"""

from __future__ import annotations

import logging
import threading
import time
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Engine, select, text
from sqlalchemy.orm import Session

from alerts import alarms, transitions, wording
from alerts.background import Background
from alerts.models import Alarm, AlarmKind, AlarmState, Outcome, WatchStatus

log = logging.getLogger(__name__)

DATABASE = "database unreachable"
SCHEDULER = "scheduler not ticking"
INGEST = "ingest behind"
SYSTEM = "system alarm open"


@dataclass(frozen=True)
class Blind:
    what: str
    since: datetime | None  # service clock (the last instant known, when the database is gone)
    since_wall: float  # time.time() when this process noticed
    detail: str = ""

    def as_dict(self) -> dict[str, Any]:
        return {"what": self.what, "since": self.since.isoformat() if self.since else None,
                "since_wall": self.since_wall, "detail": self.detail}


def _worded(code: str, params: dict[str, Any], fallback: str) -> str:
    """The stored text of a system alarm (SMS, calls) in ``notify.language``; screens word the code."""
    words = wording.configured()
    try:
        return wording.reason(code, params, words.language, words.zone)
    except (KeyError, ValueError):
        return fallback


def tick_stale(last_ticks: list[float], now_wall: float, stale_after: timedelta) -> bool:
    """No process has ticked within ``stale_after`` (real time). Pure."""
    return not last_ticks or now_wall - max(last_ticks) > stale_after.total_seconds()


class _Loop:
    """What the two watchers share: a thread that runs ``_run`` from ``start`` until ``stop``."""

    _loop: Background
    _started_wall: float

    def start(self) -> None:
        self._started_wall = time.time()
        self._loop.start()

    def stop(self) -> None:
        self._loop.stop(timeout=10)

    def _run(self) -> None:
        raise NotImplementedError


class BlindWatch(_Loop):
    def __init__(self, engine: Engine, clock_now: Callable[[], datetime], zone: Any, *, process: str,
                 tick_stale_after: timedelta, ingest_behind_after: timedelta,
                 ingest_lag: Callable[[], float] | None = None, ingest_name: str = "ingest",
                 every: float = 1.0, gauge: Any = None) -> None:
        self.gauge = gauge  # shouwang_blind{what} (alerts.metrics), or None
        self.engine = engine
        self.clock_now = clock_now
        self.zone = zone
        self.process = process
        self.tick_stale_after = tick_stale_after
        self.ingest_behind_after = ingest_behind_after
        self.ingest_lag = ingest_lag
        self.ingest_name = ingest_name
        self.every = every
        self._blind: dict[str, Blind] = {}
        self._lock = threading.Lock()
        self._loop = Background(f"blind-watch-{process}", self._run)
        self._stop = self._loop.stopping
        self._last_now: datetime | None = None
        self._started_wall = time.time()
        self.checks = 0

    # -- what the screens and /healthz read ------------------------------------------------------------
    def state(self) -> list[dict[str, Any]]:
        with self._lock:
            return [b.as_dict() for b in self._blind.values()]

    def blind(self) -> bool:
        with self._lock:
            return bool(self._blind)

    # -- the loop ----------------------------------------------------------------------------------------
    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self.check()
            except Exception:  # the watch of the watch never dies of a bug; logged, tried again
                log.exception("blind-state check failed")
            self._stop.wait(self.every)

    def _export(self) -> None:
        if self.gauge is None:
            return
        now_blind = {b["what"] for b in self.state()}
        for what in (DATABASE, SCHEDULER, INGEST, SYSTEM):
            self.gauge.labels(what).set(1 if what in now_blind else 0)

    def check(self) -> None:
        """One look at every blind state."""
        wall = time.time()
        try:
            with self.engine.connect() as connection:
                connection.execute(text("SELECT 1"))
            now = self.clock_now()
        except Exception as exc:
            self._set(DATABASE, Blind(DATABASE, self._last_now, wall, type(exc).__name__))
            self.checks += 1
            self._export()
            return
        self._last_now = now
        down = self._clear(DATABASE)
        if down is not None:
            self._record_database_outage(down, now, wall)
        self._scheduler(now, wall)
        self._ingest(now, wall)
        self._open_system_alarms(now, wall)
        self.checks += 1
        self._export()

    def _set(self, key: str, blind: Blind) -> None:
        with self._lock:
            if key not in self._blind:
                self._blind[key] = blind
                log.error("the watch is blind", extra={"what": blind.what, "proc": self.process})

    def _clear(self, key: str) -> Blind | None:
        with self._lock:
            return self._blind.pop(key, None)

    def _local(self, instant: datetime | None) -> str:
        return instant.astimezone(self.zone).strftime("%Y-%m-%d %H:%M:%S") if instant else "?"

    def _record_database_outage(self, down: Blind, now: datetime, wall: float) -> None:
        start = down.since or now
        seconds = wall - down.since_wall
        reason = (f"the watch was blind: database unreachable from process {self.process} from "
                  f"{self._local(start)} to {self._local(now)} (about {seconds:.0f} s)")
        with Session(self.engine, expire_on_commit=False) as session, session.begin():
            key = f"database:{self.process}:{int(down.since_wall)}"
            params = {"process": self.process, "since": start.isoformat(), "until": now.isoformat(),
                      "seconds": f"{seconds:.0f}"}
            alarm_id = alarms.open_alarm(session, AlarmKind.SYSTEM, now, reason=_worded("database_outage", params,
                                                                                       reason),
                                         system_key=key, reason_code="database_outage", reason_params=params)
            alarm = session.get(Alarm, alarm_id) if alarm_id is not None else None
            if alarm is not None:
                # a record of what happened: the supervisor sees it on the screen and in the history;
                # nobody is woken for an outage that is over
                transitions.resolved_by_source(session, alarm, now, outcome=Outcome.SYSTEM_RECOVERED,
                                               note=f"database reachable again at {self._local(now)}")
        log.warning("database reachable again", extra={"proc": self.process, "seconds": round(seconds, 1)})

    def _scheduler(self, now: datetime, wall: float) -> None:
        with Session(self.engine, expire_on_commit=False) as session, session.begin():
            rows = session.scalars(select(WatchStatus).where(WatchStatus.name.like("tick:%"))).all()
            ticks = [float(r.detail["wall"]) for r in rows if isinstance(r.detail, dict) and r.detail.get("wall")]
            # a process just started gives the scheduler the same time to tick before judging it
            stale = tick_stale(ticks or [self._started_wall], wall, self.tick_stale_after)
            alarm = alarms.find_open(session, AlarmKind.SYSTEM, system_key="scheduler")
            if stale:
                last = max(ticks) if ticks else None
                self._set(SCHEDULER, Blind(SCHEDULER, now, wall,
                                           f"last tick {wall - last:.0f} s ago" if last else "no tick yet"))
                if alarm is None:
                    ago = f"{wall - last:.0f} s" if last else "ever"
                    params = {"ago": f"{wall - last:.0f}" if last else "∞", "process": self.process}
                    fallback = f"the watch is blind: no rule tick in any process for {ago} (seen by {self.process})"
                    alarm_id = alarms.open_alarm(
                        session, AlarmKind.SYSTEM, now, system_key="scheduler",
                        reason=_worded("scheduler_stale", params, fallback), reason_code="scheduler_stale",
                        reason_params=params)
                    if alarm_id is not None:
                        log.error("system alarm: scheduler not ticking", extra={"alarm": alarm_id})
            else:
                self._clear(SCHEDULER)
                if alarm is not None:
                    transitions.resolved_by_source(session, alarm, now, outcome=Outcome.SYSTEM_RECOVERED,
                                                   note=f"rules tick again (seen by {self.process})")

    def _open_system_alarms(self, now: datetime, wall: float) -> None:
        """Any open ``system`` alarm (raised by whichever process) is a blind state for this one too."""
        with Session(self.engine) as session:
            reasons = list(session.scalars(select(Alarm.reason).where(
                Alarm.kind == AlarmKind.SYSTEM, Alarm.state != AlarmState.RESOLVED).order_by(Alarm.id)))
        if reasons:
            with self._lock:
                known = self._blind.get(SYSTEM)
                self._blind[SYSTEM] = Blind(SYSTEM, known.since if known else now,
                                            known.since_wall if known else wall, "; ".join(reasons)[:500])
        else:
            self._clear(SYSTEM)

    def _ingest(self, now: datetime, wall: float) -> None:
        if self.ingest_lag is None:
            return
        lag = self.ingest_lag()
        key = f"ingest:{self.ingest_name}"
        behind = lag > self.ingest_behind_after.total_seconds()
        with Session(self.engine, expire_on_commit=False) as session, session.begin():
            alarm = alarms.find_open(session, AlarmKind.SYSTEM, system_key=key)
            if behind:
                self._set(INGEST, Blind(INGEST, now, wall, f"{lag:.0f} s behind"))
                if alarm is None:
                    params = {"consumer": self.ingest_name, "lag": f"{lag:.0f}",
                              "limit": f"{self.ingest_behind_after.total_seconds():g}"}
                    alarms.open_alarm(session, AlarmKind.SYSTEM, now, system_key=key,
                                      reason=_worded("ingest_behind", params, "the watch is blind: ingest behind"),
                                      reason_code="ingest_behind", reason_params=params)
            else:
                self._clear(INGEST)
                if alarm is not None and alarm.state != AlarmState.RESOLVED:
                    transitions.resolved_by_source(session, alarm, now, outcome=Outcome.SYSTEM_RECOVERED,
                                                   note="ingest caught up")


class Watchdog(_Loop):
    """A dead man's switch outside Shouwang, in the protocol healthchecks.io and its self-hosted twins
    speak: a GET to ``url`` every ``every`` while the watch sees, to ``<url>/fail`` while it is blind.
    If this machine dies, the pings stop and the service outside raises the alarm."""

    def __init__(self, url: str, blind: Callable[[], bool], every: timedelta, timeout: timedelta) -> None:
        self.url = url.rstrip("/")
        self.is_blind = blind
        self.every = every.total_seconds()
        self.timeout = timeout.total_seconds()
        self.sent: list[str] = []  # what was pinged, newest last (bounded)
        self._loop = Background("watchdog", self._run)
        self._stop = self._loop.stopping

    def ping_once(self) -> str:
        target = f"{self.url}/fail" if self.is_blind() else self.url
        try:
            with urllib.request.urlopen(target, timeout=self.timeout) as response:
                response.read(1024)
        except Exception as exc:  # an unreachable watchdog must not disturb the watch; logged
            log.warning("watchdog ping failed", extra={"url": target, "error": str(exc)})
        self.sent = [*self.sent[-99:], target]
        return target

    def _run(self) -> None:
        while not self._stop.is_set():
            self.ping_once()
            self._stop.wait(self.every)
