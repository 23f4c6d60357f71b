"""What the routes depend on: the application context and a request-owned session."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from typing import Annotated, Any

from fastapi import Depends, Request
from sqlalchemy import Engine
from sqlalchemy.orm import Session

from alerts.clock import Clock, SystemClock
from alerts.escalation.notifiers.base import Provider
from alerts.escalation.targets import ChainSettings
from alerts.metrics import Metrics
from alerts.service import WatchPolicy
from config.settings import Settings


@dataclass
class AppContext:
    settings: Settings
    engine: Engine
    clock: Clock
    policy: WatchPolicy
    metrics: Metrics
    provider: Provider
    chain: ChainSettings
    secret_key: str = ""
    ingest_status: Callable[[], dict[str, Any]] | None = None
    last_tick: Callable[[], tuple[float | None, datetime | None]] | None = None
    # real time: sessions, tokens, SMS links and sign-in limits never follow the service's clock
    wall: Clock = field(default_factory=SystemClock)
    sign_in_limit: Any = None  # api.auth.AddressLimit, made by the app
    blind: Callable[[], list[dict[str, Any]]] | None = None  # what this process knows is blind (alerts.blind)
    screens: Any = None  # the process's alerts.screen_model.ScreenModel, started by the first stream


def get_context(request: Request) -> AppContext:
    return request.app.state.context  # type: ignore[no-any-return]


def get_session(context: Annotated[AppContext, Depends(get_context)]) -> Iterator[Session]:
    """The request owns the session; it commits when the route returns without error."""
    with Session(context.engine, expire_on_commit=False) as session, session.begin():
        yield session


ContextDep = Annotated[AppContext, Depends(get_context)]
# scope="function": the commit happens before the response is sent, so a 200 means it is stored
SessionDep = Annotated[Session, Depends(get_session, scope="function")]
