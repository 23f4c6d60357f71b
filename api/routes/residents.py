"""Residents with their current state, and the resident card (every view of it is audited)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Path
from sqlalchemy import select

from alerts import rhythm, signs_of_life
from alerts.models import AuditEntry, Contact, Grid, MicroGrid, Resident, SignOfLife, Worker
from alerts.refusals import Refusal
from alerts.views import resident_rows
from api.auth import CurrentPrincipal, resident_scope, visible_resident
from api.deps import ContextDep, SessionDep
from api.errors import MAX_ID
from api.schemas import ResidentCardOut, ResidentOut, SignOfLifeIn, SignOfLifeOut

router = APIRouter(prefix="/api/residents", tags=["residents"])
SIGN_ERRORS: dict[int | str, dict[str, Any]] = {404: {"description": "no such resident (or not yours to see)"},
                                                403: {"description": "this role may not report signs of life"}}


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
        routine=resident.routine_window or (grid.routine_window if grid else None),
        rhythm=rhythm.describe(rhythm.Rhythm.from_dict(resident.rhythm) if resident.rhythm else None, now,
                               context.settings.tz, resident.last_activity_at, context.chain.language),
        signs_of_life=[_sign_out(s) for s in signs_of_life.recent(session, resident.id)],
    )
    session.add(AuditEntry(at=now, actor=principal.label, action="resident.view", target=f"resident:{resident.id}",
                           detail={}))
    return row


def _sign_out(sign: SignOfLife) -> dict[str, Any]:
    return {"id": sign.id, "resident_id": sign.resident_id, "at": sign.at, "source": sign.source, "note": sign.note,
            "recorded_by": sign.recorded_by}


@router.post("/{resident_id}/activity", response_model=SignOfLifeOut, status_code=201, responses=SIGN_ERRORS)
def report_sign_of_life(resident_id: Annotated[int, Path(ge=1, le=MAX_ID)], body: SignOfLifeIn, context: ContextDep,
                        session: SessionDep, principal: CurrentPrincipal) -> dict[str, Any]:
    """A sign of life from outside the home: a meal-card swipe at the canteen, a worker's visit, a phone
    call, a family visit. It counts as activity (it resolves an alarm as activity does, and moves the
    deadline) and shows on the resident card with its source. Allowed to the centre (admin, operator,
    supervisor), grid and micro-grid workers for their own residents, and integration tokens
    (``shouwang integration-token canteen``), which may do nothing else."""
    if principal.role == "screen":
        raise HTTPException(403, Refusal("read_only", role="screen"))
    if principal.role == "integration":
        resident = session.get(Resident, resident_id)
        if resident is None:
            raise HTTPException(404, Refusal("no_resident", id=resident_id))
    else:
        resident = visible_resident(session, principal, resident_id)
    now = context.clock.now()
    sign = signs_of_life.record(session, resident, at=body.at or now, source=signs_of_life.Source(body.source),
                                note=body.note, now=now, by=principal.label, default=context.policy.limits)
    session.flush()
    session.add(AuditEntry(at=now, actor=principal.label, action="resident.sign_of_life",
                           target=f"resident:{resident.id}", detail={"source": body.source}))
    return _sign_out(sign)
