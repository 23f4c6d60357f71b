"""Zigbee2MQTT: parses and renders its MQTT messages. Pure.

From Zigbee2MQTT's documentation (zigbee2mqtt.io, "MQTT topics and messages", "Availability",
"Device specific configuration"):

* ``<base>/<friendly name>`` carries the device state as a JSON object, e.g.
  ``{"occupancy": true, "battery": 100, "linkquality": 87, "last_seen": "2026-11-23T08:15:00+08:00"}``.
  ``last_seen`` (ISO 8601 or epoch milliseconds) is present only when ``advanced.last_seen`` is enabled.
  Friendly names may contain ``/``.
* ``<base>/<friendly name>/availability`` carries ``{"state": "online"|"offline"}`` (or the legacy
  plain ``online``/``offline``): device health, never activity.
* ``<base>/bridge/...`` is the bridge's own state, info and logs; ``.../set`` and ``.../get`` are
  commands to devices. None of them is an observation.

Semantics (SPEC section 2): the bridge generates ``occupancy: false`` itself after its
``occupancy_timeout``, so false is not an observation. With the bridge's default ``cache_state: true``
every later message of the device (a battery report, say) repeats the cached ``occupancy: true``, so
then only a change from not occupied counts; with ``cache_state: false`` every ``occupancy: true`` is
one. ``contact: true`` means the door is closed; a change of contact state is activity.
A non-empty ``action`` (button press) is activity.
"""

from __future__ import annotations

from datetime import datetime, tzinfo
from typing import Any

import orjson

from sensors.formats._common import load_object, percent
from sensors.payloads import BadTimestamp, Ignored, ParseResult, Reading, Rejection, parse_timestamp

COMMAND_SUFFIXES = ("/set", "/get")


def parse(topic: str, payload: bytes, zone: tzinfo, *, base: str = "zigbee2mqtt",
          cache_state: bool = True) -> ParseResult:
    prefix = base + "/"
    if not topic.startswith(prefix) or topic == prefix:
        return Rejection("unknown_topic", f"not a Zigbee2MQTT topic under {base!r}: {topic!r}")
    rest = topic[len(prefix):]
    if rest == "bridge" or rest.startswith("bridge/"):
        return Ignored("bridge_message")
    if rest.endswith(COMMAND_SUFFIXES) or "/set/" in rest:
        return Ignored("device_command")
    if rest.endswith("/availability"):
        return _availability(rest.removesuffix("/availability"), payload)
    return _state(rest, payload, zone, cache_state)


def _availability(device: str, payload: bytes) -> ParseResult:
    text = payload.strip()
    state: Any = None
    if text in (b"online", b"offline"):
        state = text.decode()
    else:
        try:
            data = orjson.loads(payload)
        except orjson.JSONDecodeError:
            return Rejection("malformed_json", "availability payload is neither JSON nor online/offline", device)
        state = data.get("state") if isinstance(data, dict) else None
    if state not in ("online", "offline"):
        return Rejection("invalid_field", f"availability state must be online or offline, got {state!r}", device)
    return Reading(device=device, kind="availability", availability=state, value=state)


def _state(device: str, payload: bytes, zone: tzinfo, cache_state: bool) -> ParseResult:
    data = load_object(payload, device)
    if isinstance(data, Rejection):
        return data
    device_time = None
    if data.get("last_seen") is not None:
        try:
            device_time = parse_timestamp(data["last_seen"], zone)
        except BadTimestamp as exc:
            return Rejection("bad_timestamp", f"last_seen: {exc}", device)
    battery = data.get("battery")
    if battery is not None:
        battery = percent(battery, "battery", device)
        if isinstance(battery, Rejection):
            return battery
    common: dict[str, Any] = {"device": device, "device_time": device_time, "battery": battery}
    action = data.get("action")
    if action is not None and not isinstance(action, str):
        return Rejection("invalid_field", f"action must be a string, got {action!r}", device)
    if action:
        return Reading(kind="button", value=action[:100], **common)
    for key in ("occupancy", "contact"):
        if key in data and not isinstance(data[key], bool):
            return Rejection("invalid_field", f"{key} must be true or false, got {data[key]!r}", device)
    if data.get("occupancy") is True:
        return Reading(kind="motion", occupied=True, change_only=cache_state, value="occupied", **common)
    if data.get("occupancy") is False:
        return Reading(kind="state", occupied=False, value="not occupied", **common)
    if "contact" in data:
        closed = data["contact"]
        return Reading(kind="door", occupied=closed, change_only=True,
                       value="closed" if closed else "open", **common)
    if battery is not None:
        return Reading(kind="battery", **common)
    return Reading(kind="heartbeat", **common)


def render(device: str, *, base: str = "zigbee2mqtt", occupancy: bool | None = None,
           contact: bool | None = None, action: str | None = None, battery: int | None = None,
           last_seen: datetime | None = None, linkquality: int | None = None) -> tuple[str, bytes]:
    """Topic and payload as Zigbee2MQTT publishes a device's state."""
    body: dict[str, Any] = {}
    for key, value in (("occupancy", occupancy), ("contact", contact), ("action", action),
                       ("battery", battery), ("linkquality", linkquality)):
        if value is not None:
            body[key] = value
    if last_seen is not None:
        body["last_seen"] = last_seen.isoformat()
    return f"{base}/{device}", orjson.dumps(body)


def render_availability(device: str, state: str, *, base: str = "zigbee2mqtt",
                        legacy: bool = False) -> tuple[str, bytes]:
    payload = state.encode() if legacy else orjson.dumps({"state": state})
    return f"{base}/{device}/availability", payload
