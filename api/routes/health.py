"""Health and metrics: is the watch seeing?"""

from __future__ import annotations

import time
from datetime import UTC, datetime

from fastapi import APIRouter, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from sqlalchemy import func, select
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session

from alerts.blind import SYSTEM
from alerts.models import Alarm, AlarmKind, AlarmState
from api.deps import ContextDep
from api.schemas import HealthOut

router = APIRouter(tags=["health"])


@router.get("/healthz", response_model=HealthOut, responses={503: {"model": HealthOut}})
def healthz(context: ContextDep, response: Response) -> HealthOut:
    """Broker connection and ingest lag of this process, age of the last rule tick, database reachability.
    503 when any of them is wrong."""
    database_ok, system_open = True, 0
    try:
        with Session(context.engine) as session:
            system_open = session.scalar(select(func.count()).select_from(Alarm).where(
                Alarm.kind == AlarmKind.SYSTEM, Alarm.state != AlarmState.RESOLVED)) or 0
    except SQLAlchemyError:
        database_ok = False
    broker = context.ingest_status() if context.ingest_status else None
    tick_age = None
    if context.last_tick is not None:
        real, _ = context.last_tick()
        tick_age = None if real is None else round(time.monotonic() - real, 3)
    healthy = database_ok and (broker is None or bool(broker.get("connected"))) and (
        context.last_tick is None or (tick_age is not None and tick_age < 30))
    if broker is not None and not broker.get("database_ok", True):
        healthy = False
    blind = context.blind() if context.blind else []
    if any(b["what"] != SYSTEM for b in blind):  # an open system alarm alone is for people, not orchestrators
        healthy = False
    try:
        now = context.clock.now()
    except SQLAlchemyError:  # the manual clock lives in the database
        now = datetime.now(UTC)
    response.status_code = 200 if healthy else 503
    return HealthOut(status="ok" if healthy else "degraded", now=now, broker=broker,
                     last_tick_age_seconds=tick_age, database_ok=database_ok, open_system_alarms=system_open,
                     blind=blind)


@router.get("/metrics", response_class=Response)
def metrics(context: ContextDep) -> Response:
    """Prometheus metrics of this process."""
    return Response(generate_latest(context.metrics.registry), media_type=CONTENT_TYPE_LATEST)
