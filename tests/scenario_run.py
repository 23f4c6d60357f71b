"""A whole Shouwang process and a simulated community moved together on the manual clock: the simulator
publishes over a real Mosquitto, the service reads it; each step sets the clock, publishes the timeline up to
the same instant and waits until every message is committed and a whole tick ran after that.

Shared by the scenario tests and ``bench/outage.py`` (which counts what a scenario sends out)."""

from __future__ import annotations

import time
from collections import Counter
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from alerts.clock import ManualClock
from alerts.models import Alarm, Attempt, AttemptStatus
from alerts.registry.community import load_community
from api.runtime import Runtime
from config.settings import FormatRoute, Settings
from simulator.publisher import Publisher
from simulator.scenario import Scenario, Simulation
from tests.helpers import wait_for


class ScenarioRun:
    def __init__(self, settings: Settings, base: str, scenario: Scenario, start: datetime,
                 port: int = 1883, **build: Any) -> None:
        self.sim: Simulation = scenario.build(start, settings.tz, prefix=f"{base}/", **build)
        routes = [FormatRoute(**r) for r in self.sim.routes()]
        settings = settings.model_copy(update={"mqtt": settings.mqtt.model_copy(update={"routes": routes})})
        self.settings = settings
        self.runtime = Runtime(settings, process="test")
        clock = self.runtime.clock
        assert isinstance(clock, ManualClock)
        self.clock = clock
        self.clock.set(start)
        self.data = self.sim.community.as_data()
        with Session(self.runtime.engine) as session, session.begin():
            load_community(session, self.data, start, self.runtime.policy.limits)
        self.runtime.start()
        assert self.runtime.consumer is not None
        self.consumer = self.runtime.consumer
        wait_for(lambda: self.consumer.status()["caught_up"], message="consumer connected and caught up")
        self.publisher = Publisher("127.0.0.1", port, client_id=f"{base}-sim")
        self.publisher.connect()
        self.timeline = self.sim.timeline()
        self.published = 0

    def step(self, instant: datetime) -> None:
        # no rule runs at the new time before the messages up to it are stored: the clock jumps by minutes
        # here, which the rules would otherwise see as minutes of silence (a tick already running started
        # before the clock moved)
        watch = self.runtime.watch
        if hasattr(watch, "pause"):
            watch.pause()
        self.clock.set(instant)
        self.published += self.publisher.publish_until(self.timeline, instant)
        wait_for(lambda: self._received() >= self.published and self.consumer.status()["queue"] == 0,
                 timeout=300, message=f"{self.published} messages processed")
        if hasattr(watch, "resume"):
            watch.resume()
        for _ in range(2):  # the second tick surely started after the commit
            mark = time.monotonic()
            wait_for(lambda mark=mark: (self.runtime.watch.last_tick_real or 0) > mark, message="a tick")

    def _received(self) -> float:
        return self.runtime.metrics.registry.get_sample_value("shouwang_mqtt_messages_total") or 0

    def alarms(self, kind: str | None = None) -> list[Alarm]:
        with Session(self.runtime.engine) as session:
            query = select(Alarm).order_by(Alarm.id)
            if kind is not None:
                query = query.where(Alarm.kind == kind)
            return list(session.scalars(query))

    def attempts(self, until: datetime | None = None) -> list[Attempt]:
        with Session(self.runtime.engine) as session:
            query = select(Attempt).where(Attempt.status != AttemptStatus.SKIPPED)
            if until is not None:
                query = query.where(Attempt.created_at <= until)
            return list(session.scalars(query.order_by(Attempt.id)))

    def counts(self) -> dict[str, Any]:
        """Alarms by kind, and calls and SMS that went out (not skipped) by target, plus those skipped."""
        with Session(self.runtime.engine) as session:
            alarms = dict(session.execute(select(Alarm.kind, func.count()).group_by(Alarm.kind)).all())
            sent = session.execute(select(Attempt.channel, Attempt.target).where(
                Attempt.status != AttemptStatus.SKIPPED)).all()
            skipped = session.scalar(select(func.count()).select_from(Attempt).where(
                Attempt.status == AttemptStatus.SKIPPED)) or 0
        calls = Counter(t for c, t in sent if c == "voice")
        sms = Counter(t for c, t in sent if c == "sms")
        return {"alarms": alarms, "alarms_total": sum(alarms.values()), "calls": dict(calls),
                "calls_total": sum(calls.values()), "sms": dict(sms), "sms_total": sum(sms.values()),
                "skipped_by_cap_or_no_number": skipped}

    def close(self) -> None:
        self.runtime.stop()
        self.publisher.close()


def steps(start: datetime, end: datetime, every: timedelta, extra: set[datetime] | None = None) -> list[datetime]:
    instants = {start + k * every for k in range(int((end - start) / every) + 1)} | (extra or set())
    return sorted(i for i in instants if start <= i <= end)
