"""The screens: the community map screen (/screen) and the grid worker's phone page (/m/). Static
HTML and JavaScript served by Shouwang itself; Leaflet arrives through its Python package (XStatic),
so the screen needs no CDN and no internet."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import xstatic.pkg.leaflet as leaflet
import xstatic.pkg.leaflet_markercluster as markercluster
from fastapi import APIRouter, FastAPI, Response
from fastapi.responses import FileResponse, RedirectResponse
from fastapi.staticfiles import StaticFiles

from api.auth import page_headers
from api.deps import AppContext, ContextDep

STATIC = Path(__file__).resolve().parent.parent / "static"
router = APIRouter(include_in_schema=False)


@router.get("/")
def home() -> RedirectResponse:
    return RedirectResponse("/screen")


@router.get("/favicon.ico")
def favicon() -> Response:
    return Response(status_code=204)


def _headers(context: AppContext) -> dict[str, str]:
    return page_headers(context.settings.api.map.tile_url, context.settings.api.map.image_url)


@router.get("/screen")
def screen(context: ContextDep) -> FileResponse:
    return FileResponse(STATIC / "screen.html", headers=_headers(context))


@router.get("/m")
def phone_redirect() -> RedirectResponse:
    return RedirectResponse("/m/")


@router.get("/m/")
def phone(context: ContextDep) -> FileResponse:
    return FileResponse(STATIC / "phone.html", headers=_headers(context))


@router.get("/api/ui/config")
def ui_config(context: ContextDep) -> dict[str, Any]:
    """Language and base map of the screens (no secrets: needed before sign-in)."""
    api = context.settings.api
    return {"language": api.language, "map": api.map.model_dump(), "timezone": context.settings.timezone}


def mount_static(app: FastAPI) -> None:
    app.mount("/static", StaticFiles(directory=STATIC), name="static")
    app.mount("/vendor/leaflet", StaticFiles(directory=leaflet.BASE_DIR), name="leaflet")
    app.mount("/vendor/markercluster", StaticFiles(directory=markercluster.BASE_DIR), name="markercluster")
