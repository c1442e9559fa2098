"""Helpers of the dashboard's browser tests: an operator, signing in, reading the page."""

import asyncio
import json
import time
from typing import Any

import websockets

from tests.live import LiveMarket

PASSWORD = "loom and shuttle"


def with_operator(server: LiveMarket) -> LiveMarket:
    made = server.manage("operator_add", "olga", "--password", PASSWORD)
    assert made.returncode == 0, made.stderr
    return server


def open_dashboard(page: Any, url: str) -> None:
    """Sign in as the operator olga and wait until the feed is live and drawing."""
    page.goto(url + "/accounts/login/?next=/dashboard/")
    page.fill("input[name=username]", "olga")
    page.fill("input[name=password]", PASSWORD)
    page.click("form [type=submit]")
    page.wait_for_url("**/dashboard/")
    page.wait_for_selector("#feed-status.live", timeout=15_000)
    page.wait_for_function("window.fabricDashboard && window.fabricDashboard.frame", timeout=15_000)


def wait_until(predicate: Any, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.2)
    raise AssertionError(f"{what} within {timeout:g} s")


def box(page: Any, selector: str) -> dict[str, float]:
    found = page.locator(selector).bounding_box()
    assert found is not None, f"{selector} is not on screen"
    return found


def overlaps(a: dict[str, float], b: dict[str, float]) -> bool:
    return not (
        a["x"] + a["width"] <= b["x"]
        or b["x"] + b["width"] <= a["x"]
        or a["y"] + a["height"] <= b["y"]
        or b["y"] + b["height"] <= a["y"]
    )


def server_summaries(url: str, seconds: float, market_id: int = 1) -> dict[tuple[int, int], int]:
    """(zone, summary tick) → entities, as the server published them for `seconds`."""
    address = url.removeprefix("http://")

    async def listen() -> dict[tuple[int, int], int]:
        seen: dict[tuple[int, int], int] = {}
        async with websockets.connect(
            f"ws://{address}/ws/markets/{market_id}/summary/", origin=f"http://{address}"
        ) as socket:
            deadline = asyncio.get_running_loop().time() + seconds
            while (left := deadline - asyncio.get_running_loop().time()) > 0:
                try:
                    message = json.loads(await asyncio.wait_for(socket.recv(), left))
                except TimeoutError:
                    break
                if message["type"] != "market_summary":
                    continue  # the opening snapshot, or a health report
                summary = message
                for zone in summary["zones"]:
                    if "entities" in zone:
                        seen[(zone["zone"], summary["tick"])] = zone["entities"]
        return seen

    return asyncio.run(listen())
