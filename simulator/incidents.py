"""Scripted incidents and what they do to a community's timeline. Pure.

An incident happens to one home (or, for ``gateway_dark``, to many) at an instant:

==============  =======================================================================================
fall            the resident moves no more from ``at`` on: no motion, door or button (devices stay alive)
device_dies     the home's ``device`` (default the motion sensor) sends nothing from ``at`` on; with
                ``announce`` it first says goodbye (availability offline / last will)
battery_drains  the ``device``'s battery falls from its usual level to ``to`` (default 5 %) over ``over``
                (default 4 h): five battery reports, and every later report carries the low level
panic           the panic button is pressed at ``at`` (the home gets a button if it has none)
away            the resident is away with family from the start until ``until`` (then comes home and
                moves), or until their next activity (``until_activity``); the service is told through the
                community data (``away_until`` / ``away_until_activity``)
visitor         someone moves in the home at ``at`` (``count`` movements a minute apart), whoever lives there
gateway_dark    every home (or ``homes``) is silent from ``at`` for ``for``; with ``backlog`` the messages
                held meanwhile are published when it ends, in order and with their own device times,
                else they are lost
garbage         ``count`` malformed messages on the home's motion sensor topic
==============  =======================================================================================

Flags on the entries that publish (panic, visitor, battery_drains, device_dies, garbage): ``duplicate``
(publish each message that many extra times: the copies carry no new life), ``retain`` (publish with the
retain flag: a subscriber connected at the time gets a plain message, as MQTT clears the flag on live
delivery; the broker keeps it and replays it, flagged, to whoever subscribes later, for whom it is old
state and never activity), ``delay`` (publish that much later than it happened: out of order, carrying its
own device time where the format sends one).
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Literal

from simulator.devices import HOLD_SECONDS, Happening, Role, pulses

IncidentKind = Literal["fall", "device_dies", "battery_drains", "panic", "away", "visitor", "gateway_dark",
                       "garbage"]
INCIDENT_KINDS: tuple[str, ...] = ("fall", "device_dies", "battery_drains", "panic", "away", "visitor",
                                   "gateway_dark", "garbage")
GARBAGE: tuple[bytes, ...] = (
    b'{"type": "motion", "ts": ',  # cut off mid-message
    b"\xff\xfe\x00 not text at all",  # not UTF-8
    b"[1, 2, 3]",  # JSON, but not what any format says
    b"x" * 20_000,  # past the payload limit (16 KiB by default)
)


@dataclass(frozen=True)
class Event:
    """Something a device says, before it is rendered in the home's format."""

    at: datetime  # when it is published
    home: str  # the home's ref
    role: Role
    happening: Happening | Literal["garbage"]
    occurred: datetime  # when it happened (later publication: a delay, a backlog)
    activity: bool = False  # a sign of life the service is meant to count
    retain: bool = False
    garbage: bytes = b""
    final: bool = False  # a dying device's last word: not silenced by its own death
    source: str = "rhythm"  # rhythm, boot, health or the incident kind


@dataclass(frozen=True)
class Incident:
    kind: IncidentKind
    at: datetime
    home: str | None = None  # ref; None only for gateway_dark (then ``homes``, empty = every home)
    homes: tuple[str, ...] = ()
    device: Role = "motion"
    until: datetime | None = None  # away: home again; gateway_dark: light again
    until_activity: bool = False
    announce: bool = False
    backlog: bool = False
    to: int = 5
    over: timedelta = timedelta(hours=4)
    count: int = 1
    duplicate: int = 0
    retain: bool = False
    delay: timedelta = timedelta(0)


@dataclass
class Effects:
    """The incidents of a run, asked about each message of the timeline."""

    incidents: list[Incident] = field(default_factory=list)
    start: datetime | None = None

    def resident_silent(self, home: str, at: datetime) -> bool:
        """The resident makes no movement at ``at`` (fallen, or away)."""
        for i in self.incidents:
            if i.home != home:
                continue
            if i.kind == "fall" and at >= i.at:
                return True
            if i.kind == "away" and i.at <= at and (i.until is None or at < i.until):
                return True
        return False

    def device_dead(self, home: str, role: Role, at: datetime) -> bool:
        return any(i.kind == "device_dies" and i.home == home and i.device == role and at >= i.at
                   for i in self.incidents)

    def battery(self, home: str, role: Role, at: datetime, usual: int) -> int:
        level = usual
        for i in self.incidents:
            if i.kind == "battery_drains" and i.home == home and i.device == role and at >= i.at:
                done = min(1.0, (at - i.at) / i.over) if i.over > timedelta(0) else 1.0
                level = min(level, round(usual + (i.to - usual) * done))
        return level

    def apply(self, event: Event) -> Event | None:
        """The event as it reaches the broker: None if it never does, or moved to a later instant."""
        if not event.final and self.device_dead(event.home, event.role, event.occurred):
            return None
        for i in self.incidents:
            if i.kind != "gateway_dark" or (i.homes and event.home not in i.homes):
                continue
            assert i.until is not None
            if i.at <= event.at < i.until:
                if not i.backlog:
                    return None
                return replace(event, at=i.until)
        return event

    def extra_events(self, formats: dict[str, str]) -> list[Event]:
        """What the incidents publish themselves; ``formats`` maps each home's ref to its format."""
        events: list[Event] = []
        for i in self.incidents:
            if i.home is None:
                continue
            for event in _incident_events(i, formats[i.home]):
                events.extend(_flagged(event, i))
        return events


def _incident_events(i: Incident, fmt: str) -> list[Event]:
    assert i.home is not None
    home = i.home

    def event(at: datetime, role: Role, happening: Happening, activity: bool = False, **more: object) -> Event:
        return Event(at=at, home=home, role=role, happening=happening, occurred=at, activity=activity,
                     source=i.kind, **more)  # type: ignore[arg-type]

    if i.kind == "panic":
        return [event(i.at, "button", "press", True), event(i.at + timedelta(seconds=1), "button", "release")]
    if i.kind == "visitor":
        found = []
        for n in range(i.count):
            at = i.at + timedelta(minutes=n)
            found.append(event(at, "motion", "motion", True))
            if not pulses(fmt, "motion"):
                found.append(event(at + timedelta(seconds=HOLD_SECONDS // 3), "motion", "still"))
        return found
    if i.kind == "device_dies":
        return [event(i.at, i.device, "offline", final=True)] if i.announce else []
    if i.kind == "battery_drains":
        return [event(i.at + i.over * k / 4, i.device, "battery") for k in range(5)]
    if i.kind == "garbage":
        return [Event(at=i.at + timedelta(seconds=n), home=home, role="motion", happening="garbage",
                      occurred=i.at + timedelta(seconds=n), garbage=GARBAGE[n % len(GARBAGE)], source="garbage")
                for n in range(i.count)]
    return []


def _flagged(event: Event, i: Incident) -> list[Event]:
    if i.retain:
        event = replace(event, retain=True)
    if i.delay:
        event = replace(event, at=event.at + i.delay)
    copies = [replace(event, activity=False) for _ in range(i.duplicate)]
    return [event, *copies]
