"""Shelly Gen1 (Shelly Motion, Door/Window 1/2, Button1, i3, Shelly 1...): parses and renders its MQTT
messages. Pure.

From the Shelly Gen1 API documentation, "MQTT" sections of each device
(https://shelly-api-docs.shelly.cloud/gen1/#mqtt-support, e.g. #shelly-motion-mqtt,
#shelly-door-window-1-2-mqtt, #shelly-button1-mqtt, #shelly-i3-mqtt):

* every device publishes under ``shellies/<id>/`` where ``<id>`` is ``<model>-<deviceid>`` (e.g.
  ``shellymotionsensor-60A423BEB736``) or the custom MQTT id set on the device;
* ``shellies/<id>/online``: ``true`` when the device connects, ``false`` as its last will;
* ``shellies/<id>/status`` (Shelly Motion): ``{"motion":true,"timestamp":1614416952,"active":true,
  "vibration":false,"lux":303,"bat":87}``, published whenever any of it changes;
* ``shellies/<id>/sensor/<name>``: one value per topic, e.g. ``sensor/state`` ``open`` / ``close``
  (Door/Window), ``sensor/motion`` ``true`` / ``false``, ``sensor/battery`` (percent), ``sensor/lux``,
  ``sensor/tilt``, ``sensor/vibration``...; battery devices publish all of them on every wake-up;
* ``shellies/<id>/input_event/<n>``: ``{"event":"S","event_cnt":2}`` on a button press (``S``, ``SS``,
  ``SSS``, ``L``, ``SL``, ``LS``); ``shellies/<id>/input/<n>`` ``0`` / ``1`` is the input level;
* ``shellies/<id>/relay/...``, ``roller/...``, ``light/...``, ``emeter/...``... report outputs and
  meters; ``.../command`` topics and ``shellies/command`` are commands; ``shellies/announce`` and
  ``shellies/<id>/announce`` answer the ``announce`` command.

Device id: ``<id>`` (the level after ``shellies``) for everything the device says; an input other than
the first is ``<id>/input:<n>`` (so a Shelly i3's buttons are three devices).

Semantics (SPEC section 2): ``online`` is availability (health). ``sensor/state`` ``close`` means the door
is closed, ``open`` open; as the Door/Window re-sends it on every wake-up, a door reading counts as a
change of state. Shelly Motion's ``status`` repeats ``motion: true`` while its lux or vibration changes,
so ``motion: true`` counts only as a change from false (unless the route sets ``force_update``); its
``timestamp`` is the time of the last motion, not of the report, and is not used (Gen1 messages carry no
device time). A non-empty ``input_event`` is a button press. Input levels (``input/<n>``) are health
unless the route's ``sensor`` names one (e.g. ``input/0`` for a PIR wired to a Shelly 1), which then
reports as ``device_kind``. Other sensor readings (lux, tilt, temperature...) and output/meter reports
are health (heartbeat).
"""

from __future__ import annotations

from datetime import datetime, tzinfo
from typing import Any

import orjson

from sensors.formats._common import (
    DeviceKind,
    OnOff,
    availability,
    binary_reading,
    object_with,
    percent,
    text,
    valid_device,
)
from sensors.payloads import Ignored, ParseResult, Reading, Rejection

# topics whose first level after <id> reports outputs, meters or device internals: the device is alive
HEALTH_GROUPS = frozenset({
    "relay", "roller", "light", "white", "color", "emeter", "meter", "ext_temperature", "ext_humidity",
    "ext_switch", "temperature", "temperature_f", "overtemperature", "overpower", "voltage", "adc", "longpush",
    "info", "announce", "loaderror", "input",
})
BOOLEAN = {"true": True, "false": False, "1": True, "0": False}


def parse(topic: str, payload: bytes, zone: tzinfo, *, base: str = "shellies", sensor: str | None = None,
          device_kind: DeviceKind = "motion", closed_when: OnOff | None = None,
          force_update: bool = False) -> ParseResult:
    prefix = base + "/"
    if not topic.startswith(prefix) or topic == prefix:
        return Rejection("unknown_topic", f"not a Shelly Gen1 topic under {base!r}: {topic!r}")
    levels = topic[len(prefix):].split("/")
    if len(levels) == 1:
        if levels[0] in ("announce", "command"):
            return Ignored("bridge_message")
        return Rejection("unknown_topic", f"Shelly Gen1 topics are {base}/<id>/..., got {topic!r}")
    device, rest = levels[0], levels[1:]
    if not valid_device(device):
        return Rejection("unknown_topic", f"no Shelly device id in {topic!r}")
    if "command" in rest:
        return Ignored("device_command")
    group, path = rest[0], "/".join(rest)
    if rest == ["online"]:
        return availability(device, payload, online="true", offline="false", what="online")
    if rest == ["status"]:
        return _motion_status(device, payload, force_update)
    if group == "sensor" and len(rest) == 2:
        return _sensor(device, rest[1], payload, force_update)
    if group == "input_event" and len(rest) == 2:
        return _input_event(_input_device(device, rest[1]), payload)
    if sensor is not None and path == sensor:
        return _configured_input(device, path, payload, device_kind, closed_when, force_update)
    if group in HEALTH_GROUPS:
        return Reading(device=device, kind="heartbeat", value=path[:100])
    return Rejection("unknown_topic", f"unknown Shelly Gen1 topic {path!r} of {device!r}", device)


def _input_device(device: str, index: str) -> str:
    return device if index == "0" else f"{device}/input:{index}"


def _motion_status(device: str, payload: bytes, force_update: bool) -> ParseResult:
    found = object_with(payload, device, "motion", bool, "a Shelly Motion status needs motion true/false")
    if isinstance(found, Rejection):
        return found
    data, motion = found
    battery = None
    if data.get("bat") is not None:
        level = percent(data["bat"], "bat", device)
        if isinstance(level, Rejection):
            return level
        battery = level
    return binary_reading(device, "motion", motion, closed_when=None, change_only=not force_update,
                          battery=battery)


def _sensor(device: str, name: str, payload: bytes, force_update: bool) -> ParseResult:
    value = text(payload)
    if name == "state":
        if value not in ("open", "close"):
            return Rejection("invalid_field", f"sensor/state must be open or close, got {value[:40]!r}", device)
        # "close" is the door closed; re-sent on every wake-up, so it counts as a change of state
        return binary_reading(device, "door", value == "close", closed_when="on", change_only=True)
    if name == "motion":
        if value not in BOOLEAN:
            return Rejection("invalid_field", f"sensor/motion must be true or false, got {value[:40]!r}", device)
        return binary_reading(device, "motion", BOOLEAN[value], closed_when=None, change_only=not force_update)
    if name == "battery":
        battery = percent(value, "sensor/battery", device)
        if isinstance(battery, Rejection):
            return battery
        return Reading(device=device, kind="battery", battery=battery)
    return Reading(device=device, kind="heartbeat", value=f"{name}={value[:60]}")


def _input_event(device: str, payload: bytes) -> ParseResult:
    found = object_with(payload, device, "event", str, "input_event needs an event string")
    if isinstance(found, Rejection):
        return found
    event = found[1]
    if not event:
        return Reading(device=device, kind="heartbeat", value="no event")
    return Reading(device=device, kind="button", value=event[:100])


def _configured_input(device: str, path: str, payload: bytes, kind: DeviceKind, closed_when: OnOff | None,
                      force_update: bool) -> ParseResult:
    value = text(payload)
    if value not in ("0", "1"):
        return Rejection("invalid_field", f"{path} must be 0 or 1, got {value[:40]!r}", device)
    index = path.rsplit("/", 1)[-1]
    return binary_reading(_input_device(device, index), kind, value == "1", closed_when=closed_when,
                          change_only=not force_update)


def render_motion_status(device: str, motion: bool, *, bat: int = 90, lux: int = 120, vibration: bool = False,
                         timestamp: datetime | None = None, base: str = "shellies") -> tuple[str, bytes]:
    """``shellies/<id>/status`` as a Shelly Motion publishes it."""
    body: dict[str, Any] = {"motion": motion, "timestamp": int(timestamp.timestamp()) if timestamp else 0,
                            "active": True, "vibration": vibration, "lux": lux, "bat": bat}
    return f"{base}/{device}/status", orjson.dumps(body)


def render_door(device: str, closed: bool, *, base: str = "shellies") -> tuple[str, bytes]:
    """``shellies/<id>/sensor/state`` ``open`` / ``close`` (Door/Window)."""
    return f"{base}/{device}/sensor/state", b"close" if closed else b"open"


def render_sensor(device: str, name: str, value: str, *, base: str = "shellies") -> tuple[str, bytes]:
    return f"{base}/{device}/sensor/{name}", value.encode()


def render_input_event(device: str, event: str = "S", *, count: int = 1, index: int = 0,
                       base: str = "shellies") -> tuple[str, bytes]:
    """``shellies/<id>/input_event/<n> {"event":"S","event_cnt":1}`` (Button1, i3)."""
    return f"{base}/{device}/input_event/{index}", orjson.dumps({"event": event, "event_cnt": count})


def render_online(device: str, online: bool, *, base: str = "shellies") -> tuple[str, bytes]:
    return f"{base}/{device}/online", b"true" if online else b"false"
