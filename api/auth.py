"""Who is asking, and what they may see and do.

Roles: ``admin`` (everything), ``operator`` (the centre: all residents and alarms, acknowledge,
resolve, dispatch), ``screen`` (read-only, a long-lived token for the wall display), ``supervisor``
(a worker for the whole community), ``grid_worker`` (their grid), ``micro_grid_worker`` (their
micro-grid). The scope itself lives in :mod:`alerts.scope` (the phone channels use it too).

Passwords and PINs are hashed with argon2 (parameters sized for this service, at most
``HASH_SLOTS`` checks at once: see docs/admin.md). Tokens are random, stored as SHA-256, and expire on
real time (never on the service's possibly simulated clock). Sign-in is limited per client address
(``PER_ADDRESS`` attempts a minute, then 429) and per account and address: ``MAX_FAILURES`` failures
lock that pair, each lock longer than the last, counted atomically. A session opened by an SMS link
sees that one alarm only.
"""

from __future__ import annotations

import hashlib
import secrets
import threading
import time
from collections import deque
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Annotated, Any
from urllib.parse import urlsplit

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from fastapi import Depends, HTTPException, Request
from sqlalchemy import ColumnElement, Engine, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session

from alerts import scope
from alerts.models import Alarm, ApiToken, Resident, SignInFailure, User, Worker
from alerts.refusals import Refusal
from api.deps import AppContext, ContextDep

SESSION_COOKIE = "sw_session"
MAX_FAILURES = 5
LOCKOUT = timedelta(minutes=1)  # the first lock of an account from one address; doubles each time
MAX_LOCKOUT = timedelta(hours=1)
PER_ADDRESS = 30  # sign-in attempts a minute from one client address, any account
# argon2id at 19 MiB, 2 passes, 1 lane: OWASP's recommended minimum (about 20-40 ms a check here);
# the library's default is 64 MiB, which a burst of sign-ins multiplies.
_hasher = PasswordHasher(time_cost=2, memory_cost=19 * 1024, parallelism=1)
HASH_SLOTS = 2  # argon2 checks at once per process: memory stays under HASH_SLOTS x 19 MiB
_hash_slots = threading.BoundedSemaphore(HASH_SLOTS)

CENTRE = scope.CENTRE
ACTORS = frozenset({"admin", "operator", "supervisor", "grid_worker", "micro_grid_worker"})


class LoginError(Refusal):
    pass


class TooManyAttempts(Exception):
    pass


@dataclass(frozen=True)
class Principal:
    kind: str  # user or worker
    id: int
    name: str
    role: str
    grid_id: int | None = None
    micro_grid_id: int | None = None
    alarm_id: int | None = None  # a session opened by an SMS link sees this alarm only

    @property
    def label(self) -> str:
        return f"{self.name} ({self.role})"

    @property
    def sees_all(self) -> bool:
        return self.role in CENTRE and self.alarm_id is None

    @property
    def can_act(self) -> bool:
        return self.role in ACTORS

    @property
    def reach(self) -> scope.Reach:
        return scope.Reach(self.role, self.grid_id, self.micro_grid_id)


def hash_secret(secret: str) -> str:
    with _hash_slots:
        return _hasher.hash(secret)


def verify_secret(stored: str | None, secret: str) -> bool:
    with _hash_slots:
        if not stored:
            _hasher.hash(secret)  # the same work as a real check: no timing tells which accounts exist
            return False
        try:
            return _hasher.verify(stored, secret)
        except (VerificationError, InvalidHashError):
            return False


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def issue_token(session: Session, now: datetime, ttl: timedelta, *, user_id: int | None = None,
                worker_id: int | None = None, label: str = "", alarm_id: int | None = None) -> str:
    """A new session token; ``now`` is real time (sessions never follow the service's clock)."""
    token = secrets.token_urlsafe(32)
    session.add(ApiToken(token_hash=_digest(token), user_id=user_id, worker_id=worker_id, label=label,
                         created_at=now, expires_at=now + ttl, alarm_id=alarm_id))
    return token


def revoke_token(session: Session, token: str) -> None:
    row = session.scalars(select(ApiToken).where(ApiToken.token_hash == _digest(token))).first()
    if row is not None:
        row.revoked = True


def revoke_sessions(session: Session, *, user_id: int | None = None, worker_id: int | None = None) -> int:
    """End every session of an account (a PIN or password change, a deactivation)."""
    owner = ApiToken.user_id == user_id if user_id is not None else ApiToken.worker_id == worker_id
    result = session.execute(update(ApiToken).where(owner, ApiToken.revoked.is_(False)).values(revoked=True))
    return int(result.rowcount or 0)  # type: ignore[attr-defined]


def principal_for_token(session: Session, token: str, now: datetime) -> Principal | None:
    """Who holds this token at real time ``now``, or None (unknown, revoked, expired, deactivated)."""
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
    return Principal("worker", worker.id, worker.name, worker.role, worker.grid_id, worker.micro_grid_id,
                     row.alarm_id)


# -- sign-in limits --------------------------------------------------------------------------------------
class AddressLimit:
    """At most ``per_minute`` sign-in attempts a minute from one client address (this process)."""

    def __init__(self, per_minute: int = PER_ADDRESS, clock: Any = time.monotonic) -> None:
        self.per_minute, self._clock = per_minute, clock
        self._seen: dict[str, deque[float]] = {}
        self._lock = threading.Lock()

    def allow(self, address: str) -> bool:
        now = self._clock()
        with self._lock:
            if len(self._seen) > 10_000:  # bounded: forget addresses quiet for a minute
                self._seen = {a: q for a, q in self._seen.items() if q and q[-1] > now - 60}
            recent = self._seen.setdefault(address, deque())
            while recent and recent[0] <= now - 60:
                recent.popleft()
            if len(recent) >= self.per_minute:
                return False
            recent.append(now)
            return True


def _reserve(engine: Engine, account: str, source: str, now: datetime) -> None:
    """Count this attempt as a failure before checking it, atomically and committed at once (so parallel
    guesses cannot all pass); a success clears it. Raises LoginError while the pair is locked."""
    locked = False
    with Session(engine) as session, session.begin():  # committed even when the attempt is refused
        values = {"account": account, "source": source, "failures": 0, "lockouts": 0}
        if engine.dialect.name == "postgresql":
            session.execute(pg_insert(SignInFailure).values(**values).on_conflict_do_nothing())
        else:
            session.execute(sqlite_insert(SignInFailure).values(**values).on_conflict_do_nothing())
        key = (SignInFailure.account == account) & (SignInFailure.source == source)
        open_ = SignInFailure.locked_until.is_(None) | (SignInFailure.locked_until <= now)
        row = session.execute(update(SignInFailure).where(key, open_)
                              .values(failures=SignInFailure.failures + 1)
                              .returning(SignInFailure.failures, SignInFailure.lockouts)).first()
        if row is None:
            locked = True
        elif row[0] > MAX_FAILURES:
            lock = min(LOCKOUT * (2 ** min(row[1], 10)), MAX_LOCKOUT)
            session.execute(update(SignInFailure).where(key).values(
                failures=0, lockouts=SignInFailure.lockouts + 1, locked_until=now + lock))
            locked = True
    if locked:
        raise LoginError("locked_out")


def _cleared(engine: Engine, account: str, source: str) -> None:
    with Session(engine) as session, session.begin():
        session.execute(update(SignInFailure).where(SignInFailure.account == account, SignInFailure.source == source)
                        .values(failures=0, lockouts=0, locked_until=None))


def sign_in(engine: Engine, kind: str, name: str, secret: str, source: str, now: datetime,
            ttl: timedelta) -> tuple[str, Principal]:
    """Check a centre account's password (``kind`` user) or a worker's PIN (``kind`` worker) and open a
    session: the one sign-in path. ``now`` is real time; ``source`` the client address."""
    name = name.replace(" ", "") if kind == "worker" else name
    account = f"{kind}:{name}"[:150]
    _reserve(engine, account, source[:64], now)
    with Session(engine) as session:
        found: User | Worker | None
        if kind == "user":
            found = session.scalars(select(User).where(User.username == name)).first()
            stored = found.password_hash if found else None
        else:
            found = session.scalars(select(Worker).where(Worker.phone == name)).first()
            stored = found.pin_hash if found else None
        active = found is not None and found.active
    if not verify_secret(stored if active else None, secret) or found is None:
        raise LoginError("wrong_credentials")
    _cleared(engine, account, source[:64])
    with Session(engine) as session, session.begin():
        if isinstance(found, User):
            token = issue_token(session, now, ttl, user_id=found.id, label="session")
            principal = Principal("user", found.id, found.name or found.username, found.role)
        else:
            token = issue_token(session, now, ttl, worker_id=found.id, label="phone")
            principal = Principal("worker", found.id, found.name, found.role, found.grid_id, found.micro_grid_id)
    return token, principal


# -- scopes (the rule is alerts.scope's) -----------------------------------------------------------------
def resident_scope(principal: Principal) -> ColumnElement[bool]:
    """The residents a principal may see, as a WHERE clause on Resident."""
    if principal.alarm_id is not None:
        return Resident.id.in_(select(Alarm.resident_id).where(Alarm.id == principal.alarm_id,
                                                                scope.alarm_scope(principal.reach)))
    return scope.resident_scope(principal.reach)


def alarm_scope(principal: Principal) -> ColumnElement[bool]:
    """The alarms a principal may see: those of visible residents (and their devices); system alarms
    only for the centre; one alarm for a session opened by an SMS link."""
    if principal.alarm_id is not None:
        return (Alarm.id == principal.alarm_id) & scope.alarm_scope(principal.reach)
    return scope.alarm_scope(principal.reach)


def visible_alarm(session: Session, principal: Principal, alarm_id: int) -> Alarm:
    """The alarm, or 404 when it does not exist or is not this principal's to see."""
    alarm = session.scalars(select(Alarm).where(Alarm.id == alarm_id, alarm_scope(principal))).first()
    if alarm is None:
        raise HTTPException(404, Refusal("no_alarm", id=alarm_id))
    return alarm


def visible_resident(session: Session, principal: Principal, resident_id: int) -> Resident:
    resident = session.scalars(select(Resident).where(Resident.id == resident_id, resident_scope(principal))).first()
    if resident is None:
        raise HTTPException(404, Refusal("no_resident", id=resident_id))
    return resident


# -- FastAPI dependencies -------------------------------------------------------------------------------
def real_now(context: AppContext) -> datetime:
    """Real time, for sessions, tokens, links and limits (the context's ``wall`` clock)."""
    return context.wall.now()


def _token_of(request: Request, *, query: bool = False) -> str | None:
    """The bearer token or session cookie; ``?token=`` only where ``query`` allows it (the event
    stream, which a browser's EventSource cannot give a header)."""
    header = request.headers.get("authorization", "")
    if header.lower().startswith("bearer "):
        return header[7:].strip()
    return request.cookies.get(SESSION_COOKIE) or (request.query_params.get("token") if query else None)


def _principal(request: Request, context: AppContext, query: bool) -> Principal:
    token = _token_of(request, query=query)
    if token:
        with Session(context.engine) as session:
            principal = principal_for_token(session, token, real_now(context))
        if principal is not None:
            return principal
    raise HTTPException(401, Refusal("sign_in_first"), headers={"WWW-Authenticate": "Bearer"})


def current_principal(request: Request, context: ContextDep) -> Principal:
    return _principal(request, context, query=False)


def stream_principal(request: Request, context: ContextDep) -> Principal:
    """As :func:`current_principal`, also accepting ``?token=`` (the event stream only)."""
    return _principal(request, context, query=True)


CurrentPrincipal = Annotated[Principal, Depends(current_principal)]
StreamPrincipal = Annotated[Principal, Depends(stream_principal)]


def require(*roles: str) -> Any:
    def check(principal: CurrentPrincipal) -> Principal:
        if principal.role not in roles or principal.alarm_id is not None:
            raise HTTPException(403, Refusal("role_may_not", role=principal.role))
        return principal

    return Depends(check)


def actor(principal: CurrentPrincipal) -> Principal:
    """Someone who may change an alarm: not the read-only screen."""
    if not principal.can_act:
        raise HTTPException(403, Refusal("read_only", role=principal.role))
    return principal


Actor = Annotated[Principal, Depends(actor)]
CentreStaff = Annotated[Principal, require("admin", "operator")]
Admin = Annotated[Principal, require("admin")]


# -- the pages' headers ----------------------------------------------------------------------------------
def _origin(url: str | None) -> str | None:
    if not url or not url.startswith(("http://", "https://")):
        return None
    parts = urlsplit(url.replace("{s}", "a").replace("{z}", "0").replace("{x}", "0").replace("{y}", "0"))
    host = parts.netloc
    if url.split("//", 1)[1].startswith("{s}."):
        host = "*." + host.split(".", 1)[1]
    return f"{parts.scheme}://{host}"


def page_headers(map_tile_url: str | None = None, map_image_url: str | None = None) -> dict[str, str]:
    """Security headers of /screen and /m/: scripts and styles from this server only (no inline
    script), images also from the configured base map's host, no framing, no sniffing, no referrer."""
    images = " ".join(o for o in {_origin(map_tile_url), _origin(map_image_url)} if o)
    csp = ("default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
           f"img-src 'self' data: blob: {images}".rstrip() + "; connect-src 'self'; font-src 'self' data:; "
           "object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'")
    return {"Content-Security-Policy": csp, "X-Frame-Options": "DENY", "X-Content-Type-Options": "nosniff",
            "Referrer-Policy": "no-referrer", "Cache-Control": "no-cache"}
