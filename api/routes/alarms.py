"""Alarms: list, look at one, acknowledge, resolve with an outcome."""

from __future__ import annotations

from typing import Literal

from fastapi import APIRouter, HTTPException
from sqlalchemy import select
from sqlalchemy.orm import selectinload

from alerts import chain, service
from alerts.alarms import AlarmError
from alerts.models import HUMAN_OUTCOMES, Alarm, AlarmState, Attempt, AuditEntry
from alerts.views import alarm_row, attempt_row
from api.deps import ContextDep, SessionDep
from api.schemas import AcknowledgeIn, AlarmOut, ResolveIn

router = APIRouter(prefix="/api/alarms", tags=["alarms"])
NOT_FOUND = {404: {"description": "no such alarm"}, 409: {"description": "the alarm's state forbids it"}}


@router.get("", response_model=list[AlarmOut])
def list_alarms(session: SessionDep, state: Literal["open", "resolved", "all"] = "open",
                limit: int = 200) -> list[dict[str, object]]:
    """Alarms, newest first. ``open`` means not resolved (open or acknowledged)."""
    query = select(Alarm).order_by(Alarm.id.desc()).limit(min(max(limit, 1), 1000))
    if state == "open":
        query = query.where(Alarm.state != AlarmState.RESOLVED)
    elif state == "resolved":
        query = query.where(Alarm.state == AlarmState.RESOLVED)
    return [alarm_row(a) for a in session.scalars(query)]


@router.get("/{alarm_id}", response_model=AlarmOut, responses=NOT_FOUND)
def get_alarm(alarm_id: int, session: SessionDep) -> dict[str, object]:
    alarm = session.scalars(select(Alarm).options(selectinload(Alarm.transitions))
                            .where(Alarm.id == alarm_id)).first()
    if alarm is None:
        raise HTTPException(404, f"no alarm {alarm_id}")
    row = alarm_row(alarm, with_history=True)
    row["attempts"] = [attempt_row(a) for a in session.scalars(
        select(Attempt).where(Attempt.alarm_id == alarm_id).order_by(Attempt.id))]
    return row


@router.post("/{alarm_id}/acknowledge", response_model=AlarmOut, responses=NOT_FOUND)
def acknowledge(alarm_id: int, body: AcknowledgeIn, context: ContextDep, session: SessionDep) -> dict[str, object]:
    """Someone is on it: the alarm turns from open to acknowledged and records who."""
    now = context.clock.now()
    try:
        alarm = service.acknowledge_alarm(session, alarm_id, now, by=body.by)
    except AlarmError as exc:
        raise HTTPException(409, str(exc)) from exc
    if alarm is None:
        raise HTTPException(404, f"no alarm {alarm_id}")
    session.add(AuditEntry(at=now, actor=body.by, action="alarm.acknowledge", target=f"alarm:{alarm_id}",
                           detail={}))
    return alarm_row(alarm)


@router.post("/{alarm_id}/resolve", response_model=AlarmOut, responses=NOT_FOUND)
def resolve(alarm_id: int, body: ResolveIn, context: ContextDep, session: SessionDep) -> dict[str, object]:
    """Close the alarm with an outcome. An outcome that found the resident restarts their window."""
    if body.outcome not in HUMAN_OUTCOMES:
        raise HTTPException(422, f"outcome must be one of {sorted(HUMAN_OUTCOMES)}")
    now = context.clock.now()
    try:
        alarm = service.resolve_alarm(session, alarm_id, now, context.policy, by=body.by, outcome=body.outcome,
                                      note=body.note)
        if alarm is not None:
            chain.queue_outcome_sms(session, alarm, now, context.chain)
    except AlarmError as exc:
        raise HTTPException(409, str(exc)) from exc
    if alarm is None:
        raise HTTPException(404, f"no alarm {alarm_id}")
    session.add(AuditEntry(at=now, actor=body.by, action="alarm.resolve", target=f"alarm:{alarm_id}",
                           detail={"outcome": body.outcome.value, "note": body.note}))
    return alarm_row(alarm)
