"""From a received MQTT message to what the core records: an observation, a quarantined message, or
a deliberate skip. Pure: the consumer calls it, tests call it directly."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import tzinfo

from alerts.observations import Observation, Quarantined
from config.settings import FormatRoute
from sensors.formats import esphome, homeassistant, homie, native, shelly_gen1, shelly_gen2, tasmota, zigbee2mqtt
from sensors.payloads import Ignored, ParseResult, Reading, Rejection
from sensors.topics import base_of, route_for


@dataclass(slots=True)  # never changed once built; not frozen: paho's thread builds one per message
class RawMessage:
    """An MQTT delivery, free of paho types."""

    topic: str
    payload: bytes
    qos: int = 1
    retain: bool = False
    dup: bool = False
    mid: int = 0


@dataclass(frozen=True)
class Skipped:
    reason: str


Converted = Observation | Quarantined | Skipped


def delivery_key(topic: str, mid: int, payload: bytes) -> str:
    """Identifies one MQTT delivery: a redelivery (DUP) repeats topic, packet id and payload."""
    head = topic.encode("utf-8", "replace") + b"\x00" + mid.to_bytes(4, "big") + b"\x00"
    return hashlib.blake2b(head + payload, digest_size=16).hexdigest()


def convert(raw: RawMessage, routes: Sequence[FormatRoute], zone: tzinfo, max_payload: int) -> Converted:
    key = delivery_key(raw.topic, raw.mid, raw.payload)

    def reject(reason: str, detail: str, device: str | None = None) -> Quarantined:
        return Quarantined(raw.topic, raw.payload, reason, detail, key, device, raw.dup)

    if len(raw.payload) > max_payload:
        return reject("oversized", f"payload of {len(raw.payload)} bytes exceeds the limit of {max_payload}")
    route = route_for(raw.topic, routes)
    if route is None:
        return reject("unknown_topic", f"no format is configured for topic {raw.topic!r}")
    try:
        raw.payload.decode("utf-8")
    except UnicodeDecodeError as exc:
        return reject("binary", f"payload is not UTF-8 text (byte {exc.start})")
    if route.format == "native" and not raw.retain:  # the common case, read without the general path's steps
        reading = native.parse_plain(raw.topic, raw.payload, base_of(route.topic))
        if reading is not None:
            return _observation(reading, raw, key)
    parsed = _parse(raw, route, zone)
    if isinstance(parsed, Ignored):
        return Skipped(parsed.reason)
    if isinstance(parsed, Rejection):
        return reject(parsed.reason, parsed.detail, parsed.device)
    if raw.retain:
        # a retained message is the broker replaying old state: never an observation
        return Skipped("retained")
    return _observation(parsed, raw, key)


def _parse(raw: RawMessage, route: FormatRoute, zone: tzinfo) -> ParseResult:
    base = base_of(route.topic)
    kind, closed_when, force = route.device_kind, route.closed_when, route.force_update
    try:
        if route.format == "zigbee2mqtt":
            return zigbee2mqtt.parse(raw.topic, raw.payload, zone, base=base, cache_state=route.cache_state)
        if route.format == "tasmota":
            return tasmota.parse(raw.topic, raw.payload, zone, base=base, sensor=route.sensor, device_kind=kind,
                                 closed_when=closed_when, force_update=force, payload_on=route.payload_on,
                                 payload_off=route.payload_off)
        if route.format == "shelly_gen1":
            return shelly_gen1.parse(raw.topic, raw.payload, zone, base=base, sensor=route.sensor,
                                     device_kind=kind, closed_when=closed_when, force_update=force)
        if route.format == "shelly_gen2":
            return shelly_gen2.parse(raw.topic, raw.payload, zone, base=base, device_kind=kind,
                                     closed_when=closed_when)
        if route.format == "esphome":
            return esphome.parse(raw.topic, raw.payload, zone, base=base, sensor=route.sensor, device_kind=kind,
                                 closed_when=closed_when or "off", force_update=force,
                                 node_is_device=route.node_is_device)
        if route.format == "homeassistant":
            return homeassistant.parse(raw.topic, raw.payload, zone, topic_filter=route.topic, device_kind=kind,
                                       closed_when=closed_when or "off", force_update=force,
                                       payload_on=route.payload_on, payload_off=route.payload_off,
                                       payload_available=route.payload_available,
                                       payload_not_available=route.payload_not_available)
        if route.format == "homie":
            return homie.parse(raw.topic, raw.payload, zone, base=base, sensor=route.sensor, device_kind=kind,
                               closed_when=closed_when, force_update=force, node_is_device=route.node_is_device)
        return native.parse(raw.topic, raw.payload, zone, base=base)
    except Exception as exc:  # a parser bug must quarantine the message, not stop the consumer
        return Rejection("parser_error", f"{type(exc).__name__}: {exc}")


def _observation(reading: Reading, raw: RawMessage, key: str) -> Observation:
    # positional, in the order of Observation's fields (one per message: keywords cost more)
    return Observation(
        reading.device, reading.kind, raw.topic, key, raw.dup, raw.retain, reading.device_time, reading.occupied,
        reading.change_only, reading.battery, reading.availability, reading.event_uid, reading.value,
        reading.gateway, reading.node, raw.payload,
    )
