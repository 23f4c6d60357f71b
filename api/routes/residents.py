"""Residents with their current state, and the resident card (every view of it is audited)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Path
from sqlalchemy import select

from alerts.models import AuditEntry, Contact, Grid, MicroGrid, Worker
from alerts.views import resident_rows
from api.auth import CurrentPrincipal, resident_scope, visible_resident
from api.deps import ContextDep, SessionDep
from api.errors import MAX_ID
from api.schemas import ResidentCardOut, ResidentOut

router = APIRouter(prefix="/api/residents", tags=["residents"])


@router.get("", response_model=list[ResidentOut])
def list_residents(context: ContextDep, session: SessionDep, principal: CurrentPrincipal) -> list[dict[str, Any]]:
    """The residents this principal may see, each with the most urgent state that holds."""
    return resident_rows(session, context.clock.now(), context.policy.limits, scope=resident_scope(principal))


@router.get("/{resident_id}", response_model=ResidentCardOut, responses={404: {"description": "no such resident"}})
def resident_card(resident_id: Annotated[int, Path(ge=1, le=MAX_ID)], context: ContextDep, session: SessionDep,
                  principal: CurrentPrincipal) -> dict[str, Any]:
    """The resident card: state, address, devices and battery, contacts, grid and micro-grid workers.
    Every view is written to the audit log with who."""
    resident = visible_resident(session, principal, resident_id)
    now = context.clock.now()
    [row] = resident_rows(session, now, context.policy.limits, resident_id=resident.id)
    micro = session.get(MicroGrid, resident.micro_grid_id) if resident.micro_grid_id else None
    grid = session.get(Grid, micro.grid_id) if micro else None
    workers = []
    if micro is not None:
        workers = list(session.scalars(select(Worker).where(
            Worker.active.is_(True),
            ((Worker.role == "grid_worker") & (Worker.grid_id == micro.grid_id))
            | ((Worker.role == "micro_grid_worker") & (Worker.micro_grid_id == micro.id)))))
    contacts = session.scalars(select(Contact).where(Contact.resident_id == resident.id)
                               .order_by(Contact.priority, Contact.id)).all()
    row.update(
        birth_year=resident.birth_year,
        age=(now.year - resident.birth_year) if resident.birth_year else None,
        grid=grid.name if grid else None, micro_grid=micro.name if micro else None,
        contacts=[{"name": c.name, "relation": c.relation, "phone": c.phone, "priority": c.priority}
                  for c in contacts],
        workers=[{"name": w.name, "role": w.role, "phone": w.phone} for w in workers],
    )
    session.add(AuditEntry(at=now, actor=principal.label, action="resident.view", target=f"resident:{resident.id}",
                           detail={}))
    return row
