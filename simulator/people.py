"""The demo's simulated people, acting at realistic simulated times whatever the tick.

On the demo's 600x clock a one-second tick is ten simulated minutes: if the people's answers waited for
the next tick, every acknowledgement would land 10 minutes after the call and the screen's KPIs
("acknowledged within 60 s", "on site within 45 min") would always read 0 %. Here each answer is applied
at the instant it happened: the call's events (from the console provider's script, :func:`demo_script`)
with their own instants, and a worker who acknowledged taps "I'm going" a minute later and arrives after
a travel time of their own; the chain runs at those instants too. :meth:`SimulatedPeople.act` runs often
(the demo: every 50 ms of real time, 30 simulated seconds), well before the next tick.
"""

from __future__ import annotations

import heapq
import itertools
import logging
import re
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta

from sqlalchemy import Engine, func, select
from sqlalchemy.orm import Session

from alerts import transitions
from alerts.escalation import runner as chain
from alerts.escalation.notifiers.base import ProviderEvent
from alerts.escalation.notifiers.console import Behaviour, ConsoleProvider, Script
from alerts.escalation.replies import handle_events
from alerts.escalation.targets import ChainSettings
from alerts.models import Alarm, AlarmKind, AlarmState, Attempt, WorkerRole

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
    """Plays the demo's people against the database, each act at its own simulated instant.

    A call's events (ring-out, answer, keypress) happen ``after`` the moment the chain decided to make
    the call (the attempt's ``created_at``), not after the moment this process got round to sending it
    (at 600x, 100 ms of real latency is a simulated minute). After each act the chain runs at that
    instant, so a step that every unanswered call ended starts then, and a step whose wait ran out
    starts at its deadline: the chain moves on simulated time, not on the tick.
    """

    MAX_ROUNDS = 500  # acts applied per call of act(): bounded, the rest waits for the next call

    def __init__(self, engine: Engine, provider: ConsoleProvider, settings: ChainSettings,
                 travel: Callable[[int], timedelta] = travel_time) -> None:
        self.engine, self.provider, self.settings, self.travel = engine, provider, settings, travel
        self._queue: list[tuple[datetime, int, ProviderEvent]] = []
        self._order = itertools.count()
        provider.timed = True

    def act(self, now: datetime) -> int:
        """Apply what the people did by ``now``, each at its own instant. Returns how many acts."""
        done = 0
        for _ in range(self.MAX_ROUNDS):
            self._collect()
            step_at = self._next_step(now)
            event_at = self._queue[0][0] if self._queue and self._queue[0][0] <= now else None
            if event_at is None and step_at is None:
                break
            if event_at is not None and (step_at is None or event_at <= step_at):
                at, _, event = heapq.heappop(self._queue)
                handle_events(self.engine, [event], at, self.settings)
            else:
                assert step_at is not None
                at = step_at
            chain.run(self.engine, at, self.provider, self.settings)
            done += 1
        return done + self._field_work(now)

    def _collect(self) -> None:
        """Move the provider's new events into the queue, timed from the attempt's creation."""
        for scheduled in self.provider.take_due():
            at = scheduled.at
            attempt_id = getattr(scheduled.event, "attempt_id", None)
            if attempt_id is not None:
                with Session(self.engine) as session:
                    created = session.scalar(select(Attempt.created_at).where(Attempt.id == attempt_id))
                if created is not None:
                    at = min(at, created + scheduled.after)
            heapq.heappush(self._queue, (at, next(self._order), scheduled.event))

    def _next_step(self, now: datetime) -> datetime | None:
        """The earliest instant by ``now`` at which the chain has something to do, if any."""
        with Session(self.engine) as session:
            return session.scalar(select(func.min(Alarm.next_action_at)).where(Alarm.next_action_at <= now))

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
