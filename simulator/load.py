"""Load mode: an endless stream of motion messages from every motion sensor of a community, in turn,
for benchmarks (``shouwang simulate --load RATE``). Pure: the publisher paces and bounds it.

Formats that report motion as a state alternate ON and OFF per device, so every ON is a change the
service counts; native motion events carry a fresh ``event_id`` each.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator
from datetime import datetime, tzinfo

from simulator.devices import Happening, pulses, render
from simulator.homes import Community


def load_messages(community: Community, zone: tzinfo, now: Callable[[], datetime]) -> Iterator[tuple[str, bytes]]:
    sensors = [(home, device) for home in community.homes for device in home.devices if device.role == "motion"]
    if not sensors:
        raise ValueError("load mode needs at least one home")
    for n in itertools.count():
        moving = n % 2 == 0
        for home, device in sensors:
            happening: Happening = "motion" if moving or pulses(home.fmt, "motion") else "still"
            rendered = render(home.fmt, "motion", device.name, happening, at=now(), zone=zone,
                              prefix=community.prefix, event_id=f"{device.name}-load-{n}")
            if rendered is not None:
                yield rendered
