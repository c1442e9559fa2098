"""The booth presence writer: a lone change is written at once, a burst in one transaction."""

import asyncio

import pytest

from market import booth_visitors
from market.booth_visitors import PresenceWriter


@pytest.mark.asyncio
async def test_a_lone_change_is_written_at_once_and_a_burst_after_it_together(monkeypatch):
    monkeypatch.setattr(booth_visitors, "PRESENCE_BATCH_S", 3.0)
    written: list[dict] = []
    monkeypatch.setattr(
        booth_visitors, "booth_visitors_set", lambda changes: written.append(changes)
    )
    monkeypatch.setattr(booth_visitors, "database_sync_to_async", lambda f: _in_thread(f))
    writer = PresenceWriter()
    # after a quiet spell: not held for the 3 s a batch may gather
    await asyncio.wait_for(writer.put(1, 100, 0), 1.5)
    assert written == [{(1, 100): 0}]
    # within the next 3 s: gathered into one transaction, the newest change of each winning
    burst = [writer.put(1, 101, 1), writer.put(1, 102, 2), writer.put(1, 101, None)]
    await asyncio.sleep(0.5)
    assert len(written) == 1  # not yet: one batch every PRESENCE_BATCH_S at most
    await asyncio.wait_for(asyncio.gather(*burst), 10)
    assert written[1:] == [{(1, 101): None, (1, 102): 2}]


def _in_thread(function):
    async def run(*args):
        return await asyncio.to_thread(function, *args)

    return run
