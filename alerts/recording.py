"""Record a batch of observations in one transaction: events, device health, the residents' last
activity and deadline, immediate panic alarms, and the quarantine.

The consumer calls :func:`record_batch` and acknowledges the messages to the broker only after the
commit. Writes are idempotent where a redelivery could repeat them: a DUP message whose delivery key
is already stored is dropped, a repeated native event id is inserted once (``ON CONFLICT DO NOTHING``),
and last activity / last seen only ever move forward.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta, tzinfo
from typing import Any

from sqlalchemy import Boolean, Integer, String, case, func, insert, or_, select, update
from sqlalchemy.orm import Session

from alerts import rules, wording
from alerts.alarms import open_alarm
from alerts.db import (
    BatchParameters,
    UTCDateTime,
    insert_rows,
    insert_rows_ignoring_conflicts,
    is_postgres,
    one_of,
)
from alerts.escalation.templates import Language
from alerts.limits import LIMIT_COLUMNS, limits_from, with_grid
from alerts.models import (
    AlarmKind,
    Device,
    DeviceKind,
    Event,
    QuarantinedMessage,
    Resident,
    table_of,
)
from alerts.observations import Observation, Quarantined

QUARANTINE_PAYLOAD_LIMIT = 4096
LOGGED_PER_BATCH = 20  # quarantined messages logged one by one per batch (all are counted and stored)
# how far before the deadline a device's report would set a stored offline deadline may stay (see
# _update_devices); at most a tenth of the offline limit
OFFLINE_DUE_SLACK = timedelta(seconds=60)

# the columns of an event row, in the order _events builds them
EVENT_COLUMNS = ("device_id", "resident_id", "kind", "is_activity", "occurred_at", "received_at", "device_time",
                 "clock_skew", "value", "event_uid", "delivery_key", "topic")


@dataclass(frozen=True)
class IngestPolicy:
    limits: rules.Limits
    device_limits: rules.DeviceLimits
    clock_skew: timedelta
    redelivery_window: timedelta
    language: Language = "zh"  # notify.language and the local time zone: the words of a panic alarm
    zone: tzinfo = wording.DEFAULT_ZONE


@dataclass
class BatchResult:
    stored: int = 0
    activity: int = 0
    duplicates: int = 0
    quarantined: Counter[str] = field(default_factory=Counter)
    kinds: Counter[str] = field(default_factory=Counter)
    clock_skew: int = 0
    panic_alarms: list[int] = field(default_factory=list)
    # (topic, reason, detail) of quarantined messages, for the log (the first few of a batch)
    rejected: list[tuple[str, str, str]] = field(default_factory=list)


@dataclass
class _DeviceRow:
    id: int
    kind: str
    resident_id: int | None
    occupied: bool | None
    window_s: float


@dataclass
class _DeviceUpdate:
    last_seen: datetime
    occupied: bool | None = None
    battery: int | None = None
    availability: str | None = None
    availability_at: datetime | None = None


def record_batch(session: Session, observations: Sequence[Observation], quarantined: Sequence[Quarantined],
                 now: datetime, policy: IngestPolicy) -> BatchResult:
    """Store one batch; ``now`` is the receive time of the batch. Does not commit."""
    result = BatchResult()
    seen = _stored_delivery_keys(session, observations, quarantined, now - policy.redelivery_window)
    fresh = [o for o in observations if not (o.redelivery and o.delivery_key in seen)]
    held = [q for q in quarantined if not (q.redelivery and q.delivery_key in seen)]
    result.duplicates += len(observations) - len(fresh) + len(quarantined) - len(held)

    devices = _load_devices(session, {o.device for o in fresh}, policy.limits)
    known: list[Observation] = []
    for obs in fresh:
        if obs.device in devices:
            known.append(obs)
        else:
            held.append(Quarantined(obs.topic, obs.payload, "unknown_device",
                                    f"no device with external id {obs.device!r} (adopt it to accept it)",
                                    obs.delivery_key, obs.device))
    rows, device_updates = _events(known, devices, now, policy, result)
    inserted = _insert_events(session, rows, result)
    _update_devices(session, device_updates, policy.device_limits)
    _apply_activity(session, inserted, devices, now, result, policy)
    _quarantine(session, held, now, result)
    return result


def _stored_delivery_keys(session: Session, observations: Sequence[Observation],
                          quarantined: Sequence[Quarantined], since: datetime) -> set[str]:
    keys = {o.delivery_key for o in observations if o.redelivery}
    keys |= {q.delivery_key for q in quarantined if q.redelivery}
    if not keys:
        return set()
    found = set(session.scalars(select(Event.delivery_key).where(
        Event.delivery_key.in_(keys), Event.received_at >= since)))
    found |= set(session.scalars(select(QuarantinedMessage.delivery_key).where(
        QuarantinedMessage.delivery_key.in_(keys), QuarantinedMessage.received_at >= since)))
    return found


def _load_devices(session: Session, external_ids: set[str], default: rules.Limits) -> dict[str, _DeviceRow]:
    if not external_ids:
        return {}
    query = (
        with_grid(select(Device.external_id, Device.id, Device.kind, Device.resident_id, Device.occupied,
                         *LIMIT_COLUMNS).outerjoin(Resident, Device.resident_id == Resident.id))
        .where(one_of(Device.external_id, sorted(external_ids), session.get_bind().dialect, "external_ids"))
    )
    if is_postgres(session.get_bind().dialect):
        # The lock _update_devices takes anyway, taken here (in id order, as there): a device deleted
        # meanwhile is not found, and one found cannot be deleted before this commits, so no event is
        # stored for a device that is gone (events have no foreign key to devices).
        query = query.order_by(Device.id).with_for_update(key_share=True, of=Device)
    found = {}
    for ext, dev_id, kind, resident_id, occupied, *overrides in session.execute(query):
        limits = limits_from(default, *overrides)
        found[ext] = _DeviceRow(dev_id, kind, resident_id, occupied, limits.window.total_seconds())
    return found


def _events(known: list[Observation], devices: dict[str, _DeviceRow], now: datetime, policy: IngestPolicy,
            result: BatchResult) -> tuple[list[dict[str, Any]], dict[int, _DeviceUpdate]]:
    rows: list[dict[str, Any]] = []
    updates: dict[int, _DeviceUpdate] = {}
    uids: set[tuple[int, str]] = set()
    for obs in known:
        device = devices[obs.device]
        if obs.event_uid is not None:
            if (device.id, obs.event_uid) in uids:
                result.duplicates += 1
                continue
            uids.add((device.id, obs.event_uid))
        occurred, skewed = rules.occurred_at(obs.device_time, now, policy.clock_skew)
        is_activity = rules.is_observation(obs.kind, obs.occupied, obs.change_only, device.occupied)
        if obs.occupied is not None:
            device.occupied = obs.occupied
        rows.append({
            "device_id": device.id, "resident_id": device.resident_id, "kind": obs.kind,
            "is_activity": is_activity, "occurred_at": occurred, "received_at": now,
            "device_time": obs.device_time, "clock_skew": skewed, "value": obs.value,
            "event_uid": obs.event_uid, "delivery_key": obs.delivery_key, "topic": obs.topic[:300],
        })
        update = updates.get(device.id)
        if update is None:
            update = updates[device.id] = _DeviceUpdate(last_seen=min(occurred, now))
        update.last_seen = max(update.last_seen, min(occurred, now))
        update.occupied = device.occupied
        if obs.battery is not None:
            update.battery = obs.battery
        if obs.availability is not None:
            update.availability, update.availability_at = obs.availability, now
        result.clock_skew += skewed
    return rows, updates


def _insert_events(session: Session, rows: list[dict[str, Any]], result: BatchResult) -> list[dict[str, Any]]:
    """Insert the event rows; returns those actually inserted (a repeated event id is not)."""
    plain = [r for r in rows if r["event_uid"] is None]
    with_uid = [r for r in rows if r["event_uid"] is not None]
    inserted = list(plain)
    insert_rows(session, table_of(Event), EVENT_COLUMNS, [_as_tuple(r) for r in plain])
    if with_uid:
        new = set(insert_rows_ignoring_conflicts(
            session, table_of(Event), EVENT_COLUMNS, [_as_tuple(r) for r in with_uid],
            index_elements=["device_id", "event_uid"], index_where=Event.event_uid.isnot(None),
            returning=["device_id", "event_uid"],
        ))
        for row in with_uid:
            if (row["device_id"], row["event_uid"]) in new:
                inserted.append(row)
        result.duplicates += len(with_uid) - len(new)
    result.stored += len(inserted)
    for row in inserted:
        result.kinds[row["kind"]] += 1
        result.activity += row["is_activity"]
    return inserted


def _as_tuple(row: dict[str, Any]) -> tuple[Any, ...]:
    return tuple(row[name] for name in EVENT_COLUMNS)


def _offline_due_slack(limits: rules.DeviceLimits) -> timedelta:
    return min(OFFLINE_DUE_SLACK, limits.offline_after / 10)


def _update_devices(session: Session, updates: dict[int, _DeviceUpdate], limits: rules.DeviceLimits) -> None:
    """Last seen only moves forward. The offline deadline follows it, except that a deadline already
    stored within ``OFFLINE_DUE_SLACK`` before the new one is kept: ``offline_due_at`` is indexed, so
    rewriting it on every report makes every device UPDATE a non-HOT one (a new entry in each index of
    ``devices``). A deadline kept that way is early, never late: the tick re-derives the deadline from
    ``last_seen_at`` before declaring a device offline (``service._devices_offline``) and reschedules it.
    A row that nothing in the batch changes is not updated at all."""
    if not updates:
        return
    slack = _offline_due_slack(limits)
    params = []
    for device_id in sorted(updates):  # a fixed order: two consumers never deadlock on devices
        u = updates[device_id]
        due = rules.device_offline_due_at(last_seen=u.last_seen, availability=u.availability,
                                          availability_at=u.availability_at, limits=limits)
        params.append({"b_id": device_id, "b_seen": u.last_seen, "b_due": due,
                       "b_keep": due - slack if due is not None else None, "b_occupied": u.occupied,
                       "b_battery": u.battery, "b_avail": u.availability, "b_avail_at": u.availability_at})
    b = BatchParameters(session.get_bind().dialect, "device_batch", {
        "b_id": Integer(), "b_seen": UTCDateTime(), "b_due": UTCDateTime(), "b_keep": UTCDateTime(),
        "b_occupied": Boolean(), "b_battery": Integer(), "b_avail": String(), "b_avail_at": UTCDateTime(),
    })
    newer = or_(Device.last_seen_at.is_(None), Device.last_seen_at < b.ref("b_seen"))
    # the stored deadline is off from the new one by more than the slack (or either is unknown)
    due_moves = or_(Device.offline_due_at.is_(None), b.ref("b_keep").is_(None),
                    Device.offline_due_at < b.ref("b_keep"), Device.offline_due_at > b.ref("b_due"))
    changes = or_(
        newer,
        b.ref("b_avail").isnot(None),
        b.ref("b_occupied").isnot(None) & Device.occupied.is_distinct_from(b.ref("b_occupied")),
        b.ref("b_battery").isnot(None) & Device.battery.is_distinct_from(b.ref("b_battery")),
    )
    statement = (
        update(Device)
        .where(Device.id == b.ref("b_id"))
        .where(changes)
        .values(
            last_seen_at=case((newer, b.ref("b_seen")), else_=Device.last_seen_at),
            offline_due_at=case(
                (b.ref("b_avail").isnot(None), b.ref("b_due")),
                (newer & due_moves, b.ref("b_due")),
                else_=Device.offline_due_at,
            ),
            occupied=func.coalesce(b.ref("b_occupied"), Device.occupied),
            battery=func.coalesce(b.ref("b_battery"), Device.battery),
            availability=func.coalesce(b.ref("b_avail"), Device.availability),
            availability_at=func.coalesce(b.ref("b_avail_at"), Device.availability_at),
        )
        .execution_options(synchronize_session=False)
    )
    b.execute(session, statement, params, table_of(Device), "b_id")


def _apply_activity(session: Session, inserted: list[dict[str, Any]], devices: dict[str, _DeviceRow],
                    now: datetime, result: BatchResult, policy: IngestPolicy) -> None:
    """Move the residents' last activity for the inserted activity rows; open panic alarms."""
    by_id = {d.id: d for d in devices.values()}
    latest: dict[int, tuple[datetime, float]] = {}
    panics: dict[tuple[int | None, int], datetime] = {}
    for row in inserted:
        device = by_id[row["device_id"]]
        if not row["is_activity"]:
            continue
        if device.resident_id is not None:
            instant = rules.activity_instant(row["occurred_at"], now)
            previous = latest.get(device.resident_id)
            if previous is None or instant > previous[0]:
                latest[device.resident_id] = (instant, device.window_s)
        if row["kind"] == "button" and device.kind == DeviceKind.BUTTON:
            panics.setdefault((device.resident_id, device.id), row["occurred_at"])
    _move_last_activity(session, latest)
    for (resident_id, device_id), pressed_at in panics.items():
        params = {"at": wording.instant(pressed_at)}
        alarm_id = open_alarm(
            session, AlarmKind.PANIC, now, reason_code="panic", reason_params=params,
            reason=wording.reason("panic", params, policy.language, policy.zone),
            resident_id=resident_id, device_id=None if resident_id is not None else device_id,
            last_activity_at=pressed_at,
        )
        if alarm_id is not None:
            result.panic_alarms.append(alarm_id)


def _move_last_activity(session: Session, latest: dict[int, tuple[datetime, float]]) -> None:
    """Last activity only moves forward; the deadline follows unless a later restart (a person's
    resolution) already set it. Activity ends away mode."""
    if not latest:
        return
    params = [
        {"b_id": rid, "b_ts": ts, "b_due": ts + timedelta(seconds=window)}
        for rid, (ts, window) in sorted(latest.items())
    ]
    b = BatchParameters(session.get_bind().dialect, "resident_batch",
                        {"b_id": Integer(), "b_ts": UTCDateTime(), "b_due": UTCDateTime()})
    statement = (
        update(Resident)
        .where(Resident.id == b.ref("b_id"))
        .where(or_(Resident.last_activity_at.is_(None), Resident.last_activity_at < b.ref("b_ts")))
        .values(
            last_activity_at=b.ref("b_ts"),
            due_at=case(
                (Resident.watch_from.isnot(None) & (Resident.watch_from >= b.ref("b_ts")), Resident.due_at),
                else_=b.ref("b_due"),
            ),
            away_until_activity=False,
            away_until=None,
        )
        .execution_options(synchronize_session=False)
    )
    b.execute(session, statement, params, table_of(Resident), "b_id")


def _quarantine(session: Session, held: list[Quarantined], now: datetime, result: BatchResult) -> None:
    if not held:
        return
    rows = [
        {"received_at": now, "topic": q.topic[:300], "reason": q.reason, "detail": q.detail[:2000],
         "payload": q.payload[:QUARANTINE_PAYLOAD_LIMIT], "payload_size": len(q.payload),
         "device_external_id": q.device[:200] if q.device else None, "delivery_key": q.delivery_key}
        for q in held
    ]
    session.execute(insert(QuarantinedMessage), rows)
    for q in held:
        result.quarantined[q.reason] += 1
    result.rejected.extend((q.topic[:300], q.reason, q.detail[:300]) for q in held[:LOGGED_PER_BATCH])
