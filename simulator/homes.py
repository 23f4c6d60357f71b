"""Virtual homes: residents with a daily rhythm and a motion sensor, laid out around a centre point,
and the timeline of messages they publish. Pure: :mod:`simulator.publisher` sends the messages.

The simulator renders messages with the same format modules the service parses them with.
"""

from __future__ import annotations

import heapq
import math
import random
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta, tzinfo
from typing import Any, Literal

from sensors.formats import native, zigbee2mqtt
from simulator.rhythm import Profile, day_movements, random_profile

SURNAMES = "王李张刘陈杨黄赵吴周徐孙马朱胡郭何高林罗"
GIVEN = ["秀英", "桂兰", "玉兰", "淑珍", "建国", "德明", "志强", "凤英", "国华", "秀兰", "长生", "金花"]


@dataclass
class VirtualHome:
    ref: str
    name: str
    device: str
    latitude: float
    longitude: float
    profile: Profile
    fmt: Literal["native", "zigbee2mqtt"] = "native"
    falls_at: datetime | None = None  # silence from then on
    window_hours: float | None = None
    seed: int = 0

    def render(self, instant: datetime, sequence: int) -> tuple[str, bytes]:
        if self.fmt == "zigbee2mqtt":
            return zigbee2mqtt.render(self.device, occupancy=True, last_seen=instant, battery=90)
        return native.render(self.device, "motion", ts=instant, event_id=f"{self.device}-{sequence}")

    def movements(self, start: datetime, zone: tzinfo) -> Iterator[datetime]:
        """Movement instants from ``start`` on, day after day, until the fall (if any)."""
        day: date = start.astimezone(zone).date()
        while True:
            rng = random.Random(f"{self.seed}:{self.ref}:{day.isoformat()}")
            for instant in day_movements(rng, day, zone, self.profile):
                if self.falls_at is not None and instant >= self.falls_at:
                    return
                if instant >= start:
                    yield instant
            day += timedelta(days=1)


@dataclass
class Community:
    name: str
    latitude: float
    longitude: float
    homes: list[VirtualHome] = field(default_factory=list)

    def as_data(self) -> dict[str, Any]:
        """The community as ``shouwang load`` reads it (see :mod:`alerts.community`)."""
        return {
            "community": {"name": self.name, "latitude": self.latitude, "longitude": self.longitude},
            "grids": [{"name": "第一网格", "micro_grids": [{"name": "1号楼"}, {"name": "2号楼"}]}],
            "workers": [
                {"name": "网格员 李娜", "phone": "+8613800000001", "role": "grid_worker", "grid": "第一网格"},
                {"name": "微网格员 赵强", "phone": "+8613800000002", "role": "micro_grid_worker",
                 "micro_grid": "第一网格/1号楼"},
                {"name": "中心主管 陈静", "phone": "+8613800000003", "role": "supervisor"},
            ],
            "residents": [
                {"ref": h.ref, "name": h.name, "birth_year": 1938 + i % 15,
                 "address": f"{self.name} {1 + i % 2}号楼 {1 + i // 12}单元 {101 + i % 12}",
                 "latitude": h.latitude, "longitude": h.longitude, "phone": f"+86717{8000000 + i:07d}",
                 "micro_grid": f"第一网格/{1 + i % 2}号楼", "consent": "2026-01-05",
                 **({"window_hours": h.window_hours} if h.window_hours else {}),
                 "devices": [{"id": h.device, "kind": "motion", "name": "客厅 PIR"}],
                 "contacts": [{"name": f"{h.name[0]}家属", "phone": f"+86139{7000000 + i:08d}", "relation": "child"}]}
                for i, h in enumerate(self.homes)
            ],
        }


def make_community(homes: int, *, seed: int = 1, center: tuple[float, float] = (30.6920, 111.2860),
                   name: str = "夷陵社区", fmt: Literal["native", "zigbee2mqtt"] = "native") -> Community:
    """``homes`` virtual homes on a small spiral around ``center`` (WGS-84), each with its rhythm."""
    rng = random.Random(seed)
    community = Community(name=name, latitude=center[0], longitude=center[1])
    for i in range(homes):
        angle, radius = i * 2.4, 0.0006 * math.sqrt(i + 1)
        community.homes.append(VirtualHome(
            ref=f"r{i + 1:03d}", name=rng.choice(SURNAMES) + rng.choice(GIVEN), device=f"pir-{i + 1:03d}",
            latitude=round(center[0] + radius * math.sin(angle), 6),
            longitude=round(center[1] + radius * math.cos(angle), 6),
            profile=random_profile(rng), fmt=fmt, seed=seed,
        ))
    return community


def _stream(home: VirtualHome, start: datetime, zone: tzinfo) -> Iterator[tuple[datetime, str, int, VirtualHome]]:
    # a function of its own: a generator expression in a comprehension would late-bind `home`
    for n, instant in enumerate(home.movements(start, zone)):
        yield instant, home.ref, n, home


def timeline(homes: list[VirtualHome], start: datetime, zone: tzinfo) -> Iterator[tuple[datetime, str, bytes]]:
    """Every home's messages from ``start`` on, merged in time order: (instant, topic, payload)."""
    streams = [_stream(home, start, zone) for home in homes]
    for instant, _ref, n, home in heapq.merge(*streams, key=lambda item: (item[0], item[1])):
        topic, payload = home.render(instant, n)
        yield instant, topic, payload
