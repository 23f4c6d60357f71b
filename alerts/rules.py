"""The watch rules: pure functions of (state, now). No I/O, no clock reads.

The service feeds them rows and acts on what they return; tests call them directly.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta


@dataclass(frozen=True)
class Limits:
    """The rule settings that apply to one resident (after global / grid / resident overrides)."""

    window: timedelta
    early_warning: timedelta


@dataclass(frozen=True)
class DeviceLimits:
    offline_after: timedelta
    offline_grace: timedelta
    low_battery_percent: int


class ResidentStatus(enum.StrEnum):
    """The most urgent state that holds, for the API and the screen."""

    ALARM = "alarm"  # an inactivity or panic alarm is open
    WARNING = "warning"  # early-warning stage: silent for longer than the early warning
    OFFLINE = "offline"  # every device of the home is offline
    AWAY = "away"
    OK = "ok"


def effective_limits(
    default: Limits,
    grid_window_s: int | None = None,
    grid_warning_s: int | None = None,
    resident_window_s: int | None = None,
    resident_warning_s: int | None = None,
) -> Limits:
    """Resident overrides beat grid overrides beat the global setting. An early warning that would not
    come before the window is pulled back to 5/7 of it (the 10 h / 14 h proportion of the defaults)."""
    window = timedelta(seconds=resident_window_s or grid_window_s or default.window.total_seconds())
    warning_s = resident_warning_s or grid_warning_s
    warning = timedelta(seconds=warning_s) if warning_s else default.early_warning
    if warning >= window:
        warning = window * 5 / 7
    return Limits(window=window, early_warning=warning)


def watch_start(last_activity: datetime | None, watch_from: datetime | None) -> datetime | None:
    """Where the inactivity window runs from: the later of last activity and the last restart."""
    candidates = [t for t in (last_activity, watch_from) if t is not None]
    return max(candidates) if candidates else None


def inactivity_due_at(
    last_activity: datetime | None, watch_from: datetime | None, limits: Limits
) -> datetime | None:
    start = watch_start(last_activity, watch_from)
    return None if start is None else start + limits.window


def is_away(away_until: datetime | None, away_until_activity: bool, now: datetime) -> bool:
    return away_until_activity or (away_until is not None and now < away_until)


class DueAction(enum.Enum):
    RAISE = "raise"  # open an inactivity alarm now
    POSTPONE = "postpone"  # away with an end date: the window restarts when it ends
    SUSPEND = "suspend"  # away until next activity, or an alarm already open: no deadline for now
    NOT_DUE = "not_due"  # the stored deadline was stale; keep the recomputed one


@dataclass(frozen=True)
class DueDecision:
    action: DueAction
    due_at: datetime | None = None


def decide_due(
    *,
    now: datetime,
    last_activity: datetime | None,
    watch_from: datetime | None,
    limits: Limits,
    away_until: datetime | None,
    away_until_activity: bool,
    alarm_open: bool,
) -> DueDecision:
    """What the tick does with a resident whose stored deadline has passed.

    The alarm rule is ``now >= start + window`` with start = max(last activity, watch_from).
    """
    if away_until_activity:
        return DueDecision(DueAction.SUSPEND)
    if away_until is not None and now < away_until:
        return DueDecision(DueAction.POSTPONE, away_until + limits.window)
    due = inactivity_due_at(last_activity, watch_from, limits)
    if due is None:
        return DueDecision(DueAction.SUSPEND)
    if away_until is not None and away_until + limits.window > due:
        # the end of away mode restarts the window
        due = away_until + limits.window
    if now < due:
        return DueDecision(DueAction.NOT_DUE, due)
    if alarm_open:
        return DueDecision(DueAction.SUSPEND)
    return DueDecision(DueAction.RAISE)


def resident_status(
    *,
    now: datetime,
    last_activity: datetime | None,
    watch_from: datetime | None,
    limits: Limits,
    away_until: datetime | None,
    away_until_activity: bool,
    open_alarm_kinds: frozenset[str],
    devices_online: list[bool],
) -> ResidentStatus:
    if open_alarm_kinds & {"inactivity", "panic", "routine"}:
        return ResidentStatus.ALARM
    if is_away(away_until, away_until_activity, now):
        return ResidentStatus.AWAY
    start = watch_start(last_activity, watch_from)
    if start is not None and away_until is not None:
        start = max(start, away_until)
    if open_alarm_kinds & {"rhythm", "early_warning"} or (start is not None and now >= start + limits.early_warning):
        return ResidentStatus.WARNING
    if devices_online and not any(devices_online):
        return ResidentStatus.OFFLINE
    return ResidentStatus.OK


# the resident alarms that call people; an early-warning notice gives way to them
ALARM_KINDS = frozenset({"inactivity", "panic", "routine"})


class EarlyAction(enum.Enum):
    RAISE = "raise"  # the early-warning stage of this silence began: open the notice (an SMS if opted in)
    SUPERSEDE = "supersede"  # the resident's alarm is open: the notice has done its part, close it
    PLAN = "plan"  # nothing now; look again at ``next_due``


@dataclass(frozen=True)
class EarlyDecision:
    action: EarlyAction
    next_due: datetime
    start: datetime | None = None  # where the silence runs from (when raising)


def decide_early_warning(
    *, now: datetime, last_activity: datetime | None, watch_from: datetime | None, created_at: datetime,
    limits: Limits, away_until: datetime | None, away_until_activity: bool, last_warned: datetime | None,
    open_alarm_kinds: frozenset[str],
) -> EarlyDecision:
    """The early-warning notice of one resident at ``now`` (the instant the tick planned, or later).

    A silence runs from start = max(last activity, watch_from, end of away mode) (creation if never
    watched); its early-warning stage begins at start + early warning. It is told once: not if a notice
    was opened since start (``last_warned``: the last one's opening), nor while the resident is already
    looked at (an alarm or a notice open, or an infrastructure incident covering the home: ``open_alarm_kinds``
    then holds ``"infrastructure"``) or away. An open notice is closed once the resident's alarm
    is open. Activity never replans: a look that comes too early only plans again, and a silence that
    starts after ``now`` reaches its stage after ``now + early warning``, so looking again then is never
    late."""
    later = now + limits.early_warning
    alarm_open = bool(open_alarm_kinds & ALARM_KINDS)
    notice_open = "early_warning" in open_alarm_kinds
    if notice_open and alarm_open:
        return EarlyDecision(EarlyAction.SUPERSEDE, later)
    if away_until_activity:
        return EarlyDecision(EarlyAction.PLAN, later)
    start = watch_start(last_activity, watch_from) or created_at
    if away_until is not None:
        start = max(start, away_until)
    stage = start + limits.early_warning
    if now < stage:
        return EarlyDecision(EarlyAction.PLAN, stage)
    warned = last_warned is not None and last_warned >= start
    # an open notice, or an infrastructure incident covering the home (its silence is the outage's)
    quiet = alarm_open or bool(open_alarm_kinds & {"rhythm", "early_warning", "infrastructure"})
    action = EarlyAction.PLAN if warned or quiet else EarlyAction.RAISE
    alarm_due = start + limits.window  # an open notice is looked at again when the alarm would open
    watching = action is EarlyAction.RAISE or notice_open
    return EarlyDecision(action, alarm_due if watching and now < alarm_due < later else later, start)


class ActivityAction(enum.Enum):
    AUTO_RESOLVE = "auto_resolve"  # nobody was called yet: the resident is moving, close it
    RECORD = "record"  # responders were called: show "movement at 14:32", a person closes it
    IGNORE = "ignore"


def on_activity_during_alarm(
    *, snapshot: datetime | None, activity_at: datetime | None, responders_called_at: datetime | None,
    acknowledged: bool,
) -> ActivityAction:
    """The resident's last activity moved while an inactivity alarm is open (SPEC section 3).

    ``snapshot`` is the last activity the alarm was raised on; only activity after it is new.
    """
    if activity_at is None or (snapshot is not None and activity_at <= snapshot):
        return ActivityAction.IGNORE
    if responders_called_at is None and not acknowledged:
        return ActivityAction.AUTO_RESOLVE
    return ActivityAction.RECORD


def device_offline_due_at(
    *, last_seen: datetime | None, availability: str | None, availability_at: datetime | None,
    limits: DeviceLimits,
) -> datetime | None:
    """When the device is to be declared offline if nothing changes: silence for ``offline_after``, or
    an explicit offline/LWT report not taken back within ``offline_grace``."""
    candidates = []
    if last_seen is not None:
        candidates.append(last_seen + limits.offline_after)
    if availability == "offline" and availability_at is not None:
        candidates.append(availability_at + limits.offline_grace)
    return min(candidates) if candidates else None


def device_is_back(*, last_seen: datetime | None, availability: str | None, now: datetime,
                   limits: DeviceLimits) -> bool:
    """An offline device is back when it no longer says it is offline and has been heard from within
    the offline limit."""
    if availability == "offline":
        return False
    return last_seen is not None and now < last_seen + limits.offline_after


def battery_low(battery: int | None, limits: DeviceLimits) -> bool:
    return battery is not None and battery < limits.low_battery_percent


def battery_recovered(battery: int | None, limits: DeviceLimits) -> bool:
    """Hysteresis of 10 points so a battery hovering at the threshold does not open and close alarms."""
    return battery is not None and battery >= limits.low_battery_percent + 10


def broker_blind(disconnected_since: datetime | None, now: datetime, limit: timedelta) -> bool:
    """The consumer has been away from the broker for longer than the limit: the watch is blind."""
    return disconnected_since is not None and now - disconnected_since >= limit


EARLIEST_PLAUSIBLE = datetime(2000, 1, 1, tzinfo=UTC)


def occurred_at(device_time: datetime | None, received_at: datetime, skew: timedelta) -> tuple[datetime, bool]:
    """When an observation happened, and whether the device's clock was off (SPEC section 2).

    The device's time is used when present and plausible. One further in the future than the allowed
    skew (or before 2000: a clock never set) is replaced by the receive time and flagged.
    """
    if device_time is None:
        return received_at, False
    if device_time > received_at + skew or device_time < EARLIEST_PLAUSIBLE:
        return received_at, True
    return device_time, False


def activity_instant(occurred: datetime, received_at: datetime) -> datetime:
    """What moves the deadline: never later than the receive time, so a deadline is never pushed
    past receive time + window by a fast device clock."""
    return min(occurred, received_at)


def is_observation(kind: str, occupied: bool | None, change_only: bool, previous: bool | None) -> bool:
    """Whether a reading is a sign of life, given the device's previous occupancy/contact state.

    Motion and door readings with ``change_only`` count only as a change of state (a Zigbee2MQTT
    bridge repeating its cached ``occupancy: true``; a contact sensor re-reporting its state). An
    unknown previous state (a sensor just installed or adopted) is a change: its first report counts.
    Meter readings always count; buttons see below.
    """
    if kind == "button":
        # an event-style press always counts; a state-style one (change_only) unless the button was
        # already reported pressed: a stuck or re-published "on" must not raise the panic again, and an
        # unknown previous state counts, so a first press is never lost
        return not change_only or previous is not True
    if kind == "meter":
        return True
    if kind == "motion":
        # a native motion event carries no state (None): it is an observation by itself; a repeated
        # "occupied" after a known "occupied" is not
        return occupied is not False and (not change_only or previous is not True)
    if kind == "door":
        return occupied is not None and (not change_only or previous != occupied)
    return False
