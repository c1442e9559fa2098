"""The dashboard's charts, totals, booth names when zoomed in, and site bar, in a real browser."""

import asyncio
import re
import threading

import pytest

from tests.browser import browser, page, screenshot  # noqa: F401  (fixtures)
from tests.live import live_market
from zones.client.visitor import Visitor

from .dashboard_browser import box, open_dashboard, overlaps, wait_until, with_operator

WALKERS = 30
BOOTHS = ["Loom & Thread", "Glass Garden", "Pixel Forge"]
HUD_GAP_PX = 24  # the map leaves the panel's width and this much free on the right (dashboard.js)


@pytest.fixture(scope="module")
def market(tmp_path_factory):
    with live_market(
        tmp_path_factory.mktemp("dashboard-panel"), args=["--walkers", str(WALKERS)]
    ) as server:
        yield with_operator(server)


def chart(tab, name):
    """The model the page last drew for chart `name`, with each zone's points."""
    return tab.evaluate(
        """name => {
        const m = window.fabricDashboard.charts[name];
        if (!m) return null;
        const series = {};
        m.series.forEach((points, zone) => (series[zone] = points));
        return Object.assign({}, m, { series: series });
    }""",
        name,
    )


def painted(tab, canvas_id, rows, columns):
    """Share of the canvas pixels in CSS rows × columns (inclusive ranges) that are painted."""
    return tab.evaluate(
        """([id, rows, columns]) => {
        const canvas = document.getElementById(id);
        const r = canvas.width / canvas.clientWidth;
        const x0 = Math.round(columns[0] * r), x1 = Math.round(columns[1] * r);
        const y0 = Math.round(rows[0] * r), y1 = Math.round(rows[1] * r);
        const data = canvas.getContext("2d").getImageData(x0, y0, x1 - x0 + 1, y1 - y0 + 1).data;
        let hit = 0;
        for (let i = 3; i < data.length; i += 4) if (data[i] > 0) hit += 1;
        return hit / (data.length / 4);
    }""",
        [canvas_id, rows, columns],
    )


def seconds_ago(label):
    """-30 s → 30, −2 min → 120, now → 0."""
    if label == "now":
        return 0
    found = re.fullmatch(r"[−-](\d+) (s|min)", label)
    assert found, f"time axis label {label!r}"
    return int(found[1]) * (60 if found[2] == "min" else 1)


def test_the_charts_fill_at_once_with_a_time_axis_a_legend_and_reference_lines(page, market):  # noqa: F811
    open_dashboard(page, market.url)
    # ten seconds after opening, the lines span the chart, not a sliver at its right edge
    wait_until(
        lambda: (chart(page, "entities") or {}).get("spanMs", 0) > 10_000,
        30,
        "the charts did not cover ten seconds",
    )
    for name, canvas_id, reference in (
        ("entities", "chart-entities", 1800),
        ("tick", "chart-tick", 50),
    ):
        model = chart(page, name)
        width = model["width"]
        assert model["reference"] == reference
        # the reference line is on the scale and drawn across the chart
        assert 0 < model["referenceY"] < model["plotBottom"]
        line = round(model["referenceY"])
        assert painted(page, canvas_id, [line, line], [0, width - 1]) > 0.4, name
        # every booth has a line that starts near the left edge
        assert sorted(model["series"]) == ["0", "1", "2"]
        for zone, points in model["series"].items():
            assert len(points) >= 10, (name, zone)
            assert points[0][0] <= 0.1 * width, (name, zone, points[0])
        below_reference = [line + 4, model["plotBottom"] - 1]
        assert painted(page, canvas_id, below_reference, [2, 0.08 * width]) > 0, name
        # a time axis: "now" at the right edge, earlier times placed where they are
        ticks = model["ticks"]
        assert ticks[0]["label"] == "now" and ticks[0]["x"] == pytest.approx(width)
        assert len(ticks) >= 3
        for tick in ticks:
            expected = width - seconds_ago(tick["label"]) * 1000 / model["spanMs"] * width
            assert tick["x"] == pytest.approx(expected, abs=0.5), tick
    legend = page.locator("#chart-legend li")
    assert legend.all_inner_texts() == BOOTHS
    colours = page.evaluate("window.fabricDashboard.geometry.booths.map(b => b.colour)")
    for i, colour in enumerate(colours):
        swatch = legend.nth(i).locator(".swatch")
        assert swatch.is_visible()
        shown = swatch.evaluate("e => getComputedStyle(e).backgroundColor")
        red, green, blue = (int(colour[k : k + 2], 16) for k in (1, 3, 5))
        assert shown == f"rgb({red}, {green}, {blue})"
    screenshot(page, "dashboard-charts")


def test_the_totals_count_the_dots_the_map_draws(page, market):  # noqa: F811
    open_dashboard(page, market.url)
    joined, leave = threading.Event(), threading.Event()

    def visit():
        async def walk_in():
            visitor = await Visitor.connect(market.url, 1)
            joined.set()
            await asyncio.get_running_loop().run_in_executor(None, leave.wait, 60)
            await visitor.leave()

        asyncio.run(walk_in())

    walker = threading.Thread(target=visit)
    walker.start()
    try:
        assert joined.wait(30), "the visitor could not join"
        seen = []
        for _ in range(30):
            shown = page.evaluate(
                """() => {
                const f = window.fabricDashboard.frame, t = document.getElementById("totals");
                let visitors = 0, migrating = 0;
                for (let i = 0; i < f.count; i += 1) {
                    if (f.kind[i] & 1) visitors += 1;
                    if (f.kind[i] & 4) migrating += 1;
                }
                return [t.textContent, visitors, f.count - visitors, migrating];
            }"""
            )
            seen.append(shown)
            page.wait_for_timeout(100)
        for text, visitors, npcs, migrating in seen:
            nouns = f"{visitors} visitor{'s' * (visitors != 1)} · {npcs} NPC{'s' * (npcs != 1)}"
            assert text == f"On the map: {nouns} · {migrating} being handed over"
        assert seen[-1][1:3] == [1, WALKERS]
        assert "On the map: 1 visitor · " in seen[-1][0]
    finally:
        leave.set()
        walker.join()


@pytest.mark.parametrize("zone", [0, 1, 2])
def test_a_booth_zoomed_into_keeps_its_name_on_screen_over_its_floor(page, market, zone):  # noqa: F811
    open_dashboard(page, market.url)
    viewport = page.viewport_size
    hud = box(page, "#hud")
    # the booth's floor column farthest from where its name sits when the map is fitted
    far = page.evaluate(
        """zone => {
        const g = window.fabricDashboard.geometry, b = g.booths[zone];
        let best = null, bestD = -1;
        b.columns.forEach(([i, k]) => {
            const x = g.lo[0] + (i + 0.5) * g.cellX, z = g.lo[2] + (k + 0.5) * g.cellZ;
            const d = (x - b.anchor[0]) ** 2 + (z - b.anchor[1]) ** 2;
            if (d > bestD) { best = [x, z]; bestD = d; }
        });
        return window.fabricDashboard.screenAt(best[0], best[1]);
    }""",
        zone,
    )
    page.mouse.move(*far)
    for _ in range(8):
        page.mouse.wheel(0, -400)
        page.wait_for_timeout(50)
    page.wait_for_timeout(300)
    anchor = page.evaluate(
        "zone => { const b = window.fabricDashboard.geometry.booths[zone];"
        " return window.fabricDashboard.screenAt(b.anchor[0], b.anchor[1]); }",
        zone,
    )
    map_top = box(page, "#topdown")["y"]
    free_right = viewport["width"] - hud["width"] - HUD_GAP_PX
    assert not (0 <= anchor[0] <= free_right and map_top <= anchor[1] <= viewport["height"]), (
        "the zoom did not take the name's usual spot out of view"
    )
    label = page.locator(f'.booth-label[data-zone="{zone}"]')
    assert label.is_visible(), f"the name of {BOOTHS[zone]} vanished"
    found = box(page, f'.booth-label[data-zone="{zone}"]')
    assert found["x"] >= 0 and found["x"] + found["width"] <= free_right + 1
    assert found["y"] >= map_top and found["y"] + found["height"] <= viewport["height"]
    assert not overlaps(found, box(page, ".help")), "the name covers the key help"
    centre = (found["x"] + found["width"] / 2, found["y"] + found["height"] / 2)
    assert page.evaluate("([x, y]) => window.fabricDashboard.zoneAt(x, y)", centre) == zone
    screenshot(page, f"dashboard-zoomed-booth-{zone}")


def relative_luminance(colour):
    channels = [int(c) / 255 for c in re.findall(r"[\d.]+", colour)[:3]]
    linear = [c / 12.92 if c <= 0.04045 else ((c + 0.055) / 1.055) ** 2.4 for c in channels]
    return 0.2126 * linear[0] + 0.7152 * linear[1] + 0.0722 * linear[2]


def test_the_site_bar_is_dark_over_the_dark_dashboard(page, market):  # noqa: F811
    open_dashboard(page, market.url)
    colours = page.evaluate(
        """() => {
        const nav = document.querySelector("nav.site");
        // the colour painted behind the bar: its own, an ancestor's, or the page's canvas
        let background = null;
        for (let e = nav; e && !background; e = e.parentElement) {
            const c = getComputedStyle(e).backgroundColor;
            if (c !== "rgba(0, 0, 0, 0)" && c !== "transparent") background = c;
        }
        if (!background) {
            const probe = document.createElement("div");
            probe.style.backgroundColor = "Canvas";
            nav.appendChild(probe);
            background = getComputedStyle(probe).backgroundColor;
            probe.remove();
        }
        const texts = Array.from(nav.querySelectorAll("a, .who")).map(
            (e) => [e.textContent.trim(), getComputedStyle(e).color]);
        return { background: background, texts: texts,
                 map: getComputedStyle(document.getElementById("dashboard")).backgroundColor };
    }"""
    )
    background = relative_luminance(colours["background"])
    assert background <= relative_luminance(colours["map"]) * 1.5, colours
    for text, colour in colours["texts"]:
        lighter, darker = sorted([relative_luminance(colour), background], reverse=True)
        assert (lighter + 0.05) / (darker + 0.05) >= 4.5, (text, colour, colours["background"])
    # no strip of another colour between the bar and the map
    bar = box(page, "nav.site")
    assert bar["y"] == 0 and bar["y"] + bar["height"] == box(page, "#dashboard")["y"]
    screenshot(page, "dashboard-site-bar")
