import asyncio

import pytest

from chunks import periodic


@pytest.mark.asyncio
async def test_garbage_is_collected_every_interval_until_stopped(monkeypatch):
    calls = []

    class Done:
        def get(self):
            return {"chunks": 0}

    monkeypatch.setattr(periodic.chunk_collect_garbage, "delay", lambda: calls.append(1) or Done())
    stop = asyncio.Event()
    task = asyncio.create_task(periodic.collect_garbage_periodically(stop, 0.05))
    await asyncio.sleep(0.28)
    stop.set()
    await asyncio.wait_for(task, 2)
    assert 3 <= len(calls) <= 6


@pytest.mark.asyncio
async def test_a_failed_round_does_not_stop_the_next(monkeypatch):
    calls = []

    def failing():
        calls.append(1)
        raise RuntimeError("database is locked")

    monkeypatch.setattr(periodic.chunk_collect_garbage, "delay", failing)
    stop = asyncio.Event()
    task = asyncio.create_task(periodic.collect_garbage_periodically(stop, 0.05))
    await asyncio.sleep(0.2)
    stop.set()
    await asyncio.wait_for(task, 2)
    assert len(calls) >= 2
