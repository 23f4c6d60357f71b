"""What the page tests share (the map screen, the phone page, /docs in Debian's headless Chromium, driven by
Playwright): the browser's path and arguments, a served Shouwang with homes on the map, and a page that may
only talk to this machine. conftest.py turns these into the ``playwright``, ``launch``, ``browser`` and
``make_screen_site`` fixtures."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tests.harness import Site, app_settings, sqlite_database

if TYPE_CHECKING:
    from playwright.sync_api import Browser, Page

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ("--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync")
HAS_CHROMIUM = Path(CHROMIUM).exists()
WORKER, PIN = "+8613800000001", "2468"


def community(homes: int) -> dict[str, Any]:
    """``homes`` residents on the map of one community, each with a motion sensor and a family contact."""
    return {
        "community": {"name": "夷陵社区", "latitude": 30.692, "longitude": 111.286},
        "grids": [{"name": "第一网格", "micro_grids": [{"name": "1号楼"}, {"name": "2号楼"}]}],
        "workers": [{"name": "李娜", "phone": WORKER, "role": "grid_worker", "grid": "第一网格"}],
        "residents": [
            {"ref": f"r{i}", "name": f"居民{i}", "birth_year": 1940, "address": f"{1 + i % 2}号楼 {100 + i}室",
             "latitude": 30.692 + 0.0004 * (i % 5), "longitude": 111.286 + 0.0005 * (i // 5),
             "phone": f"+8671780000{i:02d}", "micro_grid": f"第一网格/{1 + i % 2}号楼",
             "devices": [{"id": f"pir-{i}", "kind": "motion"}],
             "contacts": [{"name": f"家属{i}", "phone": f"+86139000000{i:02d}"}]}
            for i in range(1, homes + 1)
        ],
    }


def screen_site(tmp_path: Path, homes: int = 20) -> Site:
    """A Shouwang process on SQLite served over HTTP (no broker needed: the test records activity itself),
    ``homes`` residents on the map, the grid worker's PIN set; the caller closes it."""
    served = Site(app_settings(sqlite_database(tmp_path, "screen.db")), community=community(homes)).serve()
    served.set_pin(WORKER, PIN)
    return served


def moves(site: Site, at: timedelta, *homes: int) -> None:
    """A motion in each of ``homes`` at T0 + ``at``."""
    site.activity(at, *(f"pir-{i}" for i in homes))


def silent_after_t0(site: Site, homes: int, silent: int = 1) -> None:
    """Everyone of the ``homes`` moves at T0 and again at 10 h, but for residents 1 .. ``silent``: they fall
    silent after T0 (their alarms come at 14 h)."""
    moves(site, timedelta(0), *range(1, homes + 1))
    moves(site, 10 * timedelta(hours=1), *range(silent + 1, homes + 1))


def open_page(browser: Browser, url: str, outside: list[str], **context: Any) -> Page:
    """A page that may only talk to this machine: any other request is refused and recorded."""
    page = browser.new_context(**context).new_page()

    def guard(route: Any) -> None:
        host = route.request.url.split("/")[2] if "://" in route.request.url else ""
        if host.startswith("127.0.0.1") or host.startswith("localhost"):
            route.continue_()
        else:
            outside.append(route.request.url)
            route.abort()

    page.route("**/*", guard)
    page.goto(url)
    return page


def open_screen(browser: Browser, site: Site, outside: list[str], who: str = "screen", **context: Any) -> Page:
    """The map screen of ``site``, signed in by the link with ``who``'s token (see ``open_page``)."""
    return open_page(browser, f"{site.url}/screen?token={site.token(who)}", outside, **context)
