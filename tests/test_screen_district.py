"""A district screen: 10,000 homes on the map in a real headless Chromium. The markers are circles on one
canvas, clustered with chunked loading, each cluster coloured by its most urgent resident; a change
reaches the screen as a delta. Set UPDATE_SCREENSHOTS=1 to refresh docs/screenshots/screen-district.png."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from playwright.sync_api import Browser, expect
from sqlalchemy import insert, select
from sqlalchemy.orm import Session

from alerts.models import Community, Grid, MicroGrid, Resident, table_of
from tests.harness import T0, Site, app_settings, sqlite_database
from tests.pages import HAS_CHROMIUM, open_screen
from tests.test_browser import screenshot

pytestmark = pytest.mark.skipif(not HAS_CHROMIUM, reason="needs Debian's chromium (.ci/run installs it)")

HOMES = 10_000
HOUR, DAY = timedelta(hours=1), timedelta(days=1)


@pytest.fixture
def district(tmp_path: Path) -> Iterator[Site]:
    site = Site(app_settings(sqlite_database(tmp_path, "district.db")))
    with Session(site.engine) as session, session.begin():
        community = Community(name="西陵街道", latitude=30.70, longitude=111.29)
        session.add(community)
        session.flush()
        micros = []
        for g in range(10):
            grid = Grid(community_id=community.id, name=f"第{g + 1}网格")
            session.add(grid)
            session.flush()
            micro = MicroGrid(grid_id=grid.id, name="1号楼")
            session.add(micro)
            session.flush()
            micros.append(micro.id)
        session.execute(insert(table_of(Resident)), [
            {"external_ref": f"r{i}", "name": f"居民{i}", "address": "", "micro_grid_id": micros[i % 10],
             "latitude": 30.65 + 0.0009 * (i % 100), "longitude": 111.24 + 0.0011 * (i // 100),
             "away_until_activity": False, "created_at": T0 - DAY, "watch_from": T0 - DAY,
             # resident 0 has been silent for 13 hours; everyone else moved at T0
             "last_activity_at": T0 - 13 * HOUR if i == 0 else T0,
             "due_at": T0 + HOUR if i == 0 else T0 + 14 * HOUR}
            for i in range(HOMES)])
    site.serve()
    yield site
    site.close()


def test_a_district_of_10000_homes_is_on_the_map_and_a_change_reaches_it(district: Site, browser: Browser,
                                                                          tmp_path: Path) -> None:
    outside: list[str] = []
    errors: list[str] = []
    page = open_screen(browser, district, outside, "operator", viewport={"width": 1920, "height": 1080})
    page.on("pageerror", lambda e: errors.append(str(e)))
    try:
        expect(page.locator("body")).to_have_attribute("data-ready", "1", timeout=60000)
    except AssertionError:
        raise AssertionError(f"page errors: {errors}") from None
    expect(page.locator("body")).to_have_attribute("data-markers", str(HOMES), timeout=60000)
    expect(page.locator('[data-kpi="residents"] dd')).to_have_text(str(HOMES))
    expect(page.locator(".cluster").first).to_be_visible(timeout=30000)
    assert page.locator(".leaflet-marker-icon.marker").count() == 0  # no DOM element per home: a canvas
    # one resident's window runs out: the delta turns their cluster's colour, the rest stays as it is
    district.rules_at(HOUR)
    with Session(district.engine) as session:
        alarmed = session.scalars(select(Resident.external_ref).where(Resident.due_at.is_(None))).all()
    assert alarmed == ["r0"]
    expect(page.locator(".cluster:not(.green)").first).to_be_visible(timeout=30000)
    expect(page.locator("#alarms li[data-alarm]")).to_have_count(1, timeout=30000)
    screenshot(page, "screen-district.png", tmp_path)
    assert outside == [] and errors == []


def test_a_mass_silence_of_the_district_reaches_the_map_without_freezing_it(district: Site, browser: Browser) -> None:
    """Every deadline of the district passes at one instant: the screen gets the 10,000 markers as columns
    (one delta per commit of the tick, not one per home) and draws them a slice at a time; in the end
    every cluster has left green and the KPIs count them all."""
    outside: list[str] = []
    errors: list[str] = []
    page = open_screen(browser, district, outside, "operator", viewport={"width": 1280, "height": 800})
    page.on("pageerror", lambda e: errors.append(str(e)))
    expect(page.locator("body")).to_have_attribute("data-ready", "1", timeout=60000)
    expect(page.locator("body")).to_have_attribute("data-markers", str(HOMES), timeout=60000)
    expect(page.locator(".cluster").first).to_be_visible(timeout=30000)
    page.evaluate("""() => {  // the longest wait between two frames while the change is drawn (reported)
      window.__longestFrame = 0; let last = performance.now();
      const frame = () => { const now = performance.now(); window.__longestFrame = Math.max(window.__longestFrame,
        now - last); last = now; requestAnimationFrame(frame); };
      requestAnimationFrame(frame);
    }""")
    district.rules_at(15 * HOUR)
    with Session(district.engine) as session:
        assert session.scalars(select(Resident.id).where(Resident.due_at.isnot(None))).first() is None
    expect(page.locator('[data-kpi="open"] dd')).to_have_text(str(HOMES), timeout=60000)
    expect(page.locator("body")).to_have_attribute("data-drawing", "0", timeout=60000)
    expect(page.locator(".cluster.green")).to_have_count(0, timeout=30000)
    expect(page.locator(".cluster").first).to_be_visible()
    print(f"longest frame while drawing: {page.evaluate('window.__longestFrame'):.0f} ms")
    assert page.locator("body").get_attribute("data-markers") == str(HOMES)
    assert outside == [] and errors == []
