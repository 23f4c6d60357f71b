"""The inactivity step of the tick: residents whose deadline has passed, claimed and raised in bulk.

Every writer sets ``residents.due_at``; database triggers (migration 0015) keep the narrow queue
``deadlines`` (indexed by ``(due_at, resident_id)``) at or before it: a row when a deadline appears or
moves earlier, none when it is gone, nothing when it moves later (every activity), so ingest never writes
the queue. The step scans the queue and claims the residents with ``FOR UPDATE OF residents SKIP LOCKED``
(SQLite: one writer at a time), so several processes never take the same resident; the claim writes
nothing. A resident queued earlier than their deadline is claimed, found not due by the rule, and queued
at their deadline (:func:`_requeue`): about once per window per resident. The decision per resident stays the pure
:func:`alerts.rules.decide_due`; its results are written set-based: residents with the same alarm values
(the same last activity, window and devices) form one group, worded once, and a batch is one statement
on PostgreSQL (the alarms ``ON CONFLICT (open_key) DO NOTHING``, their history rows and audit entries)
plus one UPDATE of the deadlines. A batch whose statements fail is done again row by row, each row under
its own savepoint: a bad row is pushed back and logged, the others go on.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from datetime import datetime, timedelta, tzinfo
from functools import partial
from typing import Any, NamedTuple

from sqlalchemy import Select, bindparam, func, insert, or_, select, text, update
from sqlalchemy.orm import Session

from alerts import alarms, infrastructure, rules, wording
from alerts.db import claim, guarded, insert_ignoring_conflicts, one_of
from alerts.escalation.templates import Language
from alerts.limits import LIMIT_COLUMNS, limits_from, with_grid
from alerts.models import (
    Alarm,
    AlarmKind,
    AlarmState,
    AlarmTransition,
    AuditEntry,
    Deadline,
    Device,
    Resident,
    table_of,
)

log = logging.getLogger(__name__)

CLAIM_BATCH = 1000  # the first batch of a tick; a full batch makes the next one larger
MAX_BATCH = 10_000  # a mass silence: the largest batch (one transaction holds these residents)
PUSH_BACK = timedelta(seconds=60)  # a row whose rule step raised is pushed back this far


class Due(NamedTuple):
    """What the rule reads of one claimed resident."""

    id: int
    due_at: datetime | None  # as stored: written again only if the rule changes it
    last_activity_at: datetime | None
    watch_from: datetime | None
    away_until: datetime | None
    away_until_activity: bool
    limits: rules.Limits


class Words(NamedTuple):
    language: Language
    zone: tzinfo


# an alarm's values shared by a group of residents: last activity, hours silent, window hours, devices offline
GroupKey = tuple[datetime | None, float, float, bool]


# id, due_at, last activity, watch_from, away_until, away_until_activity, then alerts.limits.LIMIT_COLUMNS
DueQuery = Select[int, datetime | None, datetime | None, datetime | None, datetime | None, bool, int | None,
                  int | None, int | None, int | None]


def due_residents(now: datetime, batch: int) -> DueQuery:
    """Residents whose deadline has passed, earliest first, with the columns of their limits (to be
    claimed). Found through the queue ``deadlines`` alone. A resident whose activity moved the deadline
    after this query's snapshot is locked in its newest version (PostgreSQL re-reads a row updated
    meanwhile), and the rule, which reads the activity and not the stored deadline, keeps them watched."""
    query = (select(Resident.id, Resident.due_at, Resident.last_activity_at, Resident.watch_from, Resident.away_until,
                    Resident.away_until_activity, *LIMIT_COLUMNS)
             .select_from(Deadline).join(Resident, Resident.id == Deadline.resident_id))
    return (with_grid(query).where(Deadline.due_at <= now)
            .order_by(Deadline.due_at).limit(batch))


def claim_due(session: Session, now: datetime, default: rules.Limits, batch: int) -> list[Due]:
    """Claim up to ``batch`` due residents for this transaction (rows another process holds are skipped)."""
    query = claim(due_residents(now, batch), session.get_bind().dialect, of=Resident)
    return [Due(r[0], r[1], r[2], r[3], r[4], bool(r[5]), limits_from(default, *r[6:]))
            for r in session.execute(query)]


def raise_due(session: Session, now: datetime, default: rules.Limits, words: Words, batch: int,
              raised: list[int]) -> int:
    """One batch: claim, decide, raise; the ids of the alarms opened are appended to ``raised``. Returns
    how many residents were claimed. Alarms raised inside an open infrastructure incident are marked
    "possibly infrastructure" in the same transaction (:func:`alerts.infrastructure.mark_raised`)."""
    rows = claim_due(session, now, default, batch)
    if not rows:
        return 0
    try:
        with session.begin_nested():
            opened = _raise_in_bulk(session, rows, now, words)
    except Exception:  # a statement of the batch failed: the batch again row by row, a bad row alone
        log.exception("bulk raise failed; this batch row by row", extra={"residents": len(rows)})
        opened = _one_by_one(session, rows, now, words)
    infrastructure.mark_raised(session, opened, now)
    raised.extend(opened)
    return len(rows)


def _raise_in_bulk(session: Session, rows: Sequence[Due], now: datetime, words: Words) -> list[int]:
    offline = _devices_offline(session, [r.id for r in rows], now)
    groups: dict[GroupKey, list[int]] = {}
    deadlines: dict[datetime | None, list[int]] = {}  # the changed ones, by their new deadline
    queued: list[int] = []  # those with a deadline: their queue row moves to it
    for due in rows:
        try:
            # an inactivity alarm already open is not looked up: the rule would suspend the watch instead of
            # raising, and both leave no deadline; the alarm's unique open_key skips the second one
            decision = _decide(due, now, alarm_open=False)
            if decision.action is rules.DueAction.RAISE:
                groups.setdefault(_group_key(due, now, due.id in offline), []).append(due.id)
            new_due = _next_due(decision)
        except Exception:  # one bad row is pushed back and logged; the others go on (as alerts.db.guarded)
            log.exception("rule step failed for one row; the others go on", extra={"row": "resident", "id": due.id})
            new_due = now + PUSH_BACK
        if new_due != due.due_at:
            deadlines.setdefault(new_due, []).append(due.id)
        if new_due is not None:
            queued.append(due.id)
    opened = _open_groups(session, groups, now, words)
    _write_deadlines(session, deadlines)
    _requeue(session, queued)
    return opened


def _decide(due: Due, now: datetime, alarm_open: bool) -> rules.DueDecision:
    return rules.decide_due(now=now, last_activity=due.last_activity_at, watch_from=due.watch_from,
                            limits=due.limits, away_until=due.away_until,
                            away_until_activity=due.away_until_activity, alarm_open=alarm_open)


def _next_due(decision: rules.DueDecision) -> datetime | None:
    """The deadline the rule leaves: none once the alarm is raised or the watch suspended (away, open)."""
    return None if decision.action in (rules.DueAction.RAISE, rules.DueAction.SUSPEND) else decision.due_at


def _open_for(session: Session, ids: list[int]) -> set[int]:
    """Which of these residents already have an inactivity alarm open."""
    return set(session.scalars(select(Alarm.resident_id).where(
        Alarm.kind == AlarmKind.INACTIVITY, Alarm.state != AlarmState.RESOLVED,
        one_of(Alarm.resident_id, ids, session.get_bind().dialect, "due_ids"))))


def _devices_offline(session: Session, ids: list[int], now: datetime) -> set[int]:
    """Which of these residents have devices and every one of them offline or past its offline deadline
    (their alarm says "no data"). Only residents with some device silent come back: few, unless a whole
    district went dark."""
    silent = func.count().filter(or_(Device.online.is_(False), Device.offline_due_at <= now))
    rows = session.execute(select(Device.resident_id, func.count(), silent)
                           .where(one_of(Device.resident_id, ids, session.get_bind().dialect, "due_ids"))
                           .group_by(Device.resident_id).having(silent > 0))
    return {resident_id for resident_id, devices, offline in rows if resident_id is not None and devices == offline}


def _group_key(due: Due, now: datetime, offline: bool) -> GroupKey:
    """The values of this resident's inactivity alarm: residents with the same key get the same reason."""
    start = rules.watch_start(due.last_activity_at, due.watch_from)
    window_h = due.limits.window.total_seconds() / 3600
    hours = (now - start).total_seconds() / 3600 if start else window_h
    return due.last_activity_at, round(hours, 1), window_h, offline


def _alarm_values(key: GroupKey, words: Words) -> tuple[str, dict[str, Any]]:
    """The reason (worded in ``notify.language``) and reason parameters of a group's alarms."""
    last, hours, window, offline = key
    params = {"hours": hours, "window": window, "last": wording.instant(last), "devices_offline": offline}
    return wording.reason("inactivity", params, words.language, words.zone), params


def _open_groups(session: Session, groups: dict[GroupKey, list[int]], now: datetime, words: Words) -> list[int]:
    """Open the alarms of every group in a few statements; the ids of those opened (an alarm already open
    for a resident, committed by another process meanwhile, is skipped by the unique ``open_key``). Each
    opened alarm gets its history row and audit entry, and its chain starts now (the escalation policy
    copied in, ``next_action_at`` = now), as :func:`alerts.alarms.open_alarm` does for one."""
    if not groups:
        return []
    valued = [(key, *_alarm_values(key, words), rids) for key, rids in groups.items()]
    policy = alarms.snapshot_policy(session, AlarmKind.INACTIVITY)
    if session.get_bind().dialect.name == "postgresql":
        opened = _open_on_postgres(session, valued, policy, now)
    else:
        opened = _open_row_by_row_values(session, valued, policy, now)
    if opened:
        log.warning("inactivity alarms raised", extra={"count": len(opened), "alarms": opened[:50]})
    return opened


# PostgreSQL: a batch is one statement whatever its size. Each group is sent once (its reason, parameters,
# last activity and its residents as one comma-separated text: nothing converted per row by the driver);
# the alarms, their history rows and audit entries are inserted by data-modifying CTEs.
_RAISE = text(
    "WITH grp AS (SELECT * FROM unnest(CAST(:reasons AS text[]), CAST(:params AS text[]), "
    "  CAST(:offline AS bool[]), CAST(:last AS timestamptz[]), CAST(:rids AS text[])) "
    "  AS g(reason, params, offline, last, rids)), "
    "opened AS (INSERT INTO alarms (kind, severity, state, open_key, resident_id, reason, reason_code, "
    "  reason_params, devices_offline, opened_at, last_activity_at, auto_resolved, policy, next_action_at, step, "
    "  cycle, escalation_token) "
    "  SELECT :kind, :severity, :state, :key_prefix || r.rid, r.rid, grp.reason, 'inactivity', "
    "  CAST(grp.params AS json), grp.offline, :now, grp.last, false, CAST(:policy AS json), :now, -1, 0, 0 "
    "  FROM grp CROSS JOIN LATERAL unnest(CAST(string_to_array(grp.rids, ',') AS int[])) AS r(rid) "
    "  ON CONFLICT (open_key) DO NOTHING RETURNING id, reason), "
    "history AS (INSERT INTO alarm_transitions (alarm_id, at, action, actor, detail) "
    "  SELECT id, :now, 'opened', 'shouwang', reason FROM opened), "
    "audit AS (INSERT INTO audit_log (at, actor, action, target, detail) "
    "  SELECT :now, 'shouwang', 'alarm.opened', 'alarm:' || id, json_build_object('detail', reason) FROM opened) "
    "SELECT id FROM opened")
_UPDATE_DEADLINES = text(
    "UPDATE residents SET due_at = d.due FROM (SELECT v.due, unnest(CAST(string_to_array(v.rids, ',') AS int[])) "
    "AS rid FROM unnest(CAST(:dues AS timestamptz[]), CAST(:rids AS text[])) AS v(due, rids)) AS d "
    "WHERE residents.id = d.rid")


def _csv(ids: list[int]) -> str:
    return ",".join(map(str, ids))


def _open_on_postgres(session: Session, valued: list[tuple[GroupKey, str, dict[str, Any], list[int]]],
                      policy: dict[str, Any] | None, now: datetime) -> list[int]:
    kind = AlarmKind.INACTIVITY
    prefix = alarms.open_key(kind, resident_id=0).removesuffix("0")  # the same key, per row in SQL
    params = {"kind": str(kind), "severity": str(alarms.SEVERITY[kind]), "state": str(AlarmState.OPEN),
              "key_prefix": prefix, "now": now, "policy": json.dumps(policy) if policy else None,
              "reasons": [reason for _, reason, _, _ in valued],
              "params": [json.dumps(p) for _, _, p, _ in valued],
              "offline": [key[3] for key, _, _, _ in valued], "last": [key[0] for key, _, _, _ in valued],
              "rids": [_csv(rids) for _, _, _, rids in valued]}
    return [int(a) for a in session.scalars(_RAISE, params)]


def _open_row_by_row_values(session: Session, valued: list[tuple[GroupKey, str, dict[str, Any], list[int]]],
                            policy: dict[str, Any] | None, now: datetime) -> list[int]:
    """SQLite: one executemany statement per table (one writer at a time, in-process)."""
    kind = AlarmKind.INACTIVITY
    values = [{"kind": kind, "severity": alarms.SEVERITY[kind], "state": AlarmState.OPEN,
               "open_key": alarms.open_key(kind, resident_id=rid), "resident_id": rid, "device_id": None,
               "system_key": None, "reason": reason, "reason_code": "inactivity", "reason_params": params,
               "devices_offline": key[3], "opened_at": now, "last_activity_at": key[0], "auto_resolved": False,
               "policy": policy, "next_action_at": now}
              for key, reason, params, rids in valued for rid in rids]
    table = table_of(Alarm)
    statement = insert_ignoring_conflicts(table, session.get_bind().dialect, ["open_key"]).returning(
        table.c.id, table.c.reason)
    opened = [(int(alarm_id), str(reason)) for alarm_id, reason in session.execute(statement, values).all()]
    if opened:
        session.execute(insert(table_of(AlarmTransition)), [
            {"alarm_id": alarm_id, "at": now, "action": "opened", "actor": "shouwang", "detail": reason}
            for alarm_id, reason in opened])
        session.execute(insert(table_of(AuditEntry)), [
            {"at": now, "actor": "shouwang", "action": "alarm.opened", "target": f"alarm:{alarm_id}",
             "detail": {"detail": reason}} for alarm_id, reason in opened])
    return [alarm_id for alarm_id, _ in opened]


def _write_deadlines(session: Session, deadlines: dict[datetime | None, list[int]]) -> None:
    """The residents' new deadlines (NULL: an alarm is open or they are away); the triggers move the queue."""
    if not deadlines:
        return
    if session.get_bind().dialect.name == "postgresql":
        session.execute(_UPDATE_DEADLINES, {"dues": list(deadlines), "rids": [_csv(r) for r in deadlines.values()]})
        return
    residents = table_of(Resident)
    session.execute(update(residents).where(residents.c.id == bindparam("rid")).values(due_at=bindparam("due"))
                    .execution_options(synchronize_session=False),
                    [{"rid": rid, "due": due} for due, rids in deadlines.items() for rid in rids])


def _requeue(session: Session, ids: list[int]) -> None:
    """Move the queue rows of these claimed residents to their deadline as now stored. The triggers
    remove a row whose deadline is gone and bring one forward, but leave one whose deadline moved later
    (activity since it was queued, the rule's answer, a push back): that is done here, by its claimer."""
    if ids:
        session.execute(update(Deadline).values(due_at=Resident.due_at)
                        .where(Deadline.resident_id == Resident.id, Resident.due_at.isnot(None),
                               Deadline.due_at != Resident.due_at,
                               one_of(Deadline.resident_id, ids, session.get_bind().dialect, "queued_ids"))
                        .execution_options(synchronize_session=False))


def _one_by_one(session: Session, rows: Sequence[Due], now: datetime, words: Words) -> list[int]:
    """The batch row by row, each under its own savepoint (when the set-based statements failed)."""
    ids = [r.id for r in rows]
    already_open = _open_for(session, ids)
    residents = {r.id: r for r in session.scalars(select(Resident).where(
        one_of(Resident.id, ids, session.get_bind().dialect, "due_ids")))}
    opened: list[int] = []
    for due in rows:
        resident = residents[due.id]
        guarded(session, "resident", due.id,
                partial(_due_resident, session, resident, due, now, words, due.id in already_open, opened),
                partial(setattr, resident, "due_at", now + PUSH_BACK))
    session.flush()
    _requeue(session, ids)
    return opened


def _due_resident(session: Session, resident: Resident, due: Due, now: datetime, words: Words, is_open: bool,
                  opened: list[int]) -> None:
    decision = _decide(due, now, is_open)
    if decision.action is rules.DueAction.RAISE:
        key = _group_key(due, now, due.id in _devices_offline(session, [due.id], now))
        reason, params = _alarm_values(key, words)
        alarm_id = alarms.open_alarm(session, AlarmKind.INACTIVITY, now, reason=reason, reason_code="inactivity",
                                     reason_params=params, resident_id=due.id, last_activity_at=key[0],
                                     devices_offline=key[3])
        if alarm_id is not None:
            opened.append(alarm_id)
    resident.due_at = _next_due(decision)
    session.flush()
