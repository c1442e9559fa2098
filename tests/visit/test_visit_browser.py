"""The visitor page in a real browser: it is a visitor of the live market.

It joins with a key kept in the browser (the same visitor again after a reload) or as a
guest, walks with the keyboard across a booth border (the HUD follows the booth and the
zone that holds it), counts in the market, and shows a refused ticket instead of retrying.
"""

import pytest

from tests.browser import screenshot
from tests.live import live_market

from .visit_browser import me, walk_in, walk_to_booth


@pytest.fixture(scope="module")
def market(tmp_path_factory):
    with live_market(tmp_path_factory.mktemp("visit"), args=["--walkers", "0"]) as server:
        yield server


def test_a_visitor_walks_across_a_booth_border_and_the_hud_follows(market, page):
    walk_in(page, market.url + "/visit/1/", booth=0)
    hud = page.locator("#hud")
    first = page.locator("#hud-booth").text_content()
    screenshot(page, "visit-booth-0")

    walk_to_booth(page, 1)
    page.wait_for_function(
        "() => document.getElementById('hud').dataset.zone === '1'", timeout=20_000
    )
    screenshot(page, "visit-booth-1")

    assert hud.get_attribute("data-booth") == "1"
    assert page.locator("#hud-booth").text_content() != first
    assert page.locator("#hud-connection").text_content().startswith("Live")
    # the demo booths share no assets with visitors: their manifests are refused (403)
    assert [e for e in page.errors if "403 (Forbidden)" not in e] == []
    assert (
        page.locator("#hud-assets").text_content() == "This booth shares no assets with visitors."
    )


def test_the_key_stays_in_the_browser_and_a_reload_is_the_same_visitor(market, page):
    walk_in(page, market.url + "/visit/1/")
    first = page.evaluate("() => window.fabricVisit.state.entity.toString()")
    page.reload()
    walk_in(page, market.url + "/visit/1/")

    assert page.evaluate("() => window.fabricVisit.state.entity.toString()") == first


def test_guests_are_new_visitors_and_see_each_other(market, browser):
    pages = []
    for offset in (0.0, 1.5):
        context = browser.new_context(viewport={"width": 1024, "height": 700})
        pages.append(context.new_page())
        walk_in(pages[-1], market.url + "/visit/1/", at=(60.0 + offset, 1.0, 60.0), guest=True)
    ids = [p.evaluate("() => window.fabricVisit.state.entity.toString()") for p in pages]
    for p in pages:
        p.wait_for_function(
            "() => /^1 person nearby/.test(document.getElementById('hud-near').textContent)"
        )
    screenshot(pages[0], "visit-two-guests")

    assert ids[0] != ids[1]
    assert abs(me(pages[0])[0] - me(pages[1])[0]) < 5
    for p in pages:
        p.context.close()


def test_an_expired_ticket_is_refused_and_shown(market, page):
    stale = page.request.post(market.url + "/api/markets/1/join/", data={}).json()
    page.wait_for_timeout(11_000)  # a ticket lives 10 s
    page.route(
        "**/api/markets/1/join/",
        lambda route: route.fulfill(status=200, content_type="application/json", json=stale),
    )
    page.goto(market.url + "/visit/1/")
    page.get_by_role("button", name="Walk in as a guest").click()
    page.wait_for_function("() => document.getElementById('hud').dataset.connection === 'refused'")
    screenshot(page, "visit-ticket-expired")

    assert page.locator("#hud").get_attribute("data-close") == "4402"
    assert "expired" in page.locator("#hud-connection").text_content()


def test_the_page_counts_in_the_zone_that_holds_it(market, browser):
    context = browser.new_context(viewport={"width": 1024, "height": 700})
    visitor, landing = context.new_page(), context.new_page()
    walk_in(visitor, market.url + "/visit/1/", booth=2, guest=True)
    zone = visitor.locator("#hud").get_attribute("data-zone")
    landing.goto(market.url + "/")

    # the market runs no walkers: the zone's entities are its visitors, this page among them
    landing.wait_for_function(
        """zone => [...document.querySelectorAll('#zones-body tr')].some(row =>
            row.cells[0].textContent === zone && Number(row.cells[2].textContent) >= 1)""",
        arg=zone,
        timeout=20_000,
    )
    visitor.get_by_role("button", name="Leave").click()
    visitor.wait_for_function(
        "() => document.getElementById('hud-connection').textContent === 'Left the market'"
    )
    context.close()
