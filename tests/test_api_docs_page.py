"""/docs in a real headless Chromium with no network beyond this machine: Swagger UI 5 comes from a Python
package (swagger-ui-bundle-v2), renders the app's OpenAPI 3.1 document and lists its operations."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, expect

from tests.test_browser import CHROMIUM, Site, browser, open_page, playwright

__all__ = ["browser", "playwright"]  # the fixtures, shared with the screen's tests
pytestmark = pytest.mark.skipif(not Path(CHROMIUM).exists(), reason="needs Debian's chromium (.ci/run installs it)")


@pytest.fixture
def site(tmp_path: Path) -> Iterator[Site]:
    s = Site(tmp_path, homes=1)
    yield s
    s.close()


def test_the_api_docs_render_their_operations_offline(site: Site, browser: Browser) -> None:
    outside: list[str] = []
    page = open_page(browser, f"{site.url}/docs", outside)
    expect(page.locator(".opblock").first).to_be_visible(timeout=20_000)
    assert page.locator(".opblock").count() > 40
    expect(page.locator(".opblock-summary-path", has_text="/api/residents").first).to_be_visible()
    assert page.get_by_text("Unable to render this definition").count() == 0
    favicon = page.locator("link[rel='shortcut icon'], link[rel='icon']").first.get_attribute("href") or ""
    assert favicon.startswith("/docs/assets/")
    assert not outside, f"requests beyond this machine: {outside}"
