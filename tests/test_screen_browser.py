"""The wall screen in a real headless Chromium: a legend of the marker colours, a chime that is on by
default and remembered across reloads (and plays without a click in a kiosk browser started with
--autoplay-policy=no-user-gesture-required), maintenance alarms grouped by home, and everything a person
reads in Chinese (the default notify.language) on a local 24-hour clock."""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import timedelta

import pytest
from playwright.sync_api import Browser, expect
from sqlalchemy.orm import Session

from alerts import transitions
from alerts.models import Alarm, AlarmKind
from tests.harness import T0, Site, obs
from tests.pages import HAS_CHROMIUM, moves, open_page, open_screen, silent_after_t0

H = timedelta(hours=1)
M = timedelta(minutes=1)
KIOSK = "--autoplay-policy=no-user-gesture-required"  # what docs/screens.md tells a kiosk to use
pytestmark = pytest.mark.skipif(not HAS_CHROMIUM, reason="needs Debian's chromium (.ci/run installs it)")


@pytest.fixture
def site(make_screen_site: Callable[[int], Site]) -> Site:
    return make_screen_site(6)


@pytest.fixture
def kiosk(launch: Callable[..., Browser]) -> Browser:
    return launch(KIOSK)


def no_emoji(text: str) -> bool:
    """Renders with a plain CJK/Latin font: nothing from the emoji planes or the emoji bell/mute signs."""
    return all(ord(c) < 0x1F000 for c in text)


def test_the_screen_has_a_legend_and_the_chime_is_on_by_default_and_remembered(site: Site, kiosk: Browser) -> None:
    outside: list[str] = []
    moves(site, timedelta(0), *range(1, 7))
    page = open_screen(kiosk, site, outside, viewport={"width": 1600, "height": 900})
    expect(page.locator("body")).to_have_attribute("data-ready", "1", timeout=20000)
    legend = page.locator("#legend")
    expect(legend).to_be_visible()
    expect(legend.locator("li")).to_have_count(7)
    for colour in ("red", "blue", "amber", "grey", "green"):
        expect(legend.locator(f".swatch.{colour}").first).to_be_visible()
    expect(legend).to_contain_text("已确认，有人处理")
    expect(legend).to_contain_text("外出")
    chime = page.locator("#chime")
    expect(chime).to_have_attribute("data-sound", "on")  # on at first start, and playing without a click
    expect(chime.locator("svg")).to_have_count(1)
    assert no_emoji(chime.inner_text()) and chime.inner_text().strip() == "声音开"
    chime.click()
    expect(chime).to_have_attribute("data-sound", "off")
    page.reload()
    expect(page.locator("body")).to_have_attribute("data-ready", "1", timeout=20000)
    expect(page.locator("#chime")).to_have_attribute("data-sound", "off")  # the choice survives a reload
    page.locator("#chime").click()
    page.reload()
    expect(page.locator("body")).to_have_attribute("data-ready", "1", timeout=20000)
    expect(page.locator("#chime")).to_have_attribute("data-sound", "on")
    assert outside == []


def test_a_kiosk_screen_chimes_on_a_new_alarm_without_a_click(site: Site, kiosk: Browser) -> None:
    outside: list[str] = []
    silent_after_t0(site, 6)
    page = open_screen(kiosk, site, outside)
    expect(page.locator("body")).to_have_attribute("data-ready", "1", timeout=20000)
    assert page.locator("body").get_attribute("data-chimes") is None
    site.at(14 * H)
    expect(page.locator("#alarms li[data-alarm]")).to_have_count(1, timeout=10000)
    expect(page.locator("body")).to_have_attribute("data-chimes", "1", timeout=10000)
    assert outside == []


def test_maintenance_alarms_are_grouped_by_home(site: Site, kiosk: Browser) -> None:
    outside: list[str] = []
    moves(site, timedelta(0), *range(1, 7))
    site.record(M, obs("pir-1", "battery", battery=5), obs("pir-1", "availability", availability="offline"),
                obs("pir-2", "battery", battery=7))
    site.at(20 * M)
    page = open_screen(kiosk, site, outside)
    expect(page.locator("body")).to_have_attribute("data-ready", "1", timeout=20000)
    groups = page.locator("#alarms li.maintenance")
    expect(groups).to_have_count(2)
    home_1 = page.locator('#alarms li.maintenance[data-home="r1"]')
    expect(home_1.locator("[data-maintenance]")).to_have_count(2)
    expect(home_1.locator(".top")).to_contain_text("居民1 · 设备维护 (2)")
    expect(home_1).to_contain_text("设备pir-1电量5%（低于15%）")
    expect(home_1).to_contain_text("设备pir-1于2026-11-23 16:01报告离线")
    expect(page.locator('#alarms li.maintenance[data-home="r2"] [data-maintenance]')).to_have_count(1)
    assert outside == []


def test_the_screen_reads_in_chinese_on_a_local_24_hour_clock(site: Site, kiosk: Browser) -> None:
    outside: list[str] = []
    silent_after_t0(site, 6)
    site.at(14 * H)  # resident 1: 14 h of silence; local time 22:00 in Shanghai
    alarm = site.alarm(AlarmKind.INACTIVITY, resident="r1")
    with Session(site.engine) as session, session.begin():
        transitions.acknowledged(session, session.get(Alarm, alarm.id), T0 + 14 * H + M, by="李娜 (grid_worker)",
                                 channel="keypress")
    page = open_screen(kiosk, site, outside, locale="en-US",
                       timezone_id="America/New_York")  # the browser's own locale and zone do not matter
    expect(page.locator("body")).to_have_attribute("data-ready", "1", timeout=20000)
    item = page.locator(f'#alarms li[data-alarm="{alarm.id}"]')
    expect(item).to_contain_text("已14.0小时无活动（时限14小时）；最后活动2026-11-23 16:00")
    expect(item).to_contain_text("已确认 李娜（网格员、按键）")
    text = item.inner_text()
    assert "grid_worker" not in text and "keypress" not in text and "no activity" not in text
    expect(page.locator("#clock")).to_have_text(re.compile(r"^\d{2}:\d{2}:\d{2}$"))
    assert not re.search(r"AM|PM", page.locator("#clock").inner_text())
    assert outside == []


def test_a_failed_sign_in_is_worded_for_the_reader(site: Site, kiosk: Browser) -> None:
    outside: list[str] = []
    page = open_page(kiosk, f"{site.url}/screen", outside)
    expect(page.locator("#login")).to_be_visible(timeout=20000)
    page.fill("#login input[name=username]", "nobody")
    page.fill("#login input[name=password]", "wrong password")
    page.click("#login button[type=submit]")
    expect(page.locator("#login-error")).to_have_text("用户名或密码不正确，或登录已过期", timeout=10000)
    assert outside == []
