"""Helpers shared by the vendor formats. Pure.

Most vendors report a sensor as a two-state value (ON/OFF, true/false, open/close). What that state
means to Shouwang depends on the sensor, which the route says (``device_kind``):

* ``motion``: on = motion detected (activity), off = no motion (a ``state`` reading, not activity);
* ``door``: on/off mapped to closed/open by the route's ``closed_when``; a door reading is activity as a
  change of state (or as an event, for vendors that report only changes);
* ``button``: on = pressed (activity), off = released (a ``state`` reading).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal, TypeVar

import orjson

from sensors.payloads import Availability, ParseResult, Reading, Rejection, device_id_is_valid

DeviceKind = Literal["motion", "door", "button"]
OnOff = Literal["on", "off"]
T = TypeVar("T")


def binary_reading(device: str, kind: DeviceKind, on: bool, *, closed_when: OnOff | None, change_only: bool,
                   device_time: datetime | None = None, battery: int | None = None) -> ParseResult:
    """The reading for a two-state sensor of ``kind`` reporting ``on``."""
    if kind == "motion":
        if on:
            return Reading(device=device, kind="motion", device_time=device_time, occupied=True,
                           change_only=change_only, battery=battery, value="motion")
        return Reading(device=device, kind="state", device_time=device_time, occupied=False, battery=battery,
                       value="no motion")
    if kind == "door":
        if closed_when is None:
            return Rejection("route_config", "a door sensor's route must say which state means closed "
                             "(closed_when = 'on' or 'off')", device)
        closed = on == (closed_when == "on")
        return Reading(device=device, kind="door", device_time=device_time, occupied=closed,
                       change_only=change_only, battery=battery, value="closed" if closed else "open")
    if on:
        # a state-style button (change_only): a repeated "on" is not a new press (alerts.rules.is_observation)
        return Reading(device=device, kind="button", device_time=device_time, occupied=True, change_only=change_only,
                       battery=battery, value="pressed")
    return Reading(device=device, kind="state", device_time=device_time, occupied=False, battery=battery,
                   value="released")


def availability(device: str, payload: bytes, *, online: str, offline: str, what: str,
                 node: bool = False) -> ParseResult:
    """A plain-text availability report (a last will / birth message) whose payload is ``online`` or
    ``offline`` as the vendor spells them: the device's health, never activity. ``node``: the report is a
    node's, which applies to the devices under it (see :class:`sensors.payloads.Reading`)."""
    value = text(payload)
    if value not in (online, offline):
        return Rejection("invalid_field", f"{what} must be {online} or {offline}, got {value[:40]!r}", device)
    state: Availability = "online" if value == online else "offline"
    return Reading(device=device, kind="availability", availability=state, value=state, node=node)


def load_object(payload: bytes, device: str | None) -> dict[str, Any] | Rejection:
    """A JSON object, or the rejection saying why the payload is not one."""
    try:
        data = orjson.loads(payload)
    except orjson.JSONDecodeError as exc:
        return Rejection("malformed_json", f"payload is not JSON: {exc}", device)
    if not isinstance(data, dict):
        return Rejection("not_an_object", f"payload must be a JSON object, got {type(data).__name__}", device)
    return data


def object_with(payload: bytes, device: str, key: str, expected: type[T],
                what: str) -> tuple[dict[str, Any], T] | Rejection:
    """A JSON object and its field ``key`` of type ``expected``, or the rejection saying why not (``what``
    describes the field as the vendor documents it)."""
    data = load_object(payload, device)
    if isinstance(data, Rejection):
        return data
    value = data.get(key)
    if not isinstance(value, expected):
        return Rejection("invalid_field", f"{what}, got {str(value)[:40]!r}", device)
    return data, value


def percent(value: Any, what: str, device: str | None) -> int | Rejection:
    """A battery level 0-100 (a number, or a numeric string as plain-text topics carry it)."""
    number: Any = value
    if isinstance(value, str):
        try:
            number = float(value.strip())
        except ValueError:
            number = None
    if isinstance(number, bool) or not isinstance(number, int | float) or not 0 <= number <= 100:
        return Rejection("invalid_field", f"{what} must be a number 0-100, got {str(value)[:40]!r}", device)
    return round(number)


def text(payload: bytes) -> str:
    """A plain-text payload (ingest has already checked that it is UTF-8)."""
    return payload.decode("utf-8", "replace").strip()


def valid_device(device: str) -> bool:
    return device_id_is_valid(device)
