"""The tick runs at a deadline, not up to a tick later (issue 16: a deadline is on the screen within 2 s).

On a clock in step with real time a tick that finds the next inactivity deadline before the next tick waits
for it and runs again then. Here the tick's interval is an hour, so only that can have raised the alarm."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta

from sqlalchemy import Engine
from sqlalchemy.orm import Session

from alerts import service
from alerts.clock import ManualClock
from alerts.metrics import Metrics
from alerts.models import Alarm, AlarmKind, Resident
from alerts.scheduler import Watch
from alerts.service import IngestHealth, WatchPolicy
from config.clocks import FastClock, SystemClock
from tests.conftest import T0

H = timedelta(hours=1)


def test_a_clock_in_step_with_real_time_says_how_long_a_span_takes() -> None:
    assert SystemClock().real_seconds(timedelta(seconds=3)) == 3
    assert FastClock(T0, speed=60).real_seconds(timedelta(minutes=1)) == 1


def test_on_the_system_clock_a_tick_before_a_deadline_raises_its_alarm_at_it(
        engine: Engine, watch_policy: WatchPolicy, make_resident: Callable[..., Resident]) -> None:
    clock = SystemClock()
    due = clock.now() + timedelta(seconds=1)
    make_resident(last_activity_at=due - 14 * H, watch_from=None, due_at=due)
    watch = Watch(engine, clock, watch_policy, Metrics(), tick_every=timedelta(hours=1))
    result = watch.run_tick()  # one scheduled tick, a second before the deadline
    assert watch.last_tick_at is not None and watch.last_tick_at < due
    assert result is not None and len(result.raised) == 1
    with Session(engine) as session:
        alarm = session.get(Alarm, result.raised[0])
        assert alarm is not None and alarm.kind == AlarmKind.INACTIVITY and due <= alarm.opened_at < due + H


def test_a_deadline_beyond_the_next_tick_or_on_the_manual_clock_is_left_to_the_interval(
        engine: Engine, clock: ManualClock, watch_policy: WatchPolicy, make_resident: Callable[..., Resident]) -> None:
    make_resident(due_at=SystemClock().now() + 2 * H)
    assert Watch(engine, SystemClock(), watch_policy, Metrics(), timedelta(hours=1))._until_next_deadline() is None
    make_resident(due_at=clock.now() + timedelta(seconds=1))
    assert Watch(engine, clock, watch_policy, Metrics(), timedelta(hours=1))._until_next_deadline() is None



def test_nothing_is_raised_at_a_deadline_while_ingest_is_behind(
        engine: Engine, watch_policy: WatchPolicy, make_resident: Callable[..., Resident]) -> None:
    make_resident(watch_from=T0 - 15 * H, due_at=T0 - H)
    behind = IngestHealth(connected=True, caught_up=False, disconnected_since=None)
    assert service.deadline_step(engine, T0, watch_policy, behind) == []
    assert len(service.deadline_step(engine, T0, watch_policy)) == 1
