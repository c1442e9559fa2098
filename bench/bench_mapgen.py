"""Time to generate a market from its map config, in Python, in Node and in Chromium.

    python bench/bench_mapgen.py              Python and Node
    python bench/bench_mapgen.py --chromium   Chromium too (Debian's chromium, headless)

Each config is generated REPEATS times after three untimed runs, in this process for
Python (zones/core/mapgen.py) and in one Node process or one Chromium page for the
JavaScript (static/mapgen/mapgen.js, through tests/mapgen/check.mjs); the median and the
fastest run are reported. The baseline, measured in the same run, is Python on the
default config (8 booths on 128 x 128 m); every figure is also given as a share of the
50 ms a market may take to generate. Every config's layout hash is checked to be the same
in each language before anything is timed.
"""

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.machine import machine_info  # noqa: E402
from zones.core.mapgen import MapConfig, generate, layout_hash  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
REPEATS = 41
BUDGET_MS = 50.0
ALL_PROPS = ["market", "garden", "workshop", "lanterns"]
CONFIGS: dict[str, dict[str, Any]] = {
    "default (8 booths, 128 m)": {"market_id": 1, "seed": 1},
    "32 booths ring, 192 m": {
        "market_id": 1,
        "seed": 2,
        "booths": 32,
        "arrangement": "ring",
        "bounds_m": [192, 192],
        "prop_sets": ALL_PROPS,
        "portals": [{"side": s} for s in ("north", "east", "south", "west")],
    },
    "32 booths, 256 m, densest": {
        "market_id": 1,
        "seed": 3,
        "booths": 32,
        "bounds_m": [256, 256],
        "prop_sets": ALL_PROPS,
        "item_density": 200,
        "npc_density": 1000,
    },
    "32 booths rows, 1024 m, densest": {
        "market_id": 1,
        "seed": 4,
        "booths": 32,
        "arrangement": "rows",
        "bounds_m": [1024, 1024],
        "prop_sets": ALL_PROPS,
        "item_density": 200,
        "npc_density": 1000,
        "portals": [{"side": "north", "at": a} for a in (0, 250, 500, 750, 1000)],
    },
}


def python_times(config: dict[str, Any]) -> dict[str, float]:
    parsed = MapConfig.from_dict(config)
    for _ in range(3):
        generate(parsed)
    runs = []
    for _ in range(REPEATS):
        start = time.perf_counter()
        generate(parsed)
        runs.append((time.perf_counter() - start) * 1e3)
    return {"median": statistics.median(runs), "fastest": min(runs)}


def node_answer(request: dict[str, Any]) -> dict[str, Any]:
    with tempfile.NamedTemporaryFile("w", suffix=".json") as file:
        json.dump(request, file)
        file.flush()
        out = subprocess.run(
            ["node", str(REPO / "tests" / "mapgen" / "node_run.mjs"), file.name],
            check=True,
            capture_output=True,
            text=True,
        ).stdout
    return json.loads(out)


def chromium_answer(request: dict[str, Any]) -> dict[str, Any]:
    from playwright.sync_api import sync_playwright

    executable = os.environ.get("CHROMIUM") or shutil.which("chromium")
    if executable is None:
        raise SystemExit("no Chromium: apt-get install -y chromium (or set CHROMIUM)")
    origin = "http://mapgen.test"

    def serve(route: Any) -> None:
        path = route.request.url.removeprefix(origin + "/")
        if path.startswith(("static/mapgen/", "tests/mapgen/")) and ".." not in path:
            body = (REPO / path).read_text()
            route.fulfill(status=200, content_type="text/javascript", body=body)
        else:
            route.fulfill(status=200, content_type="text/html", body="<!doctype html>")

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=executable, headless=True, args=["--no-sandbox", "--disable-gpu"]
        )
        page = browser.new_page()
        page.route(origin + "/**", serve)
        page.goto(origin + "/")
        answer = page.evaluate(
            "async (r) => (await import('/tests/mapgen/check.mjs')).run(r)", request
        )
        browser.close()
    return dict(answer)


def report(name: str, where: str, times: dict[str, float], baseline: float) -> None:
    print(
        f"  {where:<9} median {times['median']:7.2f} ms  (fastest {times['fastest']:6.2f} ms)"
        f"  ratio {times['median'] / baseline:5.2f}x vs Python default ({baseline:.2f} ms)"
        f"  {times['median'] / BUDGET_MS * 100:5.1f} % of the {BUDGET_MS:g} ms budget"
    )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--chromium", action="store_true", help="time Chromium too")
    args = parser.parse_args()
    if shutil.which("node") is None:
        raise SystemExit("no Node: apt-get install -y nodejs")
    node_version = subprocess.run(
        ["node", "--version"], check=True, capture_output=True, text=True
    ).stdout.strip()
    machine_info(node=node_version)

    configs = list(CONFIGS.values())
    hashes = [layout_hash(generate(MapConfig.from_dict(c))) for c in configs]
    runners = {"Node": node_answer}
    if args.chromium:
        runners["Chromium"] = chromium_answer
    js: dict[str, list[dict[str, float]]] = {}
    for where, answer in runners.items():
        got = answer({"configs": configs, "time": {"configs": configs, "repeats": REPEATS}})
        if [r["sha256"] for r in got["layouts"]] != hashes:
            raise SystemExit(f"{where} generates other layouts than Python")
        js[where] = got["times"]
    print(f"layout hashes agree: Python, {', '.join(runners)} ({len(configs)} configs)")
    print(f"{REPEATS} timed runs of each config after 3 untimed ones\n")

    python = [python_times(c) for c in configs]
    baseline = python[0]["median"]
    for i, (name, config) in enumerate(CONFIGS.items()):
        layout = generate(MapConfig.from_dict(config))
        print(
            f"{name}: {len(layout['booths'])} booths, {len(layout['props'])} props,"
            f" {len(layout['items'])} items, {len(layout['npc_spawns'])} NPC spawns,"
            f" {len(layout['colliders'])} colliders"
        )
        report(name, "Python", python[i], baseline)
        for where in runners:
            report(name, where, js[where][i], baseline)


if __name__ == "__main__":
    main()
