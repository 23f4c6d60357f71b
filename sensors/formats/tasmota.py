"""Tasmota: parses and renders its MQTT messages. Pure.

From Tasmota's documentation:

* MQTT (https://tasmota.github.io/docs/MQTT/): topics are built from ``FullTopic``, by default
  ``%prefix%/%topic%/``, with the prefixes ``cmnd`` (commands to the device), ``stat`` (replies and
  status) and ``tele`` (telemetry, sent every ``TelePeriod``, default 300 s). ``%topic%`` is the device's
  unique single-word topic (default ``tasmota_XXXXXX``). Telemetry looks like
  ``tele/tasmota/SENSOR {"Time":"2017-02-16T10:13:52", "DS18B20":{"Temperature":20.6}}``. The broker
  publishes the last will ``tele/%topic%/LWT`` ``Offline``; the device publishes ``Online`` on connect.
* Buttons and switches (https://tasmota.github.io/docs/Buttons-and-Switches/) and PIR motion sensors
  (https://tasmota.github.io/docs/PIR-Motion-Sensors/): a PIR or a reed contact is configured as a
  ``Switch<x>``. Detached from the relays it reports either as telemetry,
  ``tele/tasmota/SENSOR = {"Time":"2021-01-01T00:00:01","Switch1":"ON"}`` (``SwitchMode<x> 15``: sent on
  every change, and the current state again in every periodic SENSOR message), or as an event,
  ``stat/tasmota/RESULT = {"Switch1":{"Action":"ON"}}`` (``SetOption114 1``). A detached button
  (``SetOption73 1``) reports ``{"Button1":{"Action":"SINGLE"}}`` (DOUBLE, TRIPLE, ..., HOLD).

Device id: the device's ``%topic%`` (the level before the last), for every message of the device. Any
levels before ``%prefix%`` (a FullTopic such as ``home/%prefix%/%topic%/``) are allowed; FullTopics that
put ``%prefix%`` after ``%topic%`` are not supported. The route option ``sensor`` names the key of the
activity sensor (default ``Switch1``); ``device_kind`` says what it is.

Semantics (SPEC section 2):

* ``Time`` is local time without a zone: it is read in the configured zone (``zone``).
* A SENSOR message repeats the switch state every TelePeriod, so ``ON`` there counts only as a change
  from ``OFF`` (unless the route sets ``force_update``); SENSOR/STATE without the sensor key are health
  (heartbeat). A RESULT ``Action`` is sent on every change: ``ON`` is motion, a door change, a press.
* A door contact: with ``SwitchMode 1`` Tasmota reports ``ON`` when the circuit is closed, which for the
  usual normally-open reed contact is the door closed, but wiring and ``SwitchMode 2`` invert it. Tasmota
  has no convention, so a door route must say which state means closed (``closed_when``).
* ``LWT`` Online/Offline is availability (health); the broker retains it, and retained replays are
  never observations (ingest skips them). ``cmnd/...`` are commands, other ``stat/...`` messages are
  command replies (POWER, STATUS...): skipped.
"""

from __future__ import annotations

from datetime import datetime, tzinfo
from typing import Any

import orjson

from sensors.formats._common import DeviceKind, OnOff, availability, binary_reading, load_object, valid_device
from sensors.payloads import BadTimestamp, Ignored, ParseResult, Reading, Rejection, parse_timestamp

DEFAULT_SENSOR = "Switch1"


def parse(topic: str, payload: bytes, zone: tzinfo, *, base: str = "", sensor: str | None = None,
          device_kind: DeviceKind = "motion", closed_when: OnOff | None = None, force_update: bool = False,
          payload_on: str = "ON", payload_off: str = "OFF") -> ParseResult:
    if base and not (topic == base or topic.startswith(base + "/")):
        return Rejection("unknown_topic", f"not a Tasmota topic under {base!r}: {topic!r}")
    levels = topic.split("/")
    if len(levels) < 3 or levels[-3] not in ("cmnd", "stat", "tele"):
        return Rejection("unknown_topic", f"Tasmota topics are [...]/cmnd|stat|tele/<topic>/<name>, got {topic!r}")
    prefix, device, name = levels[-3], levels[-2], levels[-1]
    if not device or not valid_device(device):
        return Rejection("unknown_topic", f"no Tasmota device topic in {topic!r}")
    if prefix == "cmnd":
        return Ignored("device_command")
    options = _Options(sensor or DEFAULT_SENSOR, device_kind, closed_when, force_update, payload_on, payload_off)
    if prefix == "stat":
        if name != "RESULT":
            return Ignored("command_reply")
        return _result(device, payload, options)
    if name == "LWT":
        return availability(device, payload, online="Online", offline="Offline", what="LWT")
    return _telemetry(device, name, payload, zone, options)


class _Options:
    def __init__(self, sensor: str, kind: DeviceKind, closed_when: OnOff | None, force_update: bool,
                 payload_on: str, payload_off: str) -> None:
        self.sensor, self.kind, self.closed_when = sensor, kind, closed_when
        self.force_update, self.payload_on, self.payload_off = force_update, payload_on, payload_off


def _telemetry(device: str, name: str, payload: bytes, zone: tzinfo, options: _Options) -> ParseResult:
    if name not in ("SENSOR", "STATE"):
        # INFO1-3, UPTIME, RESULT, ENERGY...: the device talking, not a sensor we watch
        return Reading(device=device, kind="heartbeat", value=name[:100])
    data = load_object(payload, device)
    if isinstance(data, Rejection):
        return data
    device_time = None
    if "Time" in data:
        stamp = data["Time"]
        if not isinstance(stamp, str):
            return Rejection("bad_timestamp", f"Time must be a string, got {stamp!r}", device)
        try:
            device_time = parse_timestamp(stamp, zone)
        except BadTimestamp as exc:
            return Rejection("bad_timestamp", f"Time: {exc}", device)
    if name == "SENSOR" and options.sensor in data:
        state = data[options.sensor]
        on = _on_off(state, options)
        if on is None:
            return Rejection("invalid_field", f"{options.sensor} must be {options.payload_on!r} or "
                             f"{options.payload_off!r}, got {str(state)[:40]!r}", device)
        return binary_reading(device, options.kind, on, closed_when=options.closed_when,
                              change_only=not options.force_update, device_time=device_time)
    return Reading(device=device, kind="heartbeat", device_time=device_time)


def _result(device: str, payload: bytes, options: _Options) -> ParseResult:
    data = load_object(payload, device)
    if isinstance(data, Rejection):
        return data
    if options.sensor not in data:
        return Ignored("command_reply")
    event = data[options.sensor]
    action = event.get("Action") if isinstance(event, dict) else None
    if not isinstance(action, str) or not action:
        return Rejection("invalid_field", f"{options.sensor} must be an object with an Action, got "
                         f"{str(event)[:60]!r}", device)
    if options.kind == "button" and action != options.payload_off:
        # a detached switch reports ON; a detached button SINGLE, DOUBLE, ..., HOLD: all presses
        return Reading(device=device, kind="button", value=action[:100])
    on = _on_off(action, options)
    if on is None:
        return Rejection("invalid_field", f"{options.sensor} Action must be {options.payload_on!r} or "
                         f"{options.payload_off!r}, got {action[:40]!r}", device)
    # sent on every change of the switch: each ON is an event of its own
    return binary_reading(device, options.kind, on, closed_when=options.closed_when, change_only=False)


def _on_off(state: Any, options: _Options) -> bool | None:
    if state == options.payload_on:
        return True
    if state == options.payload_off:
        return False
    return None


def _local_time(ts: datetime, zone: tzinfo) -> str:
    return ts.astimezone(zone).replace(tzinfo=None).isoformat(timespec="seconds")


def render_sensor(device: str, zone: tzinfo, *, time: datetime, state: str | None = "ON",
                  sensor: str = DEFAULT_SENSOR, extra: dict[str, Any] | None = None,
                  prefix: str = "") -> tuple[str, bytes]:
    """``tele/<topic>/SENSOR`` as Tasmota publishes it: ``Time`` in local time without a zone."""
    body: dict[str, Any] = {"Time": _local_time(time, zone)}
    if state is not None:
        body[sensor] = state
    body.update(extra or {})
    return f"{prefix}tele/{device}/SENSOR", orjson.dumps(body)


def render_state(device: str, zone: tzinfo, *, time: datetime, uptime: str = "0T00:05:00",
                 prefix: str = "") -> tuple[str, bytes]:
    """The periodic ``tele/<topic>/STATE`` (a health report)."""
    body = {"Time": _local_time(time, zone), "Uptime": uptime, "Wifi": {"RSSI": 80}}
    return f"{prefix}tele/{device}/STATE", orjson.dumps(body)


def render_result(device: str, action: str, *, sensor: str = DEFAULT_SENSOR, prefix: str = "") -> tuple[str, bytes]:
    """``stat/<topic>/RESULT {"Switch1":{"Action":"ON"}}`` (SetOption114 / SetOption73)."""
    return f"{prefix}stat/{device}/RESULT", orjson.dumps({sensor: {"Action": action}})


def render_lwt(device: str, online: bool, *, prefix: str = "") -> tuple[str, bytes]:
    return f"{prefix}tele/{device}/LWT", b"Online" if online else b"Offline"
