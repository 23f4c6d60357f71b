"""The signed, expiring link in a worker's escalation SMS. It opens ONE alarm for one worker:
HMAC-SHA256 over (worker, alarm, expiry, a stamp of the worker's PIN), so a PIN change invalidates it;
the route refuses it once the alarm is resolved and the session it opens sees that alarm only.

The credential is never stored: an attempt keeps only the link's address and the worker
(:func:`link_ref`), and the signature is added when the SMS is sent (:func:`finish_params`), on real
time (a link's life does not follow the service's possibly simulated clock). :func:`mask` hides the
signature wherever a text is logged.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

LINK_WORKER = "link_worker"  # the attempt parameter naming the worker a link is for
_TOKEN = re.compile(r"([?&]t=)[A-Za-z0-9_\-.]+")


def pin_stamp(pin_hash: str | None) -> str:
    """A short digest of the worker's PIN hash: it changes whenever the PIN does."""
    return hashlib.sha256((pin_hash or "").encode()).hexdigest()[:16] if pin_hash else ""


def _mac(secret: str, payload: str, stamp: str) -> bytes:
    return hmac.new(secret.encode(), f"{payload}|{stamp}".encode(), hashlib.sha256).digest()[:16]


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def sign_link(secret: str, worker_id: int, alarm_id: int, expires: datetime, stamp: str = "") -> str:
    payload = f"{worker_id}.{alarm_id}.{int(expires.timestamp())}"
    return _b64(payload.encode()) + "." + _b64(_mac(secret, payload, stamp))


@dataclass(frozen=True)
class LinkClaim:
    worker_id: int
    alarm_id: int
    expires: int  # POSIX seconds
    payload: str
    mac: bytes


def read_link(token: str) -> LinkClaim | None:
    """What a link claims, before its signature is checked."""
    try:
        encoded, mac = token.split(".", 1)
        payload = base64.urlsafe_b64decode(encoded + "=" * (-len(encoded) % 4)).decode()
        given = base64.urlsafe_b64decode(mac + "=" * (-len(mac) % 4))
        worker_id, alarm_id, expires = (int(part) for part in payload.split("."))
    except (ValueError, UnicodeDecodeError):
        return None
    return LinkClaim(worker_id, alarm_id, expires, payload, given)


def verify_link(secret: str, token: str, now: datetime, stamp: str = "") -> tuple[int, int] | None:
    """(worker id, alarm id) of a valid, unexpired link signed with this PIN stamp; None otherwise."""
    claim = read_link(token)
    if claim is None:
        return None
    if not hmac.compare_digest(claim.mac, _mac(secret, claim.payload, stamp)) or claim.expires <= now.timestamp():
        return None
    return claim.worker_id, claim.alarm_id


def link_ref(base: str, worker_id: int, alarm_id: int) -> dict[str, str]:
    """What an attempt stores for a link: its address without the signature, and the worker."""
    return {"link": f"{base}/m/a/{alarm_id}", LINK_WORKER: str(worker_id)}


def finish_params(params: dict[str, str], secret: str, ttl: timedelta, real_now: datetime,
                  stamp_of: Callable[[int], str | None]) -> dict[str, str]:
    """The parameters to send: a stored link reference gets its signature (valid ``ttl`` from
    ``real_now``); without a secret, or for a worker no longer active, the link is left out."""
    out = {k: v for k, v in params.items() if k != LINK_WORKER}
    worker = params.get(LINK_WORKER)
    if worker is None or "link" not in params:
        return out
    match = re.search(r"/m/a/(\d+)$", params["link"])
    stamp = stamp_of(int(worker)) if secret and match else None
    if stamp is None or match is None:
        out.pop("link", None)
        return out
    token = sign_link(secret, int(worker), int(match.group(1)), real_now + ttl, stamp)
    out["link"] = f"{params['link']}?t={token}"
    return out


def mask(text: str) -> str:
    """The text with every link signature hidden (for logs)."""
    return _TOKEN.sub(r"\1…", text)
