"""Live updates by Server-Sent Events, so a screen never polls.

Events: ``hello``; ``state`` — the whole picture of the screen's scope (markers and their colours, the
most urgent open alarms, KPIs, the system banner), sent on connect; ``delta`` — what changed since
(markers, alarms that entered or changed in the list, ``closed`` alarm ids, KPIs, the banner), each
numbered by the process's screen model (:mod:`alerts.screen_model`), one per change for every screen
of a scope, rendered once; ``transition`` — every alarm transition (opened, step, acknowledged, arrived,
resolved, ...) with its alarm, in order, its id the transition's id (``?transitions=0`` leaves them out:
the map screen does not use them); ``clock`` — the service's time, every 10 s; ``blind`` — what the watch
is blind to, as this process knows it (database unreachable, scheduler not ticking, ingest behind, an
open system alarm: :mod:`alerts.blind`), sent on connect and whenever it changes, an empty list once it
sees again. When the database cannot be reached the stream stays open and says so within seconds (a read
that takes longer than ``DB_WAIT`` counts as the database being gone).

``state`` and ``delta`` carry the id ``<transition>.<version>.<epoch>``. A client that reconnects with
``Last-Event-ID`` first gets every transition it missed after ``<transition>``; then the deltas after
``<version>`` if this process's model still holds them, else the whole picture. The model reads the
database's change log, so the stream shows what every process did.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import Any

import orjson
from fastapi import APIRouter, Request
from sqlalchemy import func, select
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session, selectinload
from sse_starlette.sse import EventSourceResponse
from starlette.concurrency import run_in_threadpool

from alerts.models import Alarm, AlarmTransition
from alerts.screen_model import ScreenModel, scope_of
from alerts.views import alarm_row
from api.auth import Principal, StreamPrincipal, alarm_scope
from api.deps import AppContext, ContextDep

router = APIRouter(tags=["live"])
WAIT_SECONDS = 1.0  # a screen's loop wakes at least this often (disconnects, the clock)
CLOCK_EVERY = 10.0
DB_WAIT = 3.0  # a read that takes longer is treated as the database being unreachable
LOOKBACK = 200  # transitions committed out of id order (several processes) are still caught


@router.get("/api/stream", response_class=EventSourceResponse)
async def stream(request: Request, context: ContextDep, principal: StreamPrincipal) -> EventSourceResponse:
    """The live stream (``text/event-stream``). Authenticate with a bearer token, the session cookie
    or ``?token=`` (EventSource cannot send headers)."""
    last = request.headers.get("last-event-id") or request.query_params.get("last_event_id") or ""
    transitions = request.query_params.get("transitions", "1") not in ("0", "false", "no")
    return EventSourceResponse(_events(request, context, principal, _parse_id(last), transitions), ping=15)


def _parse_id(last: str) -> tuple[int | None, int | None, str | None]:
    """``T`` or ``T.V.E`` -> (transition, version, epoch); parts that are not there or not numbers: None."""
    parts = last.split(".")
    transition = int(parts[0]) if parts[0].isdigit() else None
    version = int(parts[1]) if len(parts) == 3 and parts[1].isdigit() else None
    return transition, version, parts[2] if version is not None else None


def model(context: AppContext) -> ScreenModel:
    """This process's screen model, started on the first stream."""
    if context.screens is None:
        context.screens = ScreenModel(context.engine, context.clock, context.policy.limits, context.settings.tz)
    screens: ScreenModel = context.screens
    return screens.start()


async def _events(request: Request, context: AppContext, principal: Principal,
                  last: tuple[int | None, int | None, str | None],
                  with_transitions: bool) -> AsyncIterator[dict[str, Any]]:
    start, version, epoch = last
    screens = await run_in_threadpool(model, context)
    scope = scope_of(principal.role, principal.sees_all, principal.grid_id, principal.micro_grid_id)
    subscription = screens.subscribe(scope, asyncio.get_running_loop())
    try:
        # transitions after `floor` are news to this client: after Last-Event-ID, or after now
        floor = start if start is not None else await run_in_threadpool(_max_id, context)
        newest = floor
        emitted: set[int] = set()
        yield {"event": "hello", "data": orjson.dumps({"role": principal.role, "name": principal.name}).decode(),
               "retry": 2000}
        yield {"event": "clock", "data": orjson.dumps({"now": context.clock.now()}).decode()}
        clock_at = time.monotonic()
        deltas = screens.since(scope, version, epoch) if version is not None else None
        woken, blind_sent = True, None
        while not await request.is_disconnected():
            blind = orjson.dumps(context.blind() if context.blind else []).decode()
            if blind != blind_sent:  # what this process knows is blind (alerts.blind), at once
                blind_sent = blind
                yield {"event": "blind", "data": blind}
            try:
                if with_transitions and woken:  # every transition is a change: the model wakes us for it
                    rows = await asyncio.wait_for(run_in_threadpool(_transitions_after, context, principal,
                                                                    max(floor, newest - LOOKBACK)), DB_WAIT)
                    for transition_id, data in rows:
                        if transition_id in emitted:
                            continue
                        emitted.add(transition_id)
                        newest = max(newest, transition_id)
                        yield {"event": "transition", "id": str(transition_id), "data": data}
                    if len(emitted) > 4 * LOOKBACK:
                        floor = max(floor, newest - 2 * LOOKBACK)
                        emitted = {i for i in emitted if i > floor}
                if version is None or deltas is None:
                    version, picture, _ = await asyncio.wait_for(run_in_threadpool(screens.picture, scope), DB_WAIT)
                    yield {"event": "state", "id": f"{newest}.{version}.{screens.epoch}", "data": picture}
                else:
                    for number, data in deltas:
                        version = number
                        if data:
                            yield {"event": "delta", "id": f"{newest}.{number}.{screens.epoch}", "data": data}
                if time.monotonic() - clock_at >= CLOCK_EVERY:
                    clock_at = time.monotonic()
                    now = await asyncio.wait_for(run_in_threadpool(context.clock.now), DB_WAIT)
                    yield {"event": "clock", "data": orjson.dumps({"now": now}).decode()}
            except (SQLAlchemyError, TimeoutError):
                # the database is gone for this process: say so now, whatever the watch thread has seen yet
                if "\"database unreachable\"" not in (blind_sent or ""):
                    blind_sent = orjson.dumps([*orjson.loads(blind_sent or "[]"), {
                        "what": "database unreachable", "since": None, "since_wall": time.time(),
                        "detail": "the stream cannot read the database"}]).decode()
                    yield {"event": "blind", "data": blind_sent}
            try:
                await asyncio.wait_for(subscription.event.wait(), WAIT_SECONDS)
                woken = True
            except TimeoutError:
                woken = False
            subscription.event.clear()
            deltas = screens.since(scope, version)
    finally:
        screens.unsubscribe(subscription)


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
