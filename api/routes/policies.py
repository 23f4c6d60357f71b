"""Escalation policies: read and edit. An edit never changes a running chain (alarms keep their copy)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, HTTPException
from pydantic import BaseModel, Field
from sqlalchemy import select

from alerts.escalation.policy import PolicyError, policy_from_dict
from alerts.models import AuditEntry, EscalationPolicy
from alerts.refusals import Refusal
from api.auth import Admin, CentreStaff
from api.deps import ContextDep, SessionDep

router = APIRouter(prefix="/api/policies", tags=["policies"])


class PolicyOut(BaseModel):
    name: str
    definition: dict[str, Any]
    updated_by: str


class PolicyIn(BaseModel):
    definition: dict[str, Any] = Field(description="steps: [{name, wait, check_call, contacts: [{target, channels, "
                                       "rank}]}], repeat_from (1-based), family_ack_stops")


@router.get("", response_model=list[PolicyOut])
def list_policies(session: SessionDep, _staff: CentreStaff) -> list[PolicyOut]:
    return [PolicyOut(name=p.name, definition=p.definition, updated_by=p.updated_by)
            for p in session.scalars(select(EscalationPolicy).order_by(EscalationPolicy.name))]


@router.put("/{name}", response_model=PolicyOut, responses={404: {"description": "no such policy"},
                                                             422: {"description": "the policy cannot work"}})
def replace_policy(name: str, body: PolicyIn, context: ContextDep, session: SessionDep, admin: Admin) -> PolicyOut:
    """Replace a policy; new alarms copy it, open alarms keep theirs."""
    now = context.clock.now()
    row = session.scalars(select(EscalationPolicy).where(EscalationPolicy.name == name)).first()
    if row is None:
        raise HTTPException(404, Refusal("no_policy", name=name))
    try:
        policy = policy_from_dict({**body.definition, "name": name})
    except PolicyError as exc:
        raise HTTPException(422, exc) from exc
    row.definition, row.updated_at, row.updated_by = policy.to_dict(), now, admin.label
    session.add(AuditEntry(at=now, actor=admin.label, action="policy.replace", target=f"policy:{name}",
                           detail=policy.to_dict()))
    return PolicyOut(name=row.name, definition=row.definition, updated_by=row.updated_by)
