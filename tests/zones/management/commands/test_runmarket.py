"""`manage.py runmarket` serves the site and its sockets, and stops cleanly on SIGTERM or SIGINT."""

import asyncio
import json
import signal

import pytest
import websockets

from tests.live import free_port, http_get, live_market, wait_until_healthy
from tests.subprocesses import embedded_environment, run_manage

SHUTDOWN_TIMEOUT_S = 15


async def first_summary_or_none(url: str, origin: str) -> str | None:
    """Open the summary socket; return the first frame if one comes within two seconds."""
    async with websockets.connect(url, origin=origin, open_timeout=5) as client:
        try:
            return await asyncio.wait_for(client.recv(), timeout=2)
        except TimeoutError:
            return None


@pytest.fixture
def market_server(tmp_path):
    """A runmarket process on a free port, with its own SQLite database."""
    with live_market(tmp_path, wait=False) as market:
        yield market


@pytest.mark.parametrize("stop_signal", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_runmarket_serves_pages_and_sockets_then_stops_cleanly(market_server, stop_signal):
    server, address = market_server.process, market_server.address
    base_url = f"http://{address}"

    wait_until_healthy(market_server)
    status, page = http_get(base_url + "/")
    assert status == 200
    assert "Fabric Market" in page
    # an empty database gets the demo market: its booths are listed on the page
    for booth in ("Loom &amp; Thread", "Glass Garden", "Pixel Forge"):
        assert booth in page
    script_status, _ = http_get(base_url + "/static/market/landing.js")
    assert script_status == 200

    # Zones may or may not have published yet; the socket must open either way.
    # The socket opens with a snapshot of the market's ops, whether zones published or not.
    frame = asyncio.run(
        first_summary_or_none(f"ws://{address}/ws/markets/1/summary/", origin=base_url)
    )
    assert frame is not None
    snapshot = json.loads(frame)
    assert snapshot["type"] == "snapshot" and snapshot["recovered"] is None
    names = [z.get("name") for z in snapshot["state"]["zones"].values()]
    assert not names or "Loom & Thread" in names

    server.send_signal(stop_signal)
    server.wait(timeout=SHUTDOWN_TIMEOUT_S)
    output = market_server.log()
    assert server.returncode == 0, output
    assert f"Fabric Market is serving at {base_url}/" in output
    assert "Traceback" not in output


def test_runmarket_refuses_a_market_without_booths(tmp_path):
    env = embedded_environment(tmp_path)
    assert run_manage("migrate", "--noinput", env=env).returncode == 0
    created = run_manage(
        "shell",
        "-c",
        "from market.models import Market; Market.objects.create(name='Bare', slug='bare')",
        env=env,
    )
    assert created.returncode == 0, created.stderr
    refused = run_manage("runmarket", "--port", str(free_port()), env=env)
    assert refused.returncode != 0
    assert "Bare has 0 booths" in refused.stderr and "add booths" in refused.stderr
