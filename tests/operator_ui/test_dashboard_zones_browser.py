"""Zones inside booths and the splits and merges between them, on the dashboard in a real
browser: a market without spare zones keeps one row per booth and no timeline; summaries
where a booth is served by two zones and a spare stands idle, and a split, published on the
market's stream as the zone workers publish them, show in the panel live and after a reload
(from the snapshot)."""

import asyncio
import re
import threading
import time

import pytest

from market.events.backends import Retention
from market.events.backends.redis_streams import RedisStreamsBackend
from market.events.envelope import envelope_new
from market.events.subjects import stream_name
from market.events.types import Event, MarketSummaryReported, ZonesRepartitioned
from tests.browser import browser, page, screenshot  # noqa: F401  (fixtures)
from tests.live import live_market, splitting_market
from zones.client.burst import connect_retrying

from .dashboard_browser import PASSWORD, open_dashboard, wait_until, with_operator

MARKET = 1
BOOTHS = ["Loom & Thread", "Glass Garden", "Pixel Forge"]
SPLIT, IDLE = 3, 4  # spare zones are numbered after the booths' own
LO, HI = 1 << 27, 1 << 28  # the upper part of booth 0's range that the split hands over


def publish(redis_url: str, prefix: str, *events: Event) -> None:
    """Append `events` to the market's stream, enveloped as event_publish does (on a
    thread of its own: Playwright holds an event loop in the test's)."""

    async def append() -> None:
        backend = RedisStreamsBackend(redis_url, Retention(), prefix=prefix)
        try:
            envelopes = [envelope_new(MARKET, event) for event in events]
            await backend.log(stream_name(MARKET)).append(
                [(e.subject, e.to_bytes(), e.id) for e in envelopes]
            )
        finally:
            await backend.close()

    failed: list[BaseException] = []

    def run() -> None:
        try:
            asyncio.run(append())
        except BaseException as error:  # noqa: BLE001  (raised again in the test's thread)
            failed.append(error)

    thread = threading.Thread(target=run)
    thread.start()
    thread.join(30)
    if failed:
        raise failed[0]


def zone(number: int, booth: int, name: str, colour: str, entities: int, lo: int, hi: int) -> dict:
    return {
        "zone": number, "name": name, "colour": colour, "entities": entities, "in_flight": 0,
        "capacity": 1800, "tick_ms": 0.4, "tick_p99_ms": 0.9, "migrations_per_s": 0.5,
        "migrations": 1, "migration_ms_p50": None, "migration_ms_p99": None, "visitors": 0,
        "subscribers": 1, "overruns": 0, "io_failures": 0, "booth": booth, "lo": lo, "hi": hi,
        "map_version": 1, "health": "ok", "health_reason": "",
    }  # fmt: skip


PLANNED_MS = int(time.time() * 1000)  # the planner's clock when it planned the split


def split(phase: str, took_s: float | None) -> ZonesRepartitioned:
    at_ms = PLANNED_MS + round((took_s or 0.0) * 1000)
    return ZonesRepartitioned(
        kind="split", phase=phase, version=1, source=0, target=SPLIT, lo=LO, hi=HI, booth=0,
        starts=[0, LO, HI], owners=[0, SPLIT, 1], took_s=took_s, at_ms=at_ms,
    )  # fmt: skip


def rows(tab) -> list[dict]:
    """The panel's zone table as the operator reads it, row by row."""
    return tab.evaluate(
        """() => [...document.querySelectorAll("#zones-body tr")].map(row => ({
            kind: row.className, zone: row.dataset.zone ?? null, booth: row.dataset.booth ?? null,
            cells: [...row.cells].map(c => c.textContent.trim()), visible: row.offsetHeight > 0,
        }))"""
    )


def timeline(tab) -> list[str]:
    return tab.locator("#repartitions-list li").all_inner_texts()


@pytest.fixture
def market(tmp_path, redis_url, channel_prefix):
    with live_market(
        tmp_path, args=["--walkers", "0"], REDIS_URL=redis_url, FABRIC_CHANNEL_PREFIX=channel_prefix
    ) as server:
        yield with_operator(server), redis_url, channel_prefix


def test_a_market_without_spare_zones_shows_one_zone_per_booth_and_no_timeline(page, tmp_path):  # noqa: F811
    with live_market(tmp_path, args=["--walkers", "10"]) as server:
        with_operator(server)
        open_dashboard(page, server.url)
        wait_until(
            lambda: all(r["cells"][1] != "–" for r in rows(page)) and len(rows(page)) == 3,
            15,
            "every booth's zone did not report",
        )
        table = rows(page)
        assert [(r["zone"], r["booth"], r["cells"][0]) for r in table] == [
            (str(i), str(i), name) for i, name in enumerate(BOOTHS)
        ]
        assert all(r["kind"] == "" for r in table)  # no booth heading rows, no spare rows
        assert page.locator("#zones-body .zone-tag").count() == 0
        assert page.locator("#repartitions").is_hidden()
        assert page.locator("#chart-legend li").all_inner_texts() == BOOTHS
        assert page.inner_text("#chart-note").endswith("one line per booth:")
        assert page.evaluate("window.fabricDashboard.zoneGroups.plain") is True
        screenshot(page, "dashboard-zones-no-spares")
        assert page.errors == []


def test_a_booth_served_by_two_zones_and_its_split_show_live_and_after_a_reload(page, market):  # noqa: F811
    server, redis_url, prefix = market
    open_dashboard(page, server.url)
    wait_until(lambda: len(rows(page)) == 3, 15, "the booths' rows did not show")
    assert page.locator("#repartitions").is_hidden()

    # a spare zone reports: it serves booth 0's upper part; another stands idle
    publish(
        redis_url,
        prefix,
        MarketSummaryReported(
            tick=1,
            hlc=1,
            overruns=0,
            zones=[
                zone(SPLIT, 0, BOOTHS[0], "#d1495b", 7, LO, HI),
                zone(IDLE, -1, f"spare zone {IDLE}", "#8a8f98", 0, 0, 0),
            ],
        ),
    )
    wait_until(
        lambda: page.locator("#zones-body tr.booth-row").count() == 1, 15, "no booth grouped"
    )
    table = rows(page)
    heading = next(i for i, r in enumerate(table) if r["kind"] == "booth-row")
    assert table[heading]["booth"] == "0"
    assert table[heading]["cells"][0] == BOOTHS[0]
    inside = table[heading + 1 : heading + 3]
    assert [(r["kind"], r["zone"], r["booth"]) for r in inside] == [
        ("zone-row", "0", "0"),
        ("zone-row", str(SPLIT), "0"),
    ]
    assert [r["cells"][0] for r in inside] == ["zone 0", f"zone {SPLIT}"]
    assert inside[1]["cells"][1] == "7 / 1800" and inside[1]["cells"][3] == "0.4 / 0.9"
    assert inside[1]["cells"][6] == "ok"
    # the booth's line adds its zones up: zone 0 holds no one (no walkers)
    wait_until(lambda: rows(page)[heading + 1]["cells"][1] == "0 / 1800", 10, "zone 0 silent")
    assert rows(page)[heading]["cells"][1] == "7 / 3600"
    # the other booths keep one row each, and the idle spare is apart, last
    plain = [r for r in table if r["kind"] == "" and r["booth"] in ("1", "2")]
    assert [r["cells"][0] for r in plain] == BOOTHS[1:]
    assert [r["kind"] for r in table[-2:]] == ["spare-row", "zone-row spare"]
    assert table[-1]["zone"] == str(IDLE) and table[-1]["cells"][0] == f"zone {IDLE} spare"
    assert all(r["visible"] for r in table)
    tag = page.locator(f'#zones-body tr[data-zone="{IDLE}"] .zone-tag').bounding_box()
    name_cell = page.locator(f'#zones-body tr[data-zone="{IDLE}"] td.name').bounding_box()
    assert tag and name_cell and tag["x"] + tag["width"] <= name_cell["x"] + name_cell["width"]
    # spares but no change yet: the timeline says so in one line
    assert page.locator("#repartitions").is_visible()
    assert page.inner_text("#repartitions-none") == "No splits or merges yet."
    assert timeline(page) == []
    assert "one line per zone" in page.inner_text("#chart-note")

    publish(redis_url, prefix, split("planned", None))
    wait_until(lambda: len(timeline(page)) == 1, 15, "the planned split did not show")
    planned = timeline(page)[0]
    assert re.fullmatch(
        r"\d\d:\d\d:\d\d split — booth Loom & Thread: zone 0 → zone 3, under way", planned
    ), planned
    assert page.locator("#repartitions-none").is_hidden()
    publish(redis_url, prefix, split("done", 1.0))
    wait_until(lambda: "done" in timeline(page)[0], 15, "the split was not marked done")
    assert timeline(page) == [planned.replace("under way", "done in 1.0 s")]
    assert page.locator("#repartitions-list li").get_attribute("data-phase") == "done"
    screenshot(page, "dashboard-zones-split")

    # a new page gets it all from the snapshot, at the time the planner gave it
    page.reload()
    page.wait_for_selector("#feed-status.live", timeout=15_000)
    wait_until(lambda: len(timeline(page)) == 1, 15, "the snapshot's split did not show")
    assert timeline(page) == [planned.replace("under way", "done in 1.0 s")]
    wait_until(
        lambda: page.locator("#zones-body tr.booth-row").count() == 1, 15, "no booth grouped"
    )
    grouped = [(r["kind"], r["zone"]) for r in rows(page) if r["booth"] == "0"]
    assert grouped == [("booth-row", None), ("zone-row", "0"), ("zone-row", str(SPLIT))]
    assert page.locator(f'#zones-body tr.spare[data-zone="{IDLE}"]').is_visible()
    screenshot(page, "dashboard-zones-split-reloaded")
    assert page.errors == []


VISITORS = 60
SPARE = 2  # of a market of two booths and one spare zone


class Crowd:
    """VISITORS visitors standing on booth 0's floor, on a thread of their own, until told
    to leave."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.joined = threading.Event()
        self.leave = threading.Event()
        self.left = threading.Event()
        self.failed: list[BaseException] = []
        self.thread = threading.Thread(target=self.run, daemon=True)

    def run(self) -> None:
        async def stand() -> None:
            probe = await connect_retrying(self.url, MARKET, retry_s=60)
            layout = probe.layout
            await probe.leave()
            points = layout.floor_points(step=1.5)
            spots = points[layout.zone_at(points) == 0][::3][:VISITORS]
            visitors = await asyncio.gather(
                *(connect_retrying(self.url, MARKET, retry_s=30, at=s.tolist()) for s in spots)
            )
            self.joined.set()
            await asyncio.get_running_loop().run_in_executor(None, self.leave.wait, 120)
            await asyncio.gather(*(v.leave() for v in visitors), return_exceptions=True)

        try:
            asyncio.run(stand())
        except BaseException as error:  # noqa: BLE001  (the test reads it)
            self.failed.append(error)
        finally:
            self.joined.set()
            self.left.set()


def test_a_crowd_splits_a_booth_into_two_zones_on_the_dashboard_and_it_merges_back(
    page,  # noqa: F811
    tmp_path,
    redis_url,
    channel_prefix,
):
    with splitting_market(tmp_path, redis_url, channel_prefix) as server:
        made = server.manage("operator_add", "olga", "--password", PASSWORD, "--market", "1")
        assert made.returncode == 0, made.stderr
        open_dashboard(page, server.url)
        spare = f'#zones-body tr.spare[data-zone="{SPARE}"]'
        wait_until(lambda: page.locator(spare).count() == 1, 20, "the idle spare did not show")
        assert page.inner_text("#repartitions-none") == "No splits or merges yet."
        booth = page.evaluate("window.fabricDashboard.geometry.booths[0].name")
        crowd = Crowd(server.url)
        crowd.thread.start()
        try:
            assert crowd.joined.wait(90) and not crowd.failed, crowd.failed
            wait_until(
                lambda: (
                    [(r["kind"], r["zone"]) for r in rows(page) if r["booth"] == "0"]
                    == [("booth-row", None), ("zone-row", "0"), ("zone-row", str(SPARE))]
                ),
                60,
                "booth 0 did not show its two zones",
            )
            assert page.locator(spare).count() == 0  # it serves booth 0 now
            wait_until(
                lambda: any("split" in t and "done in" in t for t in timeline(page)),
                60,
                "the split was not shown done",
            )
            split_line = next(t for t in timeline(page) if t.startswith(tuple("0123456789")))
            assert re.fullmatch(
                rf"\d\d:\d\d:\d\d split — booth {re.escape(booth)}: zone 0 → zone {SPARE},"
                r" done in \d+\.\d s",
                split_line,
            ), split_line
            screenshot(page, "dashboard-zones-live-split")
        finally:
            crowd.leave.set()
            crowd.left.wait(60)
        wait_until(
            lambda: any("merge" in t and "done in" in t for t in timeline(page)),
            60,
            "the merge was not shown done",
        )
        assert re.fullmatch(
            rf"\d\d:\d\d:\d\d merge — booth {re.escape(booth)}: zone {SPARE} → zone 0,"
            r" done in \d+\.\d s",
            timeline(page)[0],
        ), timeline(page)
        wait_until(lambda: page.locator(spare).count() == 1, 20, "the spare was not idle again")
        assert page.locator("#zones-body tr.booth-row").count() == 0
        screenshot(page, "dashboard-zones-live-merged")
