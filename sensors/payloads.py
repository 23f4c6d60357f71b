"""The wire schema: Shouwang's native topic and payload, and what every format parses a message into.

Native topic: ``shouwang/v1/events/<device id>``. Native payload (JSON object; schema in
``docs/native-payload.schema.json``, generated from :class:`NativePayload`)::

    {"type": "motion", "ts": "2026-11-23T08:15:00+08:00", "event_id": "pir-17-000123", "battery": 87}

This module is pure and is shared by the service (parsing) and the simulator (rendering).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from datetime import UTC, datetime, tzinfo
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

NATIVE_PREFIX = "shouwang/v1/events"

ReadingKind = Literal[
    "motion", "door", "button", "meter", "heartbeat", "battery", "availability", "state", "gateway"
]
ACTIVITY_KINDS = frozenset({"motion", "door", "button", "meter"})



Availability = Literal["online", "offline"]

class NativePayload(BaseModel):
    """One report from a device in Shouwang's own format."""

    model_config = ConfigDict(extra="forbid", strict=True, title="Shouwang native event")

    type: Literal["motion", "door", "button", "meter", "heartbeat", "battery", "availability"] = Field(
        description="motion/door/button/meter are activity; heartbeat/battery/availability are device health"
    )
    ts: str | int | float | None = Field(
        None, description="When it happened: ISO 8601 (with zone; without, the configured zone) or Unix "
        "seconds. Omit to use the time Shouwang received it."
    )
    event_id: str | None = Field(
        None, min_length=1, max_length=100,
        description="Unique per device: a repeated event_id is stored once",
    )
    state: Literal["open", "closed", "online", "offline"] | None = Field(
        None, description="door: open/closed; availability: online/offline"
    )
    value: float | None = Field(None, description="meter: the consumption reading")
    battery: int | None = Field(None, ge=0, le=100, description="battery level in percent")
    gateway: str | None = Field(
        None, min_length=1, max_length=200,
        description="The gateway (hub, building uplink) the device reports through, by its external id: "
        "groups the device for infrastructure incidents. Optional; an admin can set it instead.",
    )


# a value, never changed once built; not frozen: ingest builds one per message, and a frozen dataclass's
# __init__ sets each field through object.__setattr__ (about 0.1 us a field)
@dataclass(slots=True)
class Reading:
    """What a message says, in Shouwang's terms, before any database state is consulted."""

    device: str  # external id of the device
    kind: ReadingKind
    device_time: datetime | None = None
    # occupancy (motion) or closed (door) state the message reports, if any
    occupied: bool | None = None
    # count as activity only when ``occupied`` changes (Zigbee2MQTT with cache_state on, door contacts)
    change_only: bool = False
    battery: int | None = None
    availability: Availability | None = None
    event_uid: str | None = None
    value: str | None = None
    # the gateway it came through (Zigbee2MQTT: the base topic); for kind "gateway", the gateway itself
    gateway: str | None = None
    # a node's own report (ESPHome ``<prefix>/status``, Homie ``$state``/``$stats``): when no device has
    # this id, it applies to every device whose id lies under it (``<id>/...``)
    node: bool = False


@dataclass(frozen=True)
class Rejection:
    """A message that cannot be accepted: quarantined with ``reason`` (a short code) and ``detail``."""

    reason: str
    detail: str
    device: str | None = None


@dataclass(frozen=True)
class Ignored:
    """A message that is understood and deliberately not an observation (a bridge status, a replay)."""

    reason: str


ParseResult = Reading | Rejection | Ignored


class BadTimestamp(ValueError):
    pass


_NAIVE_ISO = re.compile(r"^\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}(:\d{2}(\.\d+)?)?$")


def parse_timestamp(value: object, zone: tzinfo) -> datetime:
    """ISO 8601 (a zone-less one is read in ``zone``), Unix seconds, or Unix milliseconds (> 1e11)."""
    if isinstance(value, bool):
        raise BadTimestamp(f"timestamp {value!r} is a boolean")
    if isinstance(value, int | float):
        seconds = value / 1000 if value > 1e11 else value
        try:
            return datetime.fromtimestamp(seconds, UTC)
        except (OverflowError, OSError, ValueError) as exc:
            raise BadTimestamp(f"timestamp {value!r} is out of range") from exc
    if not isinstance(value, str):
        raise BadTimestamp(f"timestamp must be a string or a number, got {type(value).__name__}")
    text = value.strip()
    try:
        parsed = datetime.fromisoformat(text.replace("Z", "+00:00") if text.endswith("Z") else text)
    except ValueError as exc:
        raise BadTimestamp(f"timestamp {value[:60]!r} is not ISO 8601") from exc
    if parsed.tzinfo is None:
        if not _NAIVE_ISO.match(text):
            raise BadTimestamp(f"timestamp {value[:60]!r} is not a date and time")
        parsed = parsed.replace(tzinfo=zone)
    return parsed.astimezone(UTC)


def native_schema_json() -> str:
    """The JSON Schema of the native payload, as published in ``docs/native-payload.schema.json``."""
    schema = NativePayload.model_json_schema()
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["description"] = (
        f"Shouwang's native MQTT payload, published at QoS 1 on {NATIVE_PREFIX}/<device id>. "
        "Unknown fields are refused (the message is quarantined with the reason)."
    )
    return json.dumps(schema, ensure_ascii=False, indent=2, sort_keys=True) + "\n"


def native_topic(device: str) -> str:
    return f"{NATIVE_PREFIX}/{device}"


def device_id_is_valid(device: str) -> bool:
    return 0 < len(device) <= 200 and "+" not in device and "#" not in device and "\x00" not in device
