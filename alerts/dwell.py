"""Dwell limits where a room is known: "bathroom occupied for more than 2 h with no activity in any other
room", "bathroom door closed for more than 4 h with motion inside and no other activity". Pure functions of
(state, now); the tick (:mod:`alerts.dwell_step`) feeds them the resident's activity.

A device may name its room (:class:`Room`). Activity from a bathroom device is *in the bathroom*; any other
activity (a device of another room or of no room, a sign of life from outside the home) is *elsewhere*. The
resident's *stay* is the bathroom activity since the last activity elsewhere:

* **occupied** (``bathroom_dwell``): the stay began at its first activity; past the limit, an alarm;
* **door** (``bathroom_door_dwell``): the stay's last door report of a bathroom door sensor is "closed" and
  a bathroom motion came after it; closed past the limit, an alarm.

Both limits are per resident, else per grid, else none: a community that does not opt in sees nothing change.
Instants before the resident was watched (created, a person's "she is fine", the end of away mode) do not
count. Each resident with a limit carries the instant the tick next looks (``dwell_due_at``); activity never
touches it, so a look that comes early only plans the next one.
"""

from __future__ import annotations

import enum
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta


class Room(enum.StrEnum):
    BATHROOM = "bathroom"
    BEDROOM = "bedroom"
    KITCHEN = "kitchen"
    LIVING_ROOM = "living_room"
    ENTRANCE = "entrance"


ROOM_NAMES_ZH = {Room.BATHROOM: "卫生间", Room.BEDROOM: "卧室", Room.KITCHEN: "厨房", Room.LIVING_ROOM: "客厅",
                 Room.ENTRANCE: "门厅"}
_BY_NAME = {**{r.value: r for r in Room}, **{zh: r for r, zh in ROOM_NAMES_ZH.items()},
            "living room": Room.LIVING_ROOM, "toilet": Room.BATHROOM, "浴室": Room.BATHROOM, "厕所": Room.BATHROOM,
            "玄关": Room.ENTRANCE}
ROOM_CHOICES = "、".join(f"{zh}（{r.value}）" for r, zh in ROOM_NAMES_ZH.items())
ROOM_CHOICES_WORDED = {"zh": ROOM_CHOICES, "en": ", ".join(r.value for r in Room)}  # alerts.refusals "room"


class RoomError(ValueError):
    """A room that is not one of :class:`Room` (its message is Chinese first: an installer reads it)."""


def parse_room(text: str | None) -> Room | None:
    """A room by its value or its Chinese name; ``None`` or empty: unknown."""
    if text is None or not str(text).strip():
        return None
    room = _BY_NAME.get(str(text).strip().lower())
    if room is None:
        raise RoomError(f"房间只能是{ROOM_CHOICES}，不能是 {text!r} / a room is one of "
                        f"{', '.join(r.value for r in Room)}, not {text!r}")
    return room


@dataclass(frozen=True)
class DwellLimits:
    bathroom: timedelta | None = None  # occupied
    bathroom_door: timedelta | None = None  # door closed with motion inside

    @property
    def shortest(self) -> timedelta | None:
        return min((t for t in (self.bathroom, self.bathroom_door) if t is not None), default=None)


def effective_limits(resident_bathroom_s: int | None, resident_door_s: int | None, grid_bathroom_s: int | None,
                     grid_door_s: int | None) -> DwellLimits:
    """Each limit: the resident's own, else the grid's, else none."""
    def pick(own: int | None, grid: int | None) -> timedelta | None:
        value = own if own is not None else grid
        return timedelta(seconds=value) if value else None
    return DwellLimits(pick(resident_bathroom_s, grid_bathroom_s), pick(resident_door_s, grid_door_s))


@dataclass(frozen=True)
class Activity:
    """One sign of life: when, whether it was in the bathroom, its kind (motion, door, ...) and, for a door,
    whether it reported closed."""

    at: datetime
    bathroom: bool
    kind: str = "motion"
    closed: bool | None = None


class DwellAction(enum.Enum):
    RAISE = "raise"
    QUIET = "quiet"  # over the limit, but away or already alarmed
    PLAN = "plan"  # only plan the next look


@dataclass(frozen=True)
class DwellDecision:
    action: DwellAction
    next_due: datetime | None
    code: str | None = None  # dwell_bathroom, dwell_bathroom_door
    since: datetime | None = None
    limit: timedelta | None = None


def stay(activity: Sequence[Activity]) -> list[Activity]:
    """The bathroom activity since the last activity elsewhere, oldest first (empty: not in the bathroom)."""
    ordered = sorted(activity, key=lambda a: a.at)
    for index in range(len(ordered) - 1, -1, -1):
        if not ordered[index].bathroom:
            return ordered[index + 1:]
    return ordered


def door_closed_with_motion(current: Sequence[Activity]) -> datetime | None:
    """When the bathroom door closed, if its last report in the stay is "closed" and motion came after."""
    doors = [a for a in current if a.kind == "door" and a.closed is not None]
    if not doors or not doors[-1].closed:
        return None
    closed_at = doors[-1].at
    return closed_at if any(a.kind == "motion" and a.at >= closed_at for a in current) else None


def decide_dwell(*, limits: DwellLimits, activity: Sequence[Activity], now: datetime, watch_from: datetime | None,
                 away_until: datetime | None = None, away_until_activity: bool = False,
                 alarm_open: bool = False, sensed_elsewhere: bool = True) -> DwellDecision:
    """What the tick does with a resident whose ``dwell_due_at`` has passed. ``activity`` is the resident's
    recent activity (at least the last activity elsewhere and all bathroom activity after it).
    ``sensed_elsewhere``: the home has a device outside the bathroom; without one, "no activity in any other
    room" says nothing and no rule fires."""
    shortest = limits.shortest
    if shortest is None:
        return DwellDecision(DwellAction.PLAN, None)
    if not sensed_elsewhere:
        return DwellDecision(DwellAction.PLAN, now + shortest)
    current = stay(activity)
    start = max((t for t in (watch_from, away_until) if t is not None), default=None)
    candidates: list[tuple[str, datetime, timedelta]] = []
    if limits.bathroom is not None and current:
        candidates.append(("dwell_bathroom", current[0].at, limits.bathroom))
    closed_at = door_closed_with_motion(current)
    if limits.bathroom_door is not None and closed_at is not None:
        candidates.append(("dwell_bathroom_door", closed_at, limits.bathroom_door))
    # a stay that began before the resident was watched counts from then
    candidates = [(code, max(since, start) if start else since, limit) for code, since, limit in candidates]
    # the earliest instant a rule can fire: a stay's end of limit, or an entry from now on
    next_due = min([now + shortest] + [since + limit for _, since, limit in candidates if since + limit > now])
    due = sorted((since + limit, code, since, limit) for code, since, limit in candidates if since + limit <= now)
    if not due:
        return DwellDecision(DwellAction.PLAN, next_due)
    _, code, since, limit = due[0]
    if away_until_activity or (away_until is not None and away_until > now) or alarm_open:
        return DwellDecision(DwellAction.QUIET, now + shortest, code, since, limit)
    return DwellDecision(DwellAction.RAISE, now + shortest, code, since, limit)
