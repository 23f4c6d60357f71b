"""Who is asking, and what they may see and do.

Roles: ``admin`` (everything), ``operator`` (the centre: all residents and alarms, acknowledge,
resolve, dispatch), ``screen`` (read-only, a long-lived token for the wall display), ``supervisor``
(a worker for the whole community), ``grid_worker`` (their grid), ``micro_grid_worker`` (their
micro-grid). Passwords and PINs are hashed with argon2; tokens are random, stored as SHA-256, and
expire. Sign-in is rate-limited per account (5 failures lock it for 15 minutes). The link in an
escalation SMS is signed with ``api.secret_key`` and expires: it identifies the worker and the alarm.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Annotated, Any

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from fastapi import Depends, HTTPException, Request
from sqlalchemy import ColumnElement, select, true
from sqlalchemy.orm import Session

from alerts.models import Alarm, ApiToken, Device, MicroGrid, Resident, User, Worker
from api.deps import ContextDep

SESSION_COOKIE = "sw_session"
MAX_FAILURES = 5
LOCKOUT = timedelta(minutes=15)
_hasher = PasswordHasher()

CENTRE = frozenset({"admin", "operator", "screen", "supervisor"})  # see every resident
ACTORS = frozenset({"admin", "operator", "supervisor", "grid_worker", "micro_grid_worker"})


class LoginError(Exception):
    pass


@dataclass(frozen=True)
class Principal:
    kind: str  # user or worker
    id: int
    name: str
    role: str
    grid_id: int | None = None
    micro_grid_id: int | None = None

    @property
    def label(self) -> str:
        return f"{self.name} ({self.role})"

    @property
    def sees_all(self) -> bool:
        return self.role in CENTRE

    @property
    def can_act(self) -> bool:
        return self.role in ACTORS


def hash_secret(secret: str) -> str:
    return _hasher.hash(secret)


def verify_secret(stored: str | None, secret: str) -> bool:
    if not stored:
        return False
    try:
        return _hasher.verify(stored, secret)
    except (VerificationError, InvalidHashError):
        return False


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def issue_token(session: Session, now: datetime, ttl: timedelta, *, user_id: int | None = None,
                worker_id: int | None = None, label: str = "") -> str:
    token = secrets.token_urlsafe(32)
    session.add(ApiToken(token_hash=_digest(token), user_id=user_id, worker_id=worker_id, label=label,
                         created_at=now, expires_at=now + ttl))
    return token


def revoke_token(session: Session, token: str) -> None:
    row = session.scalars(select(ApiToken).where(ApiToken.token_hash == _digest(token))).first()
    if row is not None:
        row.revoked = True


def principal_for_token(session: Session, token: str, now: datetime) -> Principal | None:
    row = session.scalars(select(ApiToken).where(ApiToken.token_hash == _digest(token))).first()
    if row is None or row.revoked or row.expires_at <= now:
        return None
    if row.user_id is not None:
        user = session.get(User, row.user_id)
        if user is None or not user.active:
            return None
        return Principal("user", user.id, user.name or user.username, user.role)
    worker = session.get(Worker, row.worker_id) if row.worker_id is not None else None
    if worker is None or not worker.active:
        return None
    return Principal("worker", worker.id, worker.name, worker.role, worker.grid_id, worker.micro_grid_id)


def _check(account: User | Worker | None, secret_hash: str | None, secret: str, now: datetime) -> None:
    if account is None or not account.active:
        raise LoginError("wrong name or password")
    if account.locked_until is not None and account.locked_until > now:
        raise LoginError("too many failed sign-ins; try again later")
    if not verify_secret(secret_hash, secret):
        account.failed_logins += 1
        if account.failed_logins >= MAX_FAILURES:
            account.locked_until, account.failed_logins = now + LOCKOUT, 0
        raise LoginError("wrong name or password")
    account.failed_logins, account.locked_until = 0, None


def login_user(session: Session, username: str, password: str, now: datetime, ttl: timedelta) -> tuple[str, User]:
    user = session.scalars(select(User).where(User.username == username)).first()
    _check(user, user.password_hash if user else None, password, now)
    assert user is not None
    return issue_token(session, now, ttl, user_id=user.id, label="session"), user


def login_worker(session: Session, phone: str, pin: str, now: datetime, ttl: timedelta) -> tuple[str, Worker]:
    worker = session.scalars(select(Worker).where(Worker.phone == phone.replace(" ", ""))).first()
    _check(worker, worker.pin_hash if worker else None, pin, now)
    assert worker is not None
    return issue_token(session, now, ttl, worker_id=worker.id, label="phone"), worker


# -- scopes ----------------------------------------------------------------------------------------------
def resident_scope(principal: Principal) -> ColumnElement[bool]:
    """The residents a principal may see, as a WHERE clause on Resident."""
    if principal.sees_all:
        return true()
    if principal.role == "grid_worker" and principal.grid_id is not None:
        return Resident.micro_grid_id.in_(select(MicroGrid.id).where(MicroGrid.grid_id == principal.grid_id))
    if principal.role == "micro_grid_worker" and principal.micro_grid_id is not None:
        return Resident.micro_grid_id == principal.micro_grid_id
    return Resident.id.is_(None)  # nobody


def alarm_scope(principal: Principal) -> ColumnElement[bool]:
    """The alarms a principal may see: those of visible residents (and their devices); system alarms
    only for the centre."""
    if principal.sees_all:
        return true()
    visible = select(Resident.id).where(resident_scope(principal))
    devices = select(Device.id).where(Device.resident_id.in_(visible))
    return Alarm.resident_id.in_(visible) | Alarm.device_id.in_(devices)


def visible_alarm(session: Session, principal: Principal, alarm_id: int) -> Alarm:
    """The alarm, or 404 when it does not exist or is not this principal's to see."""
    alarm = session.scalars(select(Alarm).where(Alarm.id == alarm_id, alarm_scope(principal))).first()
    if alarm is None:
        raise HTTPException(404, f"no alarm {alarm_id}")
    return alarm


def visible_resident(session: Session, principal: Principal, resident_id: int) -> Resident:
    resident = session.scalars(select(Resident).where(Resident.id == resident_id, resident_scope(principal))).first()
    if resident is None:
        raise HTTPException(404, f"no resident {resident_id}")
    return resident


# -- FastAPI dependencies -------------------------------------------------------------------------------
def _token_of(request: Request) -> str | None:
    header = request.headers.get("authorization", "")
    if header.lower().startswith("bearer "):
        return header[7:].strip()
    return request.cookies.get(SESSION_COOKIE) or request.query_params.get("token")


def current_principal(request: Request, context: ContextDep) -> Principal:
    token = _token_of(request)
    if token:
        now = context.clock.now()
        with Session(context.engine) as session:
            principal = principal_for_token(session, token, now)
        if principal is not None:
            return principal
    raise HTTPException(401, "sign in first", headers={"WWW-Authenticate": "Bearer"})


CurrentPrincipal = Annotated[Principal, Depends(current_principal)]


def require(*roles: str) -> Any:
    def check(principal: CurrentPrincipal) -> Principal:
        if principal.role not in roles:
            raise HTTPException(403, f"{principal.role} may not do this")
        return principal

    return Depends(check)


def actor(principal: CurrentPrincipal) -> Principal:
    """Someone who may change an alarm: not the read-only screen."""
    if not principal.can_act:
        raise HTTPException(403, f"{principal.role} is read-only")
    return principal


Actor = Annotated[Principal, Depends(actor)]
CentreStaff = Annotated[Principal, require("admin", "operator")]
Admin = Annotated[Principal, require("admin")]
