"""The fixed window's early-warning notice (opt-in): at the early-warning stage (10 h by default) one low-key
SMS to the grid worker, never a call, never the family; amber on the screen. The planning decision and the
policy rules are pure; end to end on SQLite and PostgreSQL, the manual clock, and the real ``twilio``
package against the local fake of Twilio's REST API."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Browser, expect
from sqlalchemy import select
from sqlalchemy.orm import Session

from alerts import rules, service
from alerts.escalation import policy as esc
from alerts.escalation.runner import default_policies_file, load_policy_file
from alerts.models import AlarmKind, Attempt, Resident
from alerts.screen import colour, screen_state
from alerts.screen_model import ALL, ScreenModel
from api.runtime import Runtime
from tests.fake_twilio import FakeTwilio
from tests.harness import T0, Site
from tests.pages import HAS_CHROMIUM, open_screen, silent_after_t0
from tests.test_escalation import COMMUNITY, GRID, activity, called, served_with_twilio

H = timedelta(hours=1)
M = timedelta(minutes=1)
LIMITS = rules.Limits(window=14 * H, early_warning=10 * H)
S = datetime(2026, 11, 23, 8, 0, tzinfo=UTC)


# -- the planning decision (pure) --------------------------------------------------------------------------
def decide(now: timedelta, *, last: timedelta | None = timedelta(0), warned: timedelta | None = None,
           kinds: frozenset[str] = frozenset(), **fields: Any) -> rules.EarlyDecision:
    return rules.decide_early_warning(
        now=S + now, last_activity=None if last is None else S + last, watch_from=fields.get("watch_from"),
        created_at=S - 30 * 24 * H, limits=LIMITS, away_until=fields.get("away_until"),
        away_until_activity=fields.get("away_until_activity", False),
        last_warned=None if warned is None else S + warned, open_alarm_kinds=kinds)


def test_a_look_before_the_stage_plans_the_stage() -> None:
    early = decide(3 * H)
    assert (early.action, early.next_due) == (rules.EarlyAction.PLAN, S + 10 * H)


def test_at_the_stage_it_raises_and_looks_again_when_the_alarm_would_open() -> None:
    due = decide(10 * H)
    assert (due.action, due.next_due, due.start) == (rules.EarlyAction.RAISE, S + 14 * H, S)
    late = decide(15 * H)  # switched on long into a silence: told now, looked at again a stage later
    assert (late.action, late.next_due) == (rules.EarlyAction.RAISE, S + 25 * H)


def test_the_same_silence_is_told_once_and_a_new_one_again() -> None:
    assert decide(12 * H, warned=10 * H).action is rules.EarlyAction.PLAN
    assert decide(12 * H, warned=10 * H).next_due == S + 22 * H
    again = decide(21 * H, last=11 * H, warned=10 * H)  # activity at 11 h: a new silence, its stage at 21 h
    assert again.action is rules.EarlyAction.RAISE
    fine = decide(21 * H, watch_from=S + 11 * H, warned=10 * H)  # a person's "fine" restarts it too
    assert fine.action is rules.EarlyAction.RAISE


def test_an_open_alarm_a_notice_an_outage_or_away_mode_keep_it_quiet() -> None:
    # "infrastructure": an open incident covers the home (alerts.detection adds it): the outage is the silence
    for kinds in ({"inactivity"}, {"panic"}, {"routine"}, {"rhythm"}, {"infrastructure"}):
        quiet = decide(10 * H, kinds=frozenset(kinds))
        assert (quiet.action, quiet.next_due) == (rules.EarlyAction.PLAN, S + 20 * H)
    away = decide(10 * H, away_until_activity=True)
    assert (away.action, away.next_due) == (rules.EarlyAction.PLAN, S + 20 * H)
    back = decide(10 * H, away_until=S + 12 * H)  # away until 12 h: the stage runs from its end
    assert (back.action, back.next_due) == (rules.EarlyAction.PLAN, S + 22 * H)


def test_the_notice_gives_way_to_the_resident_alarm() -> None:
    both = decide(14 * H, warned=10 * H, kinds=frozenset({"early_warning", "inactivity"}))
    assert both.action is rules.EarlyAction.SUPERSEDE
    waiting = decide(12 * H, warned=10 * H, kinds=frozenset({"early_warning"}))
    assert (waiting.action, waiting.next_due) == (rules.EarlyAction.PLAN, S + 14 * H)


def test_the_notice_is_amber_and_blue_never_red() -> None:
    notice = {"kind": AlarmKind.EARLY_WARNING, "state": "open", "responders_called_at": S}
    assert colour("warning", notice, False) == ("amber", False, False)
    assert colour("warning", {**notice, "state": "acknowledged"}, False) == ("blue", False, False)


# -- the policy (pure) -------------------------------------------------------------------------------------
def seeded(name: str) -> esc.Policy:
    return esc.policy_from_dict(next(p for p in load_policy_file() if p["name"] == name))


def test_the_seeded_notice_is_one_sms_to_the_grid_worker_and_off() -> None:
    policy = seeded("early_warning")
    assert not policy.enabled and policy.repeat_from is None
    assert [(c.target, c.channels) for s in policy.steps for c in s.contacts] == [("grid_worker", ("sms",))]
    assert seeded("rhythm").enabled  # the learned rhythm's notice stays on
    assert esc.policy_from_dict(policy.to_dict()) == policy
    state = esc.ChainState(kind="early_warning", open=True, step=-1, cycle=0, step_started_at=None)
    assert esc.decide(state, policy, [], S).action is esc.Action.STOP
    assert esc.decide(state, esc.Policy(policy.name, policy.steps), [], S).action is esc.Action.START


SMS_TO_GRID = {"target": "grid_worker", "channels": ["sms"]}


@pytest.mark.parametrize(("name", "change", "says"), [
    ("early_warning", {"contacts": [{"target": "grid_worker", "channels": ["sms", "voice"]}]}, "never a call"),
    ("early_warning", {"contacts": [SMS_TO_GRID, {"target": "family", "channels": ["sms"]}]}, "never the family"),
    ("early_warning", {"contacts": [{"target": "resident", "channels": ["sms"]}]}, "or the resident"),
    ("rhythm", {"contacts": [{"target": "supervisor", "channels": ["voice"]}]}, "never a call"),
])
def test_a_notice_with_a_call_the_family_or_the_resident_is_refused(name: str, change: dict[str, Any],
                                                                   says: str) -> None:
    with pytest.raises(esc.PolicyError, match=says):
        esc.policy_from_dict({"name": name, "steps": [{"wait": "1h", **change}]})


def test_a_notice_that_repeats_or_a_switch_that_is_no_switch_is_refused() -> None:
    with pytest.raises(esc.PolicyError, match="sent once: remove repeat_from"):
        esc.policy_from_dict({"name": "early_warning", "repeat_from": 1, "steps": [{"contacts": [SMS_TO_GRID]}]})
    with pytest.raises(esc.PolicyError, match="enabled must be true or false"):
        esc.policy_from_dict({"name": "early_warning", "enabled": "yes", "steps": [{"contacts": [SMS_TO_GRID]}]})
    # other policies may call and reach family as before
    esc.policy_from_dict({"name": "resident", "steps": [{"contacts": [{"target": "family", "channels": ["voice"]}]}]})


# -- end to end ----------------------------------------------------------------------------------------------
@pytest.fixture
def env(fake: FakeTwilio, make_site: Callable[..., Site]) -> Site:
    return served_with_twilio(make_site, fake)


def switch_on(env: Site) -> None:
    """What an admin does: PUT /api/policies/early_warning with ``enabled: true``."""
    policies = env.http("admin", "GET", "/api/policies").json()
    definition = next(p for p in policies if p["name"] == "early_warning")["definition"]
    assert definition["enabled"] is False
    response = env.http("admin", "PUT", "/api/policies/early_warning",
                        json={"definition": {**definition, "enabled": True}})
    assert response.status_code == 200, response.text


def notice_attempts(env: Site) -> list[tuple[str, str, str | None, str]]:
    return [(a.target, a.channel, a.phone, a.template) for a in env.attempts()
            if a.alarm_id in {n.id for n in env.alarms(AlarmKind.EARLY_WARNING)}]


def marker(env: Site) -> dict[str, Any]:
    """The resident's marker as the live screen model (each process's, behind /screen) shows it."""
    model = ScreenModel(env.engine, env.clock, env.policy.limits, env.policy.zone)
    model.refresh()
    (found,) = [m for m in model.markers.values() if m["name"] == "王秀英"]
    assert '"王秀英"' in model.picture(ALL)[1]
    return found


def test_the_early_warning_sms_is_sent_once_and_to_the_grid_worker_only(env: Site, fake: FakeTwilio) -> None:
    switch_on(env)
    activity(env, timedelta(0))
    env.at(10 * H - M)
    assert env.alarms(AlarmKind.EARLY_WARNING) == [] and called(fake) == []
    env.at(10 * H)
    (notice,) = env.alarms(AlarmKind.EARLY_WARNING)
    assert notice.reason == "已10小时无活动（预警）" and notice.severity == "low"
    assert called(fake) == [("sms", GRID)]
    assert "王秀英" in fake.messages[0].body and "已10小时无活动（预警），请留意" in fake.messages[0].body
    assert (marker(env)["colour"], marker(env)["status"]) == ("amber", "warning")
    with Session(env.engine) as session:
        state = screen_state(session, env.clock.now(), env.policy.limits, env.policy.zone)
        assert [m["colour"] for m in state["markers"]] == ["amber"]
        assert state["kpis"]["alarms_this_month"] == 0  # a notice is no emergency
    for minutes in (1, 30, 61, 120):  # the chain has one step: over after its wait, nothing again
        env.at(10 * H + minutes * M)
    restarted = Runtime(env.settings, ingest=False)  # a restart: a second process on the same database
    try:
        for at in (10 * H, 11 * H, 13 * H):
            service.tick(restarted.engine, T0 + at, restarted.policy)
            restarted.escalate(T0 + at)
            env.at(at)
    finally:
        restarted.stop()
    assert called(fake) == [("sms", GRID)]
    assert notice_attempts(env) == [("grid_worker", "sms", GRID, "early_warning_sms")]
    env.at(14 * H)  # the inactivity alarm opens: the notice has done its part
    (closed,) = env.alarms(AlarmKind.EARLY_WARNING)
    inactivity = env.alarm()
    assert (closed.state, closed.outcome) == ("resolved", "superseded")
    assert closed.note == f"alarm {inactivity.code} took over"
    assert marker(env)["alarm_id"] == inactivity.id
    env.at(20 * H)
    assert len(env.alarms(AlarmKind.EARLY_WARNING)) == 1
    assert notice_attempts(env) == [("grid_worker", "sms", GRID, "early_warning_sms")]


def test_switched_off_nothing_is_sent_and_the_marker_is_still_amber(env: Site, fake: FakeTwilio) -> None:
    activity(env, timedelta(0))
    for at in (10 * H, 10 * H + M, 12 * H):
        env.at(at)
    assert env.alarms(AlarmKind.EARLY_WARNING) == [] and called(fake) == []
    assert (marker(env)["colour"], marker(env)["status"]) == ("amber", "warning")


def test_activity_before_the_stage_sends_nothing_and_a_new_silence_warns_again(env: Site, fake: FakeTwilio) -> None:
    switch_on(env)
    activity(env, timedelta(0))
    activity(env, 9 * H)
    env.at(10 * H)
    assert env.alarms(AlarmKind.EARLY_WARNING) == [] and called(fake) == []
    env.at(19 * H)  # ten hours after the 9 h movement
    assert called(fake) == [("sms", GRID)]
    activity(env, 19 * H + 30 * M)
    env.at(19 * H + 31 * M)
    (ended,) = env.alarms(AlarmKind.EARLY_WARNING)
    assert ended.outcome == "activity_resumed"
    assert (marker(env)["colour"], marker(env)["status"]) == ("green", "ok")
    env.at(29 * H + 29 * M)
    assert called(fake) == [("sms", GRID)]
    env.at(29 * H + 30 * M)
    assert called(fake) == [("sms", GRID), ("sms", GRID)]
    assert len(env.alarms(AlarmKind.EARLY_WARNING)) == 2


def test_away_mode_keeps_it_quiet(env: Site, fake: FakeTwilio) -> None:
    switch_on(env)
    activity(env, timedelta(0))
    env.clock.set(T0 + H)
    rid = env.resident("r1").id
    assert env.client("operator").post(f"/api/residents/{rid}/away", json={"until_activity": True}).status_code == 200
    for at in (10 * H, 20 * H, 40 * H):
        env.at(at)
    assert env.alarms(AlarmKind.EARLY_WARNING) == [] and called(fake) == []


def test_a_notice_policy_with_a_call_or_the_family_cannot_be_saved(env: Site) -> None:
    policies = env.http("admin", "GET", "/api/policies").json()
    definition = next(p for p in policies if p["name"] == "early_warning")["definition"]
    calling = {**definition, "steps": [{"wait": "1h", "contacts": [{"target": "grid_worker",
                                                                     "channels": ["voice"]}]}]}
    refused = env.http("admin", "PUT", "/api/policies/early_warning", json={"definition": calling})
    assert refused.status_code == 422 and "只发短信，不打电话" in refused.json()["detail"]  # notify.language: zh
    family = {**definition, "steps": [{"wait": "1h", "contacts": [{"target": "family", "channels": ["sms"]}]}]}
    refused = env.http("admin", "PUT", "/api/policies/early_warning", json={"definition": family})
    assert refused.status_code == 422 and "不联系家属或老人本人" in refused.json()["detail"]


def test_a_policies_file_with_the_notice_on_seeds_it_on(make_site: Callable[..., Site], tmp_path: Path) -> None:
    text = default_policies_file().read_text(encoding="utf-8")
    switched = text.replace('name = "early_warning"\nenabled = false', 'name = "early_warning"\nenabled = true')
    assert switched != text
    (tmp_path / "escalation.toml").write_text(switched, encoding="utf-8")
    site = make_site(community=COMMUNITY, notify={"policies_file": str(tmp_path / "escalation.toml")})
    site.activity(timedelta(0), "pir-1")
    site.rules_at(10 * H)
    (notice,) = site.alarms(AlarmKind.EARLY_WARNING)
    with Session(site.engine) as session:
        assert session.get(Resident, notice.resident_id) is not None
        assert session.scalars(select(Attempt)).all() == []  # the chain runs on the escalation job


@pytest.mark.skipif(not HAS_CHROMIUM, reason="needs Debian's chromium (.ci/run installs it)")
def test_the_screen_shows_the_notice_amber_on_the_map_and_in_the_list(make_screen_site: Callable[[int], Site],
                                                                       browser: Browser, tmp_path: Path) -> None:
    site = make_screen_site(20)
    switch_on(site)
    outside: list[str] = []
    silent_after_t0(site, 20)  # resident 1 falls silent after T0
    screen = open_screen(browser, site, outside, "operator", viewport={"width": 1600, "height": 900})
    expect(screen.locator("body")).to_have_attribute("data-ready", "1", timeout=20000)
    site.at(10 * H)  # the notice opens and its SMS step starts (the console provider here)
    notice = site.alarm(AlarmKind.EARLY_WARNING, resident="r1")
    assert notice.responders_called_at is not None
    item = screen.locator(f'#alarms li[data-alarm="{notice.id}"]')
    expect(item).to_be_visible(timeout=10000)
    expect(item).to_have_class("amber")
    expect(screen.locator(f'.marker[data-resident="{notice.resident_id}"]')).to_have_attribute("data-colour", "amber")
    expect(screen.locator('[data-kpi="month"] dd')).to_have_text("0")
    screen.screenshot(path=str(tmp_path / "early_warning.png"))
    assert outside == []
