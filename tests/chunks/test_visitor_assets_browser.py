"""A visitor walks into a booth and loads what its creator shared with the booth's visitors.

End to end against a live market: the creator uploads through the upload page and grants
"visitors of this booth" there; a visitor with an authKey walks in over the websocket and
its SDK loads the asset byte for byte into a cold cache; a visitor who never entered is
refused the manifest and every chunk; a visitor who walked out is refused too; walking in
again downloads nothing.
"""

import asyncio
import threading

import numpy as np
import pytest

from chunks.client import AssetClient, PermissionDenied
from tests.browser import browser, page, screenshot  # noqa: F401  (fixtures)
from tests.live import live_market
from zones.client import Visitor
from zones.client.assets import BoothAssets

from .upload_browser import MIB, choose_file, finished, peopled, random_bytes, readers_card, sign_in

MARKET = 1
WALK_M_S = 4.0


@pytest.fixture(scope="module")
def market(tmp_path_factory):
    with live_market(tmp_path_factory.mktemp("visitor-assets")) as server:
        yield peopled(server)


def grant_visitors(tab, namespace: int) -> None:
    card = readers_card(tab, namespace)
    card.locator("select[name=kind]").select_option("visitors")
    card.get_by_role("button", name="Grant read access").click()
    card.locator(".reader-list li", has_text="visitors of this booth").wait_for()


def nearest_point_of(visitor: Visitor, zone: int) -> np.ndarray:
    assert visitor.layout is not None and visitor.position is not None
    points = visitor.layout.floor_points(height=float(visitor.position[1]))
    inside = points[visitor.layout.zone_at(points) == zone]
    return inside[int(np.argmin(np.linalg.norm(inside - visitor.position, axis=1)))]


async def walk_into(visitor: Visitor, zone: int, timeout: float = 30.0) -> None:
    """Walk to the nearest floor point of `zone` until the market says the visitor entered it,
    then one more metre in, and stop."""
    await visitor.wait_for(lambda v: v.position is not None, timeout=5)
    target = nearest_point_of(visitor, zone)
    direction = (target - visitor.position) / max(
        float(np.linalg.norm(target - visitor.position)), 1e-6
    )
    direction[1] = 0.0
    await visitor.walk(direction * WALK_M_S)
    await visitor.wait_for(lambda v: v.booth == zone, timeout=timeout)
    await asyncio.sleep(1.0 / WALK_M_S)
    await visitor.walk([0.0, 0.0, 0.0])


async def load_of(visitor: Visitor, zone: int, count: int, timeout: float = 30.0):
    """The `count`-th finished background load of `zone`."""
    assets = visitor.assets
    assert assets is not None
    await visitor.wait_for(
        lambda v: sum(load.zone == zone for load in assets.loads) >= count, timeout=timeout
    )
    return [load for load in assets.loads if load.zone == zone][count - 1]


def bearer(market, token: str) -> AssetClient:
    return AssetClient(market.url, headers={"Authorization": f"Bearer {token}"})


def refused_everything(client: AssetClient, booth: int, zone: int, urls: list[str]) -> None:
    with pytest.raises(PermissionDenied):
        client.manifest(booth)
    with pytest.raises(PermissionDenied):
        client.zone_manifest(MARKET, zone)
    for url in urls:
        with pytest.raises(PermissionDenied) as refused:
            client.chunk("", url)
        assert refused.value.status == 403


@pytest.fixture
def visitors_loop():
    """An event loop in a thread of its own for the visitors' sockets: the browser's
    synchronous API runs a loop in the test's thread."""
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, name="visitors", daemon=True)
    thread.start()

    def run(coroutine, timeout: float = 60.0):
        return asyncio.run_coroutine_threadsafe(coroutine, loop).result(timeout)

    yield run
    loop.call_soon_threadsafe(loop.stop)
    thread.join(10)
    loop.close()


def test_a_keyed_visitor_walks_in_and_loads_the_booth_s_asset_byte_for_byte(
    page,  # noqa: F811
    market,
    tmp_path,
    visitors_loop,
):
    progress: list[tuple[int, int, int, int]] = []
    assets = BoothAssets(
        market.url, tmp_path / "cache", tmp_path / "out", progress=lambda *p: progress.append(p)
    )
    walker = visitors_loop(
        Visitor.connect(
            market.url, MARKET, key="a visitor's own secret key", booth=0, assets=assets
        )
    )
    stayer = visitors_loop(
        Visitor.connect(market.url, MARKET, key="another visitor's own key", booth=0)
    )
    try:
        visitors_loop(walker.wait_for(lambda v: v.position is not None, timeout=5))
        _, zone = walker.layout.nearest_in_other_zone(walker.position, zone=0)
        booth = market.booths[zone]

        namespace = market.namespace(booth, "wares")
        data = random_bytes(3 * MIB + MIB // 2, seed=16)
        sign_in(page, market, "anne")
        choose_file(page, namespace, "lantern.glb", data)
        finished(page, "lantern.glb")
        grant_visitors(page, namespace)
        screenshot(page, "visitor-assets-granted")

        visitors_loop(walk_into(walker, zone))
        first = visitors_loop(load_of(walker, zone, 1))
        assert first.error == "" and first.reason == "booth_entered"
        assert (first.report.chunks_downloaded, first.report.chunks_cached) == (4, 0)
        assert (assets.folder(zone) / "lantern.glb").read_bytes() == data
        assert progress[-1] == (zone, 4, 4, len(data))

        manifest = bearer(market, walker.asset_token).manifest(booth)
        urls = [part["url"] for part in manifest["assets"][0]["chunks"]]
        assert len(urls) == 4
        refused_everything(bearer(market, stayer.asset_token), booth, zone, urls)

        visitors_loop(walk_into(walker, 0))  # out again: no longer a visitor of that booth
        refused_everything(bearer(market, walker.asset_token), booth, zone, urls)

        visitors_loop(walk_into(walker, zone))
        again = visitors_loop(load_of(walker, zone, 2))
        assert (again.report.chunks_downloaded, again.report.bytes_downloaded) == (0, 0)
        assert again.report.chunks_cached == 4
        assert (assets.folder(zone) / "lantern.glb").read_bytes() == data
        assert page.errors == []
    finally:
        visitors_loop(walker.close())
        visitors_loop(stayer.close())
        visitors_loop(assets.idle())
