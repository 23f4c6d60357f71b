"""Daily rhythms of virtual residents: when a home's motion sensor would see someone. Pure.

A resident wakes around their usual hour, is busy in the morning, has meals, naps after lunch, may go
out in the afternoon, goes to bed in the evening and visits the toilet at night. Every draw comes from
the ``random.Random`` given, so a seed makes a day reproducible.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta, tzinfo


@dataclass(frozen=True)
class Profile:
    wake: time = time(6, 30)
    sleep: time = time(21, 30)
    spread_minutes: int = 40  # how much wake and sleep vary from day to day
    busy_every_minutes: float = 12.0  # mean gap between movements while awake and at home
    night_toilet_visits: float = 1.5  # mean number per night
    goes_out_probability: float = 0.5  # chance of an afternoon outing


def random_profile(rng: random.Random) -> Profile:
    wake = time(rng.randint(5, 7), rng.choice((0, 15, 30, 45)))
    sleep = time(rng.randint(20, 22), rng.choice((0, 15, 30, 45)))
    return Profile(wake=wake, sleep=sleep, busy_every_minutes=rng.uniform(6, 20),
                   night_toilet_visits=rng.uniform(0.5, 2.5), goes_out_probability=rng.uniform(0.2, 0.7))


def day_movements(rng: random.Random, day: date, zone: tzinfo, profile: Profile) -> list[datetime]:
    """Instants (UTC) the motion sensor sees the resident during ``day`` (local midnight to midnight)."""
    midnight = datetime.combine(day, time(0), zone)

    def at(clock: time, jitter: int) -> datetime:
        base = midnight + timedelta(hours=clock.hour, minutes=clock.minute)
        return base + timedelta(minutes=rng.uniform(-jitter, jitter))

    wake = at(profile.wake, profile.spread_minutes)
    sleep = at(profile.sleep, profile.spread_minutes)
    out: tuple[datetime, datetime] | None = None
    if rng.random() < profile.goes_out_probability:
        leave = midnight + timedelta(hours=rng.uniform(14, 16))
        out = (leave, leave + timedelta(minutes=rng.uniform(30, 120)))
    nap_start = midnight + timedelta(hours=12, minutes=rng.uniform(30, 60))
    nap = (nap_start, nap_start + timedelta(minutes=rng.uniform(20, 60)))
    moments: list[datetime] = []
    t = wake
    while t < sleep:
        if not (out and out[0] <= t < out[1]) and not (nap[0] <= t < nap[1]):
            moments.append(t)
        t += timedelta(minutes=rng.expovariate(1 / profile.busy_every_minutes))
    for _ in range(_poisson(rng, profile.night_toilet_visits)):
        hour = rng.uniform(0, 5) if rng.random() < 0.7 else rng.uniform(23, 24)
        visit = midnight + timedelta(hours=hour)
        moments.extend([visit, visit + timedelta(minutes=rng.uniform(2, 6))])
    return sorted(m.astimezone(UTC) for m in moments)


def _poisson(rng: random.Random, mean: float) -> int:
    count, threshold, product = 0, pow(2.718281828459045, -mean), rng.random()
    while product > threshold:
        count += 1
        product *= rng.random()
    return count
