"""The FastAPI application. ``create_app`` takes everything it needs; nothing is global."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles
from swagger_ui_bundle import swagger_ui_path

from api.deps import AppContext
from api.errors import install_error_handlers
from api.routes import admin, alarms, auth, health, pages, policies, quarantine, residents, stream, webhooks

DOCS_ASSETS = "/docs/assets"
# what any operation may answer besides its own: the body is {"detail": "why"}
COMMON_ERRORS: dict[int | str, dict[str, Any]] = {
    400: {"description": "the body cannot be read (not JSON, not UTF-8)"},
    401: {"description": "not signed in, or the session has ended: sign in with POST /api/auth/login"},
    403: {"description": "signed in, but this role may not do this (or a webhook's signature is wrong)"},
    404: {"description": "no such row (or page)"},
}


def create_app(context: AppContext) -> FastAPI:
    app = FastAPI(
        title="Shouwang 守望",
        version="0.1.0",
        description="Keeps watch over elderly people who live alone: residents, their state, alarms, "
        "and the quarantine of refused sensor messages. Sign in with `POST /api/auth/login` and send the "
        "token as `Authorization: Bearer TOKEN` (docs/admin.md).",
        docs_url=None,
        redoc_url=None,
    )
    app.state.context = context
    install_error_handlers(app)
    for module in (health, auth, residents, alarms, quarantine, policies, webhooks, admin, stream, pages):
        app.include_router(module.router, responses=COMMON_ERRORS)
    pages.mount_static(app)
    _mount_docs(app)
    return app


def _mount_docs(app: FastAPI) -> None:
    """``/docs``: Swagger UI 5 (it renders OpenAPI 3.1) from the ``swagger-ui-bundle-v2`` package, so the
    page works without the internet."""
    app.mount(DOCS_ASSETS, StaticFiles(directory=str(swagger_ui_path)), name="docs-assets")

    @app.get("/docs", include_in_schema=False)
    def docs() -> HTMLResponse:
        return get_swagger_ui_html(
            openapi_url=app.openapi_url or "/openapi.json", title=f"{app.title} API",
            swagger_js_url=f"{DOCS_ASSETS}/swagger-ui-bundle.js", swagger_css_url=f"{DOCS_ASSETS}/swagger-ui.css",
            swagger_favicon_url=f"{DOCS_ASSETS}/favicon-32x32.png")
