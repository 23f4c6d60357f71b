"""Scenarios: a community and its scripted incidents, in a small TOML file (docs/simulator.md). Pure.

    [scenario]
    name = "demo"
    heartbeat = "1h"              # how often each device sends a health report

    [community]
    homes = 122
    seed = 1
    formats = { native = 3, zigbee2mqtt = 1 }   # homes take the formats in turn
    doors = 0.5                   # share of homes with a door contact
    buttons = 0.5                 # share of homes with a panic button

    [[homes]]                     # optional: one home's format, devices, window
    home = 2
    format = "tasmota"
    devices = ["motion", "door"]

    [[incidents]]
    kind = "fall"
    home = 1
    at = "5m"                     # after the start; or an instant with zone, 2026-11-23T20:00:00+08:00

Scenarios shipped with Shouwang live in ``simulator/scenarios/`` and can be named without a path
(``demo``, ``incidents``, ``gateway-dark``).
"""

from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta, tzinfo
from pathlib import Path
from typing import Any, cast

from simulator.devices import BATTERY_FORMATS, FORMATS, ROLES, Role
from simulator.homes import Community, make_community
from simulator.incidents import INCIDENT_KINDS, Effects, Incident, IncidentKind
from simulator.timeline import Timeline

SCENARIOS = Path(__file__).resolve().parent / "scenarios"
_PART = re.compile(r"(\d+(?:\.\d+)?)\s*(ms|d|h|m|s)")
_UNITS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400}

_SECTIONS = {
    "scenario": {"name", "description", "heartbeat"},
    "community": {"name", "homes", "seed", "center", "formats", "doors", "buttons"},
}
_HOME_KEYS = {"home", "format", "devices", "window_hours"}
_FLAGS = {"duplicate", "retain", "delay"}
_INCIDENT_KEYS: dict[str, set[str]] = {
    "fall": {"home", "at"},
    "device_dies": {"home", "at", "device", "announce"} | _FLAGS,
    "battery_drains": {"home", "at", "device", "to", "over"} | _FLAGS,
    "panic": {"home", "at"} | _FLAGS,
    "away": {"home", "until", "until_activity"},
    "visitor": {"home", "at", "count"} | _FLAGS,
    "gateway_dark": {"at", "for", "homes", "backlog"},
    "garbage": {"home", "at", "count"} | _FLAGS,
}
_REQUIRED = {"fall": {"home", "at"}, "device_dies": {"home", "at"}, "battery_drains": {"home", "at"},
             "panic": {"home", "at"}, "away": {"home"}, "visitor": {"home", "at"}, "gateway_dark": {"at", "for"},
             "garbage": {"at"}}


class ScenarioError(ValueError):
    """The scenario file is wrong; the message says where and how."""


def parse_offset(value: Any, what: str = "duration") -> timedelta:
    """``"90s"``, ``"30m"``, ``"1h30m"``, ``"2d"``, or seconds as a number."""
    if isinstance(value, int | float) and not isinstance(value, bool) and value >= 0:
        return timedelta(seconds=value)
    if isinstance(value, str):
        text = value.strip().removeprefix("+").replace(" ", "")
        if text and _PART.sub("", text) == "":
            return timedelta(seconds=sum(float(n) * _UNITS[u] for n, u in _PART.findall(text)))
    raise ScenarioError(f"{what}: {value!r} is not a duration; write e.g. '90s', '30m', '1h30m', '2d'")


def _instant(value: Any, start: datetime, what: str) -> datetime:
    """An offset from the start, or an instant with a zone."""
    if isinstance(value, datetime):
        if value.tzinfo is None:
            raise ScenarioError(f"{what}: {value} needs a time zone, e.g. 2026-11-23T20:00:00+08:00")
        return value.astimezone(UTC)
    if isinstance(value, str) and "T" in value:
        try:
            parsed = datetime.fromisoformat(value)
        except ValueError as exc:
            raise ScenarioError(f"{what}: {value!r} is not an ISO instant") from exc
        return _instant(parsed, start, what)
    return start + parse_offset(value, what)


@dataclass
class Simulation:
    """A scenario made concrete: its community, incidents and timeline from ``start``."""

    community: Community
    incidents: list[Incident]
    start: datetime
    zone: tzinfo
    heartbeat: timedelta
    scenario: Scenario

    @property
    def effects(self) -> Effects:
        return Effects(self.incidents, self.start)

    def timeline(self, until: datetime | None = None) -> Timeline:
        return Timeline(self.community, self.start, self.zone, self.effects, self.heartbeat, until)

    def routes(self) -> list[dict[str, Any]]:
        return self.community.routes()

    def incident(self, kind: str, n: int = 0) -> Incident:
        """The ``n``-th incident of ``kind``."""
        return [i for i in self.incidents if i.kind == kind][n]


@dataclass
class Scenario:
    name: str = "default"
    description: str = ""
    heartbeat: timedelta = timedelta(hours=1)
    community: dict[str, Any] = field(default_factory=dict)
    homes: list[dict[str, Any]] = field(default_factory=list)
    incidents: list[dict[str, Any]] = field(default_factory=list)

    def build(self, start: datetime, zone: tzinfo, *, prefix: str = "", homes: int | None = None,
              seed: int | None = None, fmt: str | None = None) -> Simulation:
        """The community and incidents from ``start``; ``homes``, ``seed`` and ``fmt`` override the file's."""
        spec = self.community
        center = spec.get("center", (30.6920, 111.2860))
        community = make_community(
            homes if homes is not None else spec.get("homes", 122),
            seed=seed if seed is not None else spec.get("seed", 1),
            center=(float(center[0]), float(center[1])), name=spec.get("name", "夷陵社区"),
            fmt=fmt or spec.get("formats", "native"), doors=spec.get("doors", 0.5), buttons=spec.get("buttons", 0.5),
            prefix=prefix,
        )
        start = start.astimezone(UTC)
        for n, item in enumerate(self.homes, start=1):
            _override_home(community, item, f"[[homes]] #{n}")
        incidents = [_incident(community, item, start, f"[[incidents]] #{n} ({item['kind']})")
                     for n, item in enumerate(self.incidents, start=1)]
        return Simulation(community, incidents, start, zone, self.heartbeat, self)


def _override_home(community: Community, item: dict[str, Any], where: str) -> None:
    home = _home(community, item["home"], where)
    if "format" in item:
        home.fmt = item["format"]
    if "devices" in item:
        home.devices = []
        for role in item["devices"]:
            home.add_device(role)
    if "window_hours" in item:
        home.window_hours = float(item["window_hours"])


def _home(community: Community, key: Any, where: str) -> Any:
    try:
        return community.home(key)
    except ValueError as exc:
        raise ScenarioError(f"{where}: {exc}") from exc


def _incident(community: Community, item: dict[str, Any], start: datetime, where: str) -> Incident:
    kind = cast(IncidentKind, item["kind"])
    at = _instant(item.get("at", 0), start, f"{where} at")
    fields: dict[str, Any] = {"kind": kind, "at": at}
    if kind == "gateway_dark":
        fields["homes"] = tuple(_home(community, h, where).ref for h in item.get("homes", []))
        fields["until"] = at + parse_offset(item["for"], f"{where} for")
        fields["backlog"] = bool(item.get("backlog", False))
        return Incident(**fields)
    home = _home(community, item.get("home", 1), where)
    fields["home"] = home.ref
    device: Role = item.get("device", "button" if kind == "panic" else "motion")
    fields["device"] = device
    if kind in ("panic", "device_dies", "battery_drains"):
        home.add_device(device)  # the scenario needs it: install it
    if kind == "battery_drains" and home.fmt not in BATTERY_FORMATS:
        raise ScenarioError(f"{where}: home {home.ref} speaks {home.fmt}, which reports no battery level; "
                            f"give it one of {', '.join(sorted(BATTERY_FORMATS))} in [[homes]]")
    if kind == "away":
        fields["at"] = start  # away from the start: the service learns it from the community data
        if "until" in item:
            fields["until"] = _instant(item["until"], start, f"{where} until")
        fields["until_activity"] = bool(item.get("until_activity", False))
        if "until" not in item and not fields["until_activity"]:
            raise ScenarioError(f"{where}: an away incident needs until (when she comes home) or "
                                "until_activity = true")
        if fields["until_activity"]:
            home.away_until_activity = True
        else:
            home.away_until = fields["until"]
    for key in ("announce", "retain"):
        if key in item:
            fields[key] = bool(item[key])
    for key in ("to", "count", "duplicate"):
        if key in item:
            fields[key] = int(item[key])
    if "over" in item:
        fields["over"] = parse_offset(item["over"], f"{where} over")
    if "delay" in item:
        fields["delay"] = parse_offset(item["delay"], f"{where} delay")
    return Incident(**fields)


def parse_scenario(text: str, source: str = "scenario") -> Scenario:
    """A scenario from TOML text, checked: unknown keys, kinds, formats and durations are refused."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ScenarioError(f"{source} is not valid TOML: {exc}") from exc
    unknown = set(data) - {"scenario", "community", "homes", "incidents"}
    if unknown:
        raise ScenarioError(f"{source}: unknown section(s) {', '.join(sorted(unknown))}")
    for section, allowed in _SECTIONS.items():
        extra = set(data.get(section, {})) - allowed
        if extra:
            raise ScenarioError(f"{source} [{section}]: unknown key(s) {', '.join(sorted(extra))}; "
                                f"known: {', '.join(sorted(allowed))}")
    info, community = data.get("scenario", {}), data.get("community", {})
    _check_community(community, source)
    homes = data.get("homes", [])
    for n, item in enumerate(homes, start=1):
        _check_home(item, f"{source} [[homes]] #{n}")
    incidents = data.get("incidents", [])
    for n, item in enumerate(incidents, start=1):
        _check_incident(item, f"{source} [[incidents]] #{n}")
    scenario = Scenario(name=info.get("name", Path(source).stem), description=info.get("description", ""),
                        heartbeat=parse_offset(info.get("heartbeat", "1h"), f"{source} heartbeat"),
                        community=community, homes=homes, incidents=incidents)
    if scenario.heartbeat <= timedelta(0):
        raise ScenarioError(f"{source}: heartbeat must be positive")
    # everything else (home numbers, devices, formats with batteries) is checked by building it once
    try:
        scenario.build(datetime(2026, 1, 1, tzinfo=UTC), UTC)
    except ValueError as exc:
        raise ScenarioError(f"{source} {exc}") from exc
    return scenario


def _check_community(community: dict[str, Any], source: str) -> None:
    formats = community.get("formats", "native")
    names = [formats] if isinstance(formats, str) else list(formats) if isinstance(formats, dict) else None
    if names is None or any(f not in FORMATS for f in names):
        raise ScenarioError(f"{source} [community] formats: {formats!r}; write a format name or weights such as "
                            f"{{ native = 3, zigbee2mqtt = 1 }}, from {', '.join(FORMATS)}")
    if isinstance(formats, dict) and not all(isinstance(w, int) and w > 0 for w in formats.values()):
        raise ScenarioError(f"{source} [community] formats: weights must be positive whole numbers")
    for key in ("doors", "buttons"):
        if not 0 <= community.get(key, 0.5) <= 1:
            raise ScenarioError(f"{source} [community] {key}: a share between 0 and 1")
    if not isinstance(community.get("homes", 122), int) or community.get("homes", 122) < 1:
        raise ScenarioError(f"{source} [community] homes: a whole number of at least 1")


def _check_home(item: dict[str, Any], where: str) -> None:
    extra = set(item) - _HOME_KEYS
    if extra:
        raise ScenarioError(f"{where}: unknown key(s) {', '.join(sorted(extra))}; "
                            f"known: {', '.join(sorted(_HOME_KEYS))}")
    if "home" not in item:
        raise ScenarioError(f"{where}: which home? home = 3 (a number) or home = \"r003\"")
    if "format" in item and item["format"] not in FORMATS:
        raise ScenarioError(f"{where}: format {item['format']!r} is none of {', '.join(FORMATS)}")
    devices = item.get("devices", ["motion"])
    if not isinstance(devices, list) or "motion" not in devices or any(d not in ROLES for d in devices):
        raise ScenarioError(f"{where}: devices is a list of {', '.join(ROLES)} and includes motion")


def _check_incident(item: dict[str, Any], where: str) -> None:
    kind = item.get("kind")
    if kind not in INCIDENT_KINDS:
        raise ScenarioError(f"{where}: kind {kind!r} is none of {', '.join(INCIDENT_KINDS)}")
    allowed = _INCIDENT_KEYS[kind] | {"kind"}
    extra = set(item) - allowed
    if extra:
        raise ScenarioError(f"{where} ({kind}): unknown key(s) {', '.join(sorted(extra))}; "
                            f"known: {', '.join(sorted(allowed))}")
    missing = _REQUIRED[kind] - set(item)
    if missing:
        raise ScenarioError(f"{where} ({kind}): missing {', '.join(sorted(missing))}")
    if "device" in item and item["device"] not in ROLES:
        raise ScenarioError(f"{where} ({kind}): device {item['device']!r} is none of {', '.join(ROLES)}")
    if kind == "battery_drains" and not 0 <= item.get("to", 5) < 100:
        raise ScenarioError(f"{where}: to is the final battery level in percent (0-99)")
    for key in ("count", "duplicate"):
        if key in item and (not isinstance(item[key], int) or isinstance(item[key], bool) or item[key] < 0):
            raise ScenarioError(f"{where} ({kind}): {key} must be a whole number")


def load_scenario(name_or_path: str | Path) -> Scenario:
    """A scenario file, or one shipped with Shouwang by name (``demo``, ``incidents``, ``gateway-dark``)."""
    path = Path(name_or_path)
    if not path.exists() and path.suffix == "" and (SCENARIOS / f"{path.name}.toml").exists():
        path = SCENARIOS / f"{path.name}.toml"
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        shipped = ", ".join(sorted(p.stem for p in SCENARIOS.glob("*.toml")))
        raise ScenarioError(f"scenario {str(name_or_path)!r} cannot be read ({exc.strerror}); "
                            f"shipped scenarios: {shipped}") from exc
    return parse_scenario(text, str(path))


def shipped_scenarios() -> list[str]:
    return sorted(p.stem for p in SCENARIOS.glob("*.toml"))
