"""The pure rules, at exact instants."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from alerts import rules

T = datetime(2026, 11, 23, 8, 0, tzinfo=UTC)
H = timedelta(hours=1)
LIMITS = rules.Limits(window=14 * H, early_warning=10 * H)
DEV = rules.DeviceLimits(offline_after=2 * H, offline_grace=timedelta(minutes=10), low_battery_percent=15)


def decide(now: datetime, **kw: object) -> rules.DueDecision:
    args: dict[str, object] = {"last_activity": T, "watch_from": None, "limits": LIMITS, "away_until": None,
                               "away_until_activity": False, "alarm_open": False}
    args.update(kw)
    return rules.decide_due(now=now, **args)  # type: ignore[arg-type]


def test_the_alarm_is_due_exactly_at_last_activity_plus_window() -> None:
    assert decide(T + 14 * H - timedelta(seconds=1)).action is rules.DueAction.NOT_DUE
    assert decide(T + 14 * H).action is rules.DueAction.RAISE


def test_an_open_alarm_suspends_the_deadline() -> None:
    assert decide(T + 15 * H, alarm_open=True).action is rules.DueAction.SUSPEND


def test_a_restart_moves_the_window() -> None:
    assert decide(T + 15 * H, watch_from=T + 2 * H) == rules.DueDecision(rules.DueAction.NOT_DUE, T + 16 * H)


def test_away_postpones_to_the_end_plus_window_and_until_activity_suspends() -> None:
    assert decide(T + 15 * H, away_until=T + 20 * H) == rules.DueDecision(rules.DueAction.POSTPONE, T + 34 * H)
    assert decide(T + 15 * H, away_until_activity=True).action is rules.DueAction.SUSPEND
    assert decide(T + 21 * H, away_until=T + 20 * H).due_at == T + 34 * H


def test_overrides_resident_beats_grid_beats_default() -> None:
    assert rules.effective_limits(LIMITS).window == 14 * H
    assert rules.effective_limits(LIMITS, grid_window_s=8 * 3600).window == 8 * H
    limits = rules.effective_limits(LIMITS, grid_window_s=8 * 3600, resident_window_s=6 * 3600)
    assert limits.window == 6 * H and limits.early_warning < limits.window


def test_status_order() -> None:
    base = {"now": T + 11 * H, "last_activity": T, "watch_from": None, "limits": LIMITS, "away_until": None,
            "away_until_activity": False, "open_alarm_kinds": frozenset(), "devices_online": [True]}
    assert rules.resident_status(**base) is rules.ResidentStatus.WARNING  # type: ignore[arg-type]
    assert rules.resident_status(**{**base, "now": T + H}) is rules.ResidentStatus.OK  # type: ignore[arg-type]
    assert rules.resident_status(**{**base, "open_alarm_kinds": frozenset({"panic"})}) is rules.ResidentStatus.ALARM  # type: ignore[arg-type]
    assert rules.resident_status(**{**base, "away_until_activity": True}) is rules.ResidentStatus.AWAY  # type: ignore[arg-type]
    assert rules.resident_status(**{**base, "now": T + H, "devices_online": [False]}) is rules.ResidentStatus.OFFLINE  # type: ignore[arg-type]


def test_activity_during_an_alarm() -> None:
    kw = {"snapshot": T, "activity_at": T + 15 * H}
    assert rules.on_activity_during_alarm(**kw, responders_called_at=None, acknowledged=False) \
        is rules.ActivityAction.AUTO_RESOLVE
    assert rules.on_activity_during_alarm(**kw, responders_called_at=T + 14 * H, acknowledged=False) \
        is rules.ActivityAction.RECORD
    assert rules.on_activity_during_alarm(snapshot=T, activity_at=T, responders_called_at=None,
                                          acknowledged=False) is rules.ActivityAction.IGNORE


def test_device_offline_after_silence_or_an_untaken_back_offline_report() -> None:
    assert rules.device_offline_due_at(last_seen=T, availability=None, availability_at=None, limits=DEV) == T + 2 * H
    assert rules.device_offline_due_at(last_seen=T, availability="offline", availability_at=T,
                                       limits=DEV) == T + timedelta(minutes=10)
    assert not rules.device_is_back(last_seen=T, availability="offline", now=T + H, limits=DEV)
    assert rules.device_is_back(last_seen=T, availability="online", now=T + H, limits=DEV)


def test_timestamps_in_the_future_beyond_the_skew_are_replaced_and_flagged() -> None:
    skew = timedelta(minutes=5)
    assert rules.occurred_at(T + timedelta(minutes=4), T, skew) == (T + timedelta(minutes=4), False)
    assert rules.occurred_at(T + timedelta(minutes=6), T, skew) == (T, True)
    assert rules.occurred_at(datetime(1970, 1, 1, tzinfo=UTC), T, skew) == (T, True)
    assert rules.occurred_at(None, T, skew) == (T, False)
    assert rules.activity_instant(T + timedelta(minutes=4), T) == T


def test_which_readings_are_observations() -> None:
    assert rules.is_observation("motion", None, False, None)  # native motion
    assert rules.is_observation("motion", True, False, True)  # cache_state off: every true
    assert not rules.is_observation("motion", True, True, True)  # cached repeat
    assert rules.is_observation("motion", True, True, None)  # unknown previous: a change (first report)
    assert rules.is_observation("motion", True, True, False)
    assert not rules.is_observation("state", False, False, True)
    assert rules.is_observation("door", False, True, True) and not rules.is_observation("door", True, True, True)
    assert rules.is_observation("button", None, False, None)
    assert rules.is_observation("button", True, True, None)  # a first state-style press counts
    assert rules.is_observation("button", True, True, False)
    assert not rules.is_observation("button", True, True, True)  # a stuck "on" repeated is not a new press
    assert not rules.is_observation("battery", None, False, None)


def test_broker_blind_after_the_limit() -> None:
    assert not rules.broker_blind(None, T, timedelta(seconds=60))
    assert not rules.broker_blind(T, T + timedelta(seconds=59), timedelta(seconds=60))
    assert rules.broker_blind(T, T + timedelta(seconds=60), timedelta(seconds=60))
