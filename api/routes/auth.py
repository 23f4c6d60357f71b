"""Sign-in for centre accounts (username + password) and workers (phone + PIN), sign-out, who am I,
and the signed link of an escalation SMS. Both sign-ins go through one path (:func:`_sign_in`); every
expiry here is on real time."""

from __future__ import annotations

from datetime import timedelta

from fastapi import APIRouter, HTTPException, Request, Response
from fastapi.responses import RedirectResponse
from pydantic import BaseModel, Field
from sqlalchemy.orm import Session

from alerts.escalation.links import pin_stamp, read_link, verify_link
from alerts.models import Alarm, AlarmState, AuditEntry, Worker
from alerts.refusals import Refusal
from api.auth import (
    SESSION_COOKIE,
    AddressLimit,
    CurrentPrincipal,
    LoginError,
    _token_of,
    issue_token,
    real_now,
    revoke_token,
    sign_in,
)
from api.deps import AppContext, ContextDep

router = APIRouter(tags=["auth"])


class LoginIn(BaseModel):
    username: str = Field(min_length=1, max_length=100)
    password: str = Field(min_length=1, max_length=200)


class WorkerLoginIn(BaseModel):
    phone: str = Field(min_length=3, max_length=40)
    pin: str = Field(min_length=4, max_length=20)


class TokenOut(BaseModel):
    token: str
    role: str
    name: str


def secure_request(request: Request) -> bool:
    """Served over HTTPS: the request's scheme, which uvicorn takes from ``X-Forwarded-Proto`` only for a
    trusted proxy (``--forwarded-allow-ips``, env ``FORWARDED_ALLOW_IPS``; 127.0.0.1 by default)."""
    return request.url.scheme == "https"


def _session_response(response: Response, request: Request, token: str, hours: float) -> None:
    response.set_cookie(SESSION_COOKIE, token, max_age=int(hours * 3600), httponly=True, samesite="lax",
                        secure=secure_request(request))


def _address_limit(context: AppContext) -> AddressLimit:
    if context.sign_in_limit is None:
        context.sign_in_limit = AddressLimit()
    limit: AddressLimit = context.sign_in_limit
    return limit


LOGIN_RESPONSES: dict[int | str, dict[str, str]] = {
    401: {"description": "wrong or locked"}, 429: {"description": "too many sign-ins from this address"}}


def _sign_in(kind: str, name: str, secret: str, request: Request, response: Response,
             context: AppContext) -> TokenOut:
    """The one sign-in path: the address limit, the account-and-address lock, the check, the audit."""
    source = request.client.host if request.client else "unknown"
    now = real_now(context)
    if not _address_limit(context).allow(source):
        raise HTTPException(429, Refusal("too_many_sign_ins"),
                            headers={"Retry-After": "60"})
    hours = context.settings.api.session_hours
    try:
        token, principal = sign_in(context.engine, kind, name, secret, source, now, timedelta(hours=hours))
    except LoginError as exc:
        with Session(context.engine) as session, session.begin():
            session.add(AuditEntry(at=now, actor=name[:200], action="auth.failed", target=kind,
                                   detail={"source": source}))
        raise HTTPException(401, exc) from exc
    with Session(context.engine) as session, session.begin():
        session.add(AuditEntry(at=now, actor=principal.name, action="auth.login",
                               target=f"{kind}:{principal.id}", detail={"source": source}))
    _session_response(response, request, token, hours)
    return TokenOut(token=token, role=principal.role, name=principal.name)


@router.post("/api/auth/login", response_model=TokenOut, responses=LOGIN_RESPONSES)
def login(body: LoginIn, request: Request, response: Response, context: ContextDep) -> TokenOut:
    """A centre account signs in: returns a token (also set as a cookie) that expires."""
    return _sign_in("user", body.username, body.password, request, response, context)


@router.post("/api/auth/worker-login", response_model=TokenOut, responses=LOGIN_RESPONSES)
def worker_login(body: WorkerLoginIn, request: Request, response: Response, context: ContextDep) -> TokenOut:
    """A grid worker signs in on the phone page with their phone number and PIN."""
    return _sign_in("worker", body.phone, body.pin, request, response, context)


@router.post("/api/auth/logout", status_code=204)
def logout(request: Request, response: Response, context: ContextDep) -> Response:
    token = _token_of(request)
    if token:
        with Session(context.engine) as session, session.begin():
            revoke_token(session, token)
    response = Response(status_code=204)
    response.delete_cookie(SESSION_COOKIE)
    return response


class MeOut(BaseModel):
    name: str
    role: str
    grid_id: int | None
    micro_grid_id: int | None
    alarm_id: int | None = Field(None, description="set for a session opened by an SMS link: that alarm only")


@router.get("/api/auth/me", response_model=MeOut)
def me(principal: CurrentPrincipal) -> MeOut:
    return MeOut(name=principal.name, role=principal.role, grid_id=principal.grid_id,
                 micro_grid_id=principal.micro_grid_id, alarm_id=principal.alarm_id)


@router.get("/m/a/{alarm_id}", include_in_schema=False)
def sms_link(alarm_id: int, t: str, request: Request, context: ContextDep) -> Response:
    """The link in an escalation SMS: opens that one alarm on the phone page (a session limited to it).
    Refused once expired (real time), once the alarm is resolved, or after the worker's PIN changed."""
    now = real_now(context)
    claim = read_link(t)
    refused = HTTPException(403, Refusal("link_invalid"))
    if claim is None or claim.alarm_id != alarm_id:
        raise refused
    with Session(context.engine) as session, session.begin():
        worker = session.get(Worker, claim.worker_id)
        alarm = session.get(Alarm, alarm_id)
        if worker is None or not worker.active or alarm is None or alarm.state == AlarmState.RESOLVED:
            raise refused
        if verify_link(context.secret_key, t, now, pin_stamp(worker.pin_hash)) is None:
            raise refused
        hours = min(context.settings.api.session_hours, context.settings.api.link_hours)
        token = issue_token(session, now, timedelta(hours=hours), worker_id=worker.id, label="sms link",
                            alarm_id=alarm_id)
        session.add(AuditEntry(at=now, actor=worker.name, action="auth.link", target=f"alarm:{alarm_id}", detail={}))
    response = RedirectResponse(f"/m/#alarm-{alarm_id}", status_code=303)
    _session_response(response, request, token, hours)
    return response
