"""The duty group's WeCom robot: a notice per new alarm (recorded like an attempt), the blind state and
other kinds, the morning summary once a day, the robot's 20-a-minute limit under a burst of 50 alarms
without holding up the chain. A local fake of the robot webhook; the rate limit's real-time clock is
a ticker the test moves."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import Engine, select
from sqlalchemy.orm import Session

from alerts.escalation.notifiers import robot
from alerts.models import Alarm, AlarmKind, Attempt, AuditEntry
from api.runtime import Runtime
from tests.fake_wecom import FakeWecom
from tests.harness import T0, Site, obs
from tests.helpers import wait_for

H = timedelta(hours=1)
GRID = "+8613800000001"
BURST = 50


class Ticker:
    """A stand-in for time.monotonic that the test moves."""

    def __init__(self) -> None:
        self.now = 1000.0
        self._lock = threading.Lock()

    def __call__(self) -> float:
        with self._lock:
            return self.now

    def advance(self, seconds: float) -> None:
        with self._lock:
            self.now += seconds


def community(residents: int) -> dict[str, Any]:
    return {
        "community": {"name": "夷陵社区"},
        "grids": [{"name": "第一网格", "micro_grids": [{"name": "1号楼"}]}],
        "workers": [{"name": "李娜", "phone": GRID, "role": "grid_worker", "grid": "第一网格"}],
        "residents": [{"ref": f"r{i}", "name": f"居民{i}", "address": f"1号楼 {i}室", "phone": f"+86139{i:08d}",
                       "micro_grid": "第一网格/1号楼", "devices": [{"id": f"sos-{i}", "kind": "button"}]}
                      for i in range(residents)],
    }


@dataclass
class Env:
    """A Shouwang whose duty group is the fake WeCom robot, its rate limit on a ticker the test moves."""

    site: Site
    fake: FakeWecom
    ticker: Ticker

    @property
    def runtime(self) -> Runtime:
        return self.site.runtime

    @property
    def engine(self) -> Engine:
        return self.site.engine

    def press(self, devices: list[str], at: timedelta) -> None:
        self.site.record(at, *(obs(d, "button", topic="t") for d in devices))

    def at(self, delta: timedelta) -> None:
        self.site.at(delta)

    def notices(self) -> list[Attempt]:
        return [a for a in self.site.attempts() if a.channel == "wecom"]


@pytest.fixture
def make_env(make_site: Callable[..., Site]) -> Iterator[Callable[..., Env]]:
    """``make_env(residents, summary_at)``: the fake robot and a Shouwang posting to it; both stop at the end,
    the Shouwang first."""
    made: list[Env] = []

    def make(residents: int, summary_at: str | None) -> Env:
        ticker = Ticker()
        fake = FakeWecom(clock=ticker).start()
        robot = {"webhook_url": fake.url, "summary_at": summary_at}
        site = make_site(community=community(residents), robot_clock=ticker, api={"public_url": "https://sw.example.org"},
                         notify={"provider": "console", "robot": robot})
        made.append(Env(site, fake, ticker))
        return made[-1]

    yield make
    for env in made:
        env.site.close()
        env.fake.stop()


@pytest.fixture
def env(make_env: Callable[..., Env]) -> Env:
    return make_env(residents=2, summary_at=None)


def test_a_new_alarm_is_posted_to_the_duty_group_with_its_code_and_the_screen_link(env: Env) -> None:
    env.press(["sos-1"], H)
    env.at(H)
    alarm_code = "A1"
    wait_for(lambda: env.fake.contents(), message="the notice")
    [text] = env.fake.contents()
    assert alarm_code in text and "居民1" in text and "紧急按钮" in text
    assert "](https://sw.example.org/screen)" in text
    [notice] = wait_for(lambda: [n for n in env.notices() if n.status == "sent"], message="the notice recorded")
    assert notice.step == -2 and notice.target == "duty_group" and notice.sent_at == T0 + H
    for minutes in (1, 2, 30):  # told once, however often the chain runs
        env.at(H + minutes * timedelta(minutes=1))
    assert len(env.notices()) == 1
    with Session(env.engine) as session:  # the chain is untouched by the notice
        assert session.scalars(select(Alarm)).one().state == "open"
        assert {a.channel for a in session.scalars(select(Attempt))} >= {"voice", "wecom"}


def test_a_blind_state_and_any_other_kind_are_posted_generically(env: Env) -> None:
    with Session(env.engine) as session, session.begin():
        session.add(Alarm(kind=AlarmKind.SYSTEM, severity="critical", open_key="system:broker", system_key="broker",
                          reason="消息服务器中断 3 分钟", opened_at=T0))
        session.add(Alarm(kind="infrastructure", severity="high", open_key="infra:gw-2", reason="网关 gw-2 断电",
                          opened_at=T0))
    env.runtime.duty.run(T0)  # type: ignore[union-attr]
    texts = wait_for(lambda: env.fake.contents() if len(env.fake.contents()) == 2 else None, message="two notices")
    assert any("系统告警" in t and "监测中断" in t and "消息服务器中断" in t for t in texts)
    assert any("设施故障" in t and "网关 gw-2 断电" in t for t in texts)


def test_every_alarm_kind_and_dwell_limit_has_its_label_in_each_language() -> None:
    for language in ("zh", "en"):
        kinds = robot.TEXT[language]["kinds"]
        missing = [k.value for k in AlarmKind if k.value not in kinds]
        assert missing == [], f"{language}: no label for {missing}"
        assert {"dwell_bathroom", "dwell_bathroom_door"} <= set(kinds)


def test_the_morning_summary_is_posted_once_a_day(make_env: Callable[..., Env]) -> None:
    env = make_env(residents=2, summary_at="08:00")  # T0 is 16:00 in Shanghai: due at once
    env.press(["sos-0"], timedelta(0))
    env.at(timedelta(0))
    env.at(timedelta(minutes=5))
    texts = wait_for(lambda: env.fake.contents() if len(env.fake.contents()) == 2 else None, message="notices")
    [summary] = [t for t in texts if "早报" in t]
    assert "未处理告警：1" in summary and "离线设备：0" in summary and "2026-11-23" in summary
    env.at(timedelta(hours=16, minutes=1))  # the next day, 08:01 in Shanghai
    wait_for(lambda: len([t for t in env.fake.contents() if "早报" in t]) == 2, message="the next summary")
    assert "昨日告警：1" in [t for t in env.fake.contents() if "早报" in t][-1]
    with Session(env.engine) as session:
        assert len(session.scalars(select(AuditEntry).where(AuditEntry.action == "group_summary")).all()) == 2


def test_a_burst_of_50_alarms_keeps_to_the_robots_limit_and_never_holds_up_the_chain(
        make_env: Callable[..., Env]) -> None:
    env = make_env(residents=BURST, summary_at=None)
    env.press([f"sos-{i}" for i in range(BURST)], H)
    env.at(H)  # returns at once: the notices are only queued
    with Session(env.engine) as session:
        called = {a.alarm_id for a in session.scalars(select(Attempt).where(Attempt.channel == "voice"))}
    assert len(called) == BURST  # every chain started in the same run
    assert len(env.notices()) == BURST  # every notice recorded as queued
    robot = env.runtime.duty.robot  # type: ignore[union-attr]
    for window, expected in enumerate((20, 40, 50)):
        wait_for(lambda e=expected: len(env.fake.received) == e and (robot.waiting or e == BURST),
                 message=f"{expected} notices in window {window}")
        assert len(env.fake.received) == expected  # held back, not refused
        env.ticker.advance(60)
    wait_for(lambda: all(n.status == "sent" for n in env.notices()), message="all recorded as sent")
    assert env.fake.refused == []  # the robot never had to say 45009
    times = [at for at, _ in env.fake.received]
    assert max(sum(1 for t in times if start <= t < start + 60) for start in times) <= 20
