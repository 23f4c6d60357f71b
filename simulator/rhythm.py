"""Daily rhythms of virtual residents: when a home's sensors would see someone. Pure.

A resident wakes around their usual hour, is busy in the morning, has meals, naps after lunch, may go
out in the afternoon, goes to bed in the evening and visits the toilet at night. The front door opens
when they fetch the milk in the morning, go out and come back, and lock up in the evening. Every draw
comes from the ``random.Random`` given, so a seed makes a day reproducible.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta, tzinfo


@dataclass(frozen=True)
class Profile:
    wake: time = time(6, 30)
    sleep: time = time(21, 30)
    spread_minutes: int = 40  # how much wake and sleep vary from day to day
    busy_every_minutes: float = 12.0  # mean gap between movements while awake and at home
    night_toilet_visits: float = 1.5  # mean number per night
    goes_out_probability: float = 0.5  # chance of an afternoon outing


@dataclass(frozen=True)
class Day:
    """One local day of a resident (instants in UTC)."""

    wake: datetime
    sleep: datetime
    movements: list[datetime] = field(default_factory=list)  # what the living-room PIR sees
    door_openings: list[datetime] = field(default_factory=list)  # the front door opens (and closes soon after)
    out: tuple[datetime, datetime] | None = None  # away from home in the afternoon
    nap: tuple[datetime, datetime] | None = None


def random_profile(rng: random.Random) -> Profile:
    wake = time(rng.randint(5, 7), rng.choice((0, 15, 30, 45)))
    sleep = time(rng.randint(20, 22), rng.choice((0, 15, 30, 45)))
    return Profile(wake=wake, sleep=sleep, busy_every_minutes=rng.uniform(6, 20),
                   night_toilet_visits=rng.uniform(0.5, 2.5), goes_out_probability=rng.uniform(0.2, 0.7))


def day_plan(rng: random.Random, day: date, zone: tzinfo, profile: Profile) -> Day:
    """The resident's ``day`` (local midnight to midnight): movements, door openings, outing, nap."""
    midnight = datetime.combine(day, time(0), zone)

    def at(clock: time, jitter: int) -> datetime:
        base = midnight + timedelta(hours=clock.hour, minutes=clock.minute)
        return base + timedelta(minutes=rng.uniform(-jitter, jitter))

    def hours(h: float) -> datetime:
        return midnight + timedelta(hours=h)

    wake = at(profile.wake, profile.spread_minutes)
    sleep = at(profile.sleep, profile.spread_minutes)
    out: tuple[datetime, datetime] | None = None
    if rng.random() < profile.goes_out_probability:
        leave = hours(rng.uniform(14, 16))
        out = (leave, leave + timedelta(minutes=rng.uniform(30, 120)))
    nap_start = hours(12) + timedelta(minutes=rng.uniform(30, 60))
    nap = (nap_start, nap_start + timedelta(minutes=rng.uniform(20, 60)))
    moments: list[datetime] = []
    t = wake
    while t < sleep:
        if not (out and out[0] <= t < out[1]) and not (nap[0] <= t < nap[1]):
            moments.append(t)
        t += timedelta(minutes=rng.expovariate(1 / profile.busy_every_minutes))
    for _ in range(_poisson(rng, profile.night_toilet_visits)):
        hour = rng.uniform(0, 5) if rng.random() < 0.7 else rng.uniform(23, 24)
        visit = hours(hour)
        moments.extend([visit, visit + timedelta(minutes=rng.uniform(2, 6))])
    doors = [wake + timedelta(minutes=rng.uniform(20, 60)), sleep - timedelta(minutes=rng.uniform(20, 60))]
    if out:
        doors.extend(out)
    for _ in range(rng.randint(0, 2)):  # a neighbour, the rubbish, the post
        when = hours(rng.uniform(9, 19))
        if not (out and out[0] <= when < out[1]):
            doors.append(when)
    return Day(wake=wake.astimezone(UTC), sleep=sleep.astimezone(UTC),
               movements=sorted(m.astimezone(UTC) for m in moments),
               door_openings=sorted(d.astimezone(UTC) for d in doors),
               out=(out[0].astimezone(UTC), out[1].astimezone(UTC)) if out else None,
               nap=(nap[0].astimezone(UTC), nap[1].astimezone(UTC)))


def day_movements(rng: random.Random, day: date, zone: tzinfo, profile: Profile) -> list[datetime]:
    """Instants (UTC) the motion sensor sees the resident during ``day`` (local midnight to midnight)."""
    return day_plan(rng, day, zone, profile).movements


def _poisson(rng: random.Random, mean: float) -> int:
    count, threshold, product = 0, math.exp(-mean), rng.random()
    while product > threshold:
        count += 1
        product *= rng.random()
    return count
