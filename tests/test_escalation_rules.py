"""The pure escalation engine: policies as data and the chain's decisions at exact instants."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from alerts.escalation import policy as esc
from alerts.escalation.runner import load_policy_file
from alerts.escalation.templates import Message, render

T = datetime(2026, 11, 23, 8, 0, tzinfo=UTC)
M = timedelta(minutes=1)


@pytest.fixture
def policy() -> esc.Policy:
    return esc.policy_from_dict(next(p for p in load_policy_file() if p["name"] == "resident"))


def state(step: int, started: datetime | None = T, kind: str = "inactivity", open_: bool = True,
          family: bool = False) -> esc.ChainState:
    return esc.ChainState(kind=kind, open=open_, step=step, cycle=0, step_started_at=started, family_handling=family)


def test_the_seeded_policy_is_the_default_chain(policy: esc.Policy) -> None:
    assert [s.wait for s in policy.steps] == [3 * M, 5 * M, 5 * M, 5 * M]
    assert policy.steps[0].check_call and [c.target for c in policy.steps[0].contacts] == ["resident"]
    assert [c.label() for c in policy.steps[1].contacts] == ["grid_worker", "family:1"]
    assert policy.steps[1].contacts[0].channels == ("sms", "voice")
    assert [c.label() for c in policy.steps[2].contacts] == ["micro_grid_worker", "family:2"]
    assert policy.repeat_from == 1 and not policy.family_ack_stops
    assert esc.policy_from_dict(policy.to_dict()) == policy


def test_a_new_alarm_starts_at_the_check_call_and_a_panic_skips_it(policy: esc.Policy) -> None:
    first = esc.decide(state(-1, None), policy, [], T)
    assert (first.action, first.step, first.until) == (esc.Action.START, 0, T + 3 * M)
    assert esc.decide(state(-1, None, kind="panic"), policy, [], T).step == 1
    assert not esc.calls_responders(policy, 0) and esc.calls_responders(policy, 1)


def test_a_step_waits_then_ends_on_its_wait(policy: esc.Policy) -> None:
    ringing = [esc.AttemptView("voice", "ringing")]
    assert esc.decide(state(0), policy, ringing, T + 2 * M).action is esc.Action.WAIT
    decision = esc.decide(state(0), policy, ringing, T + 3 * M)
    assert (decision.action, decision.step, decision.reason) == (esc.Action.START, 1, "the wait ran out")


def test_a_step_ends_at_once_when_every_attempt_ended_unanswered(policy: esc.Policy) -> None:
    ended = [esc.AttemptView("voice", "busy"), esc.AttemptView("sms", "delivered"),
             esc.AttemptView("voice", "no-answer"), esc.AttemptView("voice", "skipped")]
    decision = esc.decide(state(1), policy, ended, T + M)
    assert decision.step == 2 and decision.reason == "every attempt ended unanswered"
    half = [esc.AttemptView("voice", "busy"), esc.AttemptView("voice", "in-progress")]
    assert esc.decide(state(1), policy, half, T + M).action is esc.Action.WAIT


def test_an_sms_only_step_runs_its_whole_wait() -> None:
    maintenance = esc.policy_from_dict(next(p for p in load_policy_file() if p["name"] == "maintenance"))
    delivered = [esc.AttemptView("sms", "delivered")]
    assert esc.decide(state(0, kind="device_offline"), maintenance, delivered, T + M).action is esc.Action.WAIT
    again = esc.decide(state(0, kind="device_offline"), maintenance, delivered, T + 24 * 60 * M)
    assert (again.action, again.step, again.cycle) == (esc.Action.START, 0, 1)


def test_after_the_last_step_the_chain_repeats_from_step_2(policy: esc.Policy) -> None:
    decision = esc.decide(state(3), policy, [], T + 5 * M)
    assert (decision.step, decision.cycle) == (1, 1)


def test_acknowledged_or_resolved_stops_and_family_handling_does_not(policy: esc.Policy) -> None:
    assert esc.decide(state(1, open_=False), policy, [], T + 9 * M).action is esc.Action.STOP
    assert esc.decide(state(1, family=True), policy, [], T + 9 * M).action is esc.Action.START
    stopping = esc.Policy(policy.name, policy.steps, policy.repeat_from, family_ack_stops=True)
    assert esc.decide(state(1, family=True), stopping, [], T + 9 * M).action is esc.Action.STOP


def test_keypresses_mean_what_the_spec_says() -> None:
    assert esc.classify_keypress("resident", "1") == "confirmed_fine"
    assert esc.classify_keypress("grid_worker", "1") == "acknowledged"
    assert esc.classify_keypress("supervisor", "1") == "acknowledged"
    assert esc.classify_keypress("family", "1") == "family_handling"
    assert esc.classify_keypress("grid_worker", "2") is None
    assert esc.classify_keypress("grid_worker", None) is None


def test_the_cap() -> None:
    assert esc.cap_reason(5, "voice", 6) is None
    assert esc.cap_reason(6, "voice", 6) == "capped: 6 calls in the last hour (limit 6)"
    assert esc.cap_reason(6, "sms", 6) == "capped: 6 SMS in the last hour (limit 6)"


@pytest.mark.parametrize(("definition", "says"), [
    ({"name": "x", "steps": []}, "has no steps"),
    ({"name": "x", "steps": [{"contacts": [{"target": "mayor"}]}]}, "target must be one of"),
    ({"name": "x", "steps": [{"contacts": [{"target": "resident", "channels": ["fax"]}]}]}, "channels"),
    ({"name": "x", "steps": [{"contacts": []}]}, "contacts nobody"),
    ({"name": "x", "steps": [{"wait": "soon", "contacts": [{"target": "resident"}]}]}, "not a duration"),
    ({"name": "x", "repeat_from": 3, "steps": [{"contacts": [{"target": "resident"}]}]}, "repeat_from"),
])
def test_a_broken_policy_is_refused_with_a_reason(definition: dict[str, object], says: str) -> None:
    with pytest.raises(esc.PolicyError, match=says):
        esc.policy_from_dict(definition)


def test_templates_render_in_both_languages() -> None:
    message = Message("alarm_sms", {"code": "A37", "name": "王秀英", "address": "1号楼", "reason": "14 h"})
    assert "A37" in render(message, "zh") and "回复“1 A37”" in render(message, "zh")
    assert 'Reply "1 A37"' in render(message, "en")
    assert render(Message("check_call", {"name": "王秀英", "hours": "14"}), "zh").endswith("请按1。")
