"""Administration: communities, grids, micro-grids, residents, devices, contacts, workers; the CSV
import; away mode; adopting a quarantined device; the audit log; export and deletion of a resident's
data. Writes need an admin (away mode: the centre's operators too), reads the centre's staff. Every
change writes an audit entry with who; entries about residents name the fields changed, not values.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime
from typing import Annotated, Any, TypeVar

from fastapi import APIRouter, HTTPException, Path, Query, Request, Response
from fastapi.concurrency import run_in_threadpool
from sqlalchemy import select
from sqlalchemy.orm import Session

from alerts.models import AuditEntry, Community, Contact, Device, Grid, MicroGrid, Resident, Worker
from alerts.refusals import Refusal
from alerts.registry import admin, geo
from alerts.registry.csv_import import CsvImportError, import_residents
from api import accounts
from api.admin_schemas import (
    AdoptIn,
    AdoptOut,
    AuditOut,
    AuditPage,
    AwayIn,
    AwayOut,
    CommunityIn,
    CommunityOut,
    ContactIn,
    ContactOut,
    ContactPatch,
    DeviceAdminOut,
    DeviceIn,
    DevicePatch,
    GridIn,
    GridOut,
    GridPatch,
    ImportOut,
    MicroGridIn,
    MicroGridOut,
    MicroGridPatch,
    ResidentAdminOut,
    ResidentIn,
    ResidentPatch,
    WorkerIn,
    WorkerOut,
    WorkerPatch,
)
from api.auth import Admin, CentreStaff, Principal
from api.deps import AppContext, ContextDep, SessionDep
from api.errors import MAX_ID

router = APIRouter(tags=["admin"])
Row = TypeVar("Row")

NOT_FOUND: dict[int | str, dict[str, Any]] = {404: {"description": "no such row"}}
WRITE_ERRORS: dict[int | str, dict[str, Any]] = {
    404: {"description": "a row named does not exist"}, 409: {"description": "a unique key is taken, or the row "
                                                                             "is still in use"},
    422: {"description": "the request cannot be carried out as asked"}}
MAX_UPLOAD = 10 * 1024 * 1024
RowId = Annotated[int, Path(ge=1, le=MAX_ID, description="the row's id")]
IdFilter = Annotated[int | None, Query(ge=1, le=MAX_ID, description="only the rows of this one")]


@contextmanager
def _translated() -> Iterator[None]:
    """Service errors as HTTP errors; the request's session then rolls back."""
    try:
        yield
    except admin.NotFound as exc:
        raise HTTPException(404, exc) from exc
    except admin.Conflict as exc:
        raise HTTPException(409, exc) from exc
    except admin.AdminError as exc:
        raise HTTPException(422, exc) from exc


def _audit(session: Session, now: datetime, who: Principal, action: str, target: str, **detail: Any) -> None:
    session.add(AuditEntry(at=now, actor=who.label, action=action, target=target, detail=detail))


def _saved(session: Session, now: datetime, who: Principal, action: str, save: Callable[[], Row],
           **detail: Any) -> Row:
    """One write of a row: the service call (its errors as HTTP errors), then the audit entry naming the
    row it returned (``grid.update`` -> ``grid:12``)."""
    with _translated():
        row = save()
    _audit(session, now, who, action, f"{action.split('.')[0]}:{row.id}", **detail)
    return row


def _deleted(session: Session, now: datetime, who: Principal, model: type[Any], row_id: int,
             remove: Callable[[Session, Any], None], keep: Callable[[Any], dict[str, Any]] | None = None) -> Response:
    """Get, delete and audit one row; ``keep`` picks what the audit entry remembers of it."""
    kind = model.__tablename__.removesuffix("s")
    with _translated():
        row = admin.get(session, model, row_id)
        detail = keep(row) if keep is not None else {}
        remove(session, row)
    _audit(session, now, who, f"{kind}.delete", f"{kind}:{row_id}", **detail)
    return Response(status_code=204)


def _hours(seconds: int | None) -> float | None:
    return None if seconds is None else seconds / 3600


# -- communities -----------------------------------------------------------------------------------------
@router.get("/api/admin/communities", response_model=list[CommunityOut])
def list_communities(session: SessionDep, _staff: CentreStaff) -> list[CommunityOut]:
    return [CommunityOut(id=c.id, name=c.name, latitude=c.latitude, longitude=c.longitude)
            for c in session.scalars(select(Community).order_by(Community.id))]


@router.post("/api/admin/communities", response_model=CommunityOut, status_code=201, responses=WRITE_ERRORS)
def create_community(body: CommunityIn, context: ContextDep, session: SessionDep, who: Admin) -> CommunityOut:
    now = context.clock.now()
    point = admin.Point(body.latitude, body.longitude, body.datum) \
        if body.latitude is not None and body.longitude is not None else None
    with _translated():
        c = admin.create_community(session, body.name, point)
    _audit(session, now, who, "community.create", f"community:{c.id}", name=c.name)
    return CommunityOut(id=c.id, name=c.name, latitude=c.latitude, longitude=c.longitude)


# -- grids and micro-grids -------------------------------------------------------------------------------
def _grid_out(grid: Grid) -> GridOut:
    return GridOut(id=grid.id, community_id=grid.community_id, name=grid.name,
                   window_hours=_hours(grid.inactivity_window_s), early_warning_hours=_hours(grid.early_warning_s),
                   routine=grid.routine_window, bathroom_dwell_hours=_hours(grid.bathroom_dwell_s),
                   bathroom_door_dwell_hours=_hours(grid.bathroom_door_dwell_s))


@router.get("/api/admin/grids", response_model=list[GridOut])
def list_grids(session: SessionDep, _staff: CentreStaff) -> list[GridOut]:
    return [_grid_out(g) for g in session.scalars(select(Grid).order_by(Grid.id))]


@router.post("/api/admin/grids", response_model=GridOut, status_code=201, responses=WRITE_ERRORS)
def create_grid(body: GridIn, context: ContextDep, session: SessionDep, who: Admin) -> GridOut:
    now, fields = context.clock.now(), body.model_dump()
    return _grid_out(_saved(session, now, who, "grid.create", lambda: admin.save_grid(
        session, None, fields, now, context.policy.limits), **fields))


@router.patch("/api/admin/grids/{grid_id}", response_model=GridOut, responses=WRITE_ERRORS)
def update_grid(grid_id: RowId, body: GridPatch, context: ContextDep, session: SessionDep, who: Admin) -> GridOut:
    now, fields = context.clock.now(), body.model_dump(exclude_unset=True)
    return _grid_out(_saved(session, now, who, "grid.update", lambda: admin.save_grid(
        session, admin.get(session, Grid, grid_id), fields, now, context.policy.limits), **fields))


@router.delete("/api/admin/grids/{grid_id}", status_code=204, responses=WRITE_ERRORS)
def delete_grid(grid_id: RowId, context: ContextDep, session: SessionDep, who: Admin) -> Response:
    return _deleted(session, context.clock.now(), who, Grid, grid_id, admin.delete_grid,
                    lambda grid: {"name": grid.name})


def _micro_out(micro: MicroGrid) -> MicroGridOut:
    return MicroGridOut(id=micro.id, grid_id=micro.grid_id, name=micro.name)


@router.get("/api/admin/micro-grids", response_model=list[MicroGridOut])
def list_micro_grids(session: SessionDep, _staff: CentreStaff, grid_id: IdFilter = None) -> list[MicroGridOut]:
    query = select(MicroGrid).order_by(MicroGrid.id)
    if grid_id is not None:
        query = query.where(MicroGrid.grid_id == grid_id)
    return [_micro_out(m) for m in session.scalars(query)]


@router.post("/api/admin/micro-grids", response_model=MicroGridOut, status_code=201, responses=WRITE_ERRORS)
def create_micro_grid(body: MicroGridIn, context: ContextDep, session: SessionDep, who: Admin) -> MicroGridOut:
    now, fields = context.clock.now(), body.model_dump()
    return _micro_out(_saved(session, now, who, "micro_grid.create", lambda: admin.save_micro_grid(
        session, None, fields, now, context.policy.limits), **fields))


@router.patch("/api/admin/micro-grids/{micro_grid_id}", response_model=MicroGridOut, responses=WRITE_ERRORS)
def update_micro_grid(micro_grid_id: RowId, body: MicroGridPatch, context: ContextDep, session: SessionDep,
                      who: Admin) -> MicroGridOut:
    now, fields = context.clock.now(), body.model_dump(exclude_unset=True)
    return _micro_out(_saved(session, now, who, "micro_grid.update", lambda: admin.save_micro_grid(
        session, admin.get(session, MicroGrid, micro_grid_id), fields, now, context.policy.limits), **fields))


@router.delete("/api/admin/micro-grids/{micro_grid_id}", status_code=204, responses=WRITE_ERRORS)
def delete_micro_grid(micro_grid_id: RowId, context: ContextDep, session: SessionDep, who: Admin) -> Response:
    return _deleted(session, context.clock.now(), who, MicroGrid, micro_grid_id, admin.delete_micro_grid,
                    lambda micro: {"name": micro.name})


# -- residents -------------------------------------------------------------------------------------------
def _resident_out(r: Resident) -> ResidentAdminOut:
    located = r.latitude is not None and r.longitude is not None
    return ResidentAdminOut(
        id=r.id, ref=r.external_ref, name=r.name, birth_year=r.birth_year, address=r.address, phone=r.phone,
        micro_grid_id=r.micro_grid_id, consent_at=r.consent_at, window_hours=_hours(r.inactivity_window_s),
        early_warning_hours=_hours(r.early_warning_s), routine=r.routine_window, latitude=r.latitude,
        bathroom_dwell_hours=_hours(r.bathroom_dwell_s), bathroom_door_dwell_hours=_hours(r.bathroom_door_dwell_s),
        longitude=r.longitude,
        away_until=r.away_until, away_until_activity=r.away_until_activity, last_activity_at=r.last_activity_at,
        watch_from=r.watch_from, due_at=r.due_at, created_at=r.created_at,
        amap_link=geo.amap_link(r.latitude, r.longitude, r.name) if located else None,  # type: ignore[arg-type]
        geo_link=geo.geo_link(r.latitude, r.longitude) if located else None,  # type: ignore[arg-type]
    )


@router.get("/api/admin/residents", response_model=list[ResidentAdminOut])
def list_residents(session: SessionDep, _staff: CentreStaff, micro_grid_id: IdFilter = None,
                   limit: Annotated[int, Query(ge=1, le=5000)] = 500,
                   offset: Annotated[int, Query(ge=0)] = 0) -> list[ResidentAdminOut]:
    query = select(Resident).order_by(Resident.id).limit(limit).offset(offset)
    if micro_grid_id is not None:
        query = query.where(Resident.micro_grid_id == micro_grid_id)
    return [_resident_out(r) for r in session.scalars(query)]


@router.post("/api/admin/residents", response_model=ResidentAdminOut, status_code=201, responses=WRITE_ERRORS)
def create_resident(body: ResidentIn, context: ContextDep, session: SessionDep, who: Admin) -> ResidentAdminOut:
    now, fields = context.clock.now(), body.model_dump()
    with _translated():
        resident = admin.save_resident(session, None, fields, now, context.policy.limits)
    _audit(session, now, who, "resident.create", f"resident:{resident.id}",
           fields=sorted(k for k, v in fields.items() if v not in (None, "")))
    return _resident_out(resident)


@router.get("/api/admin/residents/{resident_id}", response_model=ResidentAdminOut, responses=NOT_FOUND)
def get_resident(resident_id: RowId, context: ContextDep, session: SessionDep, who: CentreStaff) -> ResidentAdminOut:
    """One resident's record (a view of personal data: audited)."""
    with _translated():
        resident = admin.get(session, Resident, resident_id)
    _audit(session, context.clock.now(), who, "resident.view", f"resident:{resident.id}")
    return _resident_out(resident)


@router.patch("/api/admin/residents/{resident_id}", response_model=ResidentAdminOut, responses=WRITE_ERRORS)
def update_resident(resident_id: RowId, body: ResidentPatch, context: ContextDep, session: SessionDep,
                    who: Admin) -> ResidentAdminOut:
    now, fields = context.clock.now(), body.model_dump(exclude_unset=True)
    if "datum" in fields and "latitude" not in fields and "longitude" not in fields:
        del fields["datum"]
    with _translated():
        resident = admin.save_resident(session, admin.get(session, Resident, resident_id), fields, now,
                                       context.policy.limits)
    _audit(session, now, who, "resident.update", f"resident:{resident.id}", fields=sorted(fields))
    return _resident_out(resident)


@router.get("/api/admin/residents/{resident_id}/export", responses=NOT_FOUND)
def export_resident(resident_id: RowId, context: ContextDep, session: SessionDep, who: Admin) -> dict[str, Any]:
    """Everything held on one resident (PIPL): record, devices, contacts, alarms with transitions and
    call/SMS attempts, stored events, and the audit entries about the record."""
    with _translated():
        data = admin.export_resident(session, resident_id)
    now = context.clock.now()
    _audit(session, now, who, "resident.export", f"resident:{resident_id}")
    return {"exported_at": now.isoformat(), "exported_by": who.label, **data}


@router.delete("/api/admin/residents/{resident_id}", responses=WRITE_ERRORS)
def delete_resident(resident_id: RowId, context: ContextDep, session: SessionDep, who: Admin) -> dict[str, Any]:
    """Delete the resident and their personal data (contacts, events, alarms and their calls); devices
    stay, unlinked. The audit log keeps that it happened, and who did it, without personal data."""
    with _translated():
        counts = admin.delete_resident(session, resident_id)
    _audit(session, context.clock.now(), who, "resident.delete", f"resident:{resident_id}", **counts)
    return {"deleted": resident_id, **counts}


@router.post("/api/admin/import/residents", response_model=ImportOut, responses={
    422: {"description": "nothing imported: `detail.errors` lists each bad line and why"}},
    openapi_extra={"requestBody": {"content": {
        "text/csv": {"schema": {"type": "string"}},
        "multipart/form-data": {"schema": {"type": "object", "properties": {
            "file": {"type": "string", "format": "binary"}}}}}}})
async def import_csv(request: Request, context: ContextDep, who: Admin,
                     datum: Annotated[geo.Datum, Query(description="datum of the file's coordinates")]
                     = geo.Datum.WGS84,
                     community: Annotated[str | None, Query(description="community name; the only one when "
                                                                        "omitted, created when new")] = None,
                     ) -> ImportOut:
    """Import residents from CSV (format: docs/admin.md), sent as a ``text/csv`` body or as the
    ``file`` field of a multipart form. All or nothing; importing the same file again changes nothing."""
    data = await _upload(request)
    return await run_in_threadpool(_import, context, who, data, datum, community)


def _import(context: AppContext, who: Principal, data: bytes, datum: geo.Datum, community: str | None) -> ImportOut:
    now = context.clock.now()
    try:
        with Session(context.engine, expire_on_commit=False) as session, session.begin():
            result = import_residents(session, data, datum, now, context.policy.limits, community=community,
                                      actor=who.label, offline_after=context.policy.device_limits.offline_after)
            _audit(session, now, who, "resident.import", "residents", datum=datum.value, lines=result.lines,
                   created=result.created, updated=result.updated)
    except CsvImportError as exc:
        raise HTTPException(422, {"message": Refusal("nothing_imported"), "errors": [
            {"line": e.line, "reason": e.reason} for e in exc.errors]}) from exc
    return ImportOut(lines=result.lines, created=result.created, updated=result.updated, counts=result.counts)


async def _upload(request: Request) -> bytes:
    if request.headers.get("content-type", "").startswith("multipart/form-data"):
        form = await request.form(max_part_size=MAX_UPLOAD)
        upload = form.get("file")
        if upload is None or isinstance(upload, str):
            raise HTTPException(422, Refusal("form_field"))
        return await upload.read()
    data = await request.body()
    if len(data) > MAX_UPLOAD:
        raise HTTPException(413, Refusal("too_large"))
    return data


# -- away mode -------------------------------------------------------------------------------------------
def _away_out(r: Resident, now: datetime) -> AwayOut:
    return AwayOut(resident_id=r.id, away=admin.is_away(r, now), away_until=r.away_until,
                   away_until_activity=r.away_until_activity, due_at=r.due_at)


@router.post("/api/residents/{resident_id}/away", response_model=AwayOut, tags=["residents"],
             responses=WRITE_ERRORS)
def set_away(resident_id: RowId, body: AwayIn, context: ContextDep, session: SessionDep, who: CentreStaff) -> AwayOut:
    """Mark a resident away (staying with family, in hospital): no inactivity alarm meanwhile. With
    ``until`` the window restarts when it ends; with ``until_activity`` the next activity ends it."""
    now = context.clock.now()
    until = body.until.replace(tzinfo=context.settings.tz) if body.until and body.until.tzinfo is None \
        else body.until
    with _translated():
        resident = admin.get(session, Resident, resident_id)
        admin.set_away(session, resident, until, body.until_activity, now, context.policy.limits)
    _audit(session, now, who, "resident.away", f"resident:{resident.id}",
           until=until.isoformat() if until else None, until_activity=body.until_activity)
    return _away_out(resident, now)


@router.delete("/api/residents/{resident_id}/away", response_model=AwayOut, tags=["residents"],
               responses=NOT_FOUND)
def clear_away(resident_id: RowId, context: ContextDep, session: SessionDep, who: CentreStaff) -> AwayOut:
    """End away mode now; the inactivity window restarts from now."""
    now = context.clock.now()
    with _translated():
        resident = admin.get(session, Resident, resident_id)
        admin.clear_away(session, resident, now, context.policy.limits)
    _audit(session, now, who, "resident.back", f"resident:{resident.id}")
    return _away_out(resident, now)


# -- devices ---------------------------------------------------------------------------------------------
def _device_out(d: Device) -> DeviceAdminOut:
    return DeviceAdminOut(id=d.id, external_id=d.external_id, kind=d.kind, name=d.name, room=d.room,
                          resident_id=d.resident_id,
                          gateway_id=d.gateway_id, online=d.online, battery=d.battery, last_seen_at=d.last_seen_at,
                          created_at=d.created_at)


@router.get("/api/admin/devices", response_model=list[DeviceAdminOut])
def list_devices(session: SessionDep, _staff: CentreStaff, resident_id: IdFilter = None,
                 unlinked: bool = False) -> list[DeviceAdminOut]:
    query = select(Device).order_by(Device.id)
    if resident_id is not None:
        query = query.where(Device.resident_id == resident_id)
    if unlinked:
        query = query.where(Device.resident_id.is_(None))
    return [_device_out(d) for d in session.scalars(query)]


@router.post("/api/admin/devices", response_model=DeviceAdminOut, status_code=201, responses=WRITE_ERRORS)
def create_device(body: DeviceIn, context: ContextDep, session: SessionDep, who: Admin) -> DeviceAdminOut:
    now, offline_after = context.clock.now(), context.policy.device_limits.offline_after
    return _device_out(_saved(session, now, who, "device.create", lambda: admin.save_device(
        session, None, body.model_dump(), now, offline_after), **body.model_dump(mode="json")))


@router.patch("/api/admin/devices/{device_id}", response_model=DeviceAdminOut, responses=WRITE_ERRORS)
def update_device(device_id: RowId, body: DevicePatch, context: ContextDep, session: SessionDep,
                  who: Admin) -> DeviceAdminOut:
    now, fields = context.clock.now(), body.model_dump(exclude_unset=True)
    return _device_out(_saved(session, now, who, "device.update", lambda: admin.save_device(
        session, admin.get(session, Device, device_id), fields, now, context.policy.device_limits.offline_after),
        **body.model_dump(mode="json", exclude_unset=True)))


@router.delete("/api/admin/devices/{device_id}", status_code=204, responses=WRITE_ERRORS)
def delete_device(device_id: RowId, context: ContextDep, session: SessionDep, who: Admin) -> Response:
    return _deleted(session, context.clock.now(), who, Device, device_id, admin.delete_device,
                    lambda device: {"external_id": device.external_id})


@router.post("/api/quarantine/{quarantine_id}/adopt", response_model=AdoptOut, tags=["quarantine"],
             responses=WRITE_ERRORS)
def adopt(quarantine_id: RowId, body: AdoptIn, context: ContextDep, session: SessionDep, who: Admin) -> AdoptOut:
    """Adopt the unknown device a quarantined message came from: the device is created for the
    resident, and its next messages are accepted. Refused messages are not replayed."""
    now = context.clock.now()
    with _translated():
        device, marked = admin.adopt_device(session, quarantine_id, body.resident_id, body.kind, now,
                                            context.policy.device_limits.offline_after)
    _audit(session, now, who, "device.adopt", f"device:{device.id}", external_id=device.external_id,
           resident_id=body.resident_id, quarantine_id=quarantine_id, adopted_messages=marked)
    return AdoptOut(device=_device_out(device), adopted_messages=marked)


# -- contacts --------------------------------------------------------------------------------------------
def _contact_out(c: Contact) -> ContactOut:
    return ContactOut(id=c.id, resident_id=c.resident_id, name=c.name, phone=c.phone, relation=c.relation,
                      priority=c.priority)


@router.get("/api/admin/contacts", response_model=list[ContactOut])
def list_contacts(session: SessionDep, _staff: CentreStaff, resident_id: IdFilter = None) -> list[ContactOut]:
    query = select(Contact).order_by(Contact.resident_id, Contact.priority, Contact.id)
    if resident_id is not None:
        query = query.where(Contact.resident_id == resident_id)
    return [_contact_out(c) for c in session.scalars(query)]


@router.post("/api/admin/contacts", response_model=ContactOut, status_code=201, responses=WRITE_ERRORS)
def create_contact(body: ContactIn, context: ContextDep, session: SessionDep, who: Admin) -> ContactOut:
    with _translated():
        contact = admin.save_contact(session, None, body.model_dump())
    _audit(session, context.clock.now(), who, "contact.create", f"resident:{contact.resident_id}",
           contact=contact.id)
    return _contact_out(contact)


@router.patch("/api/admin/contacts/{contact_id}", response_model=ContactOut, responses=WRITE_ERRORS)
def update_contact(contact_id: RowId, body: ContactPatch, context: ContextDep, session: SessionDep,
                   who: Admin) -> ContactOut:
    fields = body.model_dump(exclude_unset=True)
    with _translated():
        contact = admin.save_contact(session, admin.get(session, Contact, contact_id), fields)
    _audit(session, context.clock.now(), who, "contact.update", f"resident:{contact.resident_id}",
           contact=contact.id, fields=sorted(fields))
    return _contact_out(contact)


@router.delete("/api/admin/contacts/{contact_id}", status_code=204, responses=WRITE_ERRORS)
def delete_contact(contact_id: RowId, context: ContextDep, session: SessionDep, who: Admin) -> Response:
    with _translated():
        contact = admin.get(session, Contact, contact_id)
    resident_id = contact.resident_id
    session.delete(contact)
    _audit(session, context.clock.now(), who, "contact.delete", f"resident:{resident_id}", contact=contact_id)
    return Response(status_code=204)


# -- workers ---------------------------------------------------------------------------------------------
def _worker_out(w: Worker) -> WorkerOut:
    return WorkerOut(id=w.id, name=w.name, phone=w.phone, role=w.role, grid_id=w.grid_id,
                     micro_grid_id=w.micro_grid_id, community_id=w.community_id, active=w.active,
                     has_pin=w.pin_hash is not None)


@router.get("/api/admin/workers", response_model=list[WorkerOut])
def list_workers(session: SessionDep, _staff: CentreStaff) -> list[WorkerOut]:
    return [_worker_out(w) for w in session.scalars(select(Worker).order_by(Worker.id))]


@router.post("/api/admin/workers", response_model=WorkerOut, status_code=201, responses=WRITE_ERRORS)
def create_worker(body: WorkerIn, context: ContextDep, session: SessionDep, who: Admin) -> WorkerOut:
    fields = body.model_dump(exclude={"pin"})
    with _translated():
        worker = admin.save_worker(session, None, fields)
    if body.pin:
        accounts.set_pin(session, worker.phone, body.pin)
    _audit(session, context.clock.now(), who, "worker.create", f"worker:{worker.id}",
           fields=sorted(k for k, v in body.model_dump().items() if v is not None))
    return _worker_out(worker)


@router.patch("/api/admin/workers/{worker_id}", response_model=WorkerOut, responses=WRITE_ERRORS)
def update_worker(worker_id: RowId, body: WorkerPatch, context: ContextDep, session: SessionDep,
                  who: Admin) -> WorkerOut:
    fields = body.model_dump(exclude_unset=True)
    pin = fields.pop("pin", None)
    with _translated():
        worker = admin.save_worker(session, admin.get(session, Worker, worker_id), fields)
    if fields.get("active") is False:
        accounts.deactivate_worker(session, worker)  # their sessions end
    if pin:
        accounts.set_pin(session, worker.phone, pin)
    _audit(session, context.clock.now(), who, "worker.update", f"worker:{worker.id}",
           fields=sorted([*fields, *(["pin"] if pin else [])]))
    return _worker_out(worker)


@router.delete("/api/admin/workers/{worker_id}", status_code=204, responses=WRITE_ERRORS)
def delete_worker(worker_id: RowId, context: ContextDep, session: SessionDep, who: Admin) -> Response:
    return _deleted(session, context.clock.now(), who, Worker, worker_id, admin.delete_worker)


# -- the audit log ---------------------------------------------------------------------------------------
@router.get("/api/audit", response_model=AuditPage, tags=["audit"])
def audit_log(session: SessionDep, _staff: CentreStaff, actor: str | None = None,
              action: str | None = None, target: str | None = None,
              before: Annotated[int | None, Query(ge=1, le=MAX_ID, description="entries older than this id (the "
                                                                      "next page)")] = None,
              limit: Annotated[int, Query(ge=1, le=1000)] = 100) -> AuditPage:
    """Newest first. ``actor`` and ``target`` match exactly (``resident:12``); ``action`` exactly or
    by prefix with a trailing ``.`` (``resident.``)."""
    query = select(AuditEntry).order_by(AuditEntry.id.desc()).limit(limit + 1)
    if actor:
        query = query.where(AuditEntry.actor == actor)
    if action:
        query = query.where(AuditEntry.action.startswith(action, autoescape=True) if action.endswith(".")
                            else AuditEntry.action == action)
    if target:
        query = query.where(AuditEntry.target == target)
    if before is not None:
        query = query.where(AuditEntry.id < before)
    rows = list(session.scalars(query))
    page = rows[:limit]
    return AuditPage(entries=[AuditOut(id=e.id, at=e.at, actor=e.actor, action=e.action, target=e.target,
                                       detail=e.detail) for e in page],
                     next_before=page[-1].id if len(rows) > limit else None)
