"""The key that signs SMS links and sessions' links: ``api.secret_key`` when set; else one generated on
the first start and kept in the database (table ``service_secrets``), so links survive restarts and every
process of one database signs alike. Processes with a configured key record its fingerprint (never the
key); a process whose key differs from another's gets a warning: its links would not open elsewhere."""

from __future__ import annotations

import hashlib
import logging
import secrets
from datetime import UTC, datetime

from sqlalchemy import Engine, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from alerts.models import ServiceSecret

log = logging.getLogger(__name__)

GENERATED = "api.secret_key"
FINGERPRINT = "fingerprint:"


def fingerprint(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()[:16]


def secret_key(engine: Engine, configured: str | None, process: str) -> str:
    """The key this process signs with (see the module's docstring)."""
    key = configured or _generated(engine)
    mine = fingerprint(key)
    with Session(engine) as session, session.begin():
        rows = session.scalars(select(ServiceSecret).where(ServiceSecret.name.startswith(FINGERPRINT))).all()
        others = {row.name[len(FINGERPRINT):] for row in rows
                  if row.value != mine and row.name != FINGERPRINT + process}
        own = session.get(ServiceSecret, FINGERPRINT + process)
        if own is None:
            session.add(ServiceSecret(name=FINGERPRINT + process, value=mine, created_at=datetime.now(UTC)))
        else:
            own.value = mine
    if others:
        log.warning("api.secret_key differs between processes: SMS links signed by one do not open on the "
                    "others; give every process the same key, or none (then they share a generated one)",
                    extra={"this_process": process, "other_processes": sorted(others)})
    return key


def _generated(engine: Engine) -> str:
    with Session(engine) as session:
        row = session.get(ServiceSecret, GENERATED)
        if row is not None:
            return row.value
    try:
        with Session(engine) as session, session.begin():
            session.add(ServiceSecret(name=GENERATED, value=secrets.token_urlsafe(32), created_at=datetime.now(UTC)))
        log.info("generated the SMS-link signing key (api.secret_key unset); it is kept in the database")
    except IntegrityError:  # another process generated it first: use theirs
        pass
    with Session(engine) as session:
        row = session.get(ServiceSecret, GENERATED)
        assert row is not None
        return row.value
