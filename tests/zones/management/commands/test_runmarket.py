"""`manage.py runmarket` serves the site and its sockets, and stops cleanly on SIGTERM or SIGINT."""

import asyncio
import json
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request

import pytest
import websockets

from tests.subprocesses import REPO_ROOT, embedded_environment, run_manage

STARTUP_TIMEOUT_S = 30
SHUTDOWN_TIMEOUT_S = 15


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def http_get(url: str) -> tuple[int, str]:
    with urllib.request.urlopen(url, timeout=5) as response:
        return response.status, response.read().decode()


def wait_until_healthy(base_url: str, server: subprocess.Popen) -> None:
    deadline = time.monotonic() + STARTUP_TIMEOUT_S
    while time.monotonic() < deadline:
        if server.poll() is not None:
            pytest.fail(f"runmarket exited with {server.returncode} before answering")
        try:
            if http_get(base_url + "/healthz") == (200, '{"ok": true}'):
                return
        except (urllib.error.URLError, ConnectionError):
            time.sleep(0.2)
    pytest.fail(f"runmarket did not answer {base_url}/healthz within {STARTUP_TIMEOUT_S} s")


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
    env = embedded_environment(tmp_path, PYTHONUNBUFFERED="1")
    migrated = run_manage("migrate", "--noinput", env=env)
    assert migrated.returncode == 0, migrated.stderr
    port = free_port()
    server = subprocess.Popen(
        [sys.executable, str(REPO_ROOT / "manage.py"), "runmarket", "--port", str(port)],
        cwd=REPO_ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        yield server, f"127.0.0.1:{port}"
    finally:
        if server.poll() is None:
            server.kill()
            server.wait()


@pytest.mark.parametrize("stop_signal", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_runmarket_serves_pages_and_sockets_then_stops_cleanly(market_server, stop_signal):
    server, address = market_server
    base_url = f"http://{address}"

    wait_until_healthy(base_url, server)
    status, page = http_get(base_url + "/")
    assert status == 200
    assert "Fabric Market" in page
    # an empty database gets the demo market: its booths are listed on the page
    for booth in ("Loom &amp; Thread", "Glass Garden", "Pixel Forge"):
        assert booth in page
    script_status, _ = http_get(base_url + "/static/market/landing.js")
    assert script_status == 200

    # Zones may or may not have published yet; the socket must open either way.
    frame = asyncio.run(
        first_summary_or_none(f"ws://{address}/ws/market/summary/", origin=base_url)
    )
    if frame is not None:
        summary = json.loads(frame)
        assert summary["type"] == "market.summary"
        assert [z["name"] for z in summary["summary"]["zones"]][:1] == ["Loom & Thread"]

    server.send_signal(stop_signal)
    output, _ = server.communicate(timeout=SHUTDOWN_TIMEOUT_S)
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
