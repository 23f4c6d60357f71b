"""The simulator on its own (pure): deterministic for a seed, plausible days, scenarios and incidents,
and every message it renders read by the service's own parsers as the device and activity it meant."""

from __future__ import annotations

import itertools
import tomllib
from collections import Counter
from datetime import UTC, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest

from alerts import rules
from alerts.observations import Observation
from config.settings import FormatRoute
from sensors.ingest import RawMessage, convert
from simulator.devices import FORMATS
from simulator.homes import make_community, to_toml
from simulator.load import load_messages
from simulator.publisher import Publisher, is_loopback
from simulator.scenario import Scenario, ScenarioError, load_scenario, parse_offset, parse_scenario, shipped_scenarios
from simulator.timeline import Message

ZONE = ZoneInfo("Asia/Shanghai")
T0 = datetime(2026, 11, 23, 8, 0, tzinfo=UTC)  # 16:00 in Yichang
H = timedelta(hours=1)
EVERY_FORMAT = {"formats": {f: 1 for f in FORMATS}, "doors": 1.0, "buttons": 1.0}


def messages(scenario: Scenario, until: timedelta, **build: object) -> list[Message]:
    return list(scenario.build(T0, ZONE, **build).timeline(until=T0 + until))  # type: ignore[arg-type]


def wire(items: list[Message]) -> list[tuple[datetime, str, bytes, bool]]:
    return [(m.at, m.topic, m.payload, m.retain) for m in items]


def test_the_simulator_is_deterministic_for_a_seed() -> None:
    scenario = load_scenario("incidents")
    first, again = messages(scenario, 20 * H), messages(scenario, 20 * H)
    assert wire(first) == wire(again) and len(first) > 1000
    assert wire(messages(scenario, 20 * H, seed=8)) != wire(first)
    assert scenario.build(T0, ZONE).community.as_data() == scenario.build(T0, ZONE).community.as_data()
    assert [m.at for m in first] == sorted(m.at for m in first)


def test_stepping_the_timeline_gives_the_same_messages_as_running_it_through() -> None:
    simulation = load_scenario("incidents").build(T0, ZONE)
    timeline = simulation.timeline()
    stepped: list[Message] = []
    for k in range(1, 41):
        stepped.extend(timeline.take_until(T0 + k * 30 * timedelta(minutes=1)))
    assert wire(stepped) == wire(list(simulation.timeline(until=T0 + 20 * H)))
    assert all(m.at <= T0 + 20 * H for m in stepped) and timeline.peek() is not None


def test_a_day_of_122_homes_is_plausible() -> None:
    simulation = Scenario().build(T0, ZONE)
    homes = simulation.community.homes
    assert len(homes) == 122
    day = (T0 + H * 24).astimezone(ZONE).date()  # the first whole local day
    midnight = datetime.combine(day, time(0), ZONE)
    moves: dict[str, list[datetime]] = {h.ref: [] for h in homes}
    for m in simulation.timeline(until=midnight + 24 * H):
        if m.activity and m.role == "motion" and m.at >= midnight:
            moves[m.home].append(m.at)
    night_slots: Counter[bool] = Counter()
    for home in homes:
        plan = home.day(day, ZONE)
        awake = [plan.wake, *[t for t in moves[home.ref] if plan.wake <= t <= plan.sleep], plan.sleep]
        gaps = [b - a for a, b in itertools.pairwise(awake)]
        assert max(gaps) <= 4 * H, f"{home.ref} has a gap of {max(gaps)} while awake"
        assert len(awake) > 20, f"{home.ref} hardly moves"
        for hour in range(1, 5):  # 01:00-05:00, deep night
            start = midnight + hour * H
            night_slots[any(start <= t < start + H for t in moves[home.ref])] += 1
    # toilet visits happen, but most night hours of most homes are still
    assert 0 < night_slots[True] < 0.25 * sum(night_slots.values())
    per_home = [len(v) for v in moves.values()]
    assert min(per_home) > 20 and max(per_home) < 400


def test_every_message_is_read_by_the_service_as_the_device_and_activity_it_means() -> None:
    simulation = Scenario(community={"homes": 24, **EVERY_FORMAT}).build(T0, ZONE, prefix="t-1/")
    routes = [FormatRoute(**r) for r in simulation.routes()]
    declared = {d["id"]: (r["ref"], d["kind"]) for r in simulation.community.as_data()["residents"]
                for d in r["devices"]}
    previous: dict[str, bool] = {}
    seen: Counter[tuple[str, str]] = Counter()
    for m in simulation.timeline(until=T0 + 30 * H):
        converted = convert(RawMessage(m.topic, m.payload), routes, ZONE, 16384)
        assert isinstance(converted, Observation), (m, converted)
        assert declared[converted.device] == (m.home, m.role), m
        counted = rules.is_observation(converted.kind, converted.occupied, converted.change_only,
                                       previous.get(converted.device))
        if converted.occupied is not None:
            previous[converted.device] = converted.occupied
        assert counted == m.activity, m
        fmt = simulation.community.home(m.home).fmt
        seen[(fmt, m.happening)] += 1
    for fmt in FORMATS:
        assert seen[(fmt, "motion")] and seen[(fmt, "health")] and seen[(fmt, "open")], fmt


def test_the_shipped_scenarios_load_and_describe_themselves() -> None:
    assert {"demo", "incidents", "gateway-dark"} <= set(shipped_scenarios())
    for name in shipped_scenarios():
        scenario = load_scenario(name)
        assert scenario.description and scenario.build(T0, ZONE).community.homes
    demo = load_scenario("demo").build(T0, ZONE)
    assert len(demo.community.homes) == 122
    kinds = {i.kind: i.at - T0 for i in demo.incidents}
    assert set(kinds) == {"fall", "device_dies", "panic"} and max(kinds.values()) <= timedelta(hours=1)


@pytest.mark.parametrize(("text", "complaint"), [
    ('[[incidents]]\nkind = "flood"\nhome = 1\nat = "1h"', "kind 'flood'"),
    ('[[incidents]]\nkind = "fall"\nhome = 1\nat = "1h"\ncolour = "red"', "unknown key(s) colour"),
    ('[[incidents]]\nkind = "fall"\nhome = 1', "missing at"),
    ('[[incidents]]\nkind = "fall"\nhome = 1\nat = "soon"', "not a duration"),
    ('[[incidents]]\nkind = "fall"\nhome = 1\nat = 2026-11-23T08:00:00', "needs a time zone"),
    ('[community]\nhomes = 3\n[[incidents]]\nkind = "panic"\nhome = 9\nat = "1h"', "no home 9"),
    ('[community]\nformats = "tasmota"\n[[incidents]]\nkind = "battery_drains"\nhome = 1\nat = "1h"',
     "reports no battery"),
    ('[community]\nformats = { native = 1, lorawan = 2 }', "formats"),
    ('[[homes]]\nhome = 1\ndevices = ["door"]', "includes motion"),
    ('[[incidents]]\nkind = "away"\nhome = 1', "until"),
    ("[scenario\n", "not valid TOML"),
])
def test_a_wrong_scenario_is_refused_with_the_reason(text: str, complaint: str) -> None:
    with pytest.raises(ScenarioError, match=None) as caught:
        parse_scenario(text, "bad.toml")
    assert complaint in str(caught.value) and "bad.toml" in str(caught.value)


def test_times_are_offsets_from_the_start_or_instants_with_a_zone() -> None:
    assert parse_offset("1h30m") == timedelta(minutes=90) == parse_offset("+90m") == parse_offset(5400)
    assert parse_offset("2d") == timedelta(days=2) and parse_offset("250ms") == timedelta(milliseconds=250)
    scenario = parse_scenario('[[incidents]]\nkind = "fall"\nhome = "r002"\nat = "2026-11-23T20:00:00+08:00"\n'
                              '[[incidents]]\nkind = "panic"\nhome = 3\nat = "1h30m"')
    fall, panic = scenario.build(T0, ZONE).incidents
    assert (fall.home, fall.at) == ("r002", T0 + 4 * H) and (panic.home, panic.at) == ("r003", T0 + 1.5 * H)


def _scenario(incidents: str, community: str = 'homes = 4\nformats = "native"\ndoors = 1.0\nbuttons = 0.0') -> Scenario:
    return parse_scenario(f"[community]\n{community}\n{incidents}")


def test_a_fall_silences_the_resident_but_not_the_devices_and_a_visitor_still_moves() -> None:
    items = messages(_scenario('[[incidents]]\nkind = "fall"\nhome = 1\nat = "1h"\n'
                               '[[incidents]]\nkind = "visitor"\nhome = 1\nat = "20h"\ncount = 2'), 24 * H)
    home = [m for m in items if m.home == "r001"]
    after = [m for m in home if m.at >= T0 + H + 2 * timedelta(minutes=1)]
    assert [m.at for m in after if m.activity] == [T0 + 20 * H, T0 + 20 * H + timedelta(minutes=1)]
    assert {m.happening for m in after if not m.activity} == {"health"}
    assert all(m.source == "visitor" for m in after if m.activity)
    assert any(m.activity for m in items if m.home == "r002" and m.at > T0 + 2 * H)


def test_a_dead_device_says_nothing_more_after_its_goodbye() -> None:
    items = messages(_scenario('[[incidents]]\nkind = "device_dies"\nhome = 2\ndevice = "door"\nat = "3h"\n'
                               "announce = true"), 24 * H)
    door = [m for m in items if m.home == "r002" and m.role == "door"]
    assert door[-1].happening == "offline" and door[-1].at == T0 + 3 * H and b'"offline"' in door[-1].payload
    assert any(m.home == "r002" and m.role == "motion" and m.at > T0 + 10 * H for m in items)


def test_a_battery_drains_below_the_alarm_threshold() -> None:
    items = messages(_scenario('[[incidents]]\nkind = "battery_drains"\nhome = 1\nat = "2h"\nover = "4h"\nto = 6',
                               'homes = 2\nformats = "zigbee2mqtt"'), 12 * H)
    levels = [(m.at, m.payload) for m in items if m.home == "r001" and m.source == "battery_drains"]
    assert [at for at, _ in levels] == [T0 + 2 * H + k * H for k in range(5)]
    assert b'"battery":6' in levels[-1][1]
    later = [m for m in items if m.home == "r001" and m.role == "motion" and m.happening == "health"
             and m.at > T0 + 6 * H]
    assert later and all(b'"battery":6' in m.payload for m in later)


def test_panic_duplicates_retained_and_delayed_messages() -> None:
    items = messages(_scenario('[[incidents]]\nkind = "panic"\nhome = 4\nat = "1h"\nduplicate = 2\n'
                               '[[incidents]]\nkind = "visitor"\nhome = 3\nat = "2h"\nretain = true\ndelay = "15m"'),
                     4 * H)
    presses = [m for m in items if m.source == "panic"]
    assert len(presses) == 3 and len({(m.topic, m.payload) for m in presses}) == 1
    assert [m.activity for m in presses] == [True, False, False]
    assert presses[0].topic.endswith("/sos-004")  # the home got a panic button for the scenario
    [late] = [m for m in items if m.source == "visitor"]
    assert late.retain and late.at == T0 + 2.25 * H and late.occurred == T0 + 2 * H
    assert b"2026-11-23T10:00:00+00:00" in late.payload  # its own device time: out of order
    earlier = items.index(late)
    assert any(m.at < late.at and m.at > T0 + 2 * H for m in items[:earlier])


def test_away_with_family_is_silent_and_told_to_the_service() -> None:
    scenario = _scenario('[[incidents]]\nkind = "away"\nhome = 2\nuntil = "30h"\n'
                         '[[incidents]]\nkind = "away"\nhome = 3\nuntil_activity = true')
    items = messages(scenario, 40 * H)
    assert not any(m.activity for m in items if m.home == "r002" and m.at < T0 + 30 * H)
    assert any(m.activity for m in items if m.home == "r002" and m.at >= T0 + 30 * H)
    assert not any(m.activity for m in items if m.home == "r003")
    residents = {r["ref"]: r for r in scenario.build(T0, ZONE).community.as_data()["residents"]}
    assert residents["r002"]["away_until"] == (T0 + 30 * H).isoformat()
    assert residents["r003"]["away_until_activity"] is True and "away_until" not in residents["r001"]


@pytest.mark.parametrize("backlog", [False, True])
def test_the_gateway_goes_dark_and_comes_back(backlog: bool) -> None:
    flag = "true" if backlog else "false"
    scenario = _scenario(f'[[incidents]]\nkind = "gateway_dark"\nat = "2h"\nfor = "3h"\nbacklog = {flag}')
    items = messages(scenario, 10 * H)
    assert not any(T0 + 2 * H <= m.at < T0 + 5 * H for m in items)
    held = [m for m in items if m.at == T0 + 5 * H and m.occurred is not None]
    if backlog:
        assert len(held) > 20 and all(T0 + 2 * H <= m.occurred < T0 + 5 * H for m in held)  # type: ignore[operator]
        assert [m.occurred for m in held] == sorted(m.occurred for m in held)  # type: ignore[type-var]
    else:
        assert held == []
    assert any(m.activity and m.at > T0 + 5 * H for m in items)


def test_garbage_is_malformed_on_the_sensor_topic() -> None:
    items = messages(_scenario('[[incidents]]\nkind = "garbage"\nhome = 1\nat = "1h"\ncount = 5'), 2 * H)
    garbage = [m for m in items if m.happening == "garbage"]
    assert len(garbage) == 5 and {m.topic for m in garbage} == {"shouwang/v1/events/pir-001"}
    routes = [FormatRoute(**r) for r in Scenario(community={"formats": "native"}).build(T0, ZONE).routes()]
    reasons = [convert(RawMessage(m.topic, m.payload), routes, ZONE, 16384) for m in garbage]
    assert not any(isinstance(r, Observation) for r in reasons)


def test_the_community_data_and_routes_cover_every_device_and_print_as_toml() -> None:
    community = make_community(16, seed=3, fmt={f: 1 for f in FORMATS}, doors=1, buttons=1, prefix="x/")
    data = community.as_data()
    assert tomllib.loads(to_toml(data)) == data
    ids = [d["id"] for r in data["residents"] for d in r["devices"]]
    assert len(ids) == len(set(ids)) == 48
    assert {r["format"] for r in community.routes()} == set(FORMATS)
    assert all(r["topic"].startswith("x/") for r in community.routes())


def test_load_mode_cycles_through_the_motion_sensors_and_refuses_remote_brokers() -> None:
    community = make_community(3, fmt={"native": 1, "tasmota": 1, "esphome": 1})
    stream = load_messages(community, ZONE, lambda: T0)
    first = [next(stream) for _ in range(6)]
    assert [t for t, _ in first[:3]] == ["shouwang/v1/events/pir-001", "tasmota/motion/stat/pir-002/RESULT",
                                         "esphome/motion/pir-003/binary_sensor/pir/state"]
    assert first[1][1] != first[4][1]  # a state format alternates ON and OFF
    assert first[0][1] != first[3][1]  # native events carry fresh event ids
    assert is_loopback("127.0.0.1") and is_loopback("::1") and not is_loopback("broker.example.org")
    with pytest.raises(ValueError, match="this machine"):
        Publisher("10.1.2.3", 1883).publish_at_rate(stream, 100, count=10)
