"""The demo's simulated people act at realistic simulated times, so the screen's KPIs mean something.

The test drives the service as the demo's 600x clock does: a tick (the rules and the chain) every 10
simulated minutes, the simulated people in between. Their answers are applied at the instants they
happened, not at the next tick, and the KPIs match a count by hand. Real SQLite and PostgreSQL; the
console provider (the demo's) with the demo's script; the manual clock."""

from __future__ import annotations

import statistics
from collections.abc import Callable
from datetime import datetime, timedelta

import pytest
from sqlalchemy.orm import Session

from alerts.escalation.notifiers.console import ConsoleProvider
from alerts.models import Alarm, AlarmKind
from alerts.screen import kpis
from simulator.people import SimulatedPeople, demo_script, travel_time
from tests.harness import T0, Site, obs

H = timedelta(hours=1)
M = timedelta(minutes=1)
S = timedelta(seconds=1)
TICK = 10 * M  # one real second of the demo's 600x clock
GRID = "+8613800000001"
ANSWERS = (45 * S, 50 * S, 95 * S)  # the demo script's grid worker, call after call


def community() -> dict[str, object]:
    return {
        "community": {"name": "夷陵社区"},
        "grids": [{"name": "第一网格", "micro_grids": [{"name": "1号楼"}]}],
        "workers": [{"name": "李娜", "phone": GRID, "role": "grid_worker", "grid": "第一网格"}],
        "residents": [
            {"ref": f"r{i}", "name": f"居民{i}", "phone": f"+86717800000{i}", "micro_grid": "第一网格/1号楼",
             "devices": [{"id": f"pir-{i}", "kind": "motion"}, {"id": f"sos-{i}", "kind": "button"}],
             "contacts": [{"name": f"家属{i}", "phone": f"+86139000000{i}", "priority": 1}]}
            for i in range(1, 5)
        ],
    }


class Demo:
    """The demo's set-up: the console provider playing the demo's script, the simulated people on it."""

    def __init__(self, site: Site) -> None:
        self.site, self.runtime = site, site.runtime
        assert isinstance(self.runtime.provider, ConsoleProvider)
        self.people = SimulatedPeople(site.engine, self.runtime.provider, self.runtime.chain)

    def press(self, at: timedelta, device: str, kind: str = "motion") -> None:
        self.site.record(at, obs(device, kind, topic="t"))

    def run(self, start: timedelta, end: timedelta) -> datetime:
        """The demo's loop: the people act, then the tick and the chain, every 10 simulated minutes."""
        now = T0 + start
        while now <= T0 + end:
            self.site.clock.set(now)
            self.people.act(now)
            self.site.at(now)
            now += TICK
        return now - TICK

    def alarms(self) -> list[Alarm]:
        return [a for a in self.site.alarms() if a.kind in (AlarmKind.INACTIVITY, AlarmKind.PANIC)]

    def kpis(self, now: datetime) -> dict[str, object]:
        with Session(self.site.engine) as session:
            return kpis(session, now, self.runtime.policy.zone)


@pytest.fixture
def demo(make_site: Callable[..., Site]) -> Demo:
    return Demo(make_site(community=community(), script=demo_script(GRID, ANSWERS)))


def test_the_demo_people_answer_at_their_own_times_and_the_kpis_match_a_hand_count(demo: Demo) -> None:
    for i in range(1, 5):
        demo.press(0 * H, f"pir-{i}")
    demo.press(1 * H, "pir-2")
    demo.press(2 * H, "pir-3")
    demo.press(12 * H, "pir-4")
    demo.run(10 * M, 14 * H + 40 * M)  # r1 (14 h), r2 (15 h) and r3 (16 h) will fall silent in turn
    demo.press(14 * H + 43 * M, "sos-4", "button")  # r4 presses the panic button between two ticks
    now = demo.run(14 * H + 50 * M, 18 * H)

    alarms = demo.alarms()
    assert [a.kind for a in alarms] == ["inactivity", "panic", "inactivity", "inactivity"]
    assert all(a.responders_called_at is not None and a.acknowledged_at is not None for a in alarms)
    # the chain moves on simulated time, not on the tick: the check call rings out after 40 s and the
    # responders are called then; a panic calls them at the press
    assert [a.responders_called_at - a.opened_at for a in alarms] == [40 * S, 0 * S, 40 * S, 40 * S]  # type: ignore[operator]
    # each answer at its own instant: the grid worker's calls, in order, answered after 45 s, 50 s, 95 s, 45 s
    answered = [a.acknowledged_at - a.responders_called_at for a in alarms]  # type: ignore[operator]
    assert answered == [45 * S, 50 * S, 95 * S, 45 * S]
    assert all(a.acknowledged_by == "李娜 (grid_worker, keypress)" for a in alarms)
    # "I'm going" a minute after the keypress, on site after the travel time of each alarm
    for a in alarms:
        assert a.accepted_at == a.acknowledged_at + M  # type: ignore[operator]
        assert a.arrived_at == a.acknowledged_at + travel_time(a.id)  # type: ignore[operator]

    # the hand count
    on_site = [a.arrived_at - a.responders_called_at for a in alarms]  # type: ignore[operator]
    to_ack = [(a.acknowledged_at - a.opened_at).total_seconds() for a in alarms]  # type: ignore[operator]
    expected = {
        "alarms_this_month": 4,
        "ack_within_60s_share": sum(d <= 60 * S for d in answered) / 4,  # 3 of 4
        "on_site_45min_share": sum(d <= 45 * M for d in on_site) / 4,
        "median_ack_seconds": statistics.median(to_ack),
    }
    assert to_ack == [85, 50, 135, 85] and expected["median_ack_seconds"] == 85
    assert expected["ack_within_60s_share"] == 0.75
    assert 0 < expected["on_site_45min_share"] < 1  # travel times spread across the 45-minute line
    got = demo.kpis(now)
    assert {k: got[k] for k in expected} == expected
    # a tick is 10 minutes: had the answers waited for it, none would have been within 60 s
    assert all(a.acknowledged_at.minute % 10 != 0 or a.acknowledged_at.second != 0 for a in alarms)  # type: ignore[union-attr]
