"""The quarantine: messages Shouwang refused, with the reason."""

from __future__ import annotations

from fastapi import APIRouter
from sqlalchemy import select

from alerts.models import QuarantinedMessage
from api.auth import CentreStaff
from api.deps import SessionDep
from api.schemas import QuarantineOut

router = APIRouter(prefix="/api/quarantine", tags=["quarantine"])


@router.get("", response_model=list[QuarantineOut])
def list_quarantine(session: SessionDep, _staff: CentreStaff, reason: str | None = None,
                    limit: int = 200) -> list[QuarantineOut]:
    """Newest first; filter by ``reason`` (malformed_json, invalid_field, oversized, binary,
    unknown_device, unknown_topic, bad_timestamp, not_an_object, ...)."""
    query = select(QuarantinedMessage).order_by(QuarantinedMessage.id.desc()).limit(min(max(limit, 1), 1000))
    if reason:
        query = query.where(QuarantinedMessage.reason == reason)
    return [
        QuarantineOut(id=q.id, received_at=q.received_at, topic=q.topic, reason=q.reason, detail=q.detail,
                      payload_preview=q.payload[:300].decode("utf-8", "replace"), payload_size=q.payload_size,
                      device_external_id=q.device_external_id)
        for q in session.scalars(query)
    ]
