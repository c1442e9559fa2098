"""`manage.py smokeburst`: the burst against a running market, pictured from the dashboard."""

import json

import pytest

from tests.browser import chromium_path
from tests.conftest import service_missing
from tests.live import free_port, live_market

PNG = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def market(tmp_path_factory):
    if chromium_path() is None:
        service_missing("Chromium is not installed; apt-get install -y chromium")
    with live_market(tmp_path_factory.mktemp("smokeburst"), args=["--walkers", "30"]) as server:
        yield server


def test_one_command_runs_the_burst_and_keeps_top_down_and_orbit_pictures(market, tmp_path):
    out = tmp_path / "smoke"
    done = market.manage("smokeburst", "--url", market.url, "--out", str(out), "--visitors", "24")
    assert done.returncode == 0, done.stderr
    names = sorted(p.name for p in out.glob("*.png"))
    assert names == [
        "0-before-top-down.png",
        "1-crossing-top-down.png",
        "2-crossing-orbit.png",
        "3-after-top-down.png",
        "4-after-orbit.png",
    ]
    assert all((out / n).read_bytes().startswith(PNG) for n in names)
    figures = json.loads((out / "burst.json").read_text())
    assert figures["visitors"] == figures["arrived"] == 24 and figures["jumps"] == []
    assert "Glass Garden" in (out / "panel.txt").read_text()
    assert "24/24 visitors in their destination booth" in done.stdout


def test_no_market_at_the_url_is_a_clear_error(market, tmp_path):
    done = market.manage(
        "smokeburst", "--url", f"http://127.0.0.1:{free_port()}", "--out", str(tmp_path)
    )
    assert done.returncode == 1
    assert "did not go live" in done.stderr and "is the market running there" in done.stderr
    assert list(tmp_path.glob("*.png")) == []


def test_a_burst_of_no_visitors_is_refused(market, tmp_path):
    done = market.manage("smokeburst", "--visitors", "0", "--out", str(tmp_path))
    assert done.returncode == 1 and "--visitors must be at least 1" in done.stderr
