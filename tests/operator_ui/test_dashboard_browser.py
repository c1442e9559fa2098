"""The dashboard in a real browser, against live markets: map, orbit view, panel, states."""

import os
import signal
import threading
import time
import uuid

import pytest

from tests.browser import browser, page, screenshot  # noqa: F401  (fixtures)
from tests.live import free_port, live_market
from tests.zones.test_smoke_burst import worker_pids

from .dashboard_browser import (
    box,
    open_dashboard,
    overlaps,
    server_summaries,
    wait_until,
    with_operator,
)

BOOTHS = ["Loom & Thread", "Glass Garden", "Pixel Forge"]


@pytest.fixture(scope="module")
def market(tmp_path_factory):
    with live_market(tmp_path_factory.mktemp("dashboard"), args=["--walkers", "120"]) as server:
        yield with_operator(server)


def mode(tab):
    return tab.evaluate("window.fabricDashboard.mode")


@pytest.mark.parametrize("size", [(1280, 860), (1024, 640)])
def test_the_page_opens_top_down_with_every_booth_name_readable(page, market, size):  # noqa: F811
    page.set_viewport_size({"width": size[0], "height": size[1]})
    open_dashboard(page, market.url)
    assert mode(page) == "topdown"
    assert page.locator("#topdown").is_visible() and page.locator("#orbit").is_hidden()
    hud = box(page, "#hud")
    labels = page.locator(".booth-label")
    assert labels.all_inner_texts() == BOOTHS
    boxes = []
    for i, name in enumerate(BOOTHS):
        label = labels.nth(i)
        assert label.is_visible(), f"{name} is not visible"
        found = box(page, f".booth-label >> nth={i}")
        assert found["x"] >= 0 and found["y"] >= 0
        assert found["x"] + found["width"] <= size[0] and found["y"] + found["height"] <= size[1]
        assert not overlaps(found, hud), f"the panel covers {name}"
        size_px = float(label.evaluate("e => getComputedStyle(e).fontSize").removesuffix("px"))
        assert size_px >= 12
        boxes.append(found)
    assert not any(overlaps(a, b) for i, a in enumerate(boxes) for b in boxes[i + 1 :])
    screenshot(page, f"dashboard-top-down-{size[0]}x{size[1]}")


def test_the_dots_move_between_two_screenshots_a_second_apart(page, market):  # noqa: F811
    open_dashboard(page, market.url)
    first = page.locator("#topdown").screenshot()
    positions = page.evaluate("Array.from(window.fabricDashboard.frame.x)")
    time.sleep(1.0)
    second = page.locator("#topdown").screenshot()
    later = page.evaluate("Array.from(window.fabricDashboard.frame.x)")
    assert first != second
    assert len(positions) == len(later) == 120 and positions != later
    screenshot(page, "dashboard-dots-moved")


def test_tab_switches_to_orbit_and_back_and_nothing_sticks(page, market):  # noqa: F811
    open_dashboard(page, market.url)
    labels_before = box(page, ".booth-label >> nth=0")
    page.keyboard.press("Tab")
    assert mode(page) == "orbit"
    page.wait_for_selector("#orbit canvas", state="visible")
    assert page.locator("#topdown").is_hidden()
    page.wait_for_timeout(500)
    screenshot(page, "dashboard-orbit")
    # a drag in the orbit view, cut off by Tab with the button still down
    page.mouse.move(300, 400)
    page.mouse.down()
    page.mouse.move(360, 420, steps=4)
    page.keyboard.press("Tab")
    assert mode(page) == "topdown"
    page.mouse.move(600, 500, steps=4)  # must not pan the map: the drag was not its own
    page.mouse.up()
    page.wait_for_timeout(200)
    assert box(page, ".booth-label >> nth=0") == labels_before
    # and the orbit camera does not follow a mouse with no button down
    page.keyboard.press("Tab")
    page.wait_for_timeout(200)
    orbit_label = box(page, ".booth-label >> nth=0")
    page.mouse.move(200, 300, steps=4)
    page.wait_for_timeout(200)
    assert box(page, ".booth-label >> nth=0") == orbit_label
    page.keyboard.press("Tab")
    assert mode(page) == "topdown"
    assert page.errors == []


def test_the_panel_s_entity_counts_are_the_server_s(page, market):  # noqa: F811
    open_dashboard(page, market.url)
    heard = {}
    listener = threading.Thread(target=lambda: heard.update(server_summaries(market.url, 4.0)))
    listener.start()
    shown = set()
    deadline = time.monotonic() + 4.0
    while time.monotonic() < deadline:
        for zone in range(3):
            cell = page.locator(f'#zones-body tr[data-zone="{zone}"] td.entities')
            tick, entities = cell.get_attribute("data-tick"), cell.get_attribute("data-entities")
            if tick and entities:
                shown.add((zone, int(tick), int(entities)))
        time.sleep(0.3)
    listener.join()
    compared = [(z, t, n) for z, t, n in shown if (z, t) in heard]
    assert {z for z, _, _ in compared} == {0, 1, 2}, "no summary seen by both"
    assert all(heard[(z, t)] == n for z, t, n in compared)
    assert sum(n for _, _, n in compared[-3:]) > 0


def test_clicking_a_dot_puts_the_marker_on_it_and_it_follows_the_entity(page, market):  # noqa: F811
    open_dashboard(page, market.url)
    x, y = page.evaluate("window.fabricDashboard.screenOf(0)")
    followed = page.evaluate("String(window.fabricDashboard.frame.ids[0])")
    page.mouse.click(x, y)
    page.wait_for_timeout(1500)
    where = page.evaluate(
        """() => {
        const d = window.fabricDashboard, f = d.frame;
        const i = f.ids.indexOf(d.marker.id);
        return [String(d.marker.id), d.marker.x, d.marker.z, f.x[i], f.z[i]];
    }"""
    )
    assert where[0] == followed
    assert where[1:3] == where[3:5]  # on the entity's authoritative position, this frame
    assert followed in page.inner_text("#selection")
    screenshot(page, "dashboard-marker")


def test_an_empty_market_says_so_and_a_dropped_feed_reconnects_by_itself(page, tmp_path):  # noqa: F811
    port = free_port()
    with live_market(tmp_path, args=["--walkers", "0"], port=port) as server:
        with_operator(server)
        open_dashboard(page, server.url)
        page.wait_for_selector("#empty", state="visible")
        assert "The market is empty" in page.inner_text("#empty")
        screenshot(page, "dashboard-empty")
    page.wait_for_selector("#banner", state="visible", timeout=10_000)
    assert "Reconnecting" in page.inner_text("#banner")
    assert page.inner_text("#feed-status") == "Reconnecting…"
    screenshot(page, "dashboard-reconnecting")
    with live_market(tmp_path, args=["--walkers", "0"], port=port):
        page.wait_for_selector("#feed-status.live", timeout=30_000)
        page.wait_for_selector("#banner", state="hidden")
    # While the server was down, the feed's reconnects and the page's readiness requests
    # (static/operator_ui/readiness.js) failed to connect; nothing else may fail.
    assert all("WebSocket" in e or "ERR_CONNECTION_REFUSED" in e for e in page.errors), page.errors


def test_a_killed_zone_worker_shows_restarting_then_ok(page, tmp_path, redis_url):  # noqa: F811
    prefix = f"dash{uuid.uuid4().hex[:8]}"
    with live_market(
        tmp_path, args=["--walkers", "60"], REDIS_URL=redis_url, FABRIC_CHANNEL_PREFIX=prefix
    ) as server:
        with_operator(server)
        open_dashboard(page, server.url)
        row = '#zones-body tr[data-zone="1"]'

        def health():
            return page.locator(row).get_attribute("data-health")

        wait_until(lambda: health() == "ok", 15, "zone 1 did not report ok")
        os.kill(worker_pids(server.process.pid)["1"], signal.SIGKILL)
        wait_until(lambda: health() == "restarting", 15, "the panel did not show restarting")
        screenshot(page, "dashboard-restarting")
        wait_until(lambda: health() == "ok", 30, "zone 1 did not come back ok")
        screenshot(page, "dashboard-restarted")
