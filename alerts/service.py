"""The rule tick and the operations on alarms: what the scheduler and the API call.

Each tick step runs in its own short transaction and claims its rows (``FOR UPDATE SKIP LOCKED`` on
PostgreSQL, one writer at a time on SQLite), so several processes never raise the same alarm; the
unique ``open_key`` of an alarm makes that a guarantee of the database. The decisions are made by the
pure functions of :mod:`alerts.rules`; ``now`` is read once by the caller and passed in.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from functools import partial
from typing import Any

from sqlalchemy import Engine, delete, func, or_, select
from sqlalchemy.orm import Session

from alerts import alarms, detection, dwell_step, inactivity, incidents, infrastructure, rules, transitions, wording
from alerts.db import changed, claim, guarded, insert_for, is_postgres
from alerts.escalation.templates import Language
from alerts.models import (
    Alarm,
    AlarmKind,
    AlarmState,
    Device,
    Event,
    Gateway,
    Outcome,
    QuarantinedMessage,
    QuarantineOverflow,
    Resident,
    WatchStatus,
    WebhookReceipt,
)

log = logging.getLogger(__name__)

CLAIM_BATCH = 1000
MAX_BATCHES_PER_TICK = 100
RAISE_WORKERS = 2  # connections raising a mass silence at once (PostgreSQL): the database has two cores
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
            _run(engine, lambda s: _incidents(s, now, policy, result, process))
        _raise_due_inactivity(engine, now, policy, result)
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


def deadline_step(engine: Engine, now: datetime, policy: WatchPolicy, ingest: IngestHealth | None = None) -> list[int]:
    """The tick's inactivity step alone, at an inactivity deadline between two ticks
    (:class:`alerts.scheduler.Watch`); the ids of the alarms raised. As in the tick, nothing is raised while
    this process's consumer is cut off from the broker or still draining its backlog."""
    if ingest is not None and not (ingest.connected and ingest.caught_up):
        return []
    result = TickResult()
    _raise_due_inactivity(engine, now, policy, result)
    return result.raised


def _run(engine: Engine, step: Callable[[Session], Any]) -> Any:
    with Session(engine, expire_on_commit=False) as session, session.begin():
        return step(session)


def _in_batches(engine: Engine, step: Callable[[Session], int]) -> None:
    for _ in range(MAX_BATCHES_PER_TICK):
        if _run(engine, step) < CLAIM_BATCH:
            return


INCIDENTS_MARK = "incidents:{process}"  # the watch_status row of this process's last correlated-silence pass


def _incidents(session: Session, now: datetime, policy: WatchPolicy, result: TickResult, process: str) -> None:
    """Correlated silences: open, merge and resolve infrastructure incidents (alerts.infrastructure). The pass
    may read every device of the district (when a silence could be found or an incident is open), so a
    process runs it once every ``policy.incidents.every`` of the service clock, and at once when a gateway's
    own report changed (offline or back, :func:`_gateways_said`)."""
    said, name = _gateways_said(session), INCIDENTS_MARK.format(process=process)
    mark = session.get(WatchStatus, name)
    if (mark is not None and mark.updated_at <= now < mark.updated_at + policy.incidents.every
            and (mark.detail or {}).get("gateways") == said):
        return
    heartbeat(session, name, now, {"gateways": said})
    found = infrastructure.step(session, now, policy.incidents, policy.limits.window,
                                local=lambda t: _local(t, policy),
                                offline_after=policy.device_limits.offline_after)
    for name in ("opened", "resolved", "merged", "explained"):
        getattr(result.incidents, name).extend(getattr(found, name))


def _gateways_said(session: Session) -> list[Any]:
    """What the gateways last reported of themselves: the latest report's instant and those offline."""
    latest = session.scalar(select(func.max(Gateway.availability_at)))
    offline = session.scalars(select(Gateway.id).where(Gateway.availability == "offline").order_by(Gateway.id))
    return [latest.isoformat() if latest is not None else None, list(offline)]


def _raise_due_inactivity(engine: Engine, now: datetime, policy: WatchPolicy, result: TickResult) -> None:
    """Due residents claimed and raised in batches (:mod:`alerts.inactivity`). A full batch means a mass
    silence: the next batches are larger and, on PostgreSQL, raised by ``RAISE_WORKERS`` connections at
    once (each claims its own residents, ``SKIP LOCKED``), so the database works on one batch while this
    process prepares the next."""
    words = inactivity.Words(policy.language, policy.zone)
    step = partial(inactivity.raise_due, now=now, default=policy.limits, words=words, raised=result.raised)
    if _run(engine, partial(step, batch=inactivity.CLAIM_BATCH)) < inactivity.CLAIM_BATCH:
        return
    workers = RAISE_WORKERS if is_postgres(engine) else 1
    batches = iter(range(MAX_BATCHES_PER_TICK))

    def worker() -> None:
        for _ in batches:  # one shared budget of batches; a short batch: nothing left for this worker
            if _run(engine, partial(step, batch=inactivity.MAX_BATCH)) < inactivity.MAX_BATCH:
                return

    if workers == 1:
        worker()
        return
    with ThreadPoolExecutor(workers, thread_name_prefix="raise") as pool:
        for done in [pool.submit(worker) for _ in range(workers)]:
            done.result()


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
    """Write the status row ``name`` (an upsert: two ticks of the same name never race for its first insert)."""
    statement = insert_for(session.get_bind().dialect)(WatchStatus).values(name=name, updated_at=now,
                                                                           detail=detail or {})
    session.execute(statement.on_conflict_do_update(
        index_elements=[WatchStatus.name],
        set_={"updated_at": statement.excluded.updated_at, "detail": statement.excluded.detail}))


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
