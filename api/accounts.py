"""Creating accounts, PINs and screen tokens (the CLI, the demo and tests use these)."""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

from alerts.models import AuditEntry, User, UserRole, Worker
from api.auth import hash_secret, issue_token, revoke_sessions
from config.settings import utcnow

SCREEN_USER = "screen"


def add_user(session: Session, username: str, role: str, password: str | None, now: datetime,
             name: str = "") -> User:
    """Create or update a centre account (admin, operator or screen)."""
    user = session.scalars(select(User).where(User.username == username)).first()
    if user is None:
        user = User(username=username, role=UserRole(role), created_at=now)
        session.add(user)
    user.role, user.name = UserRole(role), name or user.name or username
    user.password_hash = hash_secret(password) if password else None
    session.flush()
    if password:  # a new password ends the sessions opened with the old one
        revoke_sessions(session, user_id=user.id)
    session.add(AuditEntry(at=now, actor="cli", action="user.save", target=f"user:{user.id}", detail={"role": role}))
    return user


def set_pin(session: Session, phone: str, pin: str) -> bool:
    """Set a worker's PIN: their existing sessions end, and their SMS links stop working (a link is
    signed for the PIN it was sent under)."""
    worker = session.scalars(select(Worker).where(Worker.phone == phone)).first()
    if worker is None:
        return False
    worker.pin_hash, worker.failed_logins, worker.locked_until = hash_secret(pin), 0, None
    revoke_sessions(session, worker_id=worker.id)
    return True


def deactivate_worker(session: Session, worker: Worker) -> None:
    """A worker leaves: inactive, every session ended (reactivating them does not revive one)."""
    worker.active = False
    revoke_sessions(session, worker_id=worker.id)


def screen_token(session: Session, now: datetime, ttl: timedelta, label: str = "wall screen") -> str:
    """A long-lived read-only token for a wall display (a password-less ``screen`` account holds it)."""
    user = session.scalars(select(User).where(User.username == SCREEN_USER)).first() or add_user(
        session, SCREEN_USER, UserRole.SCREEN, None, now, name="Wall screen")
    return issue_token(session, utcnow(), ttl, user_id=user.id, label=label)


def integration_token(session: Session, now: datetime, name: str, ttl: timedelta) -> str:
    """A long-lived token for another system (the canteen's card system) that may only report signs of
    life (``POST /api/residents/{id}/activity``); one password-less ``integration`` account per name."""
    username = f"integration:{name}"
    user = session.scalars(select(User).where(User.username == username)).first() or add_user(
        session, username, UserRole.INTEGRATION, None, now, name=name)
    return issue_token(session, now, ttl, user_id=user.id, label=name)


def token_for(session: Session, now: datetime, role: str, *, username: str | None = None,
              ttl: timedelta = timedelta(hours=12)) -> str:
    """A session token for a centre role (tests and the demo). ``now`` stamps the account; the token's
    life runs on real time, as every session's."""
    user = add_user(session, username or f"{role}-user", role, None, now)
    return issue_token(session, utcnow(), ttl, user_id=user.id, label="issued")


def worker_token(session: Session, now: datetime, phone: str, ttl: timedelta = timedelta(hours=12)) -> str:
    worker = session.scalars(select(Worker).where(Worker.phone == phone)).one()
    return issue_token(session, utcnow(), ttl, worker_id=worker.id, label="issued")
