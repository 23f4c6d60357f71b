"""The APScheduler jobs: the rule tick (every second by default), the escalation run (its own job, so a
long escalation never holds the tick back, nor a long tick the calls) and the hourly pruning of raw events.

The scheduler holds no alarm state: each tick reads the clock once and asks the database what is due.
On a clock in step with real time (the system clock, the fast clock) a tick that finds the next inactivity
deadline before the next tick waits for it and runs the inactivity step at that instant, so a deadline is
judged when it passes, not up to a tick later.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from datetime import datetime, timedelta

from apscheduler.schedulers.background import BackgroundScheduler
from sqlalchemy import Engine, func, select
from sqlalchemy.orm import Session

from alerts import service
from alerts.clock import Clock
from alerts.metrics import Metrics
from alerts.models import Alarm, AlarmKind, AlarmState, Deadline
from alerts.screen_model import prune_changes

log = logging.getLogger(__name__)


class Watch:
    """Runs :func:`alerts.service.tick` on a schedule. ``ingest`` reports this process's consumer."""

    def __init__(self, engine: Engine, clock: Clock, policy: service.WatchPolicy, metrics: Metrics,
                 tick_every: timedelta, process: str = "main",
                 ingest: Callable[[datetime], service.IngestHealth] | None = None,
                 escalate: Callable[[datetime], object] | None = None) -> None:
        self.engine = engine
        self.clock = clock
        self.policy = policy
        self.metrics = metrics
        self.tick_every = tick_every
        self.process = process
        self.ingest = ingest
        self.escalate = escalate
        self.last_tick_real: float | None = None
        self.last_tick_at: datetime | None = None
        self.last_escalation_real: float | None = None
        # two worker threads: the tick and the escalation run never wait for each other
        self._scheduler = BackgroundScheduler(timezone="UTC", executors={"default": {"type": "threadpool",
                                                                                     "max_workers": 3}})
        self._stopping = threading.Event()  # a tick waiting for a deadline stops waiting

    def start(self) -> None:
        self._scheduler.add_job(self.run_tick, "interval", seconds=self.tick_every.total_seconds(),
                                id="tick", max_instances=1, coalesce=True, misfire_grace_time=None)
        if self.escalate is not None:
            self._scheduler.add_job(self.run_escalation, "interval", seconds=self.tick_every.total_seconds(),
                                    id="escalation", max_instances=1, coalesce=True, misfire_grace_time=None)
        self._scheduler.add_job(self.run_prune, "interval", hours=1, id="prune", max_instances=1,
                                coalesce=True)
        self._scheduler.start()

    def stop(self) -> None:
        self._stopping.set()
        if self._scheduler.running:
            self._scheduler.shutdown(wait=True)

    def pause(self) -> None:
        """No tick starts until :meth:`resume` (one already running finishes). For a simulation that moves
        a manual clock by minutes and then delivers those minutes' messages: the rules must not see the new
        time before its messages are stored."""
        self._scheduler.pause()

    def resume(self) -> None:
        self._scheduler.resume()

    def run_tick(self) -> service.TickResult | None:
        """One tick; when the next inactivity deadline comes before the next tick would, the inactivity
        step again at it (its raised alarms are added to the tick's result)."""
        started = time.monotonic()
        result = self._tick()
        if result is None:  # the tick failed (logged): the next one is soon enough
            return None
        try:
            wait = self._until_next_deadline()
            if (wait is not None and time.monotonic() - started + wait < self.tick_every.total_seconds()
                    and not self._stopping.wait(wait)):
                now = self.clock.now()
                raised = service.deadline_step(self.engine, now, self.policy,
                                               self.ingest(now) if self.ingest is not None else None)
                if raised:
                    self.metrics.alarms_raised.labels(AlarmKind.INACTIVITY).inc(len(raised))
                    result.raised.extend(raised)
        except Exception:  # the next tick raises what this missed
            log.exception("the inactivity step at the next deadline failed")
        return result

    def _until_next_deadline(self) -> float | None:
        """Real seconds until the next inactivity deadline, if it comes within a tick (None: later, none, or
        a clock not in step with real time: the manual clock moves when somebody moves it)."""
        real_seconds: Callable[[timedelta], float] | None = getattr(self.clock, "real_seconds", None)
        if real_seconds is None:
            return None
        now = self.clock.now()
        with Session(self.engine) as session:
            due = session.scalar(select(func.min(Deadline.due_at)))
        if due is None or not now < due < now + self.tick_every:
            return None
        return real_seconds(due - now)

    def _tick(self) -> service.TickResult | None:
        started = time.perf_counter()
        now = self.clock.now()
        result: service.TickResult | None = None
        try:
            health = self.ingest(now) if self.ingest is not None else None
            result = service.tick(self.engine, now, self.policy, health, self.process)
        except Exception:  # a failing tick is logged and retried next second; escalation still runs
            log.exception("rule tick failed")
            return None
        self.last_tick_real = time.monotonic()
        self.last_tick_at = now
        self.metrics.tick_seconds.observe(time.perf_counter() - started)
        self.metrics.last_tick.set(time.time())
        if result.raised:
            self.metrics.alarms_raised.labels(AlarmKind.INACTIVITY).inc(len(result.raised))
        for kind, ids in ((AlarmKind.DEVICE_OFFLINE, result.devices_offline),
                          (AlarmKind.LOW_BATTERY, result.battery_alarms), (AlarmKind.SYSTEM, result.system_raised),
                          (AlarmKind.ROUTINE, result.routine_alarms), (AlarmKind.RHYTHM, result.rhythm_notices),
                          (AlarmKind.EARLY_WARNING, result.early_warnings)):
            if ids:
                self.metrics.alarms_raised.labels(kind).inc(len(ids))
        self._update_open_gauge()
        return result

    def run_escalation(self) -> object | None:
        """One escalation run at the service's now (its own job: calls go out while a long tick runs)."""
        if self.escalate is None:
            return None
        try:
            result = self.escalate(self.clock.now())
        except Exception:  # retried next run; the auditor re-arms what was lost
            log.exception("escalation run failed")
            return None
        self.last_escalation_real = time.monotonic()
        return result

    def run_prune(self) -> None:
        try:
            removed = service.prune(self.engine, self.clock.now(), self.policy.event_retention)
            if removed:
                log.info("pruned raw events past the retention", extra={"removed": removed})
            prune_changes(self.engine)
        except Exception:
            log.exception("pruning failed")

    def _update_open_gauge(self) -> None:
        with Session(self.engine) as session:
            counts = dict(session.execute(select(Alarm.kind, func.count()).where(
                Alarm.state != AlarmState.RESOLVED).group_by(Alarm.kind)).all())
        for kind in AlarmKind:
            self.metrics.alarms_open.labels(kind.value).set(counts.get(kind.value, 0))
        self.metrics.incidents_open.set(counts.get(AlarmKind.INFRASTRUCTURE.value, 0))
