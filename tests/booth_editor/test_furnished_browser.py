"""A furnished booth seen in the browser: the dashboard's orbit view and the visitor page
draw its model where it was placed (a pixel check beside each screenshot), and a second
load of the visitor page fetches no chunk: every one comes from the browser's cache."""

import pytest

from tests.browser import screenshot
from tests.live import live_market
from tests.visit.visit_browser import walk_in

from .furnished import PASSWORD, furnish_spots, furnished, pink_pixels


@pytest.fixture(scope="module")
def market(tmp_path_factory):
    with live_market(tmp_path_factory.mktemp("furnished"), args=["--walkers", "0"]) as server:
        yield furnished(server)


def test_the_orbit_view_draws_the_placed_model(market, page):
    page.goto(market.url + "/accounts/login/?next=/dashboard/")
    page.fill("#id_username", "olga")
    page.fill("#id_password", PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url(market.url + "/dashboard/")
    page.locator("#view").focus()
    page.keyboard.press("Tab")
    page.wait_for_function(
        "() => window.fabricOrbitAssets && window.fabricOrbitAssets.loaded === 1"
    )
    page.wait_for_timeout(500)
    x, z = market.box
    at = page.evaluate(
        """([x, z]) => {
            const orbit = window.fabricOrbitAssets.orbit;
            const box = orbit.container.getBoundingClientRect();
            const [px, py] = orbit.project(x, 0.75, z);
            return [box.left + px, box.top + py];
        }""",
        [x, z],
    )
    shot = screenshot(page, "orbit-furnished")

    assert pink_pixels(shot.read_bytes(), at, radius=8) > 0, at
    assert page.evaluate("() => window.fabricOrbitAssets.root.children[0].children.length") == 2


def test_the_visitor_page_draws_the_model_and_a_second_load_fetches_nothing(market, page):
    _, _, stand = furnish_spots()
    chunk_requests = []
    page.on("request", lambda r: "/chunks/" in r.url and chunk_requests.append(r.url))
    walk_in(page, market.url + f"/visit/{market.market}/", at=(stand[0], 1.0, stand[1]))
    page.wait_for_function(
        "() => window.fabricVisit.stats.loads.some(l => l.zone === 1 && l.drawn === 2)"
    )
    cold = page.evaluate("() => window.fabricVisit.stats.loads.find(l => l.zone === 1)")
    x, z = market.box
    at = page.evaluate(f"() => window.fabricVisit.project({x}, 1.1, {z})")
    shot = screenshot(page, "visit-furnished")

    assert pink_pixels(shot.read_bytes(), at) > 20, at
    assert cold["fetched"] == 2 and len(chunk_requests) == 2
    assert page.locator("#hud-assets").text_content() == "2 placed assets"

    chunk_requests.clear()
    page.reload()
    walk_in(page, market.url + f"/visit/{market.market}/", at=(stand[0], 1.0, stand[1]))
    page.wait_for_function(
        "() => window.fabricVisit.stats.loads.some(l => l.zone === 1 && l.drawn === 2)"
    )
    warm = page.evaluate("() => window.fabricVisit.stats.loads.find(l => l.zone === 1)")
    screenshot(page, "visit-furnished-warm")

    assert warm["fetched"] == 0 and warm["fromCache"] == 2
    assert chunk_requests == []


REARRANGE = """
from django.contrib.auth import get_user_model
from chunks.layouts import PlacementInput, booth_layout_for_editing, booth_layout_publish
from market.models import Booth

booth = Booth.objects.get(zone_index=1)
cleo = get_user_model().objects.get(username="cleo")
layout = booth_layout_for_editing(user=cleo, booth_id=booth.pk)
keep = [PlacementInput(asset=p.asset_id, x=p.x, y=p.y, z=p.z, yaw=p.yaw, scale=p.scale)
        for p in layout.placements[:1]]
booth_layout_publish(user=cleo, booth_id=booth.pk, version=layout.version, placements=keep)
"""


def test_a_publish_reaches_the_visitors_standing_in_the_booth(market, page):
    _, _, stand = furnish_spots()
    walk_in(page, market.url + f"/visit/{market.market}/", at=(stand[0], 1.0, stand[1]), guest=True)
    page.wait_for_function("() => window.fabricVisit.stats.loads.some(l => l.drawn === 2)")

    made = market.server.manage("shell", "-c", REARRANGE)
    assert made.returncode == 0, made.stderr
    page.wait_for_function(
        "() => window.fabricVisit.stats.loads.some(l => l.reason === 'asset_changed')",
        timeout=30_000,
    )
    page.wait_for_function(
        "() => document.getElementById('hud-assets').textContent === '1 placed asset'"
    )
    screenshot(page, "visit-furnished-republished")
