"""The demo's simulated people, acting at realistic simulated times whatever the tick.

On the demo's 600x clock a one-second tick is ten simulated minutes: if the people's answers waited for
the next tick, every acknowledgement would land 10 minutes after the call and the screen's KPIs
("acknowledged within 60 s", "on site within 45 min") would always read 0 %. Here each answer is applied
at the instant it happened: the call's events (from the console provider's script, :func:`demo_script`)
with their own instants, and a worker who acknowledged taps "I'm going" a minute later and arrives after
a travel time of their own. :meth:`SimulatedPeople.act` runs often (the demo: every 50 ms of real time,
30 simulated seconds) and always before the chain acts on the same alarms at a later tick.
"""

from __future__ import annotations

import itertools
import logging
import re
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta

from sqlalchemy import Engine, select
from sqlalchemy.orm import Session

from alerts import transitions
from alerts.escalation.notifiers.console import Behaviour, ConsoleProvider, Script
from alerts.escalation.replies import handle_events
from alerts.escalation.targets import ChainSettings
from alerts.models import Alarm, AlarmKind, AlarmState, WorkerRole

log = logging.getLogger(__name__)

WORKERS = (WorkerRole.GRID_WORKER.value, WorkerRole.MICRO_GRID_WORKER.value)  # they go to the door
TAP_AFTER = timedelta(minutes=1)  # from the keypress to "I'm going" on the phone page


def demo_script(grid_worker: str, answers: tuple[timedelta, ...] = (
        timedelta(seconds=45), timedelta(seconds=50), timedelta(seconds=95))) -> Script:
    """Residents and family do not pick up (the call rings out after 40 s); the grid worker answers and
    presses 1 after each of ``answers`` in turn (a realistic spread: most within the minute)."""
    turns: Iterator[timedelta] = itertools.cycle(answers)

    def behaviour(phone: str) -> Behaviour | None:
        if phone == grid_worker:
            return Behaviour("answer", digits="1", after=next(turns))
        return Behaviour("no-answer", after=timedelta(seconds=40))

    return behaviour


def travel_time(alarm_id: int) -> timedelta:
    """How long the worker takes to reach the door: 15 to 56 minutes, spread over the alarms."""
    return timedelta(minutes=15 + (alarm_id * 17) % 42)


class SimulatedPeople:
    def __init__(self, engine: Engine, provider: ConsoleProvider, settings: ChainSettings,
                 travel: Callable[[int], timedelta] = travel_time) -> None:
        self.engine, self.provider, self.settings, self.travel = engine, provider, settings, travel
        provider.timed = True

    def act(self, now: datetime) -> int:
        """Apply what the people did by ``now``, each at its own instant. Returns how many acts."""
        done = 0
        for at, event in self.provider.take_due(now):
            handle_events(self.engine, [event], at, self.settings)
            done += 1
        return done + self._field_work(now)

    def _field_work(self, now: datetime) -> int:
        """A worker who acknowledged a resident alarm taps "I'm going", then arrives."""
        done = 0
        with Session(self.engine) as session, session.begin():
            alarms = session.scalars(select(Alarm).where(
                Alarm.state == AlarmState.ACKNOWLEDGED, Alarm.arrived_at.is_(None),
                Alarm.kind.in_((AlarmKind.INACTIVITY, AlarmKind.PANIC)), Alarm.acknowledged_at.isnot(None))).all()
            for alarm in alarms:
                worker = _worker(alarm.acknowledged_by)
                if worker is None:
                    continue
                assert alarm.acknowledged_at is not None
                tap, arrival = alarm.acknowledged_at + TAP_AFTER, alarm.acknowledged_at + self.travel(alarm.id)
                if alarm.accepted_at is None and tap <= now:
                    transitions.accepted(session, alarm, tap, by=worker, channel="phone page")
                    done += 1
                if arrival <= now:
                    transitions.arrived(session, alarm, arrival, by=worker, channel="phone page")
                    done += 1
        return done


def _worker(acknowledged_by: str | None) -> str | None:
    """``李娜 (grid_worker, keypress)`` -> ``李娜 (grid_worker)``; None unless a worker acknowledged."""
    match = re.fullmatch(r"(.*) \((\w+)(?:, [^()]*)?\)", acknowledged_by or "")
    if match is None or match.group(2) not in WORKERS:
        return None
    return f"{match.group(1)} ({match.group(2)})"
