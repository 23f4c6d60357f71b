"""Native and Zigbee2MQTT formats: real payloads parsed to the right reading, rendered messages parsed
back, bad ones rejected with a reason; and the ingest conversion (oversized, binary, retained)."""

from __future__ import annotations

from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import orjson
import pytest
from pydantic import ValidationError

from alerts.observations import Observation, Quarantined
from config.settings import FormatRoute
from sensors.formats import native, zigbee2mqtt
from sensors.ingest import RawMessage, Skipped, convert, delivery_key
from sensors.payloads import Ignored, NativePayload, Reading, Rejection, parse_timestamp
from sensors.topics import base_of, matches, route_for, subscription

ZONE = ZoneInfo("Asia/Shanghai")
ROUTES = [FormatRoute(topic="shouwang/v1/events/#", format="native"),
          FormatRoute(topic="zigbee2mqtt/#", format="zigbee2mqtt")]


def z2m(topic: str, payload: bytes | str, cache_state: bool = True):
    data = payload.encode() if isinstance(payload, str) else payload
    return zigbee2mqtt.parse(topic, data, ZONE, cache_state=cache_state)


# -- Zigbee2MQTT, payloads as its documentation shows them ---------------------------------------------
def test_z2m_occupancy_true_is_motion_counted_as_a_change_by_default() -> None:
    reading = z2m("zigbee2mqtt/living_room/pir", '{"occupancy":true,"battery":100,"linkquality":87}')
    assert isinstance(reading, Reading)
    assert (reading.device, reading.kind, reading.occupied, reading.change_only, reading.battery) == (
        "living_room/pir", "motion", True, True, 100)


def test_z2m_with_cache_state_off_every_occupancy_true_is_an_observation() -> None:
    reading = z2m("zigbee2mqtt/pir", '{"occupancy":true}', cache_state=False)
    assert isinstance(reading, Reading) and reading.kind == "motion" and not reading.change_only


def test_z2m_occupancy_false_is_not_an_observation() -> None:
    reading = z2m("zigbee2mqtt/pir", '{"occupancy":false,"battery":99}')
    assert isinstance(reading, Reading) and reading.kind == "state" and reading.occupied is False


def test_z2m_contact_true_means_closed() -> None:
    closed = z2m("zigbee2mqtt/door", '{"contact":true,"battery":91}')
    opened = z2m("zigbee2mqtt/door", '{"contact":false}')
    assert isinstance(closed, Reading) and closed.kind == "door" and closed.occupied is True
    assert isinstance(opened, Reading) and opened.value == "open" and opened.occupied is False


def test_z2m_action_is_a_button_press_and_an_empty_action_is_not() -> None:
    press = z2m("zigbee2mqtt/sos", '{"action":"single","battery":80}')
    reset = z2m("zigbee2mqtt/sos", '{"action":"","battery":80}')
    assert isinstance(press, Reading) and press.kind == "button" and press.value == "single"
    assert isinstance(reset, Reading) and reset.kind == "battery"


@pytest.mark.parametrize("payload", ['{"state":"offline"}', "offline"])
def test_z2m_availability_json_and_legacy_are_health(payload: str) -> None:
    reading = z2m("zigbee2mqtt/pir/availability", payload)
    assert isinstance(reading, Reading)
    assert (reading.device, reading.kind, reading.availability) == ("pir", "availability", "offline")


@pytest.mark.parametrize("topic", ["zigbee2mqtt/bridge/devices", "zigbee2mqtt/bridge/info",
                                   "zigbee2mqtt/pir/set", "zigbee2mqtt/pir/get"])
def test_z2m_bridge_and_command_topics_are_ignored(topic: str) -> None:
    assert isinstance(z2m(topic, '{"state":"online"}'), Ignored)


@pytest.mark.parametrize("payload", ['{"state":"offline"}', "offline"])
def test_z2m_bridge_state_is_the_gateway_s_own_report(payload: str) -> None:
    reading = z2m("zigbee2mqtt/bridge/state", payload)
    assert isinstance(reading, Reading)
    assert (reading.device, reading.kind, reading.availability, reading.gateway) == (
        "zigbee2mqtt", "gateway", "offline", "zigbee2mqtt")
    # and every device message names the bridge it came through
    device = z2m("zigbee2mqtt/pir", '{"occupancy":true}')
    assert isinstance(device, Reading) and device.gateway == "zigbee2mqtt"


def test_z2m_last_seen_iso_and_epoch_are_device_time() -> None:
    iso = z2m("zigbee2mqtt/pir", '{"occupancy":true,"last_seen":"2026-11-23T08:15:00+08:00"}')
    epoch = z2m("zigbee2mqtt/pir", '{"occupancy":true,"last_seen":1795392900000}')
    assert isinstance(iso, Reading) and iso.device_time == datetime(2026, 11, 23, 0, 15, tzinfo=UTC)
    assert isinstance(epoch, Reading) and epoch.device_time == datetime.fromtimestamp(1795392900, UTC)


@pytest.mark.parametrize(("payload", "reason"), [
    ("{not json", "malformed_json"),
    ("[1,2]", "not_an_object"),
    ('{"occupancy":"yes"}', "invalid_field"),
    ('{"battery":"full"}', "invalid_field"),
    ('{"battery":140}', "invalid_field"),
    ('{"action":5}', "invalid_field"),
    ('{"occupancy":true,"last_seen":"yesterday"}', "bad_timestamp"),
])
def test_z2m_wrong_payloads_are_rejected_with_a_reason(payload: str, reason: str) -> None:
    result = z2m("zigbee2mqtt/pir", payload)
    assert isinstance(result, Rejection) and result.reason == reason and result.detail


def test_z2m_rendered_messages_parse_back_to_the_same_reading() -> None:
    seen = datetime(2026, 11, 23, 1, 0, tzinfo=UTC)
    topic, payload = zigbee2mqtt.render("hall/pir", occupancy=True, battery=77, last_seen=seen)
    reading = zigbee2mqtt.parse(topic, payload, ZONE, cache_state=False)
    assert reading == Reading(device="hall/pir", kind="motion", device_time=seen, occupied=True,
                              change_only=False, battery=77, value="occupied", gateway="zigbee2mqtt")
    topic, payload = zigbee2mqtt.render_availability("hall/pir", "online", legacy=True)
    assert zigbee2mqtt.parse(topic, payload, ZONE) == Reading(device="hall/pir", kind="availability",
                                                             availability="online", value="online",
                                                             gateway="zigbee2mqtt")


# -- native ---------------------------------------------------------------------------------------------
def test_native_rendered_messages_parse_back() -> None:
    ts = datetime(2026, 11, 23, 1, 0, tzinfo=UTC)
    for kind, extra in [("motion", {}), ("door", {"state": "open"}), ("button", {}), ("meter", {"value": 12.5}),
                        ("heartbeat", {}), ("battery", {"battery": 40}), ("availability", {"state": "offline"})]:
        topic, payload = native.render("dev-1", kind, ts=ts, event_id="e1", **extra)  # type: ignore[arg-type]
        reading = native.parse(topic, payload, ZONE)
        assert isinstance(reading, Reading), (kind, reading)
        assert (reading.device, reading.kind, reading.device_time, reading.event_uid) == ("dev-1", kind, ts, "e1")


@pytest.mark.parametrize(("payload", "reason"), [
    (b"{", "malformed_json"),
    (b'"motion"', "not_an_object"),
    (b'{"type":"dance"}', "invalid_field"),
    (b'{"type":"motion","battery":"80"}', "invalid_field"),
    (b'{"type":"motion","extra":1}', "invalid_field"),
    (b'{"type":"door"}', "invalid_field"),
    (b'{"type":"motion","ts":"32/13/2026"}', "bad_timestamp"),
    (b'{"type":"motion","ts":true}', "invalid_field"),
    (b'{"type":"motion","ts":1e300}', "bad_timestamp"),
])
def test_native_wrong_payloads_are_rejected(payload: bytes, reason: str) -> None:
    result = native.parse("shouwang/v1/events/dev-1", payload, ZONE)
    assert isinstance(result, Rejection) and result.reason == reason, result


# payloads on both sides of every check of the native fast path: each is read as the schema reads it
SCHEMA_CORPUS = [
    b'{"type":"motion"}', b'{"type":"motion","ts":"2026-11-23T08:00:00+08:00","event_id":"e1","battery":87}',
    b'{"type":"motion","ts":1763856000}', b'{"type":"motion","ts":1763856000.5}', b'{"type":"motion","ts":null}',
    b'{"type":"motion","ts":true}', b'{"type":"motion","ts":[1]}', b'{"type":"motion","event_id":""}',
    b'{"type":"motion","event_id":"' + b"x" * 100 + b'"}', b'{"type":"motion","event_id":"' + b"x" * 101 + b'"}',
    b'{"type":"motion","event_id":7}', b'{"type":"motion","battery":100}', b'{"type":"motion","battery":101}',
    b'{"type":"motion","battery":-1}', b'{"type":"motion","battery":true}', b'{"type":"motion","battery":50.0}',
    b'{"type":"motion","battery":null}', b'{"type":"meter","value":12}', b'{"type":"meter","value":12.5}',
    b'{"type":"meter","value":true}', b'{"type":"meter","value":"12"}', b'{"type":"door","state":"open"}',
    b'{"type":"door","state":"closed"}', b'{"type":"door","state":"online"}', b'{"type":"door","state":"ajar"}',
    b'{"type":"door","state":1}', b'{"type":"availability","state":"offline"}', b'{"type":"availability"}',
    b'{"type":"battery"}', b'{"type":"battery","battery":20}', b'{"type":"heartbeat","gateway":"hub-1"}',
    b'{"type":"heartbeat","gateway":""}', b'{"type":"heartbeat","gateway":"' + b"g" * 201 + b'"}',
    b'{"type":"button","extra":1}', b'{"type":"Motion"}', b'{"type":1}', b'{}', b'{"ts":"2026-11-23T08:00:00Z"}',
]


@pytest.mark.parametrize("payload", SCHEMA_CORPUS)
def test_native_payloads_are_read_as_the_schema_reads_them(payload: bytes) -> None:
    result = native.parse("shouwang/v1/events/dev-1", payload, ZONE)
    try:
        model = NativePayload.model_validate(orjson.loads(payload))
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "payload"
        assert result == Rejection("invalid_field", f"{where}: {first['msg']} ({len(exc.errors())} error(s))",
                                   "dev-1")
        return
    if isinstance(result, Rejection):  # what the schema lets through and the kind refuses
        assert result.reason in ("invalid_field", "bad_timestamp"), result
        return
    assert (result.kind, result.event_uid, result.battery, result.gateway) == (
        model.type, model.event_id, model.battery, model.gateway)
    expected_time = None if model.ts is None else parse_timestamp(model.ts, ZONE)
    assert result.device_time == expected_time
    if model.type not in ("door", "availability"):
        assert result.value == (None if model.value is None else f"{model.value:g}")
    else:
        assert result.value == model.state


def test_native_topic_must_name_one_device() -> None:
    result = native.parse("shouwang/v1/events/a/b", b'{"type":"motion"}', ZONE)
    assert isinstance(result, Rejection) and result.reason == "unknown_topic"


def test_a_zoneless_timestamp_is_read_in_the_configured_zone() -> None:
    assert parse_timestamp("2026-11-23T08:00:00", ZONE) == datetime(2026, 11, 23, 0, 0, tzinfo=UTC)


# -- conversion of a delivery ---------------------------------------------------------------------------
def test_oversized_binary_and_unrouted_messages_are_quarantined() -> None:
    big = convert(RawMessage("shouwang/v1/events/d", b"x" * 20000), ROUTES, ZONE, 16384)
    binary = convert(RawMessage("shouwang/v1/events/d", b"\xff\xfe\x00\x01"), ROUTES, ZONE, 16384)
    unrouted = convert(RawMessage("elsewhere/d", b"{}"), ROUTES, ZONE, 16384)
    assert [q.reason for q in (big, binary, unrouted) if isinstance(q, Quarantined)] == [
        "oversized", "binary", "unknown_topic"]


def test_a_retained_message_is_a_replay_not_an_observation() -> None:
    result = convert(RawMessage("zigbee2mqtt/pir", b'{"occupancy":true}', retain=True), ROUTES, ZONE, 16384)
    assert result == Skipped("retained")


def test_a_redelivery_has_the_same_delivery_key_and_is_marked() -> None:
    first = convert(RawMessage("shouwang/v1/events/d", b'{"type":"motion"}', mid=7), ROUTES, ZONE, 16384)
    again = convert(RawMessage("shouwang/v1/events/d", b'{"type":"motion"}', mid=7, dup=True), ROUTES, ZONE, 16384)
    assert isinstance(first, Observation) and isinstance(again, Observation)
    assert first.delivery_key == again.delivery_key == delivery_key("shouwang/v1/events/d", 7, b'{"type":"motion"}')
    assert again.redelivery and not first.redelivery


# -- topics -------------------------------------------------------------------------------------------
def test_topic_filters() -> None:
    assert matches("zigbee2mqtt/#", "zigbee2mqtt/a/b")
    assert matches("a/+/c", "a/b/c") and not matches("a/+/c", "a/b/d")
    assert matches("a/#", "a") and not matches("a/b", "a/b/c")
    assert route_for("zigbee2mqtt/x", ROUTES) == ROUTES[1]
    assert base_of("shouwang/v1/events/#") == "shouwang/v1/events"
    assert subscription("a/#", "g") == "$share/g/a/#" and subscription("a/#", "") == "a/#"
