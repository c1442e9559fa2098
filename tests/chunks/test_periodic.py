import asyncio
import time

import pytest

from chunks import periodic
from tests.waiting import until


@pytest.mark.asyncio
async def test_garbage_is_collected_every_interval_until_stopped(monkeypatch):
    calls = []

    class Done:
        def get(self):
            return {"chunks": 0}

    monkeypatch.setattr(periodic.chunk_collect_garbage, "delay", lambda: calls.append(1) or Done())
    stop = asyncio.Event()
    started = time.monotonic()
    task = asyncio.create_task(periodic.collect_garbage_periodically(stop, 0.05))
    await until(lambda: len(calls) >= 3, "three rounds")
    stop.set()
    await asyncio.wait_for(task, 10)
    elapsed = time.monotonic() - started
    assert 3 <= len(calls) <= elapsed / 0.05 + 1  # one round an interval, no more


@pytest.mark.asyncio
async def test_a_failed_round_does_not_stop_the_next(monkeypatch):
    calls = []

    def failing():
        calls.append(1)
        raise RuntimeError("database is locked")

    monkeypatch.setattr(periodic.chunk_collect_garbage, "delay", failing)
    stop = asyncio.Event()
    task = asyncio.create_task(periodic.collect_garbage_periodically(stop, 0.05))
    await until(lambda: len(calls) >= 2, "a round after the failed one")
    stop.set()
    await asyncio.wait_for(task, 10)
