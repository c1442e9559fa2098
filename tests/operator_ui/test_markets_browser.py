"""A generated market served live and drawn in Chromium: the dashboard's views, its map
page, and the new-market page's preview and creation."""

import json

from tests.browser import browser, page, screenshot  # noqa: F401  (fixtures)
from tests.live import live_market
from tests.operator_ui.dashboard_browser import PASSWORD, open_dashboard
from tests.subprocesses import embedded_environment, run_manage
from zones.core.mapgen import MapConfig, canonical, generate, layout_hash

NEED_COLOURS = {
    "hunger": (0xF4, 0xA2, 0x59),
    "hygiene": (0x5B, 0xC0, 0xEB),
    "fun": (0xE8, 0x6A, 0x92),
    "energy": (0x9B, 0xC5, 0x3D),
}


def generated_first_market(data_dir):
    """A fresh database whose first market, the one runmarket serves, is generated."""
    env = embedded_environment(data_dir)
    assert run_manage("migrate", "--noinput", env=env).returncode == 0
    made = run_manage(
        "market_generate", "Night Market", "--seed", "99", "--booths", "6", "--items", "60",
        "--portal", "north:500", "--operator", "olga", "--password", PASSWORD, "--print", env=env,
    )  # fmt: skip
    assert made.returncode == 0, made.stderr
    text = made.stdout.strip().splitlines()[-1]
    return json.loads(text), text


def pixel(page, x, z):  # noqa: F811
    """The colour drawn at world point (x, z) m of the top-down map."""
    return tuple(
        page.evaluate(
            """([x, z]) => {
                const canvas = document.getElementById("topdown");
                const [px, py] = window.fabricDashboard.screenAt(x, z);
                const box = canvas.getBoundingClientRect();
                const ratio = canvas.width / box.width;
                const data = canvas.getContext("2d").getImageData(
                    Math.round((px - box.left) * ratio), Math.round((py - box.top) * ratio), 1, 1).data;
                return [data[0], data[1], data[2]];
            }""",
            [x, z],
        )
    )


def test_a_generated_market_live_on_the_dashboard_its_map_and_a_new_one(page, tmp_path):  # noqa: F811
    layout, text = generated_first_market(tmp_path)
    assert canonical(generate(MapConfig.from_dict(layout["config"]))).decode() == text
    with live_market(tmp_path, args=["--walkers", "0"]) as server:
        open_dashboard(page, server.url)
        drawn = page.evaluate("window.fabricDashboard.layout")
        assert canonical(drawn).decode() == text  # the page generated the server's layout
        assert page.evaluate("window.fabricDashboard.geometry.booths.length") == 6
        # items are drawn in the colour of the need they restore, at their place (benches,
        # 60 cm deep, are a few pixels wide at this scale and left out)
        matches = 0
        wide = [
            i
            for i in drawn["items"]
            if min(i["box"][3] - i["box"][0], i["box"][5] - i["box"][2]) >= 150
        ]
        for item in wide:
            x0, _, z0, x1, _, z1 = item["box"]
            colour = pixel(page, (x0 + x1) / 200, (z0 + z1) / 200)
            want = NEED_COLOURS[item["need"]]
            matches += all(abs(a - b) <= 8 for a, b in zip(colour, want, strict=True))
        assert len(wide) >= 20 and matches >= len(wide) * 0.95
        screenshot(page, "generated-market-topdown")
        page.keyboard.press("Tab")
        page.wait_for_selector("#orbit canvas", state="visible")
        solid = len(drawn["walls"]) + len(drawn["props"]) + len(drawn["items"])
        page.wait_for_function(f"window.fabricDashboard.orbitBoxes === {solid + 1}")
        page.wait_for_timeout(300)
        screenshot(page, "generated-market-orbit")

        page.goto(server.url + "/dashboard/markets/1/map/")
        page.wait_for_function("window.fabricMarketMap")
        assert page.evaluate("window.fabricMarketMap.same") is True
        assert page.inner_text("#hash-verdict") == "the same layout"

        page.goto(server.url + "/dashboard/markets/new/")
        page.wait_for_function("window.fabricMarketNew && window.fabricMarketNew.layout")
        page.fill("input[name=name]", "Glass Quarter")
        page.fill("input[name=seed]", "123456")
        page.fill("input[name=booths]", "40")
        assert page.evaluate("window.fabricMarketNew.problem") == "booths must be 1..32, got 40"
        page.fill("input[name=booths]", "9")
        page.select_option("select[name=arrangement]", "ring")
        page.check("input[name=prop_sets][value=garden]")
        page.fill("textarea[name=portals]", "south:250:1")
        assert page.evaluate("window.fabricMarketNew.problem") is None
        config = {
            "market_id": 1,
            "seed": 123456,
            "booths": 9,
            "arrangement": "ring",
            "prop_sets": ["garden", "market"],
            "portals": [{"side": "south", "at": 250, "target": 1}],
        }
        preview_hash = page.evaluate("window.fabricMarketNew.hash")
        assert preview_hash == layout_hash(generate(MapConfig.from_dict(config)))
        screenshot(page, "market-new-preview")
        page.click("#market-form [type=submit]")
        page.wait_for_url("**/dashboard/markets/2/map/")
        page.wait_for_function("window.fabricMarketMap")
        assert page.evaluate("window.fabricMarketMap.same") is True
        assert page.evaluate("window.fabricMarketMap.layout.booths.length") == 9
        screenshot(page, "market-map")
    assert page.errors == []
