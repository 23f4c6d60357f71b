"""Alarms: list, look at one, and act on it: accept ("I'm going"), arrived, acknowledge, resolve with an
outcome; from the centre, dispatch the grid worker now or call the family now. Every change is audited."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any, Literal

from fastapi import APIRouter, HTTPException
from sqlalchemy import select
from sqlalchemy.orm import Session, selectinload

from alerts import infrastructure, transitions
from alerts.alarms import AlarmError
from alerts.escalation import responses
from alerts.escalation.replies import effects
from alerts.models import HUMAN_OUTCOMES, Alarm, AlarmState, Attempt
from alerts.refusals import Refusal
from alerts.views import alarm_row, attempt_row
from api.auth import Actor, CentreStaff, CurrentPrincipal, Principal, alarm_scope, visible_alarm
from api.deps import ContextDep, SessionDep
from api.schemas import AlarmOut, ResolveIn

router = APIRouter(prefix="/api/alarms", tags=["alarms"])
ERRORS: dict[int | str, dict[str, Any]] = {404: {"description": "no such alarm (or not yours to see)"},
                                           403: {"description": "read-only role"},
                                           409: {"description": "the alarm's state forbids it"}}


@router.get("", response_model=list[AlarmOut])
def list_alarms(session: SessionDep, principal: CurrentPrincipal,
                state: Literal["open", "resolved", "all"] = "open", limit: int = 200) -> list[dict[str, Any]]:
    """Alarms this principal may see, newest first. ``open`` means not resolved (open or acknowledged)."""
    query = (select(Alarm).options(selectinload(Alarm.resident)).where(alarm_scope(principal))
             .order_by(Alarm.id.desc()).limit(min(max(limit, 1), 1000)))
    if state == "open":
        query = query.where(Alarm.state != AlarmState.RESOLVED)
    elif state == "resolved":
        query = query.where(Alarm.state == AlarmState.RESOLVED)
    return [alarm_row(a) for a in session.scalars(query)]


@router.get("/{alarm_id}", response_model=AlarmOut, responses=ERRORS)
def get_alarm(alarm_id: int, session: SessionDep, principal: CurrentPrincipal) -> dict[str, Any]:
    """One alarm with its history and every call and SMS of its escalation."""
    alarm = visible_alarm(session, principal, alarm_id)
    row = alarm_row(alarm, with_history=True)
    row["attempts"] = [attempt_row(a) for a in session.scalars(
        select(Attempt).where(Attempt.alarm_id == alarm_id).order_by(Attempt.id))]
    return row


def _act(session: Session, principal: Principal, context: Any, alarm_id: int,
         change: Callable[[Alarm, datetime], None]) -> dict[str, Any]:
    """Apply one transition to a visible alarm under its row lock. The transition writes the alarm's
    history and the audit entry itself (:mod:`alerts.transitions`)."""
    now = context.clock.now()
    alarm = visible_alarm(session, principal, alarm_id)
    session.refresh(alarm, with_for_update=True)
    try:
        change(alarm, now)
    except AlarmError as exc:
        raise HTTPException(409, exc) from exc
    return alarm_row(alarm)


CHANNEL = "API"


@router.post("/{alarm_id}/acknowledge", response_model=AlarmOut, responses=ERRORS)
def acknowledge(alarm_id: int, context: ContextDep, session: SessionDep, principal: Actor) -> dict[str, Any]:
    """Someone is on it: the alarm turns from open to acknowledged, records who, and the chain stops."""
    return _act(session, principal, context, alarm_id, lambda alarm, now: transitions.acknowledged(
        session, alarm, now, by=principal.label, channel=CHANNEL))


@router.post("/{alarm_id}/accept", response_model=AlarmOut, responses=ERRORS)
def accept(alarm_id: int, context: ContextDep, session: SessionDep, principal: Actor) -> dict[str, Any]:
    """A worker's "I'm going": acknowledges the alarm and stops the chain."""
    return _act(session, principal, context, alarm_id, lambda alarm, now: transitions.accepted(
        session, alarm, now, by=principal.label, channel=CHANNEL))


@router.post("/{alarm_id}/arrived", response_model=AlarmOut, responses=ERRORS)
def arrived(alarm_id: int, context: ContextDep, session: SessionDep, principal: Actor) -> dict[str, Any]:
    """On site at the resident's door."""
    return _act(session, principal, context, alarm_id, lambda alarm, now: transitions.arrived(
        session, alarm, now, by=principal.label, channel=CHANNEL))


@router.post("/{alarm_id}/resolve", response_model=AlarmOut, responses=ERRORS)
def resolve(alarm_id: int, body: ResolveIn, context: ContextDep, session: SessionDep,
            principal: Actor) -> dict[str, Any]:
    """Close the alarm with an outcome; the family gets an SMS with it. An outcome that found the
    resident restarts their window."""
    if body.outcome not in HUMAN_OUTCOMES:
        raise HTTPException(422, Refusal("outcome", choices=", ".join(sorted(HUMAN_OUTCOMES))))
    return _act(session, principal, context, alarm_id, lambda alarm, now: transitions.resolved_by_person(
        session, alarm, now, by=principal.label, channel=CHANNEL, outcome=body.outcome, note=body.note,
        effects=effects(context.chain)))


@router.post("/{alarm_id}/dispatch", response_model=AlarmOut, responses=ERRORS)
def dispatch(alarm_id: int, context: ContextDep, session: SessionDep, principal: CentreStaff) -> dict[str, Any]:
    """One click from the centre: call the grid worker now (skip to the first responder step)."""
    return _act(session, principal, context, alarm_id,
                lambda alarm, now: responses.dispatch_now(session, alarm, now, by=principal.label))


@router.post("/{alarm_id}/escalate", response_model=AlarmOut, responses=ERRORS)
def not_infrastructure(alarm_id: int, context: ContextDep, session: SessionDep,
                       principal: CentreStaff) -> dict[str, Any]:
    """"Not infrastructure: escalate": a person on the centre side looked. On a possibly-infrastructure
    alarm its family hold ends now; on an infrastructure incident, the hold of every alarm inside it."""
    return _act(session, principal, context, alarm_id, lambda alarm, now: infrastructure.not_infrastructure(
        session, alarm, now, by=f"{principal.label} (API)"))


@router.post("/{alarm_id}/call-family", response_model=AlarmOut, responses=ERRORS)
def call_family(alarm_id: int, context: ContextDep, session: SessionDep, principal: CentreStaff) -> dict[str, Any]:
    """One click from the centre: call the family contacts now."""
    return _act(session, principal, context, alarm_id, lambda alarm, now: responses.call_family_now(
        session, alarm, now, by=principal.label, settings=context.chain))
