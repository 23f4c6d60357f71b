"""Shouwang's native format: ``shouwang/v1/events/<device>`` with a :class:`NativePayload` JSON body.

Parses and renders, so the simulator publishes exactly what the service reads. Pure.
"""

from __future__ import annotations

from datetime import UTC, datetime, tzinfo
from typing import Any, NamedTuple, cast, get_args

import orjson
from pydantic import ValidationError

from sensors.formats._common import load_object
from sensors.payloads import (
    NATIVE_PREFIX,
    BadTimestamp,
    NativePayload,
    ParseResult,
    Reading,
    ReadingKind,
    Rejection,
    device_id_is_valid,
    parse_timestamp,
)


def parse(topic: str, payload: bytes, zone: tzinfo, *, base: str = NATIVE_PREFIX) -> ParseResult:
    prefix = base + "/"
    device = topic[len(prefix):] if topic.startswith(prefix) else ""
    if not device or "/" in device or not device_id_is_valid(device):
        return Rejection("unknown_topic", f"native topics are {base}/<device id>, got {topic!r}")
    data = load_object(payload, device)
    if isinstance(data, Rejection):
        return data
    message = _plain(data)
    if message is None:  # not the plain case: the schema decides, and says why it refuses
        try:
            model = NativePayload.model_validate(data)
        except ValidationError as exc:
            first = exc.errors()[0]
            where = ".".join(str(p) for p in first["loc"]) or "payload"
            return Rejection("invalid_field", f"{where}: {first['msg']} ({len(exc.errors())} error(s))", device)
        message = _Message(model.type, model.ts, model.event_id, model.state, model.value, model.battery,
                           model.gateway)
    device_time = None
    if message.ts is not None:
        try:
            device_time = parse_timestamp(message.ts, zone)
        except BadTimestamp as exc:
            return Rejection("bad_timestamp", str(exc), device)
    return _reading(device, message, device_time)


def parse_plain(topic: str, payload: bytes, base: str) -> Reading | None:
    """Ingest's fast path: the reading of a plain native event, exactly as :func:`parse` reads it; None for
    anything else, and :func:`parse` decides (and says why it refuses). Plain: a device id of its own, a
    JSON object whose fields are all of the plain kinds :func:`_plain` accepts, a type other than door,
    availability and battery (they have rules of their own), and no time or an ISO 8601 time with its
    offset."""
    if not topic.startswith(base) or topic[len(base):len(base) + 1] != "/":
        return None
    device = topic[len(base) + 1:]
    if not device or "/" in device or not device_id_is_valid(device):
        return None
    try:
        data = orjson.loads(payload)
    except orjson.JSONDecodeError:
        return None
    if type(data) is not dict:
        return None
    message = _plain(data)
    if message is None or message.type in _OWN_RULES:
        return None
    device_time = None
    if message.ts is not None:
        if type(message.ts) is not str:
            return None
        try:
            device_time = datetime.fromisoformat(message.ts)
        except ValueError:
            return None
        if device_time.tzinfo is None:
            return None
        device_time = device_time.astimezone(UTC)
    value = None if message.value is None else f"{message.value:g}"
    # positional, in the order of Reading's fields
    return Reading(device, message.type, device_time, None, False, message.battery, None, message.event_id,
                   value, message.gateway)


_OWN_RULES = frozenset({"door", "availability", "battery"})


class _Message(NamedTuple):
    """The fields of a valid :class:`NativePayload`."""

    type: ReadingKind
    ts: str | int | float | None
    event_id: str | None
    state: str | None
    value: float | None
    battery: int | None
    gateway: str | None


_FIELDS = frozenset(NativePayload.model_fields)
_TYPES = frozenset(get_args(NativePayload.model_fields["type"].annotation))
_STATES = frozenset({"open", "closed", "online", "offline"})


def _plain(data: dict[str, Any]) -> _Message | None:
    """The message when every field is of the plain kind :class:`NativePayload` accepts as it is (a known
    type, a string or number time, strings within their lengths, an integer battery 0-100); None
    otherwise, and the model validates it. Ingest's fast path: no model is built per message, and
    nothing is accepted that the model would refuse or read differently."""
    if not _FIELDS.issuperset(data):
        return None
    kind, ts, uid, state, value, battery, gateway = (
        data.get("type"), data.get("ts"), data.get("event_id"), data.get("state"), data.get("value"),
        data.get("battery"), data.get("gateway"))
    if type(kind) is not str or kind not in _TYPES:
        return None
    if ts is not None and type(ts) not in (str, int, float):
        return None
    if uid is not None and (type(uid) is not str or not 1 <= len(uid) <= 100):
        return None
    if state is not None and (type(state) is not str or state not in _STATES):
        return None
    if value is not None:
        if type(value) is int:
            value = float(value)
        elif type(value) is not float:
            return None
    if battery is not None and (type(battery) is not int or not 0 <= battery <= 100):
        return None
    if gateway is not None and (type(gateway) is not str or not 1 <= len(gateway) <= 200):
        return None
    return _Message(cast(ReadingKind, kind), ts, uid, state, value, battery, gateway)


def _reading(device: str, message: _Message, device_time: datetime | None) -> ParseResult:
    kind = message.type
    if kind == "door":
        if message.state not in ("open", "closed"):
            return Rejection("invalid_field", "a door event needs state 'open' or 'closed'", device)
        return Reading(device=device, kind="door", device_time=device_time, occupied=message.state == "closed",
                       battery=message.battery, event_uid=message.event_id, value=message.state,
                       gateway=message.gateway)
    if kind == "availability":
        if message.state not in ("online", "offline"):
            return Rejection("invalid_field", "an availability event needs state 'online' or 'offline'", device)
        return Reading(device=device, kind="availability", device_time=device_time, battery=message.battery,
                       availability="online" if message.state == "online" else "offline",
                       event_uid=message.event_id, value=message.state, gateway=message.gateway)
    if kind == "battery" and message.battery is None:
        return Rejection("invalid_field", "a battery event needs 'battery' (0-100)", device)
    value = None if message.value is None else f"{message.value:g}"
    # positional, in the order of Reading's fields (the common case of ingest: one per message)
    return Reading(device, kind, device_time, None, False, message.battery, None, message.event_id, value,
                   message.gateway)


def render(
    device: str,
    kind: str,
    *,
    ts: datetime | None = None,
    event_id: str | None = None,
    state: str | None = None,
    value: float | None = None,
    battery: int | None = None,
    base: str = NATIVE_PREFIX,
) -> tuple[str, bytes]:
    """Topic and payload of a native event (the simulator and the benchmarks use this)."""
    body: dict[str, Any] = {"type": kind}
    if ts is not None:
        body["ts"] = ts.isoformat()
    for key, item in (("event_id", event_id), ("state", state), ("value", value), ("battery", battery)):
        if item is not None:
            body[key] = item
    return f"{base}/{device}", orjson.dumps(body)
