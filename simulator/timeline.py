"""The timeline of a community: every message its devices publish, in order, from a start instant on.
Pure: :mod:`simulator.publisher` sends the messages; a test steps the timeline with :meth:`Timeline.take_until`.

Each device, besides what its resident does, announces itself at the start (online, resting state) and
sends a health report about every ``heartbeat`` (jittered by 10 %), as real devices do: a device that is
silent for two hours is offline to the service. Days are generated one at a time, so a timeline without
``until`` runs for ever.
"""

from __future__ import annotations

import heapq
import itertools
import random
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, time, timedelta, tzinfo

from simulator.devices import BATTERY_FORMATS, HOLD_SECONDS, Role, garbage_topic, pulses, render, reports_state
from simulator.homes import Community, VirtualDevice, VirtualHome
from simulator.incidents import Effects, Event


@dataclass(frozen=True)
class Message:
    at: datetime  # when it is published (simulated time)
    topic: str
    payload: bytes
    retain: bool = False
    home: str = ""
    role: str = ""
    happening: str = ""
    occurred: datetime | None = None  # when it happened, if earlier than ``at``
    activity: bool = False  # a sign of life the service is meant to count
    source: str = "rhythm"


class Timeline:
    """An iterator of :class:`Message` in time order (a backlog in the order it happened; other ties in a fixed
    order), from ``start`` to ``until``."""

    def __init__(self, community: Community, start: datetime, zone: tzinfo, effects: Effects | None = None,
                 heartbeat: timedelta = timedelta(hours=1), until: datetime | None = None) -> None:
        self.community, self.zone = community, zone
        self.start = start.astimezone(UTC)
        self.until = until.astimezone(UTC) if until else None
        self.effects = effects or Effects()
        self.heartbeat = heartbeat
        self._homes = {h.ref: h for h in community.homes}
        self._heap: list[tuple[datetime, datetime, int, Event]] = []
        self._order = itertools.count()
        self._day = self.start.astimezone(zone).date()
        self._ready_until = self.start  # every event before this instant is in the heap
        self._top: tuple[int, Message | None] | None = None
        self._health = {(h.ref, d.role): self._health_times(h, d) for h in community.homes for d in h.devices}
        for home in community.homes:
            for device in home.devices:
                self._push_all(self._boot(home, device))
        self._push_all(self.effects.extra_events({h.ref: h.fmt for h in community.homes}))

    def __iter__(self) -> Iterator[Message]:
        return self

    def __next__(self) -> Message:
        message = self.peek()
        if message is None:
            raise StopIteration
        heapq.heappop(self._heap)
        self._top = None
        return message

    def peek(self) -> Message | None:
        """The next message, without taking it."""
        while True:
            while not self._heap or self._heap[0][0] >= self._ready_until:
                if (self.until is not None and self._ready_until > self.until) or not self.community.homes:
                    break
                self._generate_day()
            if not self._heap or (self.until is not None and self._heap[0][0] > self.until):
                return None
            _at, _occurred, order, event = self._heap[0]
            if self._top is None or self._top[0] != order:
                self._top = (order, self._render(event))
            if self._top[1] is not None:
                return self._top[1]
            heapq.heappop(self._heap)  # the format sends nothing for it (a native PIR going quiet)
            self._top = None

    def take_until(self, instant: datetime) -> list[Message]:
        """Every message up to ``instant`` (inclusive) not taken yet: a test steps the timeline this way."""
        taken: list[Message] = []
        while (message := self.peek()) is not None and message.at <= instant:
            taken.append(next(self))
        return taken

    # -- generation ---------------------------------------------------------------------------------
    def _push_all(self, events: list[Event]) -> None:
        for event in events:
            applied = self.effects.apply(event)
            if applied is not None and applied.at >= self.start:
                heapq.heappush(self._heap, (applied.at, applied.occurred, next(self._order), applied))

    def _generate_day(self) -> None:
        day = self._day
        end = datetime.combine(day + timedelta(days=1), time(0), self.zone).astimezone(UTC)
        for home in self.community.homes:
            self._push_all(self._resident_day(home, day))
            for device in home.devices:
                self._push_all(self._health_until(home, device, end))
        self._day = day + timedelta(days=1)
        self._ready_until = end

    def _resident_day(self, home: VirtualHome, day: object) -> list[Event]:
        plan = home.day(day, self.zone)  # type: ignore[arg-type]
        events: list[Event] = []
        if home.device("motion") is not None:
            events.extend(self._motion(home, plan.movements))
        if home.device("door") is not None:
            for opened in plan.door_openings:
                if opened < self.start or self.effects.resident_silent(home.ref, opened):
                    continue
                closed = opened + timedelta(seconds=random.Random(f"{home.ref}:{opened}").uniform(20, 90))
                events.extend([self._event(home, "door", "open", opened, True),
                               self._event(home, "door", "closed", closed, True)])
        return events

    def _motion(self, home: VirtualHome, movements: list[datetime]) -> list[Event]:
        """Motion as the format reports it: one event per movement, or ON at the first movement of a burst
        and OFF when the PIR's hold time has run out after the last."""
        moving = [m for m in movements if m >= self.start and not self.effects.resident_silent(home.ref, m)]
        if pulses(home.fmt, "motion"):
            return [self._event(home, "motion", "motion", m, True) for m in moving]
        events: list[Event] = []
        hold = timedelta(seconds=HOLD_SECONDS)
        burst_end: datetime | None = None
        for m in moving:
            if burst_end is not None and m <= burst_end:
                burst_end = m + hold
                continue
            if burst_end is not None:
                events.append(self._event(home, "motion", "still", burst_end))
            events.append(self._event(home, "motion", "motion", m, True))
            burst_end = m + hold
        if burst_end is not None:
            events.append(self._event(home, "motion", "still", burst_end))
        return events

    def _event(self, home: VirtualHome, role: Role, happening: str, at: datetime, activity: bool = False,
               source: str = "rhythm") -> Event:
        return Event(at=at, home=home.ref, role=role, happening=happening, occurred=at,  # type: ignore[arg-type]
                     activity=activity, source=source)

    def _boot(self, home: VirtualHome, device: VirtualDevice) -> list[Event]:
        events = [self._event(home, device.role, "online", self.start, source="boot")]
        if reports_state(home.fmt, device.role):
            resting = {"motion": "still", "door": "closed", "button": "release"}[device.role]
            # a door's first reported state is a change from unknown: the service counts it (rules.is_observation)
            events.append(self._event(home, device.role, resting, self.start, activity=device.role == "door",
                                      source="boot"))
        return events

    def _health_times(self, home: VirtualHome, device: VirtualDevice) -> Iterator[datetime]:
        rng = random.Random(f"{home.seed}:{home.ref}:{device.role}:health")
        at = self.start + self.heartbeat * rng.uniform(0.05, 1)
        while True:
            yield at
            at += self.heartbeat * rng.uniform(0.9, 1.1)

    def _health_until(self, home: VirtualHome, device: VirtualDevice, end: datetime) -> list[Event]:
        times = self._health[(home.ref, device.role)]
        events: list[Event] = []
        for at in times:
            events.append(self._event(home, device.role, "health", at, source="health"))
            if at >= end:
                break  # the first report of the next day, generated early: fine, it waits in the heap
        return events

    # -- rendering ----------------------------------------------------------------------------------
    def _render(self, event: Event) -> Message | None:
        home = self._homes[event.home]
        device = home.device(event.role)
        assert device is not None, f"{home.ref} has no {event.role}"
        prefix = self.community.prefix
        if event.happening == "garbage":
            topic = garbage_topic(home.fmt, event.role, device.name, at=event.occurred, zone=self.zone, prefix=prefix)
            return self._message(event, topic, event.garbage)
        battery = None
        if home.fmt in BATTERY_FORMATS and event.happening in ("health", "battery", "motion", "still"):
            battery = self.effects.battery(home.ref, event.role, event.occurred, device.battery)
        if event.happening in ("motion", "still") and home.fmt == "native":
            battery = None  # native motion events leave the battery to the health reports
        rendered = render(home.fmt, event.role, device.name, event.happening, at=event.occurred,  # type: ignore[arg-type]
                          zone=self.zone, battery=battery, prefix=prefix,
                          event_id=f"{device.name}-{event.happening}-{event.occurred:%Y%m%dT%H%M%S.%f}")
        if rendered is None:
            return None
        return self._message(event, *rendered)

    def _message(self, event: Event, topic: str, payload: bytes) -> Message:
        return Message(at=event.at, topic=topic, payload=payload, retain=event.retain, home=event.home,
                       role=event.role, happening=event.happening,
                       occurred=event.occurred if event.occurred != event.at else None,
                       activity=event.activity, source=event.source)
