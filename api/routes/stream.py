"""Live updates by Server-Sent Events, so a screen never polls.

Events: ``transition`` — every alarm transition (opened, step, acknowledged, arrived, resolved,
activity, family handling, dispatch, ...) with its alarm, in order, its id the transition's id;
``state`` — the whole picture for the screen (markers and their colours, open alarms, KPIs, the
system banner), sent on connect and whenever it changes. A client that reconnects with
``Last-Event-ID`` first gets every transition it missed. The stream reads the database, so it shows
what every process did.
"""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import AsyncIterator
from typing import Any

import orjson
from fastapi import APIRouter, Request
from sqlalchemy import func, select
from sqlalchemy.orm import Session, selectinload
from sse_starlette.sse import EventSourceResponse
from starlette.concurrency import run_in_threadpool

from alerts.models import Alarm, AlarmTransition
from alerts.screen import screen_state
from alerts.views import alarm_row
from api.auth import Principal, StreamPrincipal, alarm_scope, resident_scope
from api.deps import AppContext, ContextDep

router = APIRouter(tags=["live"])
POLL_SECONDS = 1.0
LOOKBACK = 200  # transitions committed out of id order (several processes) are still caught


@router.get("/api/stream", response_class=EventSourceResponse)
async def stream(request: Request, context: ContextDep, principal: StreamPrincipal) -> EventSourceResponse:
    """The live stream (``text/event-stream``). Authenticate with a bearer token, the session cookie
    or ``?token=`` (EventSource cannot send headers)."""
    last = request.headers.get("last-event-id") or request.query_params.get("last_event_id")
    start = int(last) if last and last.isdigit() else None
    return EventSourceResponse(_events(request, context, principal, start), ping=15)


async def _events(request: Request, context: AppContext, principal: Principal,
                  start: int | None) -> AsyncIterator[dict[str, Any]]:
    # transitions after `floor` are news to this client: after Last-Event-ID, or after now
    floor = start if start is not None else await run_in_threadpool(_max_id, context)
    newest, digest, ticks = floor, "", 0
    emitted: set[int] = set()
    yield {"event": "hello", "data": orjson.dumps({"role": principal.role, "name": principal.name}).decode(),
           "retry": 2000}
    while not await request.is_disconnected():
        for transition_id, data in await run_in_threadpool(_transitions_after, context, principal,
                                                           max(floor, newest - LOOKBACK)):
            if transition_id in emitted:
                continue
            emitted.add(transition_id)
            newest = max(newest, transition_id)
            yield {"event": "transition", "id": str(transition_id), "data": data}
        if len(emitted) > 4 * LOOKBACK:
            floor = max(floor, newest - 2 * LOOKBACK)
            emitted = {i for i in emitted if i > floor}
        state, now = await run_in_threadpool(_state, context, principal)
        fresh = hashlib.sha256(state.encode()).hexdigest()
        changed, ticks = fresh != digest, ticks + 1
        if changed or ticks % 10 == 1:  # the service's time (it may be simulated), for running timers
            yield {"event": "clock", "data": orjson.dumps({"now": now}).decode()}
        if changed:
            digest = fresh
            yield {"event": "state", "data": state}
        await asyncio.sleep(POLL_SECONDS)


def _max_id(context: AppContext) -> int:
    with Session(context.engine) as session:
        return session.scalar(select(func.max(AlarmTransition.id))) or 0


def _transitions_after(context: AppContext, principal: Principal, after: int) -> list[tuple[int, str]]:
    with Session(context.engine) as session:
        rows = session.execute(
            select(AlarmTransition, Alarm).join(Alarm, AlarmTransition.alarm_id == Alarm.id)
            .options(selectinload(Alarm.resident))
            .where(AlarmTransition.id > after, alarm_scope(principal)).order_by(AlarmTransition.id).limit(1000)
        ).all()
        return [(t.id, orjson.dumps({"id": t.id, "at": t.at, "action": t.action, "actor": t.actor,
                                     "detail": t.detail, "alarm": alarm_row(a)}).decode())
                for t, a in rows]


def _state(context: AppContext, principal: Principal) -> tuple[str, Any]:
    """The screen's picture (without the time, so it is only sent when something changed) and now."""
    with Session(context.engine) as session:
        state = screen_state(session, context.clock.now(), context.policy.limits, context.settings.tz,
                             scope=resident_scope(principal), alarm_scope=alarm_scope(principal))
    now = state.pop("now")
    return orjson.dumps(state).decode(), now
