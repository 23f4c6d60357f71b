"""What ingest hands to the core: observations and quarantined messages, free of any MQTT or vendor
type (the boundary between ``sensors/`` and ``alerts/``)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime


# a value, never changed once built; not frozen: ingest builds one per message, and a frozen dataclass's
# __init__ sets each field through object.__setattr__ (about 0.1 us a field)
@dataclass(slots=True)
class Observation:
    device: str  # the device's external id
    kind: str  # an EventKind value
    topic: str
    delivery_key: str
    redelivery: bool = False  # the broker marked it DUP: it may already be stored
    retained: bool = False
    device_time: datetime | None = None
    occupied: bool | None = None
    change_only: bool = False
    battery: int | None = None
    availability: str | None = None
    event_uid: str | None = None
    value: str | None = None
    gateway: str | None = None  # the gateway it came through; for kind "gateway" the gateway itself
    # a node's report: without a device of this id it applies to the devices under it (``<id>/...``)
    node: bool = False
    payload: bytes = b""  # kept so an unknown device's message can be quarantined whole


@dataclass(frozen=True)
class Quarantined:
    topic: str
    payload: bytes
    reason: str
    detail: str
    delivery_key: str
    device: str | None = None
    redelivery: bool = False
