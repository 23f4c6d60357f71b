"""Residents with their current state."""

from __future__ import annotations

from fastapi import APIRouter, HTTPException

from alerts.views import resident_rows
from api.deps import ContextDep, SessionDep
from api.schemas import ResidentOut

router = APIRouter(prefix="/api/residents", tags=["residents"])


@router.get("", response_model=list[ResidentOut])
def list_residents(context: ContextDep, session: SessionDep) -> list[dict[str, object]]:
    """Every resident with the most urgent state that holds, last activity and deadline."""
    return resident_rows(session, context.clock.now(), context.policy.limits)


@router.get("/{resident_id}", response_model=ResidentOut, responses={404: {"description": "no such resident"}})
def get_resident(resident_id: int, context: ContextDep, session: SessionDep) -> dict[str, object]:
    rows = resident_rows(session, context.clock.now(), context.policy.limits, resident_id=resident_id)
    if not rows:
        raise HTTPException(404, f"no resident {resident_id}")
    return rows[0]
