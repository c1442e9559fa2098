"""The booth editor in a real browser: upload, place, publish, and the refusals.

A live market with its creator cleo: she uploads a GLB model and a PNG through the upload
page (a malformed GLB is refused there with the reason), sees both in the editor with their
previews, places both and publishes; the booth's manifest then holds the placements. A tab
left open on an older layout cannot overwrite the newer one.
"""

import numpy as np
import pytest

from chunks.layouts import market_columns
from tests.chunks.glb import glb_box, glb_cut_short, png_image
from tests.live import live_market

from .editor_browser import open_editor, place, publish, shot, sign_in, upload, with_creator


@pytest.fixture(scope="module")
def market(tmp_path_factory):
    with live_market(tmp_path_factory.mktemp("booth-editor"), args=["--walkers", "0"]) as server:
        yield with_creator(server)


def spot(zone: int, nth: int = 0) -> tuple[float, float]:
    """The centre of the `nth` floor column of `zone` in the demo market of three booths."""
    grid = market_columns(3)
    i, k = np.argwhere(grid == zone)[nth]
    width = 128.0 / grid.shape[0]
    return round((float(i) + 0.5) * width, 2), round((float(k) + 0.5) * width, 2)


def test_creator_uploads_places_and_publishes_a_model_and_a_picture(market, page):
    sign_in(page, market)
    upload(page, market, "lantern.glb", glb_box())
    upload(page, market, "banner.png", png_image(size=(320, 200)))
    refused = upload(page, market, "broken.glb", glb_cut_short(), refused=True)
    assert "This GLB model says it is" in refused.inner_text()
    shot(page, "booth-editor-upload-refused")

    open_editor(page, market, assets=2)
    page.wait_for_selector('.asset[data-thumbnail="ready"] img')
    page.wait_for_selector('.asset[data-preview="ready"] img')
    x0, z0 = spot(1, 0)
    x1, z1 = spot(1, 5)
    place(page, "lantern.glb", x0, z0, rotation=30, scale=1.5)
    place(page, "banner.png", x1, z1)
    shot(page, "booth-editor-placed")
    message = publish(page)
    shot(page, "booth-editor-published")

    assert "Published: visitors now see version 1" in message
    manifest = page.evaluate(f"fetch('/shards/{market.booth}/assets').then(r => r.json())")
    placed = {a["name"]: a["placements"] for a in manifest["assets"]}
    assert manifest["layout_version"] == 1
    assert placed["lantern.glb"][0]["position"] == [x0, 0, z0]
    assert placed["lantern.glb"][0]["scale"] == 1.5
    assert abs(placed["lantern.glb"][0]["yaw"] - np.pi / 6) < 1e-6
    assert placed["banner.png"][0]["position"] == [x1, 0, z1]
    assert {a["content_type"] for a in manifest["assets"]} == {"model/gltf-binary", "image/png"}
    # the malformed model's refusal is the one failed request
    assert [e for e in page.errors if "400 (Bad Request)" not in e] == []


def test_a_position_outside_the_booth_is_kept_off(market, page):
    sign_in(page, market)
    open_editor(page, market, assets=2)
    page.locator(".asset", has_text="banner.png").get_by_role("button", name="Place").click()
    x, z = spot(0)
    page.fill("#field-x", str(x))
    page.fill("#field-z", str(z))
    page.press("#field-z", "Enter")

    assert "outside this booth" in page.locator("#message").text_content()
    assert float(page.input_value("#field-x")) != x or float(page.input_value("#field-z")) != z


def test_a_stale_tab_cannot_overwrite_a_newer_layout(market, browser):
    context = browser.new_context(viewport={"width": 1280, "height": 860})
    first, stale = context.new_page(), context.new_page()
    sign_in(first, market)
    open_editor(first, market, assets=2)
    open_editor(stale, market, assets=2)
    version = first.locator("#layout-state").text_content()

    first.locator(".asset", has_text="banner.png").get_by_role("button", name="Place").click()
    assert "Published" in publish(first)
    message = publish(stale)
    shot(stale, "booth-editor-stale-tab")

    assert "was published again" in message
    assert "reload to see the newer layout; nothing was changed" in message
    assert stale.get_by_role("button", name="Reload the newer layout").is_visible()
    assert version != first.locator("#layout-state").text_content()
    context.close()


def test_assets_are_dragged_onto_the_floor_and_placements_dragged_within_the_booth(market, page):
    sign_in(page, market)
    open_editor(page, market, assets=2)
    placed_before = page.evaluate("() => document.getElementById('layout-state').textContent")
    floor = page.locator("#floor")
    x, z = spot(1, 3)
    target = page.evaluate("([x, z]) => window.boothFloor.toScreen(x, z)", [x, z])
    page.locator(".asset", has_text="lantern.glb").drag_to(
        floor, target_position={"x": target[0], "y": target[1]}
    )
    page.wait_for_function(
        "before => document.getElementById('layout-state').textContent !== before",
        arg=placed_before,
    )
    dropped = page.evaluate("() => window.boothFloor.placements.at(-1)")
    assert dropped["position"][0] == pytest.approx(x, abs=0.5)
    assert dropped["position"][2] == pytest.approx(z, abs=0.5)

    # drag the placement towards the neighbouring booth: it stops at the border
    ox, oz = spot(0)
    outside = page.evaluate("([x, z]) => window.boothFloor.toScreen(x, z)", [ox, oz])
    box = floor.bounding_box()
    page.mouse.move(box["x"] + target[0], box["y"] + target[1])
    page.mouse.down()
    page.mouse.move(box["x"] + outside[0], box["y"] + outside[1], steps=12)
    page.mouse.up()
    moved = page.evaluate("() => window.boothFloor.placements.at(-1).position")
    assert page.evaluate("([x, z]) => window.boothFloor.inside(x, z)", [moved[0], moved[2]])
