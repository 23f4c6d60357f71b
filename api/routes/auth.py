"""Sign-in for centre accounts (username + password) and workers (phone + PIN), sign-out, who am I,
and the signed link of an escalation SMS."""

from __future__ import annotations

from datetime import timedelta

from fastapi import APIRouter, HTTPException, Request, Response
from fastapi.responses import RedirectResponse
from pydantic import BaseModel, Field
from sqlalchemy.orm import Session

from alerts.escalation.links import verify_link
from alerts.models import AuditEntry, Worker
from api.auth import (
    SESSION_COOKIE,
    CurrentPrincipal,
    LoginError,
    _token_of,
    issue_token,
    login_user,
    login_worker,
    revoke_token,
)
from api.deps import ContextDep

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


def _session_response(response: Response, token: str, hours: float) -> None:
    response.set_cookie(SESSION_COOKIE, token, max_age=int(hours * 3600), httponly=True, samesite="lax")


@router.post("/api/auth/login", response_model=TokenOut, responses={401: {"description": "wrong or locked"}})
def login(body: LoginIn, response: Response, context: ContextDep) -> TokenOut:
    """A centre account signs in: returns a token (also set as a cookie) that expires."""
    now = context.clock.now()
    with Session(context.engine) as session, session.begin():
        try:
            token, user = login_user(session, body.username, body.password, now,
                                     timedelta(hours=context.settings.api.session_hours))
        except LoginError as exc:
            session.add(AuditEntry(at=now, actor=body.username, action="auth.failed", target="user", detail={}))
            session.commit()
            raise HTTPException(401, str(exc)) from exc
        session.add(AuditEntry(at=now, actor=user.username, action="auth.login", target=f"user:{user.id}", detail={}))
        out = TokenOut(token=token, role=user.role, name=user.name or user.username)
    _session_response(response, token, context.settings.api.session_hours)
    return out


@router.post("/api/auth/worker-login", response_model=TokenOut, responses={401: {"description": "wrong or locked"}})
def worker_login(body: WorkerLoginIn, response: Response, context: ContextDep) -> TokenOut:
    """A grid worker signs in on the phone page with their phone number and PIN."""
    now = context.clock.now()
    with Session(context.engine) as session, session.begin():
        try:
            token, worker = login_worker(session, body.phone, body.pin, now,
                                         timedelta(hours=context.settings.api.session_hours))
        except LoginError as exc:
            session.add(AuditEntry(at=now, actor=body.phone, action="auth.failed", target="worker", detail={}))
            session.commit()
            raise HTTPException(401, str(exc)) from exc
        session.add(AuditEntry(at=now, actor=worker.name, action="auth.login", target=f"worker:{worker.id}",
                               detail={}))
        out = TokenOut(token=token, role=worker.role, name=worker.name)
    _session_response(response, token, context.settings.api.session_hours)
    return out


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


@router.get("/api/auth/me", response_model=MeOut)
def me(principal: CurrentPrincipal) -> MeOut:
    return MeOut(name=principal.name, role=principal.role, grid_id=principal.grid_id,
                 micro_grid_id=principal.micro_grid_id)


@router.get("/m/a/{alarm_id}", include_in_schema=False)
def sms_link(alarm_id: int, t: str, context: ContextDep) -> Response:
    """The link in an escalation SMS: signs the worker in and opens the alarm on the phone page."""
    now = context.clock.now()
    found = verify_link(context.secret_key, t, now)
    if found is None or found[1] != alarm_id:
        raise HTTPException(403, "this link is not valid (or has expired): sign in with your phone and PIN")
    worker_id, _ = found
    with Session(context.engine) as session, session.begin():
        worker = session.get(Worker, worker_id)
        if worker is None or not worker.active:
            raise HTTPException(403, "this link is not valid")
        token = issue_token(session, now, timedelta(hours=context.settings.api.session_hours), worker_id=worker_id,
                            label="sms link")
        session.add(AuditEntry(at=now, actor=worker.name, action="auth.link", target=f"alarm:{alarm_id}", detail={}))
    response = RedirectResponse(f"/m/#alarm-{alarm_id}", status_code=303)
    _session_response(response, token, context.settings.api.session_hours)
    return response

