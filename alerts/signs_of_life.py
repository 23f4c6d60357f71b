"""Signs of life from outside the home (SPEC section 2): a meal-card swipe at the community canteen
(刷卡助餐), a worker's visit, a phone call, a family visit. Each counts as activity: it moves the
resident's last activity and deadline as a sensor would (and ends away mode), so an open inactivity
alarm resolves like activity and a time-window rule stays quiet. Stored with its source for the
resident card's timeline.
"""

from __future__ import annotations

import enum
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from alerts import rules
from alerts.limits import deadline, resident_limits
from alerts.models import Resident, SignOfLife


class Source(enum.StrEnum):
    MEAL_CARD = "meal_card"
    WORKER_VISIT = "worker_visit"
    PHONE_CALL = "phone_call"
    FAMILY_VISIT = "family_visit"


def record(session: Session, resident: Resident, *, at: datetime, source: Source, note: str | None,
           now: datetime, by: str, default: rules.Limits) -> SignOfLife:
    """Record a sign of life at ``at`` (never later than ``now``: a caller's clock running ahead must not
    push the deadline past now + window)."""
    at = min(at, now)
    row = SignOfLife(resident_id=resident.id, at=at, source=source, note=note, recorded_at=now, recorded_by=by)
    session.add(row)
    if resident.last_activity_at is None or at > resident.last_activity_at:
        resident.last_activity_at = at
        resident.away_until, resident.away_until_activity = None, False
        if resident.watch_from is None or resident.watch_from < at:
            resident.due_at = deadline(resident, resident_limits(session, resident, default), now)
    return row


def recent(session: Session, resident_id: int, limit: int = 20) -> list[SignOfLife]:
    return list(session.scalars(select(SignOfLife).where(SignOfLife.resident_id == resident_id)
                                .order_by(SignOfLife.at.desc()).limit(limit)))
