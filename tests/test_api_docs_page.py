"""/docs in a real headless Chromium with no network beyond this machine: Swagger UI 5 comes from a Python
package (swagger-ui-bundle-v2), renders the app's OpenAPI 3.1 document and lists its operations."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from playwright.sync_api import Browser, expect

from tests.harness import Site
from tests.pages import HAS_CHROMIUM, open_page

pytestmark = pytest.mark.skipif(not HAS_CHROMIUM, reason="needs Debian's chromium (.ci/run installs it)")


def test_the_api_docs_render_their_operations_offline(make_screen_site: Callable[[int], Site],
                                                      browser: Browser) -> None:
    site = make_screen_site(1)
    outside: list[str] = []
    page = open_page(browser, f"{site.url}/docs", outside)
    expect(page.locator(".opblock").first).to_be_visible(timeout=20_000)
    assert page.locator(".opblock").count() > 40
    expect(page.locator(".opblock-summary-path", has_text="/api/residents").first).to_be_visible()
    assert page.get_by_text("Unable to render this definition").count() == 0
    favicon = page.locator("link[rel='shortcut icon'], link[rel='icon']").first.get_attribute("href") or ""
    assert favicon.startswith("/docs/assets/")
    assert not outside, f"requests beyond this machine: {outside}"
