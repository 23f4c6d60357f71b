"""Record a batch of observations in one transaction: events, device health, the residents' last
activity and deadline, immediate panic alarms, and the quarantine.

The consumer calls :func:`record_batch` and acknowledges the messages to the broker only after the
commit. Writes are idempotent where a redelivery could repeat them: a DUP message whose delivery key
is already stored is dropped, a repeated native event id is inserted once (``ON CONFLICT DO NOTHING``),
and last activity / last seen only ever move forward.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta, tzinfo
from typing import Any

from sqlalchemy import Boolean, Float, Integer, String, bindparam, case, func, insert, or_, select, update
from sqlalchemy.orm import Session
from sqlalchemy.types import TypeEngine

from alerts import gateways, rules, wording
from alerts.alarms import open_alarm
from alerts.db import (
    BatchParameters,
    UTCDateTime,
    driver_rows,
    insert_for,
    insert_rows,
    insert_rows_ignoring_conflicts,
    is_postgres,
    json_rows,
    one_of,
)
from alerts.escalation.templates import Language
from alerts.limits import LIMIT_COLUMNS, limits_from, window_seconds, with_grid
from alerts.models import (
    AlarmKind,
    Device,
    DeviceKind,
    Event,
    QuarantinedMessage,
    QuarantineOverflow,
    Resident,
    table_of,
)
from alerts.observations import Observation, Quarantined

QUARANTINE_PAYLOAD_LIMIT = 4096
OVERSIZED_PAYLOAD_PREFIX = 512  # an oversized payload is kept as this much of its start (enough to see who)
# the quarantine keeps this many messages per source (device, else topic) per hour, and this many in all;
# the rest are counted per hour, source and reason in quarantine_overflow (one publisher cannot fill the disk)
QUARANTINE_KEEP_PER_SOURCE = 20
QUARANTINE_KEEP_PER_HOUR = 2000
LOGGED_PER_BATCH = 20  # quarantined messages logged one by one per batch (all are counted and stored)
# how far before the deadline a device's report would set a stored offline deadline may stay (see
# _update_devices); at most a tenth of the offline limit
OFFLINE_DUE_SLACK = timedelta(seconds=60)
# a device with this many reports from the future within the period is listed for maintenance
CLOCK_SKEW_REPORTS = 3
CLOCK_SKEW_PERIOD = timedelta(hours=24)

# the columns of an event row, in the order _events builds them (a tuple: rows go to COPY as they are)
EVENT_COLUMNS = ("device_id", "resident_id", "kind", "is_activity", "occurred_at", "received_at", "device_time",
                 "clock_skew", "value", "event_uid", "delivery_key", "topic")
EventRow = tuple[Any, ...]
_EVENT_TYPES = {name: table_of(Event).c[name].type for name in EVENT_COLUMNS}
_DEVICE, _RESIDENT, _KIND, _ACTIVITY, _OCCURRED, _SKEW, _UID = (EVENT_COLUMNS.index(name) for name in (
    "device_id", "resident_id", "kind", "is_activity", "occurred_at", "clock_skew", "event_uid"))


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
    clock_skew_alarms: list[int] = field(default_factory=list)
    quarantine_dropped: int = 0  # quarantined messages only counted (over the quarantine's caps)
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
    clock_skew: int = 0  # reports of this batch whose device time was too far ahead


def record_batch(session: Session, observations: Sequence[Observation], quarantined: Sequence[Quarantined],
                 now: datetime, policy: IngestPolicy) -> BatchResult:
    """Store one batch; ``now`` is the receive time of the batch. Does not commit."""
    result = BatchResult()
    seen = _stored_delivery_keys(session, observations, quarantined, now - policy.redelivery_window)
    fresh = [o for o in observations if not (o.redelivery and o.delivery_key in seen)]
    held = [q for q in quarantined if not (q.redelivery and q.delivery_key in seen)]
    result.duplicates += len(observations) - len(fresh) + len(quarantined) - len(held)
    if any(o.kind == "gateway" for o in fresh):  # a gateway's own report (a Zigbee2MQTT bridge's state)
        held.extend(gateways.record_reports(session, [o for o in fresh if o.kind == "gateway"], now))
        fresh = [o for o in fresh if o.kind != "gateway"]

    nodes = {o.device for o in fresh if o.node}
    devices = _load_devices(session, {o.device for o in fresh}, nodes, policy.limits)
    known: list[Observation] = []
    for obs in fresh:
        if obs.device in devices:
            known.append(obs)
            continue
        under = sorted(ext for ext in devices if obs.node and ext.startswith(obs.device + "/"))
        if under:
            # a node's report (ESPHome status, Homie $state) applies to each device of the node
            known.extend(replace(obs, device=ext) for ext in under)
        else:
            held.append(Quarantined(obs.topic, obs.payload, "unknown_device",
                                    f"no device with external id {obs.device!r}"
                                    f"{' or under it' if obs.node else ''} (adopt it to accept it)",
                                    obs.delivery_key, obs.device))
    rows, device_updates = _events(known, devices, now, policy, result)
    if is_postgres(session.get_bind().dialect):
        gateways.heard_through(session, known, now)
        inserted = _store_postgres(session, rows, device_updates, devices, policy, result)
        _open_panics(session, inserted, devices, now, result, policy)
    else:
        inserted = _insert_events(session, rows, result)
        _update_devices(session, device_updates, policy.device_limits)
        gateways.heard_through(session, known, now)
        _apply_activity(session, inserted, devices, now, result, policy)
    _clock_skew_alarms(session, inserted, devices, now, policy, result)
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


def _load_devices(session: Session, external_ids: set[str], nodes: set[str],
                  default: rules.Limits) -> dict[str, _DeviceRow]:
    """The devices of ``external_ids``, and those whose id lies under one of ``nodes`` (``<node>/...``).

    PostgreSQL locks them (``FOR NO KEY UPDATE``, in id order): a device deleted meanwhile is not found, one
    found cannot be deleted before this commits (events have no foreign key to devices, so no event is stored
    for a device that is gone), and the batch's UPDATE of these rows later waits for nobody, so two consumers
    whose batches share devices queue here, in id order, and never deadlock."""
    if not external_ids:
        return {}
    dialect = session.get_bind().dialect
    if is_postgres(dialect) and not nodes:  # the hot path: one compiled statement, rows as plain tuples
        # no limits: the store statement computes the residents' deadlines itself (limits.window_seconds)
        statement = _compiled(dialect, "devices", lambda: _binary(
            _devices_query(dialect, [], nodes, with_limits=False), dialect, "external_ids"))
        found_rows = [(*row, None, None, None, None)
                      for row in driver_rows(session, statement, {"external_ids": list(external_ids)})]
    else:
        found_rows = list(session.execute(_devices_query(dialect, sorted(external_ids), nodes)))
    found = {}
    windows: dict[tuple[Any, ...], float] = {}  # the window of each combination of overrides, computed once
    for ext, dev_id, kind, resident_id, occupied, *overrides in found_rows:
        key = tuple(overrides)
        window_s = windows.get(key)
        if window_s is None:
            window_s = windows[key] = limits_from(default, *overrides).window.total_seconds()
        found[ext] = _DeviceRow(dev_id, kind, resident_id, occupied, window_s)
    return found


def _devices_query(dialect: Any, external_ids: list[str], nodes: set[str], with_limits: bool = True) -> Any:
    """The look-up of :func:`_load_devices` (on PostgreSQL the ids are the parameter ``external_ids``);
    ``with_limits``: with the overrides of each device's resident and grid (:data:`LIMIT_COLUMNS`)."""
    found_by = one_of(Device.external_id, external_ids, dialect, "external_ids")
    if nodes:
        found_by = or_(found_by, *(Device.external_id.startswith(node + "/", autoescape=True)
                                   for node in sorted(nodes)))
    columns = (Device.external_id, Device.id, Device.kind, Device.resident_id, Device.occupied)
    query: Any = select(*columns)
    if with_limits:
        query = with_grid(select(*columns, *LIMIT_COLUMNS).outerjoin(Resident, Device.resident_id == Resident.id))
    query = query.where(found_by)
    if is_postgres(dialect):
        query = query.order_by(Device.id).with_for_update(key_share=True, of=Device)  # FOR NO KEY UPDATE
    return query


def _binary(statement: Any, dialect: Any, *names: str) -> str:
    """``statement`` compiled, its parameters ``names`` (arrays) sent in binary: psycopg's text form of an
    array is built in Python, value by value."""
    text = str(statement.compile(dialect=dialect))
    for name in names:
        text = text.replace(f"%({name})s", f"%({name})b")
    return text


_COMPILED: dict[tuple[str, str], str] = {}


def _compiled(dialect: Any, name: str, build: Callable[[], str]) -> str:
    """The SQL text ``build`` makes for ``dialect`` (psycopg placeholders), made once per dialect and ``name``."""
    text = _COMPILED.get((dialect.name, name))
    if text is None:
        text = _COMPILED[(dialect.name, name)] = build()
    return text


def _events(known: list[Observation], devices: dict[str, _DeviceRow], now: datetime, policy: IngestPolicy,
            result: BatchResult) -> tuple[list[EventRow], dict[int, _DeviceUpdate]]:
    rows: list[EventRow] = []
    updates: dict[int, _DeviceUpdate] = {}
    uids: set[tuple[int, str]] = set()
    skew = policy.clock_skew
    for obs in known:
        device = devices[obs.device]
        if obs.event_uid is not None:
            if (device.id, obs.event_uid) in uids:
                result.duplicates += 1
                continue
            uids.add((device.id, obs.event_uid))
        occurred, skewed = rules.occurred_at(obs.device_time, now, skew)
        is_activity = rules.is_observation(obs.kind, obs.occupied, obs.change_only, device.occupied)
        if obs.occupied is not None:
            device.occupied = obs.occupied
        # in the order of EVENT_COLUMNS
        rows.append((device.id, device.resident_id, obs.kind, is_activity, occurred, now, obs.device_time, skewed,
                     obs.value, obs.event_uid, obs.delivery_key, obs.topic[:300]))
        seen = occurred if occurred < now else now
        update = updates.get(device.id)
        if update is None:
            update = updates[device.id] = _DeviceUpdate(last_seen=seen)
        elif seen > update.last_seen:
            update.last_seen = seen
        update.occupied = device.occupied
        if obs.battery is not None:
            update.battery = obs.battery
        if obs.availability is not None:
            update.availability, update.availability_at = obs.availability, now
        if skewed:
            update.clock_skew += 1
            result.clock_skew += 1
    return rows, updates


def _insert_events(session: Session, rows: list[EventRow], result: BatchResult) -> list[EventRow]:
    """Insert the event rows; returns those actually inserted (a repeated event id is not)."""
    plain = [r for r in rows if r[_UID] is None]
    with_uid = [r for r in rows if r[_UID] is not None]
    insert_rows(session, table_of(Event), EVENT_COLUMNS, plain)
    new: set[tuple[Any, ...]] = set()
    if with_uid:
        new = set(insert_rows_ignoring_conflicts(
            session, table_of(Event), EVENT_COLUMNS, with_uid,
            index_elements=["device_id", "event_uid"], index_where=Event.event_uid.isnot(None),
            returning=["device_id", "event_uid"],
        ))
    return _inserted(rows, new, result)


def _offline_due_slack(limits: rules.DeviceLimits) -> timedelta:
    return min(OFFLINE_DUE_SLACK, limits.offline_after / 10)


# the parameters of the devices' UPDATE (one row per device) and of the residents' (one per resident)
_DEVICE_BATCH: dict[str, TypeEngine[Any]] = {
    "b_id": Integer(), "b_seen": UTCDateTime(), "b_due": UTCDateTime(), "b_keep": UTCDateTime(),
    "b_occupied": Boolean(), "b_battery": Integer(), "b_avail": String(), "b_avail_at": UTCDateTime(),
    "b_skew": Integer(), "b_skew_at": UTCDateTime(),
}
_RESIDENT_BATCH: dict[str, TypeEngine[Any]] = {"b_id": Integer(), "b_ts": UTCDateTime(), "b_due": UTCDateTime()}


def _update_devices(session: Session, updates: dict[int, _DeviceUpdate], limits: rules.DeviceLimits) -> None:
    """Last seen only moves forward (the statement: :func:`_devices_update`). A row that nothing in the batch
    changes is not updated at all."""
    if not updates:
        return
    b = BatchParameters(session.get_bind().dialect, "device_batch", _DEVICE_BATCH)
    # _load_devices already locked these rows (in id order, on PostgreSQL)
    b.execute(session, _devices_update(b), _device_params(updates, limits), table_of(Device), "b_id", locked=True)


def _device_params(updates: dict[int, _DeviceUpdate], limits: rules.DeviceLimits) -> list[tuple[Any, ...]]:
    """The rows of :data:`_DEVICE_BATCH`, in device id order (a fixed order: two consumers never deadlock)."""
    slack = _offline_due_slack(limits)
    params = []
    for device_id in sorted(updates):
        u = updates[device_id]
        due = rules.device_offline_due_at(last_seen=u.last_seen, availability=u.availability,
                                          availability_at=u.availability_at, limits=limits)
        # in the order of _DEVICE_BATCH
        params.append((device_id, u.last_seen, due, due - slack if due is not None else None, u.occupied,
                       u.battery, u.availability, u.availability_at, u.clock_skew,
                       u.last_seen if u.clock_skew else None))
    return params


def _devices_update(b: BatchParameters) -> Any:
    """The offline deadline follows last seen, except that a deadline already stored within
    ``OFFLINE_DUE_SLACK`` before the new one is kept: ``offline_due_at`` is indexed, so rewriting it on
    every report makes every device UPDATE a non-HOT one (a new entry in each index of ``devices``). A
    deadline kept that way is early, never late: the tick re-derives the deadline from ``last_seen_at``
    before declaring a device offline (``service._devices_offline``) and reschedules it."""
    newer = or_(Device.last_seen_at.is_(None), Device.last_seen_at < b.ref("b_seen"))
    # the stored deadline is off from the new one by more than the slack (or either is unknown)
    due_moves = or_(Device.offline_due_at.is_(None), b.ref("b_keep").is_(None),
                    Device.offline_due_at < b.ref("b_keep"), Device.offline_due_at > b.ref("b_due"))
    changes = or_(
        newer,
        b.ref("b_avail").isnot(None),
        b.ref("b_occupied").isnot(None) & Device.occupied.is_distinct_from(b.ref("b_occupied")),
        b.ref("b_battery").isnot(None) & Device.battery.is_distinct_from(b.ref("b_battery")),
        b.ref("b_skew") > 0,
    )
    return (
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
            clock_skew_count=Device.clock_skew_count + b.ref("b_skew"),
            last_clock_skew_at=func.coalesce(b.ref("b_skew_at"), Device.last_clock_skew_at),
        )
        .execution_options(synchronize_session=False)
    )


def _store_postgres(session: Session, rows: list[EventRow], updates: dict[int, _DeviceUpdate],
                    devices: dict[str, _DeviceRow], policy: IngestPolicy, result: BatchResult) -> list[EventRow]:
    """PostgreSQL: the batch's writes in one statement, one round trip. It inserts the event rows (sent as
    one JSON parameter, :func:`alerts.db.json_rows`; a repeated event id is not inserted: ``ON CONFLICT DO
    NOTHING``), moves the residents' last activity and deadline from the rows it inserted (locking those
    residents first, in id order), and updates the devices (already locked by :func:`_load_devices`): the
    same UPDATEs as on SQLite (:func:`_devices_update`, :func:`_residents_update`). Returns the rows
    inserted."""
    if not rows:
        return []
    dialect = session.get_bind().dialect
    params: dict[str, Any] = {"events": json_rows(_EVENT_TYPES, rows, "events")[0]}
    params["r_id"] = sorted({row[_RESIDENT] for row in rows if row[_ACTIVITY] and row[_RESIDENT] is not None})
    params["default_window_s"] = policy.limits.window.total_seconds()
    params["devices"] = json_rows(_DEVICE_BATCH, _device_params(updates, policy.device_limits), "devices")[0]
    new = set(driver_rows(session, _compiled(dialect, "store", lambda: _store_statement(dialect)), params))
    return _inserted(rows, new, result)


def _store_statement(dialect: Any) -> str:
    """The statement of :func:`_store_postgres` (parameters: the event rows ``events`` and the devices'
    :data:`_DEVICE_BATCH` rows ``devices``, as JSON; the residents to move, ``r_id``; the default window,
    ``default_window_s``). The UPDATEs are those of the SQLite path; the names of the staging tables they
    read are CTEs here."""
    columns = ", ".join(EVENT_COLUMNS)
    events = json_rows(_EVENT_TYPES, [], "events")[1]
    devices = json_rows(_DEVICE_BATCH, [], "devices")[1]
    devices_b = BatchParameters(dialect, "device_batch", _DEVICE_BATCH)
    residents_b = BatchParameters(dialect, "resident_batch", _RESIDENT_BATCH)
    instant = "least(i.occurred_at, i.received_at)"  # rules.activity_instant
    # the residents to move with their window, locked in id order before any is updated (no deadlock)
    locked = (with_grid(select(Resident.id, window_seconds(bindparam("default_window_s", type_=Float()))
                               .label("window_s")))
              .where(one_of(Resident.id, [], dialect, "r_id"))
              .order_by(Resident.id).with_for_update(key_share=True, of=Resident))

    def sql(statement: Any) -> str:
        return str(statement.compile(dialect=dialect, compile_kwargs={"literal_binds": True}))

    return (
        f"WITH inserted AS (INSERT INTO {table_of(Event).name} ({columns}) SELECT {columns} FROM ({events}) AS e "
        "ON CONFLICT (device_id, event_uid) WHERE event_uid IS NOT NULL DO NOTHING "
        "RETURNING device_id, resident_id, is_activity, occurred_at, received_at, event_uid), "
        f"locked AS MATERIALIZED ({_binary(locked, dialect, 'r_id')}), "
        f"{residents_b.stage_name} AS (SELECT i.resident_id AS b_id, max({instant}) AS b_ts, "
        f"max({instant}) + make_interval(secs => min(l.window_s)) AS b_due FROM inserted AS i "
        "JOIN locked AS l ON l.id = i.resident_id WHERE i.is_activity GROUP BY i.resident_id), "
        f"moved AS ({sql(_residents_update(residents_b))}), "
        f"{devices_b.stage_name} AS ({devices}), "
        f"touched AS ({sql(_devices_update(devices_b))}) "
        "SELECT device_id, event_uid FROM inserted WHERE event_uid IS NOT NULL"
    )


def _inserted(rows: list[EventRow], new: set[tuple[Any, ...]], result: BatchResult) -> list[EventRow]:
    """The rows inserted: those without an event id, and those with one that ``new`` (the (device, event
    id) pairs the insert returned) holds; counts them in ``result``."""
    plain = [r for r in rows if r[_UID] is None]
    with_uid = [r for r in rows if r[_UID] is not None]
    inserted = plain + [row for row in with_uid if (row[_DEVICE], row[_UID]) in new] if with_uid else plain
    result.duplicates += len(with_uid) - len(new)
    result.stored += len(inserted)
    result.kinds.update(row[_KIND] for row in inserted)
    result.activity += sum(1 for row in inserted if row[_ACTIVITY])
    return inserted


def _apply_activity(session: Session, inserted: list[EventRow], devices: dict[str, _DeviceRow],
                    now: datetime, result: BatchResult, policy: IngestPolicy) -> None:
    """Move the residents' last activity for the inserted activity rows; open panic alarms."""
    by_id = {d.id: d for d in devices.values()}
    latest: dict[int, tuple[datetime, float]] = {}
    for row in inserted:
        if not row[_ACTIVITY]:
            continue
        device = by_id[row[_DEVICE]]
        if device.resident_id is not None:
            instant = rules.activity_instant(row[_OCCURRED], now)
            previous = latest.get(device.resident_id)
            if previous is None or instant > previous[0]:
                latest[device.resident_id] = (instant, device.window_s)
    _move_last_activity(session, latest)
    _open_panics(session, inserted, devices, now, result, policy)


def _open_panics(session: Session, inserted: list[EventRow], devices: dict[str, _DeviceRow],
                 now: datetime, result: BatchResult, policy: IngestPolicy) -> None:
    """A press of a panic button (an inserted activity row of kind button from a button device) opens a panic
    alarm, in this transaction: one per resident (or per device without one) and batch."""
    panics: dict[tuple[int | None, int], datetime] = {}
    by_id: dict[int, _DeviceRow] | None = None
    for row in inserted:
        if row[_KIND] != "button" or not row[_ACTIVITY]:
            continue
        by_id = by_id or {d.id: d for d in devices.values()}
        device = by_id[row[_DEVICE]]
        if device.kind == DeviceKind.BUTTON:
            panics.setdefault((device.resident_id, device.id), row[_OCCURRED])
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


def _clock_skew_alarms(session: Session, inserted: list[EventRow], devices: dict[str, _DeviceRow],
                       now: datetime, policy: IngestPolicy, result: BatchResult) -> None:
    """A device that keeps sending times from the future (``CLOCK_SKEW_REPORTS`` within
    ``CLOCK_SKEW_PERIOD``) is listed for maintenance: one clock-skew alarm per device, under the
    maintenance policy, until a person resolves it (SPEC section 2)."""
    skewed = {row[_DEVICE] for row in inserted if row[_SKEW]}
    if not skewed:
        return
    counts = session.execute(
        select(Event.device_id, func.count())
        .where(one_of(Event.device_id, sorted(skewed), session.get_bind().dialect, "skewed_ids"),
               Event.clock_skew.is_(True), Event.received_at > now - CLOCK_SKEW_PERIOD)
        .group_by(Event.device_id)
    ).all()
    by_id = {d.id: (ext, d) for ext, d in devices.items()}
    hours = round(CLOCK_SKEW_PERIOD.total_seconds() / 3600)
    for device_id, count in sorted(counts):
        if count < CLOCK_SKEW_REPORTS:
            continue
        ext, device = by_id[device_id]
        params = {"device": ext, "count": count, "hours": hours,
                  "minutes": round(policy.clock_skew.total_seconds() / 60)}
        alarm_id = open_alarm(
            session, AlarmKind.CLOCK_SKEW, now, resident_id=device.resident_id, device_id=device_id,
            reason=wording.reason("clock_skew", params, policy.language, policy.zone), reason_code="clock_skew",
            reason_params=params)
        if alarm_id is not None:
            result.clock_skew_alarms.append(alarm_id)


def _move_last_activity(session: Session, latest: dict[int, tuple[datetime, float]]) -> None:
    """Last activity only moves forward (the statement: :func:`_residents_update`)."""
    if not latest:
        return
    params = [(rid, ts, ts + timedelta(seconds=window)) for rid, (ts, window) in sorted(latest.items())]
    b = BatchParameters(session.get_bind().dialect, "resident_batch", _RESIDENT_BATCH)
    b.execute(session, _residents_update(b), params, table_of(Resident), "b_id")


def _residents_update(b: BatchParameters) -> Any:
    """Last activity only moves forward; the deadline follows unless a later restart (a person's
    resolution) already set it. Activity ends away mode."""
    return (
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


def _source(q: Quarantined) -> str:
    """Who sent a quarantined message, as far as it is known: its device's external id, else its topic."""
    return (q.device[:200] if q.device else q.topic)[:300]


def _quarantine(session: Session, held: list[Quarantined], now: datetime, result: BatchResult) -> None:
    """Keep at most ``QUARANTINE_KEEP_PER_SOURCE`` messages per source and ``QUARANTINE_KEEP_PER_HOUR`` in
    all per hour (of the service clock); the rest are only counted, per hour, source and reason, in
    ``quarantine_overflow``. A kept payload is cut to ``QUARANTINE_PAYLOAD_LIMIT`` bytes, an oversized one
    to ``OVERSIZED_PAYLOAD_PREFIX`` (``payload_size`` keeps the full size)."""
    if not held:
        return
    hour = now.replace(minute=0, second=0, microsecond=0)
    source = func.coalesce(QuarantinedMessage.device_external_id, QuarantinedMessage.topic)
    this_hour = QuarantinedMessage.received_at >= hour
    kept = Counter({src: n for src, n in session.execute(
        select(source, func.count()).where(this_hour, one_of(source, sorted({_source(q) for q in held}),
                                                             session.get_bind().dialect, "sources"))
        .group_by(source))})
    total = session.scalar(select(func.count()).select_from(QuarantinedMessage).where(this_hour)) or 0
    rows: list[dict[str, Any]] = []
    overflow: dict[tuple[str, str], list[int]] = {}
    for q in held:
        result.quarantined[q.reason] += 1
        src = _source(q)
        if kept[src] >= QUARANTINE_KEEP_PER_SOURCE or total >= QUARANTINE_KEEP_PER_HOUR:
            counted = overflow.setdefault((src, q.reason[:40]), [0, 0])
            counted[0] += 1
            counted[1] += len(q.payload)
            continue
        kept[src] += 1
        total += 1
        limit = OVERSIZED_PAYLOAD_PREFIX if q.reason == "oversized" else QUARANTINE_PAYLOAD_LIMIT
        rows.append({"received_at": now, "topic": q.topic[:300], "reason": q.reason, "detail": q.detail[:2000],
                     "payload": q.payload[:limit], "payload_size": len(q.payload),
                     "device_external_id": q.device[:200] if q.device else None, "delivery_key": q.delivery_key})
        if len(result.rejected) < LOGGED_PER_BATCH:
            result.rejected.append((q.topic[:300], q.reason, q.detail[:300]))
    if rows:
        session.execute(insert(QuarantinedMessage), rows)
    if overflow:
        _count_overflow(session, hour, now, overflow)
        result.quarantine_dropped += sum(n for n, _ in overflow.values())


def _count_overflow(session: Session, hour: datetime, now: datetime,
                    overflow: dict[tuple[str, str], list[int]]) -> None:
    """Add to the hour's overflow rows (one per source and reason), creating them as needed."""
    dialect_insert = insert_for(session.get_bind().dialect)
    for (src, reason), (count, size) in sorted(overflow.items()):
        statement = dialect_insert(QuarantineOverflow).values(hour=hour, source=src, reason=reason, dropped=count,
                                                          dropped_bytes=size, last_at=now)
        session.execute(statement.on_conflict_do_update(
            index_elements=["hour", "source", "reason"],
            set_={"dropped": QuarantineOverflow.dropped + statement.excluded.dropped,
                  "dropped_bytes": QuarantineOverflow.dropped_bytes + statement.excluded.dropped_bytes,
                  "last_at": statement.excluded.last_at}))
