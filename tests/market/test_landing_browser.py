"""The landing page in a real browser, against a live market."""

import re

from tests.browser import browser, page, screenshot  # noqa: F401  (fixtures)
from tests.live import live_market


def live_tick(tab) -> int:
    """The tick number in the page's "Live, tick N." line."""
    match = re.search(r"tick (\d+)", tab.inner_text("body"))
    assert match, "no live tick shown"
    return int(match.group(1))


def test_landing_page_shows_the_demo_booths_and_their_live_zones(page, tmp_path):  # noqa: F811
    with live_market(tmp_path) as market:
        page.goto(market.url + "/")
        rows = page.locator("table tbody tr")
        rows.first.wait_for(timeout=10_000)
        page.wait_for_function(
            "document.querySelectorAll('table tbody tr').length === 3", timeout=10_000
        )
        text = page.inner_text("body")
        for booth in ("Loom & Thread", "Glass Garden", "Pixel Forge"):
            assert text.count(booth) >= 2  # in the booth list and in the live zone table
        first = live_tick(page)
        page.wait_for_timeout(1200)
        assert live_tick(page) > first  # the feed is live: summaries keep arriving
        shot = screenshot(page, "landing")
        assert shot.stat().st_size > 10_000
        assert page.errors == []
