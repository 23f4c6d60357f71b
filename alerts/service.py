"""The rule tick and the operations on alarms: what the scheduler and the API call.

Each tick step runs in its own short transaction and claims its rows (``FOR UPDATE SKIP LOCKED`` on
PostgreSQL, one writer at a time on SQLite), so several processes never raise the same alarm; the
unique ``open_key`` of an alarm makes that a guarantee of the database. The decisions are made by the
pure functions of :mod:`alerts.rules`; ``now`` is read once by the caller and passed in.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from functools import partial
from typing import Any

from sqlalchemy import Engine, Select, bindparam, delete, insert, or_, select, text, update
from sqlalchemy.orm import Session

from alerts import alarms, detection, dwell_step, incidents, infrastructure, rules, transitions, wording
from alerts.db import changed, claim, guarded, insert_ignoring_conflicts, one_of
from alerts.escalation.templates import Language
from alerts.limits import limits_of, residents_with_limits
from alerts.models import (
    Alarm,
    AlarmKind,
    AlarmState,
    AlarmTransition,
    AuditEntry,
    Device,
    Event,
    Outcome,
    QuarantinedMessage,
    QuarantineOverflow,
    Resident,
    WatchStatus,
    WebhookReceipt,
    table_of,
)

log = logging.getLogger(__name__)

CLAIM_BATCH = 1000
MAX_BATCHES_PER_TICK = 100
# a row whose rule step raised is pushed back this far, so it neither stops the tick nor spins in it
PUSH_BACK = timedelta(seconds=60)


@dataclass(frozen=True)
class WatchPolicy:
    limits: rules.Limits
    device_limits: rules.DeviceLimits
    broker_down_after: timedelta
    event_retention: timedelta
    zone: Any  # tzinfo used to word times in alarm texts
    language: Language = "zh"  # notify.language: the words of the alarm texts (alerts.wording)
    incidents: incidents.IncidentLimits = field(default_factory=incidents.IncidentLimits)


@dataclass
class TickResult:
    raised: list[int] = field(default_factory=list)
    auto_resolved: list[int] = field(default_factory=list)
    activity_noted: list[int] = field(default_factory=list)
    devices_offline: list[int] = field(default_factory=list)
    devices_back: list[int] = field(default_factory=list)
    battery_alarms: list[int] = field(default_factory=list)
    system_raised: list[int] = field(default_factory=list)
    system_resolved: list[int] = field(default_factory=list)
    routine_alarms: list[int] = field(default_factory=list)
    rhythm_notices: list[int] = field(default_factory=list)
    early_warnings: list[int] = field(default_factory=list)
    incidents: infrastructure.IncidentResult = field(default_factory=infrastructure.IncidentResult)
    skipped_rules: bool = False


@dataclass(frozen=True)
class IngestHealth:
    """What the tick needs to know of this process's consumer."""

    connected: bool
    caught_up: bool  # the broker's backlog has been drained since the last (re)connect
    disconnected_since: datetime | None
    name: str = "ingest"
    lag_seconds: float = 0.0  # the oldest message received and not stored yet (real seconds)


def tick(engine: Engine, now: datetime, policy: WatchPolicy, ingest: IngestHealth | None = None,
         process: str = "main") -> TickResult:
    """One pass of every rule at ``now``. While this process's consumer is cut off from the broker or
    still draining the backlog the broker kept, rules that act on silence wait: a gap the backlog
    fills must raise nothing. Being cut off too long is a ``system`` alarm of its own."""
    result = TickResult()
    if ingest is not None:
        _broker_alarm(engine, now, policy, ingest, result)
    if ingest is None or (ingest.connected and ingest.caught_up):
        # homes whose messages wait in ingest are not silent: no correlated silence is judged meanwhile
        if ingest is None or ingest.lag_seconds < policy.incidents.window.total_seconds() / 10:
            _run(engine, lambda s: _incidents(s, now, policy, result))
        _in_batches(engine, lambda s: _raise_due_inactivity(s, now, policy, result))
        _in_batches(engine, lambda s: detection.routine_step(s, now, policy.zone, result.routine_alarms))
        _in_batches(engine, lambda s: detection.rhythm_step(s, now, policy.zone, result.rhythm_notices))
        _in_batches(engine, lambda s: dwell_step.dwell_step(s, now, policy.zone, result.routine_alarms,
                                                            result.auto_resolved))
        _in_batches(engine, lambda s: detection.early_warning_step(s, now, policy.limits, policy.zone,
                                                                   result.early_warnings))
        _run(engine, lambda s: _activity_on_open_alarms(s, now, policy, result))
        _in_batches(engine, lambda s: _devices_offline(s, now, policy, result))
        _run(engine, lambda s: _devices_back(s, now, policy, result))
        _run(engine, lambda s: _battery(s, now, policy, result))
    else:
        result.skipped_rules = True
    # the real time of the tick too: any process sees from it whether some process still ticks (alerts.blind)
    _run(engine, lambda s: heartbeat(s, f"tick:{process}", now, {"skipped_rules": result.skipped_rules,
                                                                  "wall": time.time()}))
    return result


def _run(engine: Engine, step: Callable[[Session], Any]) -> Any:
    with Session(engine, expire_on_commit=False) as session, session.begin():
        return step(session)


def _in_batches(engine: Engine, step: Callable[[Session], int]) -> None:
    for _ in range(MAX_BATCHES_PER_TICK):
        if _run(engine, step) < CLAIM_BATCH:
            return


def due_residents(now: datetime, batch: int) -> Select[Resident, int | None, int | None]:
    """The tick's query for residents whose stored deadline has passed, earliest first (to be claimed)."""
    return (residents_with_limits().where(Resident.due_at.isnot(None), Resident.due_at <= now)
            .order_by(Resident.due_at).limit(batch))


def _incidents(session: Session, now: datetime, policy: WatchPolicy, result: TickResult) -> None:
    """Correlated silences: open, merge and resolve infrastructure incidents (alerts.infrastructure)."""
    found = infrastructure.step(session, now, policy.incidents, policy.limits.window,
                                local=lambda t: _local(t, policy),
                                offline_after=policy.device_limits.offline_after)
    for name in ("opened", "resolved", "merged", "explained"):
        getattr(result.incidents, name).extend(getattr(found, name))


def _raise_due_inactivity(session: Session, now: datetime, policy: WatchPolicy, result: TickResult) -> int:
    """One batch of due residents, set-based: one claim, one query for the open alarms and one for the
    devices of the batch, one INSERT of the alarms (``ON CONFLICT (open_key) DO NOTHING``: the database
    keeps one open alarm per resident and kind, whatever the processes), one of their history rows, one
    of the audit entries, one UPDATE of the deadlines. The decision per resident stays the pure
    :func:`alerts.rules.decide_due`. Alarms raised inside an open infrastructure incident are marked
    "possibly infrastructure" in the same transaction (:func:`alerts.infrastructure.mark_raised`)."""
    raised_before = len(result.raised)
    query = due_residents(now, CLAIM_BATCH)
    rows = session.execute(claim(query, session.get_bind().dialect, of=Resident)).all()
    if not rows:
        return 0
    try:
        with session.begin_nested():
            opened = _raise_in_bulk(session, rows, now, policy)
        result.raised.extend(opened)
    except Exception:  # a statement of the batch failed: the batch again row by row, a bad row alone
        log.exception("bulk raise failed; this batch row by row", extra={"residents": len(rows)})
        _one_by_one(session, rows, now, policy, result)
    infrastructure.mark_raised(session, result.raised[raised_before:], now)  # inside an incident: possibly
    return len(rows)


def _raise_in_bulk(session: Session, rows: Sequence[Any], now: datetime, policy: WatchPolicy) -> list[int]:
    dialect = session.get_bind().dialect
    ids = [r.id for r, _, _ in rows]
    already_open = set(session.scalars(select(Alarm.resident_id).where(
        Alarm.kind == AlarmKind.INACTIVITY, Alarm.state != AlarmState.RESOLVED,
        one_of(Alarm.resident_id, ids, dialect, "due_ids"))))
    devices: dict[int, list[tuple[bool, datetime | None]]] = {}
    for resident_id, online, due in session.execute(select(Device.resident_id, Device.online, Device.offline_due_at)
                                                    .where(one_of(Device.resident_id, ids, dialect, "due_ids"))):
        if resident_id is not None:
            devices.setdefault(resident_id, []).append((online, due))
    to_raise: list[dict[str, Any]] = []
    deadlines: list[dict[str, Any]] = []
    for resident, grid_window, grid_warning in rows:
        limits = limits_of(policy.limits, resident, grid_window, grid_warning)
        try:
            decision = rules.decide_due(
                now=now, last_activity=resident.last_activity_at, watch_from=resident.watch_from, limits=limits,
                away_until=resident.away_until, away_until_activity=resident.away_until_activity,
                alarm_open=resident.id in already_open,
            )
            raise_or_suspend = decision.action in (rules.DueAction.RAISE, rules.DueAction.SUSPEND)
            due_at = None if raise_or_suspend else decision.due_at
            if decision.action is rules.DueAction.RAISE:
                to_raise.append(_inactivity_alarm(resident, limits, now, policy, devices.get(resident.id, [])))
        except Exception:  # one bad row is pushed back and logged; the others go on (as alerts.db.guarded)
            log.exception("rule step failed for one row; the others go on", extra={"row": "resident",
                                                                                   "id": resident.id})
            due_at = now + PUSH_BACK
        deadlines.append({"rid": resident.id, "due": due_at})
    opened = _open_inactivity_alarms(session, to_raise, now)  # the claimed ORM rows stay untouched
    residents = table_of(Resident)
    if dialect.name == "postgresql":
        session.execute(_UPDATE_DEADLINES, {"rids": [d["rid"] for d in deadlines],
                                            "dues": [d["due"] for d in deadlines]})
    else:
        session.execute(update(residents).where(residents.c.id == bindparam("rid")).values(due_at=bindparam("due"))
                        .execution_options(synchronize_session=False), deadlines)
    return opened


def _one_by_one(session: Session, rows: Sequence[Any], now: datetime, policy: WatchPolicy, result: TickResult) -> None:
    """The batch row by row, each under its own savepoint (when the set-based statements failed)."""
    already_open = set(session.scalars(select(Alarm.resident_id).where(
        Alarm.kind == AlarmKind.INACTIVITY, Alarm.state != AlarmState.RESOLVED,
        one_of(Alarm.resident_id, [r.id for r, _, _ in rows], session.get_bind().dialect, "due_ids"))))
    for resident, grid_window, grid_warning in rows:
        guarded(session, "resident", resident.id,
                partial(_due_resident, session, resident, grid_window, grid_warning, now, policy,
                        resident.id in already_open, result),
                partial(setattr, resident, "due_at", now + PUSH_BACK))


def _due_resident(session: Session, resident: Resident, grid_window: int | None, grid_warning: int | None,
                  now: datetime, policy: WatchPolicy, is_open: bool, result: TickResult) -> None:
    limits = limits_of(policy.limits, resident, grid_window, grid_warning)
    decision = rules.decide_due(
        now=now, last_activity=resident.last_activity_at, watch_from=resident.watch_from, limits=limits,
        away_until=resident.away_until, away_until_activity=resident.away_until_activity,
        alarm_open=is_open,
    )
    if decision.action is rules.DueAction.RAISE:
        devices = session.execute(select(Device.online, Device.offline_due_at)
                                  .where(Device.resident_id == resident.id)).all()
        values = _inactivity_alarm(resident, limits, now, policy, [(online, due) for online, due in devices])
        alarm_id = alarms.open_alarm(session, AlarmKind.INACTIVITY, now, reason=values["reason"],
                                     reason_code=values["reason_code"], reason_params=values["reason_params"],
                                     resident_id=resident.id, last_activity_at=resident.last_activity_at,
                                     devices_offline=values["devices_offline"])
        if alarm_id is not None:
            result.raised.append(alarm_id)
        resident.due_at = None
    elif decision.action is rules.DueAction.SUSPEND:
        resident.due_at = None
    else:
        resident.due_at = decision.due_at


def _inactivity_alarm(resident: Resident, limits: rules.Limits, now: datetime, policy: WatchPolicy,
                      devices: list[tuple[bool, datetime | None]]) -> dict[str, Any]:
    """The values of the inactivity alarm of ``resident`` (its reason, whether their devices are offline)."""
    offline = bool(devices) and all(not online or (due is not None and due <= now) for online, due in devices)
    start = rules.watch_start(resident.last_activity_at, resident.watch_from)
    hours = (now - start).total_seconds() / 3600 if start else limits.window.total_seconds() / 3600
    params = {"hours": round(hours, 1), "window": limits.window.total_seconds() / 3600,
              "last": wording.instant(resident.last_activity_at), "devices_offline": offline}
    reason = _reason("inactivity", params, policy)
    return {"resident_id": resident.id, "reason": reason, "reason_code": "inactivity", "reason_params": params,
            "last_activity_at": resident.last_activity_at, "devices_offline": offline}


def _open_inactivity_alarms(session: Session, alarms_: list[dict[str, Any]], now: datetime) -> list[int]:
    """Open the alarms in a few statements; returns the ids of those opened (an alarm already open for a
    resident, committed by another process meanwhile, is skipped by the unique ``open_key``). Each
    opened alarm gets its history row and audit entry, and its chain starts now (the escalation policy
    copied in, ``next_action_at`` = now), as :func:`alerts.alarms.open_alarm` does for one."""
    if not alarms_:
        return []
    kind = AlarmKind.INACTIVITY
    policy = alarms.snapshot_policy(session, kind)
    values = [{"kind": kind, "severity": alarms.SEVERITY[kind], "state": AlarmState.OPEN,
               "open_key": alarms.open_key(kind, resident_id=a["resident_id"]), "resident_id": a["resident_id"],
               "device_id": None, "system_key": None, "reason": a["reason"], "reason_code": a["reason_code"],
               "reason_params": a["reason_params"], "devices_offline": a["devices_offline"],
               "opened_at": now, "last_activity_at": a["last_activity_at"], "auto_resolved": False,
               "policy": policy, "next_action_at": now} for a in alarms_]
    if session.get_bind().dialect.name == "postgresql":
        opened = _open_with_arrays(session, values)
    else:
        table = table_of(Alarm)
        statement = insert_ignoring_conflicts(table, session.get_bind().dialect, ["open_key"]).returning(
            table.c.id, table.c.resident_id)
        opened = [tuple(r) for r in session.execute(statement, values).all()]
    reasons = {a["resident_id"]: a["reason"] for a in alarms_}
    if opened and session.get_bind().dialect.name == "postgresql":
        _history_with_arrays(session, [a for a, _ in opened], [reasons[r] for _, r in opened], now)
    elif opened:
        session.execute(insert(table_of(AlarmTransition)), [
            {"alarm_id": alarm_id, "at": now, "action": "opened", "actor": "shouwang", "detail": reasons[rid]}
            for alarm_id, rid in opened])
        session.execute(insert(table_of(AuditEntry)), [
            {"at": now, "actor": "shouwang", "action": "alarm.opened", "target": f"alarm:{alarm_id}",
             "detail": {"detail": reasons[rid]}} for alarm_id, rid in opened])
    if opened:
        log.warning("inactivity alarms raised", extra={"count": len(opened), "alarms": [a for a, _ in opened][:50]})
    return [alarm_id for alarm_id, _ in opened]


# PostgreSQL: a batch as a few array parameters (unnest), whatever its size: nothing for the driver to
# split or convert per row, one statement each
_INSERT_ALARMS = text(
    "INSERT INTO alarms (kind, severity, state, open_key, resident_id, reason, reason_code, reason_params, "
    "devices_offline, opened_at, last_activity_at, auto_resolved, policy, next_action_at, step, cycle, "
    "escalation_token) "
    "SELECT :kind, :severity, :state, :key_prefix || v.rid, v.rid, v.reason, :code, CAST(v.params AS json), "
    "v.offline, :now, v.last, false, CAST(:policy AS json), :now, -1, 0, 0 "
    "FROM unnest(CAST(:rids AS int[]), CAST(:reasons AS text[]), CAST(:params AS text[]), CAST(:offline AS bool[]), "
    "CAST(:last AS timestamptz[])) AS v(rid, reason, params, offline, last) "
    "ON CONFLICT (open_key) DO NOTHING RETURNING id, resident_id")
_INSERT_HISTORY = text(
    "INSERT INTO alarm_transitions (alarm_id, at, action, actor, detail) "
    "SELECT v.id, :now, 'opened', 'shouwang', v.detail "
    "FROM unnest(CAST(:ids AS int[]), CAST(:details AS text[])) AS v(id, detail)")
_INSERT_AUDIT = text(
    "INSERT INTO audit_log (at, actor, action, target, detail) "
    "SELECT :now, 'shouwang', 'alarm.opened', 'alarm:' || v.id, json_build_object('detail', v.detail) "
    "FROM unnest(CAST(:ids AS int[]), CAST(:details AS text[])) AS v(id, detail)")
_UPDATE_DEADLINES = text(
    "UPDATE residents SET due_at = v.due FROM unnest(CAST(:rids AS int[]), CAST(:dues AS timestamptz[])) "
    "AS v(rid, due) WHERE residents.id = v.rid")


def _open_with_arrays(session: Session, values: list[dict[str, Any]]) -> list[tuple[int, int]]:
    first = values[0]
    prefix = alarms.open_key(AlarmKind.INACTIVITY, resident_id=0).removesuffix("0")  # the same key, per row in SQL
    params = {"key_prefix": prefix, "kind": str(first["kind"]), "severity": str(first["severity"]),
              "state": str(first["state"]),
              "now": first["opened_at"], "policy": json.dumps(first["policy"]) if first["policy"] else None,
              "code": first["reason_code"], "params": [json.dumps(v["reason_params"]) for v in values],
              "rids": [v["resident_id"] for v in values], "reasons": [v["reason"] for v in values],
              "offline": [v["devices_offline"] for v in values], "last": [v["last_activity_at"] for v in values]}
    return [(int(a), int(r)) for a, r in session.execute(_INSERT_ALARMS, params).all()]


def _history_with_arrays(session: Session, ids: list[int], details: list[str], now: datetime) -> None:
    session.execute(_INSERT_HISTORY, {"now": now, "ids": ids, "details": details})
    session.execute(_INSERT_AUDIT, {"now": now, "ids": ids, "details": details})


def _activity_on_open_alarms(session: Session, now: datetime, policy: WatchPolicy, result: TickResult) -> int:
    query = (
        select(Alarm, Resident)
        .join(Resident, Alarm.resident_id == Resident.id)
        .where(Alarm.kind.in_((AlarmKind.INACTIVITY, AlarmKind.ROUTINE, *alarms.NOTICE_KINDS)),
               Alarm.state != AlarmState.RESOLVED, Resident.last_activity_at.isnot(None),
               ~dwell_step.is_dwell_alarm(),  # only activity outside the bathroom ends it (alerts.dwell_step)
               or_(Alarm.last_activity_at.is_(None), Resident.last_activity_at > Alarm.last_activity_at),
               or_(Alarm.activity_seen_at.is_(None), Resident.last_activity_at > Alarm.activity_seen_at))
    )
    rows = session.execute(claim(query, session.get_bind().dialect, of=Alarm)).all()
    for alarm, resident in rows:
        guarded(session, "alarm", alarm.id, partial(_activity_on_alarm, session, alarm, resident, now, policy, result))
    return len(rows)


def _activity_on_alarm(session: Session, alarm: Alarm, resident: Resident, now: datetime, policy: WatchPolicy,
                       result: TickResult) -> None:
    action = rules.on_activity_during_alarm(
        snapshot=alarm.last_activity_at, activity_at=resident.last_activity_at,
        # a notice (rhythm, early warning) calls nobody to the door: movement always ends it
        responders_called_at=None if alarm.kind in alarms.NOTICE_KINDS else alarm.responders_called_at,
        acknowledged=alarm.state == AlarmState.ACKNOWLEDGED and alarm.kind not in alarms.NOTICE_KINDS,
    )
    assert resident.last_activity_at is not None
    when = _local(resident.last_activity_at, policy)
    if action is rules.ActivityAction.AUTO_RESOLVE:
        transitions.resolved_by_activity(session, alarm, now, note=f"movement at {when}")
        result.auto_resolved.append(alarm.id)
    elif action is rules.ActivityAction.RECORD:
        transitions.activity_recorded(session, alarm, now, activity_at=resident.last_activity_at,
                                      note=f"movement at {when}")
        result.activity_noted.append(alarm.id)


def _devices_offline(session: Session, now: datetime, policy: WatchPolicy, result: TickResult) -> int:
    query = (
        select(Device)
        .where(Device.online.is_(True), Device.offline_due_at.isnot(None), Device.offline_due_at <= now)
        .order_by(Device.offline_due_at)
        .limit(CLAIM_BATCH)
    )
    devices = list(session.scalars(claim(query, session.get_bind().dialect)))
    covered_devices, covered_homes = (infrastructure.covered(session, now, policy.incidents.window) if devices
                                      else (set(), set()))
    for device in devices:
        if device.id in covered_devices or device.resident_id in covered_homes:
            # an open infrastructure incident lists it: no offline alarm of its own; asked again later
            device.offline_due_at = now + policy.incidents.window
            continue
        guarded(session, "device", device.id, partial(_device_offline, session, device, now, policy, result),
                partial(setattr, device, "offline_due_at", now + PUSH_BACK))
    return len(devices)


def _device_offline(session: Session, device: Device, now: datetime, policy: WatchPolicy, result: TickResult) -> None:
    due = rules.device_offline_due_at(last_seen=device.last_seen_at, availability=device.availability,
                                      availability_at=device.availability_at, limits=policy.device_limits)
    if due is None or due > now:
        device.offline_due_at = due
        return
    device.online = False
    code, params = "device_never_heard", dict[str, Any](device=device.external_id)
    if device.availability == "offline" and device.availability_at is not None:
        code, params = "device_reported_offline", {**params, "at": wording.instant(device.availability_at)}
    elif device.last_seen_at is not None:
        code, params = "device_silent", {**params, "since": wording.instant(device.last_seen_at)}
    alarm_id = alarms.open_alarm(session, AlarmKind.DEVICE_OFFLINE, now, reason=_reason(code, params, policy),
                                 reason_code=code, reason_params=params, resident_id=device.resident_id,
                                 device_id=device.id)
    if alarm_id is not None:
        result.devices_offline.append(alarm_id)


def _devices_back(session: Session, now: datetime, policy: WatchPolicy, result: TickResult) -> int:
    query = select(Device).where(Device.online.is_(False)).limit(CLAIM_BATCH)
    devices = list(session.scalars(claim(query, session.get_bind().dialect)))
    for device in devices:
        guarded(session, "device", device.id, partial(_device_back, session, device, now, policy, result))
    return len(devices)


def _device_back(session: Session, device: Device, now: datetime, policy: WatchPolicy, result: TickResult) -> None:
    if not rules.device_is_back(last_seen=device.last_seen_at, availability=device.availability, now=now,
                                limits=policy.device_limits):
        return
    device.online = True
    device.offline_due_at = rules.device_offline_due_at(
        last_seen=device.last_seen_at, availability=device.availability,
        availability_at=device.availability_at, limits=policy.device_limits)
    alarm = alarms.find_open(session, AlarmKind.DEVICE_OFFLINE, device_id=device.id)
    if alarm is not None:
        transitions.resolved_by_source(session, alarm, now, outcome=Outcome.DEVICE_BACK,
                                       note=f"heard from at {_local(device.last_seen_at or now, policy)}")
        result.devices_back.append(alarm.id)


def _battery(session: Session, now: datetime, policy: WatchPolicy, result: TickResult) -> int:
    threshold = policy.device_limits.low_battery_percent
    open_for_device = select(Alarm.id).where(Alarm.device_id == Device.id, Alarm.kind == AlarmKind.LOW_BATTERY,
                                             Alarm.state != AlarmState.RESOLVED).exists()
    candidates = session.scalars(select(Device).where(Device.battery < threshold, ~open_for_device)
                                 .limit(CLAIM_BATCH)).all()
    for device in candidates:
        guarded(session, "device", device.id, partial(_battery_low, session, device, now, threshold, policy, result))
    open_low = session.execute(
        select(Alarm, Device).join(Device, Alarm.device_id == Device.id)
        .where(Alarm.kind == AlarmKind.LOW_BATTERY, Alarm.state != AlarmState.RESOLVED)
    ).all()
    for alarm, device in open_low:
        if rules.battery_recovered(device.battery, policy.device_limits):
            guarded(session, "alarm", alarm.id, partial(
                transitions.resolved_by_source, session, alarm, now, outcome=Outcome.BATTERY_OK,
                note=f"battery at {device.battery} %"))
    return len(candidates)


def _battery_low(session: Session, device: Device, now: datetime, threshold: int, policy: WatchPolicy,
                 result: TickResult) -> None:
    params = {"device": device.external_id, "battery": device.battery, "threshold": threshold}
    alarm_id = alarms.open_alarm(
        session, AlarmKind.LOW_BATTERY, now, resident_id=device.resident_id, device_id=device.id,
        reason=_reason("low_battery", params, policy), reason_code="low_battery", reason_params=params)
    if alarm_id is not None:
        result.battery_alarms.append(alarm_id)


def _broker_alarm(engine: Engine, now: datetime, policy: WatchPolicy, ingest: IngestHealth,
                  result: TickResult) -> None:
    key = f"broker:{ingest.name}"
    with Session(engine, expire_on_commit=False) as session, session.begin():
        alarm = alarms.find_open(session, AlarmKind.SYSTEM, system_key=key)
        if rules.broker_blind(ingest.disconnected_since, now, policy.broker_down_after):
            if alarm is None:
                assert ingest.disconnected_since is not None
                since = _local(ingest.disconnected_since, policy)
                params = {"consumer": ingest.name, "since": wording.instant(ingest.disconnected_since)}
                alarm_id = alarms.open_alarm(
                    session, AlarmKind.SYSTEM, now, system_key=key, reason=_reason("broker_lost", params, policy),
                    reason_code="broker_lost", reason_params=params)
                if alarm_id is not None:
                    log.error("system alarm: broker unreachable", extra={"alarm": alarm_id, "since": since})
                    result.system_raised.append(alarm_id)
        elif ingest.connected and alarm is not None:
            transitions.resolved_by_source(session, alarm, now, outcome=Outcome.SYSTEM_RECOVERED,
                                           note="consumer reconnected to the broker")
            result.system_resolved.append(alarm.id)


def heartbeat(session: Session, name: str, now: datetime, detail: dict[str, Any] | None = None) -> None:
    row = session.get(WatchStatus, name)
    if row is None:
        session.add(WatchStatus(name=name, updated_at=now, detail=detail or {}))
    else:
        row.updated_at = now
        row.detail = detail or {}


def prune(engine: Engine, now: datetime, retention: timedelta, chunk: int = 10000) -> int:
    """Delete what is older than the retention, in chunks: raw events, quarantined messages, the counts of
    what the quarantine did not keep, and the provider events seen (a replay older than the retention is no
    longer recognised; the alarms it could act on are long closed by then)."""
    cutoff = now - retention
    removed = 0
    for key, at in ((Event.id, Event.received_at), (QuarantinedMessage.id, QuarantinedMessage.received_at),
                    (QuarantineOverflow.id, QuarantineOverflow.last_at),
                    (WebhookReceipt.key, WebhookReceipt.received_at)):
        while True:
            with Session(engine) as session, session.begin():
                keys = select(key).where(at < cutoff).limit(chunk).scalar_subquery()
                count = changed(session, delete(key.class_).where(key.in_(keys)))
            removed += count
            if count < chunk:
                break
    return removed


def _reason(code: str, params: dict[str, Any], policy: WatchPolicy) -> str:
    """An alarm's reason in the configured language, local time (kept on the alarm for the SMS and call)."""
    return wording.reason(code, params, policy.language, policy.zone)


def _local(instant: datetime, policy: WatchPolicy) -> str:
    return instant.astimezone(policy.zone).strftime("%Y-%m-%d %H:%M")
