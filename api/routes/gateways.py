"""Administration of gateways: what devices report through (a Zigbee2MQTT bridge, a hub, a building's
uplink). Each is listed with its state and the homes behind it. Writes need an admin, reads the centre's
staff; every change writes an audit entry."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Path, Response
from pydantic import BaseModel, Field
from sqlalchemy import select, update
from sqlalchemy.orm import Session

from alerts.models import AuditEntry, Community, Device, Gateway, GatewayKind, Resident
from alerts.refusals import Refusal
from api.auth import Admin, CentreStaff
from api.deps import ContextDep, SessionDep
from api.errors import MAX_ID

router = APIRouter(tags=["admin"])
ERRORS: dict[int | str, dict[str, Any]] = {404: {"description": "no such gateway, or no such community"},
                                           409: {"description": "a gateway with this external id exists"}}
GatewayId = Annotated[int, Path(ge=1, le=MAX_ID, description="the gateway's id")]


class GatewayIn(BaseModel):
    external_id: str = Field(min_length=1, max_length=200, description="the id it reports under; Zigbee2MQTT: the "
                             "bridge's base topic")
    kind: GatewayKind = Field(GatewayKind.ZIGBEE2MQTT, description="zigbee2mqtt, native or other")
    name: str = Field("", max_length=200, description="a label for people (\"2号楼 Zigbee 网关\")")
    community_id: int | None = Field(None, ge=1, le=MAX_ID, description="the community it serves")


class GatewayPatch(BaseModel):
    external_id: str | None = Field(None, min_length=1, max_length=200, description="the id it reports under")
    kind: GatewayKind | None = Field(None, description="zigbee2mqtt, native or other")
    name: str | None = Field(None, max_length=200, description="a label for people")
    community_id: int | None = Field(None, ge=1, le=MAX_ID, description="the community it serves; null: none")


class GatewayHome(BaseModel):
    resident_id: int = Field(description="the resident whose home has devices behind the gateway")
    name: str = Field(description="the resident's name")
    devices: list[str] = Field(description="the external ids of the home's devices behind the gateway")


class GatewayOut(BaseModel):
    id: int = Field(description="the gateway's id")
    external_id: str = Field(description="the id it reports under (Zigbee2MQTT: the base topic)")
    kind: str = Field(description="zigbee2mqtt, native or other")
    name: str = Field(description="a label for people")
    community_id: int | None = Field(description="the community it serves")
    online: bool = Field(description="false while its own last report says offline")
    availability: str | None = Field(description="its own last report: online or offline (null: none yet)")
    availability_at: datetime | None = Field(description="when that report came")
    last_seen_at: datetime | None = Field(description="the last message heard through it")
    homes: list[GatewayHome] = Field(description="the homes with devices behind it")


def _out(session: Session, gateway: Gateway) -> GatewayOut:
    homes: dict[int, GatewayHome] = {}
    rows = session.execute(select(Resident.id, Resident.name, Device.external_id)
                           .join(Device, Device.resident_id == Resident.id)
                           .where(Device.gateway_id == gateway.id).order_by(Resident.id, Device.id)).all()
    for resident_id, name, device in rows:
        home = homes.setdefault(resident_id, GatewayHome(resident_id=resident_id, name=name, devices=[]))
        home.devices.append(device)
    return GatewayOut(id=gateway.id, external_id=gateway.external_id, kind=gateway.kind, name=gateway.name,
                      community_id=gateway.community_id, online=gateway.online,
                      availability=gateway.availability, availability_at=gateway.availability_at,
                      last_seen_at=gateway.last_seen_at, homes=list(homes.values()))


def _get(session: Session, gateway_id: int) -> Gateway:
    gateway = session.get(Gateway, gateway_id)
    if gateway is None:
        raise HTTPException(404, Refusal("no_gateway", id=gateway_id))
    return gateway


def _community(session: Session, community_id: int | None) -> None:
    if community_id is not None and session.get(Community, community_id) is None:
        raise HTTPException(404, Refusal("no_community", id=community_id))


def _unique(session: Session, external_id: str, own: int | None) -> None:
    found = session.scalar(select(Gateway.id).where(Gateway.external_id == external_id))
    if found is not None and found != own:
        raise HTTPException(409, Refusal("gateway_exists", id=external_id))


@router.get("/api/admin/gateways", response_model=list[GatewayOut])
def list_gateways(session: SessionDep, _staff: CentreStaff) -> list[GatewayOut]:
    """Every gateway with its state and the homes (and their devices) behind it."""
    return [_out(session, g) for g in session.scalars(select(Gateway).order_by(Gateway.id))]


@router.get("/api/admin/gateways/{gateway_id}", response_model=GatewayOut, responses=ERRORS)
def get_gateway(gateway_id: GatewayId, session: SessionDep, _staff: CentreStaff) -> GatewayOut:
    return _out(session, _get(session, gateway_id))


@router.post("/api/admin/gateways", response_model=GatewayOut, status_code=201, responses=ERRORS)
def create_gateway(body: GatewayIn, context: ContextDep, session: SessionDep, who: Admin) -> GatewayOut:
    now = context.clock.now()
    _unique(session, body.external_id, None)
    _community(session, body.community_id)
    gateway = Gateway(external_id=body.external_id, kind=body.kind, name=body.name, community_id=body.community_id,
                      online=True, created_at=now)
    session.add(gateway)
    session.flush()
    session.add(AuditEntry(at=now, actor=who.label, action="gateway.create", target=f"gateway:{gateway.id}",
                           detail=body.model_dump(mode="json")))
    return _out(session, gateway)


@router.patch("/api/admin/gateways/{gateway_id}", response_model=GatewayOut, responses=ERRORS)
def update_gateway(gateway_id: GatewayId, body: GatewayPatch, context: ContextDep, session: SessionDep,
                   who: Admin) -> GatewayOut:
    now, fields = context.clock.now(), body.model_dump(exclude_unset=True)
    gateway = _get(session, gateway_id)
    if fields.get("external_id"):
        _unique(session, fields["external_id"], gateway.id)
    _community(session, fields.get("community_id"))
    for name, value in fields.items():
        if value is not None or name == "community_id":
            setattr(gateway, name, value)
    session.add(AuditEntry(at=now, actor=who.label, action="gateway.update", target=f"gateway:{gateway.id}",
                           detail=body.model_dump(mode="json", exclude_unset=True)))
    session.flush()
    return _out(session, gateway)


@router.delete("/api/admin/gateways/{gateway_id}", status_code=204, response_class=Response, responses=ERRORS)
def delete_gateway(gateway_id: GatewayId, context: ContextDep, session: SessionDep, who: Admin) -> Response:
    """Remove a gateway; its devices stay, reporting through no shared gateway."""
    gateway = _get(session, gateway_id)
    session.execute(update(Device).where(Device.gateway_id == gateway.id).values(gateway_id=None))
    session.add(AuditEntry(at=context.clock.now(), actor=who.label, action="gateway.delete",
                           target=f"gateway:{gateway.id}", detail={"external_id": gateway.external_id}))
    session.delete(gateway)
    return Response(status_code=204)
