"""A resident's learned daily rhythm, and the warnings when today departs from it. Pure; no ML framework.

From the resident's own last 28 days of activity the learner takes, for each good day (not away, no
alarm, some activity in the morning), the time of the first activity of the morning and the longest
silence of the daytime. Robust statistics over days: the median and the late (90 %) quantile of getting
up; the longest daytime silence ever seen. Weekdays and weekends are learned apart when both have days
enough and their usual getting-up times differ. With at least ``MIN_DAYS`` good days it warns:

* not up by the late quantile plus a margin of 2.5 hours ("usually up by 06:40; today nothing yet"): the
  margin keeps a morning slept in from being a notice (``bench/detection.py`` measured it: 60 minutes
  gave about 2 false notices per 100 resident-days, 150 minutes under 1, night falls still found a
  median of 3 hours after the usual getting-up time);
* silent in the daytime far longer than ever before (1.5 x the longest, and at least 90 min more).

Until there is enough history, only the fixed rules apply (:func:`learn` returns ``None``).
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
from datetime import date, datetime, time, timedelta, tzinfo
from typing import Any

HISTORY_DAYS = 28
MIN_DAYS = 7
MORNING = (time(4, 0), time(14, 0))  # the first activity of the morning lies in here
DAY_END = time(20, 0)  # daytime silences are measured up to here
UP_MARGIN = timedelta(minutes=150)
SPLIT_MIN_DAYS = 4  # weekends learned apart only with this many good days on each side
SPLIT_DIFFERENCE_MIN = 45.0


@dataclass(frozen=True)
class DayProfile:
    """What one group of days (all, weekdays or weekends) says, in minutes after local midnight."""

    days: int
    up_usual: float  # median of the first activity of the morning
    up_late: float  # its 90 % quantile
    longest_silence: float  # the longest daytime silence seen, minutes

    @property
    def up_by(self) -> float:
        """Minutes after midnight by which a day departs from the rhythm if nobody has moved."""
        return self.up_late + UP_MARGIN.total_seconds() / 60

    @property
    def silence_limit(self) -> float:
        return max(self.longest_silence * 1.5, self.longest_silence + 90)


@dataclass(frozen=True)
class Rhythm:
    learned_on: date
    good_days: int
    all_days: DayProfile
    weekdays: DayProfile | None = None  # set only when weekends differ
    weekends: DayProfile | None = None

    def profile(self, day: date) -> DayProfile:
        if self.weekdays is not None and self.weekends is not None:
            return self.weekends if day.weekday() >= 5 else self.weekdays
        return self.all_days

    def to_dict(self) -> dict[str, Any]:
        return {"learned_on": self.learned_on.isoformat(), "good_days": self.good_days,
                "all_days": asdict(self.all_days),
                "weekdays": asdict(self.weekdays) if self.weekdays else None,
                "weekends": asdict(self.weekends) if self.weekends else None}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Rhythm:
        def profile(value: dict[str, Any] | None) -> DayProfile | None:
            return DayProfile(**value) if value else None

        all_days = profile(data["all_days"])
        assert all_days is not None
        return cls(learned_on=date.fromisoformat(data["learned_on"]), good_days=int(data["good_days"]),
                   all_days=all_days, weekdays=profile(data.get("weekdays")), weekends=profile(data.get("weekends")))


def quantile(values: Sequence[float], q: float) -> float:
    """Linear-interpolation quantile of a non-empty sequence."""
    ordered = sorted(values)
    position = (len(ordered) - 1) * q
    low, high = math.floor(position), math.ceil(position)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


def _minutes(instant: datetime, zone: tzinfo) -> float:
    local = instant.astimezone(zone)
    return local.hour * 60 + local.minute + local.second / 60


@dataclass(frozen=True)
class DayFacts:
    day: date
    first_up: float  # minutes after midnight
    longest_silence: float  # minutes


def day_facts(day: date, activity: Sequence[datetime], zone: tzinfo) -> DayFacts | None:
    """The facts of one local day from its activity instants (any order); ``None`` if nobody moved in
    the morning (out all day, or a day not worth learning from)."""
    local = sorted(a for a in activity if a.astimezone(zone).date() == day)
    morning_start, morning_end = (t.hour * 60 + t.minute for t in MORNING)
    minutes = [_minutes(a, zone) for a in local]
    up = next((m for m in minutes if morning_start <= m < morning_end), None)
    if up is None:
        return None
    end = DAY_END.hour * 60 + DAY_END.minute
    daytime = [m for m in minutes if up <= m < end]
    gaps = [b - a for a, b in itertools.pairwise(daytime)]
    return DayFacts(day, up, max(gaps, default=0.0))


def _profile(facts: Sequence[DayFacts]) -> DayProfile:
    ups = [f.first_up for f in facts]
    return DayProfile(days=len(facts), up_usual=quantile(ups, 0.5), up_late=quantile(ups, 0.9),
                      longest_silence=max(f.longest_silence for f in facts))


def learn(today: date, activity: Iterable[datetime], zone: tzinfo, excluded: Iterable[date] = ()) -> Rhythm | None:
    """The rhythm from the ``HISTORY_DAYS`` days before ``today`` (today itself is not history).
    ``excluded``: days away or with an alarm, which say nothing of the usual day."""
    skip = set(excluded)
    by_day: dict[date, list[datetime]] = {}
    first = today - timedelta(days=HISTORY_DAYS)
    for instant in activity:
        day = instant.astimezone(zone).date()
        if first <= day < today and day not in skip:
            by_day.setdefault(day, []).append(instant)
    facts = [f for day, instants in sorted(by_day.items()) if (f := day_facts(day, instants, zone)) is not None]
    return from_facts(today, facts)


def from_facts(today: date, facts: Sequence[DayFacts]) -> Rhythm | None:
    """The rhythm from the facts of the good days (see :func:`learn`, which gathers them)."""
    if len(facts) < MIN_DAYS:
        return None
    rhythm = Rhythm(learned_on=today, good_days=len(facts), all_days=_profile(facts))
    weekdays = [f for f in facts if f.day.weekday() < 5]
    weekends = [f for f in facts if f.day.weekday() >= 5]
    if len(weekdays) >= SPLIT_MIN_DAYS and len(weekends) >= SPLIT_MIN_DAYS:
        wd, we = _profile(weekdays), _profile(weekends)
        if abs(wd.up_usual - we.up_usual) >= SPLIT_DIFFERENCE_MIN:
            return Rhythm(today, len(facts), rhythm.all_days, wd, we)
    return rhythm


def _at(day: date, minutes: float, zone: tzinfo) -> datetime:
    return datetime.combine(day, time(0), zone) + timedelta(minutes=minutes)


def up_by(rhythm: Rhythm, day: date, zone: tzinfo) -> datetime:
    """The instant of ``day`` by which the resident has usually moved (late quantile + margin)."""
    return _at(day, rhythm.profile(day).up_by, zone)


def morning_start(day: date, zone: tzinfo) -> datetime:
    return datetime.combine(day, MORNING[0], zone)


@dataclass(frozen=True)
class Departure:
    kind: str  # "not_up" or "long_silence"
    usual: str  # "06:40" (usual getting up) or "150" (longest silence, minutes)
    since: datetime  # the silence runs since


def check(rhythm: Rhythm, now: datetime, zone: tzinfo, last_activity: datetime | None) -> Departure | None:
    """Whether today departs from the rhythm at ``now``."""
    today = now.astimezone(zone).date()
    profile = rhythm.profile(today)
    start = morning_start(today, zone)
    moved_today = last_activity is not None and last_activity >= start
    if not moved_today:
        if now >= up_by(rhythm, today, zone):
            return Departure("not_up", _clock(profile.up_usual), last_activity or start)
        return None
    assert last_activity is not None
    deadline = silence_deadline(rhythm, last_activity, zone)
    if deadline is not None and now >= deadline:
        return Departure("long_silence", f"{profile.longest_silence:.0f}", last_activity)
    return None


def silence_deadline(rhythm: Rhythm, last_activity: datetime, zone: tzinfo) -> datetime | None:
    """When a daytime silence that began at ``last_activity`` becomes far longer than ever before;
    ``None`` when it would end after the day's end (the night is the fixed window's)."""
    day = last_activity.astimezone(zone).date()
    deadline = last_activity + timedelta(minutes=rhythm.profile(day).silence_limit)
    return deadline if deadline <= datetime.combine(day, DAY_END, zone) else None


def next_check(rhythm: Rhythm | None, now: datetime, zone: tzinfo, last_activity: datetime | None) -> datetime:
    """When the tick should look at this resident's rhythm again: the next relearning (03:00 local), or
    sooner today's getting-up deadline or the end of a long daytime silence."""
    today = now.astimezone(zone).date()
    candidates = [datetime.combine(today + timedelta(days=1), time(3, 0), zone)]
    if rhythm is not None:
        morning = up_by(rhythm, today, zone)
        if morning > now:
            candidates.append(morning)
        if last_activity is not None:
            deadline = silence_deadline(rhythm, last_activity, zone)
            if deadline is not None and deadline > now:
                candidates.append(deadline)
    return min(candidates)


def _clock(minutes: float) -> str:
    whole = round(minutes)
    return f"{whole // 60 % 24:02d}:{whole % 60:02d}"


def describe(rhythm: Rhythm | None, now: datetime, zone: tzinfo, last_activity: datetime | None,
             language: str = "zh") -> str | None:
    """The resident card's line: "usually up by 06:40; today nothing yet"."""
    if rhythm is None:
        return None
    today = now.astimezone(zone).date()
    usual = _clock(rhythm.profile(today).up_usual)
    moved = last_activity is not None and last_activity >= morning_start(today, zone)
    if language == "zh":
        return f"通常 {usual} 前起床；" + ("今天已有活动" if moved else "今天尚无活动")
    return f"usually up by {usual}; " + ("active today" if moved else "today nothing yet")
