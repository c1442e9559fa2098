"""Booth assets in the browser: time from entering a booth to its assets drawn, and frame rates.

    python bench/bench_booth_assets.py [--booths 32] [--walkers 1000] [--entries 8] [--seconds 5]

What it does, on this machine, in this one run:

1. starts `manage.py runmarket --booths N --walkers W` (the embedded default) on a free
   loopback port with a temporary data folder, and furnishes every booth as its creator
   would: two GLB models and one PNG panel, published, readable by the booth's visitors
   (each booth's files differ, so no booth's chunks are another's);
2. in headless Chromium (Debian's, software-rendered: no GPU), `--entries` times a visitor
   page with an empty cache joins 1.5 m from a border of another booth, waits until the
   booth it stands in is drawn, then walks across the border with the arrow key; the time
   from its `booth_entered` to the first frame after the entered booth's assets are drawn
   is recorded (cold: every chunk fetched). The same page is then reloaded and crosses
   again (warm: every chunk from the browser's cache);
3. the visitor page's frame rate, standing in a furnished booth among the walkers, over
   `--seconds`; then the dashboard's orbit view with all booths furnished and the walkers
   as dots, over the same time.

Medians are printed, with the ratio of warm to cold time and of each frame rate to 30
frames a second.
"""

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

import django

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.machine import machine_info  # noqa: E402

FURNISH = """
import json, blake3, numpy as np
from django.contrib.auth import get_user_model
from chunks.layouts import PlacementInput, booth_layout_publish, market_columns
from chunks.models import Chunk, ChunkNamespace, Namespace
from chunks.services import asset_create
from chunks.storage import chunk_store
from market.models import Booth
from market.rebac.services import rebac_tuple_write
from market.roles import booth_creator_set, market_operator_add
from tests.chunks.glb import glb_box, png_image

booths = list(Booth.objects.order_by("zone_index"))
grid = market_columns(len(booths))
width = 128.0 / grid.shape[0]
olga = get_user_model().objects.create_user("olga", password="pw")
market_operator_add(market=booths[0].market, user=olga)
stands = {}
for booth in booths:
    creator = get_user_model().objects.create_user(f"creator{booth.zone_index}")
    booth_creator_set(booth=booth, user=creator)
    namespace = Namespace.objects.get(booth=booth)
    rebac_tuple_write(object=namespace.rebac_object, relation="reader", user=f"booth:{booth.pk}#visitor")
    columns = (np.argwhere(grid == booth.zone_index) + 0.5) * width
    shade = booth.zone_index / max(1, len(booths) - 1)
    files = [
        ("model-a.glb", glb_box((1.0, 0.1 + 0.3 * shade, 0.6))),
        ("model-b.glb", glb_box((0.2, 0.4 + 0.5 * shade, 1.0), size=0.6)),
        ("panel.png", png_image((20, int(100 + 150 * shade), 240), (512, 320))),
    ]
    placements = []
    for n, (name, data) in enumerate(files):
        digest = blake3.blake3(data).hexdigest()
        path = chunk_store().path_for(digest)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        Chunk.objects.get_or_create(hash=digest, defaults={"size": len(data)})
        ChunkNamespace.objects.get_or_create(chunk_id=digest, namespace=namespace)
        asset = asset_create(user=creator, booth_id=booth.pk, namespace_reference=None,
                             name=name, content_type="", hashes=[digest])
        x, z = columns[n % len(columns)]
        placements.append(PlacementInput(asset=asset.pk, x=float(x) + n, y=0.0, z=float(z), scale=1.5))
    booth_layout_publish(user=creator, booth_id=booth.pk, version=0, placements=placements)
    x, z = columns[0]
    stands[booth.zone_index] = [float(x), 1.0, float(z) + 3.0 if float(z) + 3.0 < 128 else float(z)]
print(json.dumps(stands))
"""


def crossings(booths: int, count: int) -> list[tuple[int, list[float], str]]:
    """`count` booth borders to walk across: (the booth entered, where to start, the key)."""
    from chunks.layouts import market_columns

    grid = market_columns(booths)
    width = 128.0 / grid.shape[0]
    found: dict[int, tuple[int, list[float], str]] = {}
    for i in range(grid.shape[0] - 1):
        for k in range(grid.shape[1]):
            a, b = int(grid[i, k]), int(grid[i + 1, k])
            if a != b and b not in found:
                found[b] = (b, [(i + 1) * width - 1.5, 1.0, (k + 0.5) * width], "ArrowRight")
    chosen = sorted(found.values())
    return chosen[:: max(1, len(chosen) // count)][:count]


def cross(page, url: str, start: list[float], key: str, zone: int) -> dict:
    """Join at `start`, wait for the booth there, walk with `key` into `zone`: its load."""
    visit(page, url, start)
    page.wait_for_function(
        "() => window.fabricVisit.stats.loads.some(l => l.reason === 'welcome')", timeout=60_000
    )
    page.locator("#scene").focus()
    page.keyboard.down(key)
    try:
        page.wait_for_function(
            "zone => window.fabricVisit.stats.loads.some(l => l.zone === zone"
            " && l.reason === 'booth_entered')",
            arg=zone,
            timeout=60_000,
        )
    finally:
        page.keyboard.up(key)
    return page.evaluate(
        "zone => window.fabricVisit.stats.loads.find(l => l.zone === zone"
        " && l.reason === 'booth_entered')",
        zone,
    )


def visit(page, url: str, at: list[float]) -> None:
    page.goto(url + "?at=" + ",".join(f"{v:.2f}" for v in at))
    page.get_by_role("button", name="Walk in as a guest").click()  # a new visitor each time
    page.wait_for_function("() => window.fabricVisit.state.me !== null", timeout=60_000)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--booths", type=int, default=32)
    parser.add_argument("--walkers", type=int, default=1000)
    parser.add_argument("--entries", type=int, default=8)
    parser.add_argument("--seconds", type=float, default=5.0)
    options = parser.parse_args()

    import os

    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "fabric_site.settings")
    django.setup()
    from playwright.sync_api import sync_playwright

    from operator_ui.watch import chromium_path
    from tests.browser import CHROMIUM_ARGS
    from tests.live import live_market

    machine_info(booths=str(options.booths), walkers=str(options.walkers))
    executable = chromium_path()
    if executable is None:
        sys.exit("Chromium is not installed: apt-get install -y chromium")
    args = ["--booths", str(options.booths), "--walkers", str(options.walkers)]
    with live_market(Path(tempfile.mkdtemp(prefix="bench-booth-assets-")), args=args) as server:
        made = server.manage("shell", "-c", FURNISH)
        if made.returncode != 0:
            sys.exit(made.stderr)
        stands = json.loads(made.stdout.strip().splitlines()[-1])
        url = server.url + "/visit/1/"
        cold, warm, visit_fps, orbit_fps = [], [], [], []
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(
                executable_path=executable, headless=True, args=CHROMIUM_ARGS
            )
            walks = crossings(options.booths, options.entries)
            for zone, start, key in walks:
                context = browser.new_context(viewport={"width": 1280, "height": 800})
                page = context.new_page()
                first = cross(page, url, start, key, zone)
                page.reload()
                again = cross(page, url, start, key, zone)
                cold.append(first["ms"])
                warm.append(again["ms"])
                print(
                    f"booth {zone:2}: cold {first['ms']:7.1f} ms ({first['fetched']} chunks fetched)"
                    f", warm {again['ms']:6.1f} ms ({again['fetched']} fetched,"
                    f" {again['fromCache']} from cache)",
                    flush=True,
                )
                if zone == walks[-1][0]:
                    for _ in range(3):
                        page.evaluate("() => window.fabricVisit.fps()")
                        time.sleep(options.seconds)
                        visit_fps.append(page.evaluate("() => window.fabricVisit.fps()"))
                context.close()
            context = browser.new_context(viewport={"width": 1280, "height": 800})
            page = context.new_page()
            page.goto(server.url + "/accounts/login/?next=/dashboard/")
            page.fill("#id_username", "olga")
            page.fill("#id_password", "pw")
            page.get_by_role("button", name="Sign in").click()
            page.wait_for_url(server.url + "/dashboard/")
            page.locator("#view").focus()
            page.keyboard.press("Tab")
            page.wait_for_function(
                "n => window.fabricOrbitAssets.loaded === n", arg=len(stands), timeout=120_000
            )
            dots = page.evaluate(
                "() => { window.benchFrames = 0; const count = () => { window.benchFrames += 1;"
                " requestAnimationFrame(count); }; requestAnimationFrame(count);"
                " return window.fabricOrbitAssets.furnisher.trianglesDrawn; }"
            )
            for _ in range(3):
                start = page.evaluate("() => [window.benchFrames, performance.now()]")
                time.sleep(options.seconds)
                end = page.evaluate("() => [window.benchFrames, performance.now()]")
                orbit_fps.append((end[0] - start[0]) * 1000 / (end[1] - start[1]))
            context.close()
            browser.close()
    cold_ms, warm_ms = statistics.median(cold), statistics.median(warm)
    print()
    print(f"enter a booth to drawn, cold cache  median {cold_ms:7.1f} ms over {len(cold)} booths")
    print(
        f"enter a booth to drawn, warm cache  median {warm_ms:7.1f} ms   ratio to cold {warm_ms / cold_ms:.2f}"
    )
    for name, rates in (("visitor page", visit_fps), ("orbit view", orbit_fps)):
        rate = statistics.median(rates)
        print(
            f"{name:<12} frame rate median {rate:5.1f} fps  {[round(r, 1) for r in rates]}  ratio to 30 fps {rate / 30:.2f}"
        )
    print(f"orbit view triangles drawn {dots:,.0f}")


if __name__ == "__main__":
    main()
