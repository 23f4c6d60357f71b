"""Shouwang's native format: ``shouwang/v1/events/<device>`` with a :class:`NativePayload` JSON body.

Parses and renders, so the simulator publishes exactly what the service reads. Pure.
"""

from __future__ import annotations

from datetime import datetime, tzinfo
from typing import Any

import orjson
from pydantic import ValidationError

from sensors.formats._common import load_object
from sensors.payloads import (
    NATIVE_PREFIX,
    BadTimestamp,
    NativePayload,
    ParseResult,
    Reading,
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
    try:
        message = NativePayload.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "payload"
        return Rejection("invalid_field", f"{where}: {first['msg']} ({len(exc.errors())} error(s))", device)
    device_time = None
    if message.ts is not None:
        try:
            device_time = parse_timestamp(message.ts, zone)
        except BadTimestamp as exc:
            return Rejection("bad_timestamp", str(exc), device)
    return _reading(device, message, device_time)


def _reading(device: str, message: NativePayload, device_time: datetime | None) -> ParseResult:
    kind = message.type
    common: dict[str, Any] = {
        "device": device, "device_time": device_time, "battery": message.battery,
        "event_uid": message.event_id,
    }
    if kind == "door":
        if message.state not in ("open", "closed"):
            return Rejection("invalid_field", "a door event needs state 'open' or 'closed'", device)
        return Reading(kind="door", occupied=message.state == "closed", value=message.state, **common)
    if kind == "availability":
        if message.state not in ("online", "offline"):
            return Rejection("invalid_field", "an availability event needs state 'online' or 'offline'", device)
        return Reading(kind="availability", availability=message.state, value=message.state, **common)
    if kind == "battery" and message.battery is None:
        return Rejection("invalid_field", "a battery event needs 'battery' (0-100)", device)
    value = None if message.value is None else f"{message.value:g}"
    return Reading(kind=kind, value=value, **common)


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
