"""Time-window rules, as telecare products have them: "no activity between 07:00 and 10:00" (did not get
up). Pure functions of (state, now); the tick (:mod:`alerts.detection`) feeds them rows.

A window is two local times of day in the service's zone; a window whose end is before its start runs
over midnight ("22:00-02:00"). Each resident with a window carries one stored instant, ``routine_due_at``:
the end of the next window to judge. When it passes, the tick judges that window: quiet if there was
activity since the window opened (or the resident is away, or already alarmed, or was not watched yet
when it opened), otherwise a ``routine`` alarm. A stored instant that is not a window end (a resident
just created, a window just changed) only asks the tick to plan the next end: the registry never needs
to know the zone.
"""

from __future__ import annotations

import enum
import re
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta, tzinfo

from alerts.refusals import Refusal

_WINDOW = re.compile(r"^\s*([01]?\d|2[0-3]):([0-5]\d)\s*-\s*([01]?\d|2[0-3]):([0-5]\d)\s*$")


class WindowError(Refusal, ValueError):
    """A window that is not ``HH:MM-HH:MM`` (or starts and ends at the same minute)."""


@dataclass(frozen=True)
class Window:
    start: time
    end: time

    @classmethod
    def parse(cls, text: str) -> Window:
        match = _WINDOW.match(text or "")
        if match is None:
            raise WindowError("window", text=text)
        h1, m1, h2, m2 = (int(g) for g in match.groups())
        window = cls(time(h1, m1), time(h2, m2))
        if window.start == window.end:
            raise WindowError("window_empty", text=text)
        return window

    def __str__(self) -> str:
        return f"{self.start:%H:%M}-{self.end:%H:%M}"

    @property
    def crosses_midnight(self) -> bool:
        return self.end < self.start

    def bounds(self, end_day: date, zone: tzinfo) -> tuple[datetime, datetime]:
        """The window that ends on the local ``end_day``: its start and end instants."""
        end = datetime.combine(end_day, self.end, zone)
        start_day = end_day - timedelta(days=1) if self.crosses_midnight else end_day
        return datetime.combine(start_day, self.start, zone), end


def parse_window(text: str | None) -> Window | None:
    """``None`` or an empty text: no window."""
    return Window.parse(text) if text and text.strip() else None


def effective_window(resident_window: str | None, grid_window: str | None) -> Window | None:
    """The resident's own window, else their grid's, else none (nothing changes for a community that
    does not opt in)."""
    return parse_window(resident_window) or parse_window(grid_window)


def next_end(window: Window, after: datetime, zone: tzinfo) -> datetime:
    """The first end of the window strictly after ``after``."""
    day = after.astimezone(zone).date() - timedelta(days=1)
    while True:
        _, end = window.bounds(day, zone)
        if end > after:
            return end
        day += timedelta(days=1)


def is_window_end(window: Window, instant: datetime, zone: tzinfo) -> bool:
    _, end = window.bounds(instant.astimezone(zone).date(), zone)
    return end == instant


class RoutineAction(enum.Enum):
    RAISE = "raise"
    QUIET = "quiet"
    PLAN = "plan"  # nothing to judge: only plan the next window's end


@dataclass(frozen=True)
class RoutineDecision:
    action: RoutineAction
    next_due: datetime | None
    window_start: datetime | None = None
    reason: str = ""


def decide_routine(*, window: Window | None, due: datetime, now: datetime, zone: tzinfo,
                   last_activity: datetime | None, watch_from: datetime | None, away_until: datetime | None,
                   away_until_activity: bool, alarm_open: bool) -> RoutineDecision:
    """What the tick does with a resident whose ``routine_due_at`` (``due``) has passed."""
    if window is None:
        return RoutineDecision(RoutineAction.PLAN, None)
    following = next_end(window, now, zone)
    if not is_window_end(window, due, zone):
        return RoutineDecision(RoutineAction.PLAN, following)
    start, _ = window.bounds(due.astimezone(zone).date(), zone)
    if last_activity is not None and last_activity >= start:
        return RoutineDecision(RoutineAction.QUIET, following, start, "activity")
    if away_until_activity or (away_until is not None and away_until > start):
        return RoutineDecision(RoutineAction.QUIET, following, start, "away")
    if alarm_open:
        return RoutineDecision(RoutineAction.QUIET, following, start, "alarm open")
    if watch_from is not None and watch_from > start:
        return RoutineDecision(RoutineAction.QUIET, following, start, "not watched yet")
    return RoutineDecision(RoutineAction.RAISE, following, start)
