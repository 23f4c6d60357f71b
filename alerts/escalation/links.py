"""The signed, expiring link in a worker's escalation SMS: it identifies the worker and the alarm, so
the phone page opens the alarm without a sign-in. HMAC-SHA256 over (worker, alarm, expiry)."""

from __future__ import annotations

import base64
import hashlib
import hmac
from datetime import datetime


def sign_link(secret: str, worker_id: int, alarm_id: int, expires: datetime) -> str:
    payload = f"{worker_id}.{alarm_id}.{int(expires.timestamp())}"
    mac = hmac.new(secret.encode(), payload.encode(), hashlib.sha256).digest()[:16]
    return base64.urlsafe_b64encode(payload.encode()).decode().rstrip("=") + "." + \
        base64.urlsafe_b64encode(mac).decode().rstrip("=")


def verify_link(secret: str, token: str, now: datetime) -> tuple[int, int] | None:
    """(worker id, alarm id) of a valid, unexpired link; None otherwise."""
    try:
        encoded, mac = token.split(".", 1)
        payload = base64.urlsafe_b64decode(encoded + "=" * (-len(encoded) % 4)).decode()
        given = base64.urlsafe_b64decode(mac + "=" * (-len(mac) % 4))
        worker_id, alarm_id, expires = (int(part) for part in payload.split("."))
    except (ValueError, UnicodeDecodeError):
        return None
    expected = hmac.new(secret.encode(), payload.encode(), hashlib.sha256).digest()[:16]
    if not hmac.compare_digest(given, expected) or expires <= now.timestamp():
        return None
    return worker_id, alarm_id
