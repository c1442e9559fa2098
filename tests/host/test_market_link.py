"""A market process says ready once it serves, then heartbeats, and survives a silent host."""

import asyncio
import logging
import os
import signal

import pytest

from host import market_link
from host.client import HostLink, HostRefused, HostUnavailable
from host.market_link import market_link_run, market_link_start, market_stats

LINK = HostLink(control_url="http://127.0.0.1:1", secret="x" * 40, market_id=4)


class Host:
    """Records the link's calls; fails the first `failures` of them."""

    def __init__(self, failures: list[Exception] | None = None) -> None:
        self.calls: list[tuple[str, str, dict]] = []
        self.failures = list(failures or [])

    def call(self, method, path, body):
        self.calls.append((method, path, body))
        if self.failures:
            raise self.failures.pop(0)
        return {}


async def run_until(host: Host, count: int, *, started=lambda: True, parent=None):
    task = asyncio.create_task(
        market_link_run(
            link=LINK,
            heartbeat_s=0.01,
            started=started,
            stats=lambda: {"zones": 3},
            parent=os.getppid() if parent is None else parent,
            call=host.call,
        )
    )
    try:
        for _ in range(1000):
            if len(host.calls) >= count or task.done():
                break
            await asyncio.sleep(0.01)
    finally:
        task.cancel()
    return host.calls


async def test_ready_goes_first_then_heartbeats_with_stats():
    calls = await run_until(Host(), 3)
    paths = [path for _, path, _ in calls]
    assert paths[:3] == ["/markets/4/ready", "/markets/4/heartbeat", "/markets/4/heartbeat"]
    assert calls[0][2] == {"pid": os.getpid()}
    assert calls[1][2] == {"pid": os.getpid(), "stats": {"zones": 3}}


async def test_nothing_is_said_before_the_market_serves():
    serving = asyncio.Event()
    host = Host()
    task = asyncio.create_task(run_until(host, 1, started=serving.is_set))
    await asyncio.sleep(0.2)
    assert host.calls == []
    serving.set()
    assert [path for _, path, _ in await task][:1] == ["/markets/4/ready"]


async def test_failed_calls_are_retried_and_logged_once_never_fatal(caplog):
    refused = HostRefused(409, "not_running", "market 4 is stopped")
    host = Host([HostUnavailable("no answer")] * 5 + [refused])
    with caplog.at_level(logging.WARNING, logger="host.market_link"):
        calls = await run_until(host, 8)
    paths = [path for _, path, _ in calls]
    assert paths[:7] == ["/markets/4/ready"] * 7  # ready until it is accepted
    assert paths[7] == "/markets/4/heartbeat"
    failed = [r for r in caplog.records if "failed" in r.getMessage()]
    assert len(failed) == 1 and "no answer" in failed[0].getMessage()


async def test_a_market_whose_orchestrator_is_gone_stops_itself(monkeypatch):
    killed = []
    monkeypatch.setattr(market_link.os, "kill", lambda pid, sig: killed.append((pid, sig)))
    calls = await run_until(Host(), 1, parent=os.getppid() + 100_000)
    assert calls == [] and killed == [(os.getpid(), signal.SIGTERM)]


@pytest.mark.parametrize(
    "missing", ["FABRIC_HOST_CONTROL_URL", "FABRIC_HOST_SECRET", "FABRIC_HOST_MARKET_ID"]
)
async def test_a_market_started_by_hand_has_no_link(monkeypatch, missing):
    monkeypatch.setenv("FABRIC_HOST_CONTROL_URL", "http://127.0.0.1:1")
    monkeypatch.setenv("FABRIC_HOST_SECRET", "x" * 40)
    monkeypatch.setenv("FABRIC_HOST_MARKET_ID", "4")
    monkeypatch.delenv(missing)
    assert market_link_start(started=lambda: True, stats=dict) is None


async def test_a_market_started_by_its_orchestrator_has_a_link(monkeypatch):
    monkeypatch.setenv("FABRIC_HOST_CONTROL_URL", "http://127.0.0.1:1")
    monkeypatch.setenv("FABRIC_HOST_SECRET", "x" * 40)
    monkeypatch.setenv("FABRIC_HOST_MARKET_ID", "4")
    task = market_link_start(started=lambda: False, stats=dict)
    assert task is not None
    task.cancel()


def test_stats_count_the_zones_and_walkers():
    assert market_stats(zones=3, walkers=10) | {"connections": 0} == {
        "connections": 0,
        "zones": 3,
        "walkers": 10,
    }
