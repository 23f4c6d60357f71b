"""The screens in a real headless Chromium (Debian's, driven by Playwright): the map screen loads with
no network beyond localhost and shows one marker per resident; a new alarm appears without a reload,
turns red when responders are called and blue when a worker accepts it on the phone page; the screen
comes back by itself after the server restarts. Set UPDATE_SCREENSHOTS=1 to refresh docs/screenshots/."""

from __future__ import annotations

import os
import shutil
import threading
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import uvicorn
from playwright.sync_api import Browser, Page, Playwright, expect, sync_playwright
from sqlalchemy import select, update
from sqlalchemy.orm import Session

from alerts import service
from alerts.clock import ManualClock
from alerts.db import upgrade
from alerts.models import Alarm, AlarmKind, ApiToken, Resident
from alerts.observations import Observation
from alerts.recording import record_batch
from alerts.registry.community import load_community
from api import accounts
from api.runtime import Runtime, ingest_policy
from config.settings import load_settings, utcnow
from tests.conftest import T0
from tests.helpers import ROOT, free_port, wait_for

H = timedelta(hours=1)
M = timedelta(minutes=1)
WORKER, PIN = "+8613800000001", "2468"
CHROMIUM = "/usr/bin/chromium"
pytestmark = pytest.mark.skipif(not Path(CHROMIUM).exists(), reason="needs Debian's chromium (.ci/run installs it)")


def community(homes: int) -> dict[str, Any]:
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


class Site:
    """A Shouwang process (no broker needed: the test records activity itself) served over HTTP."""

    def __init__(self, tmp: Path, homes: int = 20) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.settings = load_settings(database={"url": f"sqlite:///{tmp / 'screen.db'}"},
                                      clock={"mode": "manual", "start": T0.isoformat()},
                                      rules={"device_offline_after": "30d"})
        upgrade(self.settings.database.url)
        self.runtime = Runtime(self.settings, ingest=False)
        assert isinstance(self.runtime.clock, ManualClock)
        self.clock = self.runtime.clock
        self.clock.set(T0)
        self.runtime.seed()
        self.engine = self.runtime.engine
        with Session(self.engine) as session, session.begin():
            load_community(session, community(homes), T0, self.runtime.policy.limits, offline_after=30 * 24 * H)
            self.screen_token = accounts.screen_token(session, T0, timedelta(days=365))
            self.operator_token = accounts.token_for(session, T0, "operator", ttl=timedelta(days=30))
            accounts.set_pin(session, WORKER, PIN)
        self.server: uvicorn.Server | None = None
        self.thread: threading.Thread | None = None
        self.start_http()

    def start_http(self) -> None:
        config = uvicorn.Config(self.runtime.app, host="127.0.0.1", port=self.port, log_level="warning",
                                lifespan="off", timeout_graceful_shutdown=1)
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)
        self.thread.start()
        wait_for(lambda: self.server is not None and self.server.started, message="the HTTP server")

    def stop_http(self) -> None:
        assert self.server is not None and self.thread is not None
        self.server.should_exit = True
        self.server.force_exit = True
        self.thread.join(timeout=15)
        assert not self.thread.is_alive()

    def activity(self, at: timedelta, *homes: int) -> None:
        with Session(self.engine) as session, session.begin():
            observations = [Observation(device=f"pir-{i}", kind="motion", topic="t", delivery_key=f"{at}-{i}")
                            for i in homes]
            record_batch(session, observations, [], T0 + at, ingest_policy(self.settings))

    def at(self, delta: timedelta) -> None:
        now = self.clock.set(T0 + delta)
        service.tick(self.engine, now, self.runtime.policy)
        self.runtime.escalate(now)

    def alarm(self, resident_ref: str) -> Alarm:
        with Session(self.engine) as session:
            rid = session.scalars(select(Resident.id).where(Resident.external_ref == resident_ref)).one()
            return session.scalars(select(Alarm).where(Alarm.resident_id == rid, Alarm.kind == AlarmKind.INACTIVITY)
                                   ).one()

    def close(self) -> None:
        if self.thread is not None and self.thread.is_alive():
            self.stop_http()
        self.runtime.stop()


@pytest.fixture
def site(tmp_path: Path) -> Iterator[Site]:
    s = Site(tmp_path)
    yield s
    s.close()


@pytest.fixture(scope="module")
def playwright() -> Iterator[Playwright]:
    with sync_playwright() as p:
        yield p


@pytest.fixture
def browser(playwright: Playwright) -> Iterator[Browser]:
    browser = playwright.chromium.launch(executable_path=CHROMIUM, args=[
        "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
        "--disable-component-update", "--disable-sync"])
    yield browser
    browser.close()


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
    site.activity(timedelta(0), *range(1, 21))
    page = open_page(browser, f"{site.url}/screen?token={site.screen_token}", outside)
    page.on("pageerror", lambda e: errors.append(str(e)))
    expect(page.locator("body")).to_have_attribute("data-ready", "1", timeout=20000)
    expect(page.locator(".marker")).to_have_count(20)
    expect(page.locator('.marker[data-colour="green"]')).to_have_count(20)
    expect(page.locator('[data-kpi="residents"] dd')).to_have_text("20")
    assert outside == [] and errors == []


def test_an_alarm_appears_turns_red_and_turns_blue_when_accepted_on_the_phone(
        site: Site, browser: Browser, tmp_path: Path) -> None:
    outside: list[str] = []
    site.activity(timedelta(0), *range(1, 21))
    site.activity(10 * H, *range(2, 21))  # everyone but resident 1 moves again
    screen = open_page(browser, f"{site.url}/screen?token={site.operator_token}", outside,
                       viewport={"width": 1600, "height": 900})
    expect(screen.locator("body")).to_have_attribute("data-ready", "1", timeout=20000)
    expect(screen.locator("#alarms li[data-alarm]")).to_have_count(0)

    site.at(14 * H)  # resident 1's window runs out: the alarm opens with the check call
    alarm = site.alarm("r1")
    item = screen.locator(f'#alarms li[data-alarm="{alarm.id}"]')
    expect(item).to_be_visible(timeout=10000)
    expect(marker(screen, alarm.resident_id)).to_have_attribute("data-colour", "amber")
    expect(marker(screen, alarm.resident_id)).to_contain_text("☎")

    site.at(14 * H + 3 * M)  # nobody confirmed: responders are called
    expect(marker(screen, alarm.resident_id)).to_have_attribute("data-colour", "red", timeout=10000)
    expect(item).to_have_class("red")
    screenshot(screen, "screen.png", tmp_path)

    phone = open_page(browser, f"{site.url}/m/", outside, viewport={"width": 390, "height": 844},
                      is_mobile=True, has_touch=True)
    phone.fill("input[name=phone]", WORKER)
    phone.fill("input[name=pin]", PIN)
    phone.click("#login button[type=submit]")
    phone.locator(f'#list li[data-alarm="{alarm.id}"]').click()
    expect(phone.locator("#amap")).to_be_visible(timeout=10000)
    assert "uri.amap.com/marker?position=111.29" in (phone.locator("#amap").get_attribute("href") or "")
    assert (phone.locator("#geo").get_attribute("href") or "").startswith("geo:30.69")
    screenshot(phone, "phone.png", tmp_path)
    phone.click("#accept")
    expect(marker(screen, alarm.resident_id)).to_have_attribute("data-colour", "blue", timeout=10000)
    expect(item).to_have_attribute("data-state", "acknowledged")
    assert site.alarm("r1").accepted_at is not None
    assert outside == []


def test_the_screen_comes_back_by_itself_after_the_server_restarts(site: Site, browser: Browser) -> None:
    outside: list[str] = []
    site.activity(timedelta(0), *range(1, 21))
    site.activity(10 * H, *range(3, 21))
    screen = open_page(browser, f"{site.url}/screen?token={site.screen_token}", outside)
    expect(screen.locator("body")).to_have_attribute("data-live", "1", timeout=20000)
    site.stop_http()
    expect(screen.locator("body")).to_have_attribute("data-live", "0", timeout=20000)
    site.at(14 * H)  # alarms open while the screen is cut off
    site.start_http()
    expect(screen.locator("body")).to_have_attribute("data-live", "1", timeout=30000)
    expect(screen.locator("#alarms li[data-alarm]")).to_have_count(2, timeout=10000)
    assert outside == []


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
    site.activity(timedelta(0), *range(1, 21))
    site.activity(10 * H, *range(2, 21))
    site.at(14 * H)
    alarm = site.alarm("r1")
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
    site.activity(timedelta(0), *range(1, 21))
    site.activity(10 * H, *range(2, 21))
    site.at(14 * H)
    alarm = site.alarm("r1")
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
