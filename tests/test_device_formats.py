"""Vendor formats: Tasmota, Shelly Gen1 and Gen2, ESPHome, Home Assistant state topics, Homie.

For each: payloads as the vendor's documentation shows them parsed to the right activity / health / skip,
rendered messages parsed back to the same reading, wrong ones quarantined with a reason, and the routing
through sensors.ingest.convert with a configured FormatRoute. Pure: no broker, no database."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime
from functools import partial
from zoneinfo import ZoneInfo

import pytest
from pydantic import ValidationError

from alerts.observations import Observation, Quarantined
from alerts.rules import is_observation
from config.settings import FormatRoute
from sensors.formats import esphome, homeassistant, homie, shelly_gen1, shelly_gen2, tasmota
from sensors.ingest import RawMessage, Skipped, convert
from sensors.payloads import Ignored, Reading, Rejection

ZONE = ZoneInfo("Asia/Shanghai")
MAX = 16384


def b(text: str) -> bytes:
    return text.encode()


def reading(result: object) -> Reading:
    assert isinstance(result, Reading), result
    return result


def rejected(result: object, reason: str) -> None:
    assert isinstance(result, Rejection), result
    assert result.reason == reason and result.detail, result


def counted(readings: list[Reading], previous: bool | None = None) -> list[bool]:
    """Whether each reading of one device is activity, as the recorder decides it (alerts.rules)."""
    out = []
    for r in readings:
        out.append(is_observation(r.kind, r.occupied, r.change_only, previous))
        if r.occupied is not None:
            previous = r.occupied
    return out


# -- Tasmota --------------------------------------------------------------------------------------------
def tas(topic: str, payload: str, **options: object):
    return tasmota.parse(topic, b(payload), ZONE, **options)  # type: ignore[arg-type]


def test_tasmota_switchmode15_sensor_is_motion_in_local_time_counted_as_a_change() -> None:
    # Buttons-and-Switches, SwitchMode 15: tele/tasmota/SENSOR = {"Time":"2021-01-01T00:00:01","Switch1":"ON"}
    on = reading(tas("tele/tasmota/SENSOR", '{"Time":"2021-01-01T00:00:01","Switch1":"ON"}'))
    off = reading(tas("tele/tasmota/SENSOR", '{"Time":"2021-01-01T00:00:00","Switch1":"OFF"}'))
    assert (on.device, on.kind, on.occupied, on.change_only) == ("tasmota", "motion", True, True)
    # Time has no zone: it is local time, read in the configured zone (UTC+8)
    assert on.device_time == datetime(2020, 12, 31, 16, 0, 1, tzinfo=UTC)
    assert (off.kind, off.occupied) == ("state", False)
    # the periodic SENSOR repeats ON every TelePeriod: only the change counts
    assert counted([off, on, on, off, on]) == [False, True, False, False, True]


def test_tasmota_result_action_is_an_event_every_time() -> None:
    # SetOption114 1: stat/tasmota/RESULT {"Switch1":{"Action":"ON"}}
    first = reading(tas("stat/tasmota/RESULT", '{"Switch1":{"Action":"ON"}}'))
    assert (first.kind, first.change_only, first.device_time) == ("motion", False, None)
    assert counted([first, first]) == [True, True]


def test_tasmota_telemetry_without_the_sensor_is_health_and_lwt_is_availability() -> None:
    # MQTT docs: tele/tasmota/SENSOR {"Time":"2017-02-16T10:13:52", "DS18B20":{"Temperature":20.6}}
    temp = reading(tas("tele/tasmota/SENSOR", '{"Time":"2017-02-16T10:13:52", "DS18B20":{"Temperature":20.6}}'))
    state = reading(tas("tele/tasmota/STATE", '{"Time":"2021-01-01T00:00:00","Uptime":"0T00:05:00"}'))
    info = reading(tas("tele/tasmota/INFO1", '{"Module":"Generic"}'))
    assert (temp.kind, temp.device_time) == ("heartbeat", datetime(2017, 2, 16, 2, 13, 52, tzinfo=UTC))
    assert state.kind == "heartbeat" and info.kind == "heartbeat"
    for payload, availability in (("Online", "online"), ("Offline", "offline")):
        lwt = reading(tas("tele/tasmota_5E2B7C/LWT", payload))
        assert (lwt.device, lwt.kind, lwt.availability) == ("tasmota_5E2B7C", "availability", availability)


@pytest.mark.parametrize(("topic", "payload"), [
    ("cmnd/tasmota/POWER", "TOGGLE"), ("stat/tasmota/POWER", "ON"), ("stat/tasmota/RESULT", '{"POWER":"ON"}'),
    ("stat/tasmota/STATUS10", '{"StatusSNS":{"Time":"2020-09-20T09:41:00","Switch1":"ON"}}'),
])
def test_tasmota_commands_and_replies_are_skipped(topic: str, payload: str) -> None:
    assert isinstance(tas(topic, payload), Ignored)


def test_tasmota_door_needs_its_closed_state_and_buttons_press() -> None:
    closed = reading(tas("tele/door/SENSOR", '{"Time":"2021-01-01T00:00:00","Switch2":"ON"}', sensor="Switch2",
                         device_kind="door", closed_when="on"))
    opened = reading(tas("stat/door/RESULT", '{"Switch2":{"Action":"OFF"}}', sensor="Switch2", device_kind="door",
                         closed_when="on"))
    assert (closed.kind, closed.occupied, closed.value, closed.change_only) == ("door", True, "closed", True)
    assert (opened.kind, opened.occupied, opened.value, opened.change_only) == ("door", False, "open", False)
    rejected(tas("tele/door/SENSOR", '{"Switch1":"ON"}', device_kind="door"), "route_config")
    press = reading(tas("stat/sos/RESULT", '{"Button1":{"Action":"SINGLE"}}', sensor="Button1", device_kind="button"))
    assert (press.kind, press.value) == ("button", "SINGLE")


def test_tasmota_rendered_messages_parse_back() -> None:
    at = datetime(2026, 11, 23, 0, 15, tzinfo=UTC)
    topic, payload = tasmota.render_sensor("hall", ZONE, time=at)
    assert payload.startswith(b'{"Time":"2026-11-23T08:15:00"')  # local time, no zone, as Tasmota sends it
    assert tasmota.parse(topic, payload, ZONE) == Reading(device="hall", kind="motion", device_time=at,
                                                          occupied=True, change_only=True, value="motion")
    assert reading(tasmota.parse(*tasmota.render_state("hall", ZONE, time=at), ZONE)).device_time == at
    assert reading(tasmota.parse(*tasmota.render_result("hall", "ON"), ZONE)).change_only is False
    assert reading(tasmota.parse(*tasmota.render_lwt("hall", False), ZONE)).availability == "offline"
    topic, payload = tasmota.render_lwt("hall", True, prefix="home/")
    assert topic == "home/tele/hall/LWT" and reading(tasmota.parse(topic, payload, ZONE)).availability == "online"


def test_tasmota_routing_through_ingest() -> None:
    routes = [FormatRoute(topic="tele/#", format="tasmota"), FormatRoute(topic="stat/+/RESULT", format="tasmota")]
    live = convert(RawMessage("stat/hall/RESULT", b'{"Switch1":{"Action":"ON"}}'), routes, ZONE, MAX)
    assert isinstance(live, Observation) and (live.device, live.kind) == ("hall", "motion")
    retained_lwt = convert(RawMessage("tele/hall/LWT", b"Online", retain=True), routes, ZONE, MAX)
    assert retained_lwt == Skipped("retained")
    bad = convert(RawMessage("tele/hall/SENSOR", b'{"Time":"soon"}'), routes, ZONE, MAX)
    assert isinstance(bad, Quarantined) and bad.reason == "bad_timestamp" and bad.device == "hall"


# -- Shelly Gen1 ----------------------------------------------------------------------------------------
MOTION_ID = "shellymotionsensor-60A423BEB736"


def gen1(topic: str, payload: str, **options: object):
    return shelly_gen1.parse(topic, b(payload), ZONE, **options)  # type: ignore[arg-type]


def test_shelly_motion_status_is_motion_counted_as_a_change_with_its_battery() -> None:
    topic = f"shellies/{MOTION_ID}/status"
    on = reading(gen1(topic, '{"motion":true,"timestamp":1614416952,"active":true,"vibration":true,"lux":303,'
                             '"bat":87}'))
    off = reading(gen1(topic, '{"motion":false,"timestamp":1614416952,"active":true,"vibration":false,"lux":290,'
                              '"bat":87}'))
    assert (on.device, on.kind, on.occupied, on.change_only, on.battery) == (MOTION_ID, "motion", True, True, 87)
    assert on.device_time is None  # timestamp is the last motion's, not this report's
    assert (off.kind, off.occupied) == ("state", False)
    # a lux change while motion stays true repeats motion: true
    assert counted([off, on, on, off]) == [False, True, False, False]


def test_shelly_door_window_close_means_closed() -> None:
    closed = reading(gen1("shellies/shellydw2-483FDA/sensor/state", "close"))
    opened = reading(gen1("shellies/shellydw2-483FDA/sensor/state", "open"))
    assert (closed.kind, closed.occupied, closed.value) == ("door", True, "closed")
    assert (opened.kind, opened.occupied, opened.value) == ("door", False, "open")
    # the first report is a change from unknown: it counts; a repeated state does not
    assert counted([closed, closed, opened, opened, closed]) == [True, False, True, False, True]
    battery = reading(gen1("shellies/shellydw2-483FDA/sensor/battery", "97"))
    lux = reading(gen1("shellies/shellydw2-483FDA/sensor/lux", "120"))
    assert (battery.kind, battery.battery) == ("battery", 97) and lux.kind == "heartbeat"


def test_shelly_button_input_events_are_presses() -> None:
    press = reading(gen1("shellies/shellybutton1-A4CF12F45301/input_event/0", '{"event":"S","event_cnt":4}'))
    third = reading(gen1("shellies/shellyix3-98CDAC1F0E22/input_event/2", '{"event":"L","event_cnt":1}'))
    none = reading(gen1("shellies/shellybutton1-A4CF12F45301/input_event/0", '{"event":"","event_cnt":4}'))
    assert (press.device, press.kind, press.value) == ("shellybutton1-A4CF12F45301", "button", "S")
    assert (third.device, third.kind) == ("shellyix3-98CDAC1F0E22/input:2", "button")
    assert none.kind == "heartbeat"


def test_shelly_gen1_online_other_topics_and_a_configured_input() -> None:
    for payload, availability in (("true", "online"), ("false", "offline")):
        online = reading(gen1(f"shellies/{MOTION_ID}/online", payload))
        assert (online.kind, online.availability) == ("availability", availability)
    assert isinstance(gen1("shellies/announce", '{"id":"shelly1-34945475FE06"}'), Ignored)
    assert isinstance(gen1("shellies/shelly1-34945475FE06/relay/0/command", "on"), Ignored)
    assert reading(gen1("shellies/shelly1-34945475FE06/relay/0", "on")).kind == "heartbeat"
    assert reading(gen1("shellies/shelly1-34945475FE06/input/0", "1")).kind == "heartbeat"
    pir = reading(gen1("shellies/shelly1-34945475FE06/input/0", "1", sensor="input/0"))
    assert (pir.device, pir.kind, pir.change_only) == ("shelly1-34945475FE06", "motion", True)


def test_shelly_gen1_rendered_messages_parse_back() -> None:
    status = reading(shelly_gen1.parse(*shelly_gen1.render_motion_status(MOTION_ID, True, bat=55), ZONE))
    assert status == Reading(device=MOTION_ID, kind="motion", occupied=True, change_only=True, battery=55,
                             value="motion")
    door = reading(shelly_gen1.parse(*shelly_gen1.render_door("dw", closed=True), ZONE))
    assert (door.kind, door.occupied) == ("door", True)
    press = reading(shelly_gen1.parse(*shelly_gen1.render_input_event("btn", "SS", index=1), ZONE))
    assert (press.device, press.kind, press.value) == ("btn/input:1", "button", "SS")
    assert reading(shelly_gen1.parse(*shelly_gen1.render_sensor("dw", "battery", "40"), ZONE)).battery == 40
    assert reading(shelly_gen1.parse(*shelly_gen1.render_online("dw", False), ZONE)).availability == "offline"


def test_shelly_gen1_routing_through_ingest() -> None:
    routes = [FormatRoute(topic="shellies/#", format="shelly_gen1")]
    obs = convert(RawMessage("shellies/dw/sensor/state", b"open"), routes, ZONE, MAX)
    assert isinstance(obs, Observation) and (obs.device, obs.kind, obs.occupied) == ("dw", "door", False)
    assert convert(RawMessage("shellies/announce", b"{}"), routes, ZONE, MAX) == Skipped("bridge_message")
    with pytest.raises(ValidationError, match="closed_when"):
        FormatRoute(topic="shellies/#", format="shelly_gen1", sensor="input/0", device_kind="door")


# -- Shelly Gen2 ----------------------------------------------------------------------------------------
I4 = "shellyplusi4-a8032ab12345"


def rpc(src: str, method: str, params: dict[str, object]) -> str:
    """A notification frame as the Gen2 RPC protocol documents it."""
    return json.dumps({"src": src, "dst": f"{src}/events", "method": method, "params": params})


def gen2(topic: str, payload: str, **options: object):
    return shelly_gen2.parse(topic, b(payload), ZONE, **options)  # type: ignore[arg-type]


def test_shelly_gen2_notify_status_of_an_input_is_an_observation_with_device_time() -> None:
    frame = rpc(I4, "NotifyStatus", {"ts": 1631266595.43, "input:0": {"id": 0, "state": True}})
    motion = reading(gen2(f"{I4}/events/rpc", frame))
    assert (motion.device, motion.kind, motion.occupied, motion.change_only) == (I4, "motion", True, False)
    assert motion.device_time == datetime.fromtimestamp(1631266595.43, UTC)
    door = reading(gen2(f"{I4}/events/rpc", frame.replace("input:0", "input:2"), device_kind="door",
                        closed_when="off"))
    assert (door.device, door.kind, door.value) == (f"{I4}/input:2", "door", "open")


def test_shelly_gen2_push_events_are_presses_and_other_events_health() -> None:
    press = rpc(I4, "NotifyEvent", {"ts": 1631266595.43, "events": [
        {"component": "input:1", "id": 1, "event": "single_push", "ts": 1631266595.43}]})
    button = reading(gen2(f"{I4}/events/rpc", press))
    assert (button.device, button.kind, button.value) == (f"{I4}/input:1", "button", "single_push")
    edge = reading(gen2(f"{I4}/events/rpc", press.replace("single_push", "btn_down")))
    assert edge.kind == "heartbeat" and edge.device == I4


def test_shelly_gen2_health_messages() -> None:
    ht = "shellyplusht-b8d61a8b17cc"
    battery = reading(gen2(f"{ht}/events/rpc", rpc(ht, "NotifyStatus", {
        "ts": 1680962879.62, "devicepower:0": {"id": 0, "battery": {"V": 3.6, "percent": 87}}})))
    full = reading(gen2(f"{ht}/events/rpc", rpc(ht, "NotifyFullStatus", {
        "ts": 1680962879.62, "input:0": {"id": 0, "state": True}, "sys": {"uptime": 3}})))
    assert (battery.kind, battery.battery) == ("battery", 87)
    assert full.kind == "heartbeat"  # the state at wake-up is not a change
    response = json.dumps({"id": 1, "src": ht, "dst": "shouwang", "result": {}})
    assert isinstance(gen2(f"{ht}/events/rpc", response), Ignored)
    online = reading(gen2(f"{ht}/online", "false"))
    assert (online.device, online.availability) == (ht, "offline")
    assert isinstance(gen2(f"{ht}/rpc", '{"id":1,"method":"Shelly.GetStatus"}'), Ignored)


def test_shelly_gen2_status_topic_counts_only_as_a_change() -> None:
    on = reading(gen2(f"{I4}/status/input:0", '{"id":0,"state":true}'))
    assert (on.kind, on.change_only) == ("motion", True)
    assert reading(gen2(f"{I4}/status/input:0", '{"id":0,"state":null}')).kind == "heartbeat"
    assert reading(gen2(f"{I4}/status/devicepower:0", '{"id":0,"battery":{"percent":12}}')).battery == 12


def test_shelly_gen2_rendered_messages_parse_back() -> None:
    at = datetime(2026, 11, 23, 0, 15, 30, tzinfo=UTC)
    topic, payload = shelly_gen2.render_input("hall", True, ts=at, base="shelly")
    assert topic == "shelly/hall/events/rpc"
    assert shelly_gen2.parse(topic, payload, ZONE, base="shelly") == Reading(
        device="hall", kind="motion", device_time=at, occupied=True, change_only=False, value="motion")
    press = reading(shelly_gen2.parse(*shelly_gen2.render_press("sos", "long_push", ts=at), ZONE))
    assert (press.device, press.kind, press.device_time) == ("sos", "button", at)
    assert reading(shelly_gen2.parse(*shelly_gen2.render_battery("sos", 30, ts=at), ZONE)).battery == 30
    status = reading(shelly_gen2.parse(*shelly_gen2.render_status("sos", "input:0", {"id": 0, "state": False}), ZONE))
    assert (status.kind, status.occupied) == ("state", False)
    assert reading(shelly_gen2.parse(*shelly_gen2.render_online("sos", True), ZONE)).availability == "online"


def test_shelly_gen2_routing_through_ingest() -> None:
    routes = [FormatRoute(topic="+/events/rpc", format="shelly_gen2", device_kind="button"),
              FormatRoute(topic="+/online", format="shelly_gen2")]
    topic, payload = shelly_gen2.render_press(I4, ts=datetime(2026, 11, 23, tzinfo=UTC))
    obs = convert(RawMessage(topic, payload), routes, ZONE, MAX)
    assert isinstance(obs, Observation) and (obs.device, obs.kind) == (I4, "button")
    health = convert(RawMessage(f"{I4}/online", b"true"), routes, ZONE, MAX)
    assert isinstance(health, Observation) and health.availability == "online"


# -- ESPHome --------------------------------------------------------------------------------------------
def esp(topic: str, payload: str, **options: object):
    return esphome.parse(topic, b(payload), ZONE, **options)  # type: ignore[arg-type]


def test_esphome_binary_sensor_on_is_motion_counted_as_a_change() -> None:
    on = reading(esp("hall-node/binary_sensor/pir/state", "ON"))
    off = reading(esp("hall-node/binary_sensor/pir/state", "OFF"))
    assert (on.device, on.kind, on.occupied, on.change_only, on.device_time) == (
        "hall-node/pir", "motion", True, True, None)
    assert (off.kind, off.occupied) == ("state", False)
    # on reconnect the node re-publishes ON: not a new motion
    assert counted([off, on, on]) == [False, True, False]
    nested = reading(esp("home/living_room/binary_sensor/pir/state", "ON"))
    assert nested.device == "home/living_room/pir"


def test_esphome_status_is_availability_of_the_node() -> None:
    for payload in ("online", "offline"):
        status = reading(esp("hall-node/status", payload))
        assert (status.device, status.kind, status.availability) == ("hall-node", "availability", payload)


def test_esphome_door_off_means_closed_and_other_sensors() -> None:
    closed = reading(esp("hall-node/binary_sensor/front_door/state", "OFF", device_kind="door"))
    assert (closed.kind, closed.occupied, closed.value, closed.change_only) == ("door", True, "closed", True)
    assert isinstance(esp("hall-node/binary_sensor/status/state", "ON", sensor="pir"), Ignored)
    assert isinstance(esp("hall-node/sensor/wifi_signal/state", "-61"), Ignored)
    node = reading(esp("hall-node/sensor/wifi_signal/state", "-61", node_is_device=True))
    assert (node.device, node.kind) == ("hall-node", "heartbeat")
    pir = reading(esp("hall-node/binary_sensor/pir/state", "ON", sensor="pir", node_is_device=True))
    assert (pir.device, pir.kind) == ("hall-node", "motion")
    assert isinstance(esp("hall-node/switch/relay/command", "ON"), Ignored)
    assert isinstance(esp("hall-node/debug", "[D][sensor:094]: 'WiFi Signal': Sending state -61"), Ignored)


def test_esphome_rendered_messages_parse_back() -> None:
    assert esphome.parse(*esphome.render_binary_sensor("bed-node", "pir", True), ZONE) == Reading(
        device="bed-node/pir", kind="motion", occupied=True, change_only=True, value="motion")
    assert reading(esphome.parse(*esphome.render_status("bed-node", False), ZONE)).availability == "offline"
    health = reading(esphome.parse(*esphome.render_sensor("bed-node", "uptime", 42), ZONE, node_is_device=True))
    assert health.kind == "heartbeat"


def test_esphome_routing_through_ingest() -> None:
    routes = [FormatRoute(topic="hall-node/#", format="esphome", sensor="pir", node_is_device=True)]
    obs = convert(RawMessage("hall-node/binary_sensor/pir/state", b"ON"), routes, ZONE, MAX)
    assert isinstance(obs, Observation) and (obs.device, obs.kind, obs.change_only) == ("hall-node", "motion", True)
    replay = convert(RawMessage("hall-node/binary_sensor/pir/state", b"ON", retain=True), routes, ZONE, MAX)
    assert replay == Skipped("retained")


# -- Home Assistant state topics ---------------------------------------------------------------------------
def ha(topic: str, payload: str, **options: object):
    return homeassistant.parse(topic, b(payload), ZONE, **options)  # type: ignore[arg-type]


def test_home_assistant_state_and_availability_of_one_device() -> None:
    motion = reading(ha("home/hall-pir/motion", "ON", topic_filter="home/+/motion"))
    cleared = reading(ha("home/hall-pir/motion", "OFF", topic_filter="home/+/motion"))
    gone = reading(ha("home/hall-pir/availability", "offline", topic_filter="home/+/availability"))
    assert (motion.device, motion.kind, motion.change_only) == ("hall-pir", "motion", True)
    assert (cleared.kind, cleared.occupied) == ("state", False)
    assert (gone.device, gone.kind, gone.availability) == ("hall-pir", "availability", "offline")


def test_home_assistant_door_on_means_open_and_force_update() -> None:
    opened = reading(ha("home/door/contact", "ON", topic_filter="home/+/contact", device_kind="door"))
    closed = reading(ha("home/door/contact", "OFF", topic_filter="home/+/contact", device_kind="door"))
    assert (opened.value, opened.occupied) == ("open", False) and (closed.value, closed.occupied) == ("closed", True)
    # a Tasmota rule publishing MOTION 1 with Home Assistant's off_delay: every "1" is a motion
    pulse = reading(ha("stat/pir/MOTION", "1", topic_filter="stat/+/MOTION", payload_on="1", payload_off="0",
                       force_update=True))
    assert (pulse.device, pulse.kind, pulse.change_only) == ("pir", "motion", False)
    assert counted([pulse, pulse]) == [True, True]


def test_home_assistant_device_ids_come_from_the_route_wildcards() -> None:
    assert homeassistant.device_of("home/+/+/state", "home/bedroom/pir/state") == "bedroom/pir"
    assert homeassistant.device_of("sensors/#", "sensors/a/b") == "a/b"
    assert homeassistant.device_of("home/hall/motion", "home/hall/motion") == "home/hall/motion"


def test_home_assistant_rendered_messages_parse_back() -> None:
    topic, payload = homeassistant.render_state("home/hall/motion", True)
    assert homeassistant.parse(topic, payload, ZONE, topic_filter="home/+/motion") == Reading(
        device="hall", kind="motion", occupied=True, change_only=True, value="motion")
    topic, payload = homeassistant.render_availability("home/hall/status", False, payload_not_available="dead")
    result = reading(homeassistant.parse(topic, payload, ZONE, topic_filter="home/+/status",
                                         payload_not_available="dead"))
    assert (result.device, result.availability) == ("hall", "offline")


def test_home_assistant_routing_and_route_validation() -> None:
    routes = [FormatRoute(topic="home/+/motion", format="homeassistant"),
              FormatRoute(topic="home/+/availability", format="homeassistant")]
    obs = convert(RawMessage("home/hall/motion", b"ON"), routes, ZONE, MAX)
    assert isinstance(obs, Observation) and (obs.device, obs.kind) == ("hall", "motion")
    bad = convert(RawMessage("home/hall/availability", b"maybe"), routes, ZONE, MAX)
    assert isinstance(bad, Quarantined) and bad.reason == "invalid_field" and bad.device == "hall"
    with pytest.raises(ValidationError, match="different"):
        FormatRoute(topic="home/#", format="homeassistant", payload_on="online")
    with pytest.raises(ValidationError, match="closed_when"):
        FormatRoute(topic="tele/#", format="tasmota", device_kind="door")
    assert FormatRoute(topic="home/#", format="homeassistant", device_kind="door").closed_when is None


# -- Homie ----------------------------------------------------------------------------------------------
def hom(topic: str, payload: str, **options: object):
    return homie.parse(topic, b(payload), ZONE, **options)  # type: ignore[arg-type]


@pytest.mark.parametrize(("state", "kind", "availability"), [
    ("ready", "availability", "online"), ("sleeping", "availability", "online"),
    ("disconnected", "availability", "offline"), ("lost", "availability", "offline"),
    ("alert", "availability", "offline"), ("init", "heartbeat", None),
])
def test_homie_lifecycle_is_health(state: str, kind: str, availability: str | None) -> None:
    result = reading(hom("homie/super-car/$state", state))
    assert (result.device, result.kind, result.availability) == ("super-car", kind, availability)


def test_homie_boolean_property_is_the_sensor() -> None:
    on = reading(hom("homie/hall-pir/sensor/motion", "true"))
    off = reading(hom("homie/hall-pir/sensor/motion", "false"))
    assert (on.device, on.kind, on.change_only) == ("hall-pir/sensor/motion", "motion", True)
    assert (off.kind, off.occupied) == ("state", False)
    door = reading(hom("homie/door/contact/closed", "true", device_kind="door", closed_when="on",
                       sensor="contact/closed", node_is_device=True))
    assert (door.device, door.kind, door.occupied) == ("door", "door", True)
    bell = reading(hom("homie/bell/button/pressed", "true", device_kind="button", force_update=True))
    assert bell.kind == "button"


def test_homie_attributes_stats_and_commands() -> None:
    assert reading(hom("homie/super-car/$stats/battery", "80")).battery == 80
    assert reading(hom("homie/super-car/$stats/uptime", "120")).kind == "heartbeat"
    assert isinstance(hom("homie/super-car/$name", "Super car"), Ignored)
    assert isinstance(hom("homie/super-car/engine/$properties", "speed,direction,temperature"), Ignored)
    assert isinstance(hom("homie/super-car/lights/power/set", "true"), Ignored)
    assert isinstance(hom("homie/super-car/engine/temperature", "21.5"), Ignored)
    temp = reading(hom("homie/super-car/engine/temperature", "21.5", node_is_device=True))
    assert (temp.device, temp.kind) == ("super-car", "heartbeat")


def test_homie_rendered_messages_parse_back() -> None:
    assert homie.parse(*homie.render_property("hall-pir", "sensor", "motion", True), ZONE) == Reading(
        device="hall-pir/sensor/motion", kind="motion", occupied=True, change_only=True, value="motion")
    assert reading(homie.parse(*homie.render_state("hall-pir", "lost"), ZONE)).availability == "offline"
    assert reading(homie.parse(*homie.render_stats("hall-pir", "battery", "15"), ZONE)).battery == 15


def test_homie_routing_through_ingest() -> None:
    routes = [FormatRoute(topic="homie/#", format="homie", sensor="sensor/motion", node_is_device=True)]
    obs = convert(RawMessage("homie/hall-pir/sensor/motion", b"true"), routes, ZONE, MAX)
    assert isinstance(obs, Observation) and (obs.device, obs.kind) == ("hall-pir", "motion")
    state = convert(RawMessage("homie/hall-pir/$state", b"lost"), routes, ZONE, MAX)
    assert isinstance(state, Observation) and (state.device, state.availability) == ("hall-pir", "offline")
    assert convert(RawMessage("homie/hall-pir/$homie", b"4.0.0"), routes, ZONE, MAX) == Skipped("homie_attribute")


# -- wrong messages, every format ------------------------------------------------------------------------
INVALID, UNKNOWN = "invalid_field", "unknown_topic"
# per format and topic, the wrong payloads and the reason each is quarantined with
WRONG_MESSAGES: list[tuple[Callable[..., object], str, list[tuple[str, str]]]] = [
    (tas, "tele/tasmota/LWT", [("Maybe", INVALID)]),
    (tas, "tele/tasmota/SENSOR", [("{", "malformed_json"), ("[1]", "not_an_object"),
                                  ('{"Time":"yesterday","Switch1":"ON"}', "bad_timestamp"),
                                  ('{"Time":1609459200,"Switch1":"ON"}', "bad_timestamp"),
                                  ('{"Switch1":"MAYBE"}', INVALID)]),
    (tas, "stat/tasmota/RESULT", [('{"Switch1":"ON"}', INVALID), ('{"Switch1":{"Action":"WIGGLE"}}', INVALID)]),
    (tas, "tasmota/SENSOR", [("{}", UNKNOWN)]),
    (tas, "tele/+/SENSOR", [("{}", UNKNOWN)]),
    (gen1, f"shellies/{MOTION_ID}/status", [('{"lux":303}', INVALID), ('{"motion":"yes"}', INVALID),
                                            ('{"motion":true,"bat":"full"}', INVALID), ("motion", "malformed_json")]),
    (gen1, "shellies/shellydw2-483FDA/sensor/state", [("ajar", INVALID)]),
    (gen1, "shellies/shellydw2-483FDA/sensor/battery", [("lots", INVALID)]),
    (gen1, "shellies/shellydw2-483FDA/online", [("yes", INVALID)]),
    (gen1, "shellies/shellybutton1-A4CF12F45301/input_event/0", [('{"event":1}', INVALID)]),
    (gen1, "shellies/shellydw2-483FDA/teleport", [("1", UNKNOWN)]),
    (gen1, "shellies/nothing", [("1", UNKNOWN)]),
    (gen1, "elsewhere/shellydw2-483FDA/online", [("true", UNKNOWN)]),
    (gen2, f"{I4}/events/rpc", [('{"method":"Dance","params":{}}', INVALID), ('{"method":"NotifyStatus"}', INVALID),
                                ('{"method":"NotifyStatus","params":{"ts":"soon"}}', "bad_timestamp"),
                                ('{"method":"NotifyEvent","params":{"ts":1,"events":"single_push"}}', INVALID),
                                ("[", "malformed_json")]),
    (gen2, f"{I4}/status/input:0", [('{"id":0,"state":"yes"}', INVALID)]),
    (gen2, f"{I4}/status/devicepower:0", [('{"battery":{"percent":400}}', INVALID)]),
    (gen2, f"{I4}/online", [("1", INVALID)]),
    (gen2, f"{I4}/telemetry", [("{}", UNKNOWN)]),
    (esp, "hall-node/binary_sensor/pir/state", [("on", INVALID), ('{"state":"ON"}', INVALID)]),
    (esp, "hall-node/status", [("dead", INVALID)]),
    (esp, "hall-node/pir", [("ON", UNKNOWN)]),
    (esp, "hall-node/binary_sensor/pir", [("ON", UNKNOWN)]),
    (partial(ha, topic_filter="home/+/motion"), "home/hall/motion",
     [("on", INVALID), ('{"state":"ON"}', INVALID), (" ON", INVALID), ("", INVALID)]),
    (hom, "homie/super-car/$state", [("zombie", INVALID)]),
    (hom, "homie/super-car/$stats/battery", [("lots", INVALID)]),
    (partial(hom, sensor="sensor/motion"), "homie/hall-pir/sensor/motion", [("21.5", INVALID)]),
    (hom, "homie/super-car", [("x", UNKNOWN)]),
    (hom, "homie/super-car/a/b/c/d", [("x", UNKNOWN)]),
    (hom, "devices/super-car/$state", [("ready", UNKNOWN)]),
]


@pytest.mark.parametrize(("parse", "topic", "payload", "reason"), [
    (parse, topic, payload, reason) for parse, topic, cases in WRONG_MESSAGES for payload, reason in cases])
def test_wrong_messages_are_quarantined_with_their_reason(parse: Callable[..., object], topic: str, payload: str,
                                                           reason: str) -> None:
    rejected(parse(topic, payload), reason)
