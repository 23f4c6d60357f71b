"""The pure decisions of correlated silence (alerts.incidents) and the family hold of the escalation engine."""

from __future__ import annotations

from datetime import timedelta

from alerts import incidents
from alerts.escalation import policy as esc
from alerts.escalation.runner import load_policy_file
from alerts.incidents import Group, IncidentLimits, OpenIncident, usual_gap
from tests.conftest import T0

M = timedelta(minutes=1)
LIMITS = IncidentLimits()


def _group(key: str, seen: dict[int, object], offline_since: object = None) -> Group:
    return Group(key=key, label=key, homes=seen, offline_since=offline_since)  # type: ignore[arg-type]


def test_homes_that_stop_together_are_one_silence_once_the_window_has_passed() -> None:
    now = T0 + 60 * M
    seen = {i: now - 12 * M + i * 10 * 1e-3 * M for i in range(10)}  # all last heard ~12 min ago
    found = incidents.silence_in(_group("community:1", seen), now, LIMITS)
    assert found is not None and found.homes == frozenset(range(10)) and found.reporting == 10
    # not yet: they have been quiet for less than the window
    assert incidents.silence_in(_group("community:1", seen), now - 5 * M, LIMITS) is None


def test_homes_that_only_send_hourly_heartbeats_are_not_overdue_after_ten_minutes() -> None:
    """Heartbeats spread over the hour, or all at the same minute (devices booted together): homes that
    report hourly are quiet most of the time; judged by their own usual gap, none is overdue."""
    now = T0 + 120 * M
    hourly = {i: timedelta(hours=1) for i in range(12)}
    spread = {i: now - (i * 5 + 1) * M for i in range(12)}
    assert incidents.silence_in(_group("community:1", spread), now, LIMITS, gaps=hourly) is None
    together = {i: now - 30 * M for i in range(12)}
    assert incidents.silence_in(_group("community:1", together), now, LIMITS, gaps=hourly) is None
    # the same homes, were they reporting every few minutes, would be an outage
    chatty = {i: timedelta(minutes=5) for i in range(12)}
    assert incidents.silence_in(_group("community:1", together), now, LIMITS, gaps=chatty) is not None


def test_a_group_that_still_talks_is_no_incident() -> None:
    """Three chatty homes went quiet together, but ten others of the group were heard since: an evening."""
    now = T0 + 120 * M
    seen = {1: now - 15 * M, 2: now - 15 * M, 3: now - 14 * M} | {i: now - M for i in range(4, 14)}
    gaps = dict.fromkeys(seen, timedelta(minutes=5))
    assert incidents.silence_in(_group("community:1", seen), now, LIMITS, gaps=gaps) is None
    every_five = [T0 + 5 * k * M for k in range(30)]
    assert usual_gap(every_five, timedelta(hours=2)) == 5 * M
    # a short history (just installed, just booted: several messages at once) gives the benefit of the doubt
    assert usual_gap([T0, T0, T0 + 2 * M], timedelta(hours=2)) == timedelta(hours=2) - 2 * M
    assert usual_gap([], timedelta(hours=2)) == timedelta(hours=2)


def test_fewer_than_the_minimum_of_homes_or_less_than_the_share_is_no_incident() -> None:
    now = T0 + 60 * M
    two = {1: now - 15 * M, 2: now - 15 * M}
    assert incidents.silence_in(_group("gateway:1", two), now, LIMITS) is None
    # 3 stopped together but 5 others of the group were heard since: under the share
    mixed = {1: now - 15 * M, 2: now - 15 * M, 3: now - 14 * M} | {i: now - M for i in range(4, 9)}
    assert incidents.silence_in(_group("micro_grid:1", mixed), now, LIMITS) is None
    # homes silent for longer than the lookback were not reporting: a dead device is not an outage
    old = {i: now - 3 * 60 * M for i in range(5)}
    assert incidents.silence_in(_group("grid:1", old), now, LIMITS) is None


def test_a_gateway_that_reports_offline_is_an_incident_at_once() -> None:
    now = T0 + 60 * M
    found = incidents.silence_in(_group("gateway:4", {1: now, 2: now}, offline_since=now), now, LIMITS)
    assert found is not None and found.homes == {1, 2} and "offline" in found.reason


def test_the_largest_group_that_explains_the_silence_is_chosen_and_smaller_ones_merge_into_it() -> None:
    now = T0 + 60 * M
    quiet = {i: now - 12 * M for i in range(12)}
    groups = [_group("community:1", quiet), _group("grid:1", quiet),
              _group("micro_grid:1", {i: quiet[i] for i in range(6)}),
              _group("micro_grid:2", {i: quiet[i] for i in range(6, 12)}),
              _group("gateway:1", {i: quiet[i] for i in range(4)}, offline_since=now - 12 * M)]
    already = [OpenIncident(alarm_id=7, group="gateway:1", homes=frozenset(range(4)), since=now - 12 * M)]
    plan = incidents.plan(groups, now, LIMITS, already)
    assert [s.key for s in plan.open] == ["community:1"]
    assert plan.merge == {7: "community:1"}
    # with the community incident open, nothing more opens
    opened = [OpenIncident(alarm_id=8, group="community:1", homes=frozenset(range(12)), since=now - 12 * M)]
    assert incidents.plan(groups, now + 5 * M, LIMITS, opened).open == []


def test_one_dark_gateway_is_one_incident_for_that_gateway_only() -> None:
    now = T0 + 60 * M
    seen = {i: now - 12 * M for i in range(5)} | {i: now - M * (i % 7) for i in range(5, 40)}
    groups = [_group("community:1", seen), _group("gateway:1", {i: seen[i] for i in range(5)}),
              _group("gateway:2", {i: seen[i] for i in range(5, 40)})]
    plan = incidents.plan(groups, now, LIMITS, [])
    assert [(s.key, s.homes) for s in plan.open] == [("gateway:1", frozenset(range(5)))]


def test_stragglers_of_an_earlier_incident_start_no_new_one() -> None:
    now = T0 + 60 * M
    since = now - 40 * M
    seen = {i: since for i in range(6)} | {i: now - M for i in range(6, 12)}  # half heard again
    group = _group("community:1", seen)
    assert incidents.silence_in(group, now, LIMITS) is not None
    assert incidents.silence_in(group, now, LIMITS, stale={i: since for i in range(12)}) is None


def test_the_group_is_back_when_half_of_its_homes_are_heard_again() -> None:
    since = T0
    assert not incidents.heard_again({1: since, 2: since, 3: since, 4: T0 + M}, since, LIMITS)
    assert incidents.heard_again({1: since, 2: since, 3: T0 + M, 4: T0 + M}, since, LIMITS)
    assert not incidents.heard_again({}, since, LIMITS)


def test_a_backlog_explains_an_alarm_when_the_movement_lies_within_the_window_before_it_opened() -> None:
    window = timedelta(hours=14)
    opened = T0 + window
    assert incidents.backlog_explains(T0 + M, opened, window)
    assert not incidents.backlog_explains(T0 - M, opened, window)
    assert not incidents.backlog_explains(None, opened, window)


def _variant() -> esc.Policy:
    return esc.policy_from_dict(next(p for p in load_policy_file() if p["name"] == "resident_infrastructure"))


def test_the_infrastructure_variant_calls_the_resident_then_the_centre_and_holds_the_family() -> None:
    policy = _variant()
    assert policy.hold == timedelta(minutes=30)
    assert policy.steps[0].check_call
    assert {c.target for c in policy.steps[1].contacts} == {"supervisor", "grid_worker"}
    hold = T0 + 30 * M
    state = esc.ChainState(kind="inactivity", open=True, step=1, cycle=0, step_started_at=T0 + 3 * M,
                           hold_until=hold)
    # the centre step is over (its wait ran out): the family step waits for the hold
    waiting = esc.decide(state, policy, [], T0 + 14 * M)
    assert waiting.action is esc.Action.WAIT and waiting.until == hold
    started = esc.decide(state, policy, [], hold)
    assert started.action is esc.Action.START and any(c.target == "family" for c in started.contacts)
    # released (a person looked): at once
    released = esc.decide(esc.ChainState(kind="inactivity", open=True, step=1, cycle=0, step_started_at=T0 + 3 * M,
                                         hold_until=T0 + 14 * M), policy, [], T0 + 14 * M)
    assert released.action is esc.Action.START


def test_the_infrastructure_policy_never_calls_family_or_the_resident() -> None:
    policy = esc.policy_from_dict(next(p for p in load_policy_file() if p["name"] == "infrastructure"))
    targets = {c.target for s in policy.steps for c in s.contacts}
    channels = {ch for s in policy.steps for c in s.contacts for ch in c.channels}
    assert targets == {"grid_worker", "supervisor"} and channels == {"sms"}
    assert esc.policy_from_dict(policy.to_dict()) == policy
    assert esc.policy_from_dict(_variant().to_dict()) == _variant()


def test_a_silence_that_one_gateway_holds_is_that_gateway_s_even_when_its_building_counts_it_too() -> None:
    now = T0 + 60 * M
    dark = {i: now - 12 * M for i in range(4)}  # the four homes on the gateway
    quiet = {i: now - 40 * M for i in range(4, 8)}  # the rest of the building, quiet this evening
    groups = [_group("micro_grid:1", dark | quiet), _group("gateway:1", dark)]
    gaps = dict.fromkeys(range(8), 5 * M) | dict.fromkeys(range(4, 8), timedelta(hours=1))
    plan = incidents.plan(groups, now, LIMITS, [], gaps=gaps)
    assert [s.key for s in plan.open] == ["gateway:1"]


def test_an_open_incident_grows_with_newly_silent_homes_of_its_group() -> None:
    now = T0 + 60 * M
    seen = {i: now - 30 * M for i in range(8)}
    group = _group("community:1", seen)
    opened = [OpenIncident(alarm_id=3, group="community:1", homes=frozenset(range(4)), since=now - 30 * M)]
    plan = incidents.plan([group], now, LIMITS, opened, gaps=dict.fromkeys(range(8), 5 * M))
    assert plan.open == [] and plan.extend == {3: frozenset(range(8))}


def test_a_home_that_happened_to_be_quiet_too_does_not_make_the_building_the_explanation() -> None:
    now = T0 + 60 * M
    dark = {i: now - 12 * M for i in range(4)}  # four homes on the gateway
    quiet = {9: now - 13 * M}  # a native home of the same building, quiet just then
    talking = {i: now - M for i in range(10, 14)}
    groups = [_group("micro_grid:1", dark | quiet | talking), _group("gateway:1", dark)]
    plan = incidents.plan(groups, now, LIMITS, [], gaps=dict.fromkeys([*range(4), 9, *range(10, 14)], 5 * M))
    assert [s.key for s in plan.open] == ["gateway:1"]
