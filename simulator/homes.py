"""Virtual homes: residents with a daily rhythm, laid out around a centre point, each with a motion
sensor and optionally a door contact and a panic button, speaking one of the device formats. Pure.

:meth:`Community.as_data` is the community as ``shouwang load`` (``alerts.registry.community.load_community``)
reads it, with every device under the external id its format's parser derives; :meth:`Community.routes`
is the ``mqtt.routes`` list the service needs to read those formats.
"""

from __future__ import annotations

import json
import math
import random
import re
from dataclasses import dataclass, field
from datetime import date, datetime, tzinfo
from typing import Any

from simulator.devices import FORMATS, Role, external_id, routes
from simulator.rhythm import Day, Profile, day_plan, random_profile

SURNAMES = "王李张刘陈杨黄赵吴周徐孙马朱胡郭何高林罗"
GIVEN = ["秀英", "桂兰", "玉兰", "淑珍", "建国", "德明", "志强", "凤英", "国华", "秀兰", "长生", "金花"]
DEVICE_NAMES = {"motion": ("pir", "客厅 PIR"), "door": ("door", "入户门磁"), "button": ("sos", "紧急按钮")}
DEVICE_ROOMS = {"motion": "living_room", "door": "entrance"}  # where they hang (alerts.dwell.Room)


@dataclass
class VirtualDevice:
    role: Role
    name: str  # the device's own name / topic (e.g. pir-007); the external id follows from the format
    battery: int = 90  # its usual battery level


@dataclass
class VirtualHome:
    ref: str
    name: str
    latitude: float
    longitude: float
    profile: Profile
    fmt: str = "native"
    devices: list[VirtualDevice] = field(default_factory=list)
    window_hours: float | None = None
    seed: int = 0
    # what the service is told when the community is loaded (SPEC section 3, away mode)
    away_until: datetime | None = None
    away_until_activity: bool = False

    @property
    def number(self) -> int:
        return int(self.ref[1:])

    def device(self, role: Role) -> VirtualDevice | None:
        return next((d for d in self.devices if d.role == role), None)

    def add_device(self, role: Role) -> VirtualDevice:
        """The home's device of ``role``, installed if it has none."""
        found = self.device(role)
        if found is None:
            found = VirtualDevice(role, f"{DEVICE_NAMES[role][0]}-{self.number:03d}",
                                  battery=random.Random(f"{self.seed}:{self.ref}:{role}").randint(60, 100))
            self.devices.append(found)
            self.devices.sort(key=lambda d: ("motion", "door", "button").index(d.role))
        return found

    def day(self, day: date, zone: tzinfo) -> Day:
        """The resident's plan for a local day: the same for the same seed, home and date."""
        return day_plan(random.Random(f"{self.seed}:{self.ref}:{day.isoformat()}"), day, zone, self.profile)


@dataclass
class Community:
    name: str
    latitude: float
    longitude: float
    homes: list[VirtualHome] = field(default_factory=list)
    prefix: str = ""  # put before every topic (a test's own base, "test-1234/"); empty in production

    def home(self, key: int | str) -> VirtualHome:
        """A home by number (1-based) or ref (``r007``)."""
        ref = f"r{key:03d}" if isinstance(key, int) else key
        for home in self.homes:
            if home.ref == ref:
                return home
        raise ValueError(f"no home {key!r}: the community has homes 1-{len(self.homes)} (r001-r{len(self.homes):03d})")

    def external_id(self, home: VirtualHome, role: Role) -> str:
        device = home.device(role)
        if device is None:
            raise ValueError(f"home {home.ref} has no {role} device")
        return external_id(home.fmt, role, device.name, self.prefix)

    def formats(self) -> list[str]:
        used = {h.fmt for h in self.homes}
        return [f for f in FORMATS if f in used]

    def routes(self) -> list[dict[str, Any]]:
        """The ``mqtt.routes`` (topic filter, format, options) that read every home of the community."""
        return routes(self.formats(), self.prefix)

    def as_data(self) -> dict[str, Any]:
        """The community as ``shouwang load`` reads it (see :mod:`alerts.registry.community`)."""
        return {
            "community": {"name": self.name, "latitude": self.latitude, "longitude": self.longitude},
            "grids": [{"name": "第一网格", "micro_grids": [{"name": "1号楼"}, {"name": "2号楼"}]}],
            "workers": [
                {"name": "网格员 李娜", "phone": "+8613800000001", "role": "grid_worker", "grid": "第一网格"},
                {"name": "微网格员 赵强", "phone": "+8613800000002", "role": "micro_grid_worker",
                 "micro_grid": "第一网格/1号楼"},
                {"name": "中心主管 陈静", "phone": "+8613800000003", "role": "supervisor"},
            ],
            "gateways": self._gateways(),
            "residents": [self._resident(i, h) for i, h in enumerate(self.homes)],
        }

    def _gateways(self) -> list[dict[str, str]]:
        """The Zigbee2MQTT bridge every Zigbee home reports through (its base topic is its id)."""
        if not any(h.fmt == "zigbee2mqtt" for h in self.homes):
            return []
        return [{"id": f"{self.prefix}zigbee2mqtt", "kind": "zigbee2mqtt", "name": "Zigbee 网关"}]

    def _resident(self, i: int, home: VirtualHome) -> dict[str, Any]:
        item: dict[str, Any] = {
            "ref": home.ref, "name": home.name, "birth_year": 1938 + i % 15,
            "address": f"{self.name} {1 + i % 2}号楼 {1 + i // 12}单元 {101 + i % 12}",
            "latitude": home.latitude, "longitude": home.longitude, "phone": f"+86717{8000000 + i:07d}",
            "micro_grid": f"第一网格/{1 + i % 2}号楼", "consent": "2026-01-05",
        }
        if home.window_hours:
            item["window_hours"] = home.window_hours
        if home.away_until is not None:
            item["away_until"] = home.away_until.isoformat()
        if home.away_until_activity:
            item["away_until_activity"] = True
        item["devices"] = [{"id": self.external_id(home, d.role), "kind": d.role, "name": DEVICE_NAMES[d.role][1],
                            **({"room": DEVICE_ROOMS[d.role]} if d.role in DEVICE_ROOMS else {}),
                            **({"gateway": f"{self.prefix}zigbee2mqtt"} if home.fmt == "zigbee2mqtt" else {})}
                           for d in home.devices]
        item["contacts"] = [{"name": f"{home.name[0]}家属", "phone": f"+86139{7000000 + i:08d}", "relation": "child"}]
        return item


def make_community(homes: int = 122, *, seed: int = 1, center: tuple[float, float] = (30.6920, 111.2860),
                   name: str = "夷陵社区", fmt: str | dict[str, int] = "native", doors: float = 0.5,
                   buttons: float = 0.5, prefix: str = "") -> Community:
    """``homes`` virtual homes on a small spiral around ``center`` (WGS-84), each with its rhythm.

    ``fmt`` is one format for every home, or weights (``{"native": 3, "zigbee2mqtt": 1}``): homes take
    the formats in turn, three native then one Zigbee2MQTT, and so on. ``doors`` and ``buttons`` are the
    shares of homes with a door contact and with a panic button."""
    weights = {fmt: 1} if isinstance(fmt, str) else fmt
    pattern = [f for f, weight in weights.items() for _ in range(weight)]
    unknown = [f for f in pattern if f not in FORMATS]
    if unknown or not pattern:
        raise ValueError(f"unknown format(s) {unknown or pattern}: choose from {', '.join(FORMATS)}")
    rng = random.Random(seed)
    community = Community(name=name, latitude=center[0], longitude=center[1], prefix=prefix)
    for i in range(homes):
        angle, radius = i * 2.4, 0.0006 * math.sqrt(i + 1)
        home = VirtualHome(
            ref=f"r{i + 1:03d}", name=rng.choice(SURNAMES) + rng.choice(GIVEN),
            latitude=round(center[0] + radius * math.sin(angle), 6),
            longitude=round(center[1] + radius * math.cos(angle), 6),
            profile=random_profile(rng), fmt=pattern[i % len(pattern)], seed=seed,
        )
        home.add_device("motion")
        if rng.random() < doors:
            home.add_device("door")
        if rng.random() < buttons:
            home.add_device("button")
        community.homes.append(home)
    return community


_BARE_KEY = re.compile(r"^[A-Za-z0-9_-]+$")


def to_toml(data: dict[str, Any]) -> str:
    """A community (or any dict of tables and arrays of tables) as TOML that ``shouwang load`` reads."""
    lines: list[str] = []
    for key, value in data.items():
        if isinstance(value, dict):
            lines.append(f"[{_key(key)}]")
            lines.extend(f"{_key(k)} = {_value(v)}" for k, v in value.items())
            lines.append("")
        elif isinstance(value, list) and value and all(isinstance(v, dict) for v in value):
            for item in value:
                lines.append(f"[[{_key(key)}]]")
                lines.extend(f"{_key(k)} = {_value(v)}" for k, v in item.items())
                lines.append("")
        else:
            lines.insert(0, f"{_key(key)} = {_value(value)}")
    return "\n".join(lines)


def _key(key: str) -> str:
    return key if _BARE_KEY.match(key) else json.dumps(key, ensure_ascii=False)


def _value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, list):
        return "[" + ", ".join(_value(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{_key(k)} = {_value(v)}" for k, v in value.items()) + "}"
    raise TypeError(f"cannot write {type(value).__name__} as TOML")
