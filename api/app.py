"""The FastAPI application. ``create_app`` takes everything it needs; nothing is global."""

from __future__ import annotations

from fastapi import FastAPI

from api.deps import AppContext
from api.routes import (
    admin,
    alarms,
    auth,
    gateways,
    health,
    pages,
    policies,
    quarantine,
    residents,
    stream,
    webhooks,
)


def create_app(context: AppContext) -> FastAPI:
    app = FastAPI(
        title="Shouwang 守望",
        version="0.1.0",
        description="Keeps watch over elderly people who live alone: residents, their state, alarms, "
        "and the quarantine of refused sensor messages.",
    )
    app.state.context = context
    for module in (health, auth, residents, alarms, quarantine, policies, webhooks, admin, gateways, stream, pages):
        app.include_router(module.router)
    pages.mount_static(app)
    return app
