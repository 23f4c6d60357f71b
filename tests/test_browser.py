"""The screens in a real headless Chromium (Debian's, driven by Playwright): the map screen loads with
no network beyond localhost and shows one marker per resident; a new alarm appears without a reload,
turns red when responders are called and blue when a worker accepts it on the phone page; the screen
comes back by itself after the server restarts. Set UPDATE_SCREENSHOTS=1 to refresh docs/screenshots/."""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Browser, Page, expect
from sqlalchemy import update
from sqlalchemy.orm import Session

from alerts.models import Alarm, AlarmKind, ApiToken
from config.settings import utcnow
from tests.harness import Site
from tests.helpers import ROOT
from tests.pages import (
    CHROMIUM,
    HAS_CHROMIUM,
    PIN,
    WORKER,
    community,
    moves,
    open_page,
    open_screen,
    screen_site,
    silent_after_t0,
)

# the page helpers live in tests/pages.py; these names are still read from here by other tests
__all__ = ["CHROMIUM", "community", "marker", "moves", "open_page", "screen_site"]
H = timedelta(hours=1)
M = timedelta(minutes=1)
pytestmark = pytest.mark.skipif(not HAS_CHROMIUM, reason="needs Debian's chromium (.ci/run installs it)")


@pytest.fixture
def site(make_screen_site: Callable[[int], Site]) -> Site:
    return make_screen_site(20)


def marker(page: Page, resident_id: int) -> Any:
    return page.locator(f'.marker[data-resident="{resident_id}"]')


def screenshot(page: Page, name: str, tmp: Path) -> None:
    path = tmp / name
    page.screenshot(path=str(path))
    if os.environ.get("UPDATE_SCREENSHOTS"):
        target = ROOT / "docs" / "screenshots"
        target.mkdir(parents=True, exist_ok=True)
        shutil.copy(path, target / name)


def test_the_screen_loads_offline_with_one_marker_per_resident(site: Site, browser: Browser) -> None:
    outside: list[str] = []
    errors: list[str] = []
    moves(site, timedelta(0), *range(1, 21))
    page = open_screen(browser, site, outside)
    page.on("pageerror", lambda e: errors.append(str(e)))
    expect(page.locator("body")).to_have_attribute("data-ready", "1", timeout=20000)
    expect(page.locator(".marker")).to_have_count(20)
    expect(page.locator('.marker[data-colour="green"]')).to_have_count(20)
    expect(page.locator('[data-kpi="residents"] dd')).to_have_text("20")
    assert outside == [] and errors == []


def test_an_alarm_appears_turns_red_and_turns_blue_when_accepted_on_the_phone(
        site: Site, browser: Browser, tmp_path: Path) -> None:
    outside: list[str] = []
    silent_after_t0(site, 20)  # everyone but resident 1 moves again at 10 h
    screen = open_screen(browser, site, outside, "operator", viewport={"width": 1600, "height": 900})
    expect(screen.locator("body")).to_have_attribute("data-ready", "1", timeout=20000)
    expect(screen.locator("#alarms li[data-alarm]")).to_have_count(0)

    site.at(14 * H)  # resident 1's window runs out: the alarm opens with the check call
    alarm = site.alarm(AlarmKind.INACTIVITY, resident="r1")
    item = screen.locator(f'#alarms li[data-alarm="{alarm.id}"]')
    expect(item).to_be_visible(timeout=10000)
    expect(marker(screen, alarm.resident_id)).to_have_attribute("data-colour", "amber")
    expect(marker(screen, alarm.resident_id)).to_contain_text("☎")

    site.at(14 * H + 3 * M)  # nobody confirmed: responders are called
    expect(marker(screen, alarm.resident_id)).to_have_attribute("data-colour", "red", timeout=10000)
    expect(item).to_have_class("red")
    screenshot(screen, "screen.png", tmp_path)

    phone = phone_signed_in(browser, site, outside)
    phone.locator(f'#list li[data-alarm="{alarm.id}"]').click()
    expect(phone.locator("#amap")).to_be_visible(timeout=10000)
    assert "uri.amap.com/marker?position=111.29" in (phone.locator("#amap").get_attribute("href") or "")
    assert (phone.locator("#geo").get_attribute("href") or "").startswith("geo:30.69")
    screenshot(phone, "phone.png", tmp_path)
    phone.click("#accept")
    expect(marker(screen, alarm.resident_id)).to_have_attribute("data-colour", "blue", timeout=10000)
    expect(item).to_have_attribute("data-state", "acknowledged")
    assert site.alarm(AlarmKind.INACTIVITY, resident="r1").accepted_at is not None
    assert outside == []


def test_the_screen_comes_back_by_itself_after_the_server_restarts(site: Site, browser: Browser) -> None:
    outside: list[str] = []
    silent_after_t0(site, 20, silent=2)
    screen = open_screen(browser, site, outside)
    expect(screen.locator("body")).to_have_attribute("data-live", "1", timeout=20000)
    site.stop_serving()
    expect(screen.locator("body")).to_have_attribute("data-live", "0", timeout=20000)
    site.at(14 * H)  # alarms open while the screen is cut off
    site.serve()
    expect(screen.locator("body")).to_have_attribute("data-live", "1", timeout=30000)
    expect(screen.locator("#alarms li[data-alarm]")).to_have_count(2, timeout=10000)
    assert outside == []


def resident_1_silent(site: Site) -> Alarm:
    """Everyone moves at T0, all but resident 1 again at 10 h: resident 1's alarm at 14 h, the chain run."""
    silent_after_t0(site, 20)
    site.at(14 * H)
    return site.alarm(AlarmKind.INACTIVITY, resident="r1")


def phone_signed_in(browser: Browser, site: Site, outside: list[str]) -> Page:
    phone = open_page(browser, f"{site.url}/m/", outside, viewport={"width": 390, "height": 844},
                      is_mobile=True, has_touch=True)
    phone.fill("input[name=phone]", WORKER)
    phone.fill("input[name=pin]", PIN)
    phone.click("#login button[type=submit]")
    expect(phone.locator("body")).to_have_attribute("data-signed-in", "1", timeout=10000)
    return phone


def test_the_phone_page_shows_each_state_and_each_tap_at_once(site: Site, browser: Browser) -> None:
    outside: list[str] = []
    alarm = resident_1_silent(site)
    phone = phone_signed_in(browser, site, outside)
    phone.locator(f'#list li[data-alarm="{alarm.id}"]').click()
    state = phone.locator("#alarm-state")
    expect(state).to_have_attribute("data-state", "open", timeout=10000)
    expect(state).to_contain_text("待处理")
    phone.click("#accept")
    expect(state).to_have_attribute("data-state", "accepted", timeout=5000)
    expect(state).to_contain_text("正在前往")
    expect(phone.locator("#flash")).to_have_text("已记录：您正在前往")
    expect(phone.locator("#accept")).to_be_disabled()
    phone.click("#arrived")
    expect(state).to_have_attribute("data-state", "arrived", timeout=5000)
    expect(state).to_contain_text("已到达现场")
    expect(phone.locator("#flash")).to_have_text("已记录：您已到达现场")
    phone.select_option("#outcome", "resident_fine")
    phone.click("#resolve")
    expect(state).to_have_attribute("data-state", "resolved", timeout=5000)
    expect(state).to_contain_text("已结案")
    expect(state).not_to_contain_text("待处理")
    phone.reload()  # a resolved alarm opened again reads resolved, not "待处理"
    expect(phone.locator("#alarm-state")).to_have_attribute("data-state", "resolved", timeout=10000)
    expect(phone.locator("#alarm-state")).to_contain_text("老人平安")
    assert outside == []


def test_an_ended_session_shows_signed_out_and_the_sign_in_form_alone(site: Site, browser: Browser) -> None:
    outside: list[str] = []
    alarm = resident_1_silent(site)
    phone = phone_signed_in(browser, site, outside)
    expect(phone.locator(f'#list li[data-alarm="{alarm.id}"]')).to_be_visible(timeout=10000)
    with Session(site.engine) as session, session.begin():  # the session's 12 h run out (real time)
        session.execute(update(ApiToken).values(expires_at=utcnow() - timedelta(seconds=1)))
    phone.locator(f'#list li[data-alarm="{alarm.id}"]').click()  # the next tap finds it out
    expect(phone.locator("#notice")).to_have_text("登录已过期，请重新登录", timeout=10000)
    expect(phone.locator("#login")).to_be_visible()
    expect(phone.locator("#list")).to_be_hidden()
    expect(phone.locator("#detail")).to_be_hidden()
    expect(phone.locator("#list li")).to_have_count(0)
    expect(phone.locator("#signout")).to_be_hidden()

    link = open_page(browser, f"{site.url}/m/#alarm-{alarm.id}", outside)  # an alarm link, not signed in
    expect(link.locator("#login")).to_be_visible(timeout=10000)
    expect(link.locator("#notice")).to_have_text("请先登录以查看这条告警")
    expect(link.locator("#list")).to_be_hidden()
    assert "暂无告警" not in link.locator("body").inner_text()
    link.fill("input[name=phone]", WORKER)
    link.fill("input[name=pin]", PIN)
    link.click("#login button[type=submit]")
    expect(link.locator("#alarm-state")).to_have_attribute("data-state", "open", timeout=10000)
    expect(link.locator("#login")).to_be_hidden()
    assert outside == []
