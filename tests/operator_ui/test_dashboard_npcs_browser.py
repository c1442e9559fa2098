"""The dashboard's NPCs and contributors in a real browser: NPC squares coloured by most
urgent need or by state, and a contributor's figures in the panel and its charts."""

import asyncio
import threading

import pytest

from tests.browser import browser, page, screenshot  # noqa: F401  (fixtures)
from tests.live import live_market
from zones.client.contributor import Contributor, utility_policy

from .dashboard_browser import open_dashboard, wait_until, with_operator

WALKERS = 30
KEY = "browser-contributor-key-01"


@pytest.fixture(scope="module")
def market(tmp_path_factory):
    with live_market(
        tmp_path_factory.mktemp("dashboard-npcs"), args=["--walkers", str(WALKERS)]
    ) as server:
        yield with_operator(server)


def npc_colours(tab):
    """[told, colour the page means, colour painted at the square's centre] per NPC."""
    return tab.evaluate(
        """() => {
        const d = window.fabricDashboard, f = d.frame;
        const canvas = document.getElementById("topdown");
        const box = canvas.getBoundingClientRect(), r = canvas.width / canvas.clientWidth;
        const g = canvas.getContext("2d");
        const out = [];
        for (let i = 0; i < f.count; i += 1) {
            if (f.kind[i] & 1) continue;
            const [px, py] = d.screenOf(i);
            const x = Math.round((px - box.left) * r), y = Math.round((py - box.top) * r);
            const p = g.getImageData(x, y, 1, 1).data;
            const hex = "#" + [p[0], p[1], p[2]].map(v => v.toString(16).padStart(2, "0")).join("");
            out.push([d.npcStatus(f.ids[i]) !== undefined, d.npcColour(f.ids[i]), hex]);
        }
        return out;
    }"""
    )


def test_npc_squares_take_their_need_or_state_colour(page, market):  # noqa: F811
    open_dashboard(page, market.url)
    wait_until(
        lambda: (c := npc_colours(page)) and all(told for told, _, _ in c),
        15,
        "the page was not told every NPC's status",
    )
    assert page.evaluate("window.fabricDashboard.npcBy") == "need"
    by_need = npc_colours(page)
    assert {meant[:7] for _, meant, _ in by_need} <= {"#ff9f43", "#3fd0e0", "#e36bd6", "#ffd93d"}
    legend = page.locator("#npc-legend li").all_inner_texts()
    assert legend == ["hunger lowest", "hygiene lowest", "fun lowest", "energy lowest"]
    counts = page.inner_text("#npc-counts")
    assert "idle" in counts and "hunger" in counts
    page.keyboard.press("n")
    assert page.evaluate("window.fabricDashboard.npcBy") == "state"
    assert page.locator("#npc-legend li").all_inner_texts() == ["idle", "moving", "interacting"]
    page.wait_for_timeout(300)  # a few frames drawn in the new colours
    by_state = npc_colours(page)
    assert drawn_as_meant(by_state)
    assert {meant for _, meant, _ in by_state} <= {"#8a93a6", "#4ea1ff", "#7bd88f"}
    screenshot(page, "dashboard-npcs-by-state")


def rgb(hex_colour):
    return [int(hex_colour[k : k + 2], 16) for k in (1, 3, 5)]


def drawn_as_meant(colours):
    """Most squares show their colour's hue at their centre. Not all, and not exactly: a
    square moves between the frame read here and the one drawn, its edge blends with the
    floor, and squares overlap where NPCs crowd an item."""

    def alike(meant, shown):
        a, b = rgb(meant[:7]), rgb(shown)
        dot = sum(x * y for x, y in zip(a, b, strict=True))
        norms = (sum(x * x for x in a) * sum(y * y for y in b)) ** 0.5
        return sum(b) > 150 and dot / norms > 0.97

    same = sum(1 for _, meant, shown in colours if alike(meant, shown))
    assert same >= 0.6 * len(colours), colours
    return True


def test_a_contributors_figures_fill_the_panel_and_its_charts(page, market):  # noqa: F811
    open_dashboard(page, market.url)
    done = threading.Event()
    sdk = Contributor(market.url, 1, KEY, 64, utility_policy)

    def contribute():
        asyncio.run(sdk.run(seconds=25.0))
        done.set()

    worker = threading.Thread(target=contribute, daemon=True)
    worker.start()
    try:
        wait_until(
            lambda: (
                page.locator("#npc-contributors tr[data-name]").count() >= 1
                and (page.evaluate("window.fabricDashboard.npcReport") or {}).get("decided", 0) > 0
            ),
            25,
            "no contributor in the panel",
        )
        row = page.locator("#npc-contributors tr[data-name]").first.locator("td")
        cells = row.all_inner_texts()
        assert cells[0].startswith("c") and int(cells[2]) > 0  # decisions a minute
        assert cells[3] != "–" and cells[5].endswith("%")  # p50 ms, valid share
        assert "decisions/min" in page.inner_text("#npc-summary")
        assert page.inner_text("#npc-bans-none") == "none"
        charts = page.evaluate(
            """() => Object.fromEntries(Object.entries(window.fabricDashboard.npcCharts)
                .map(([name, m]) => [name, Array.from(m.series.values()).map(s => s.length)]))"""
        )
        assert set(charts) == {"active", "decisions", "latency", "rates"}
        assert charts["active"][0] >= 3 and charts["decisions"][0] >= 1
        assert charts["rates"][0] >= 1  # success rate
        screenshot(page, "dashboard-contributors")
    finally:
        done.wait(40)
