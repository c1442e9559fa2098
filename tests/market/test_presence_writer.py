"""The booth presence writer: a lone change is written at once, a burst in one transaction,
a join's batch without the gathering wait."""

import asyncio

import pytest

from market import booth_visitors
from market.booth_visitors import PresenceWriter


@pytest.fixture
def written(monkeypatch):
    """The batches written, in order; a batch may gather for 3 s."""
    monkeypatch.setattr(booth_visitors, "PRESENCE_BATCH_S", 3.0)
    batches: list[dict] = []
    monkeypatch.setattr(booth_visitors, "booth_visitors_set", batches.append)
    monkeypatch.setattr(booth_visitors, "close_old_connections", lambda: None)  # no database
    return batches


@pytest.mark.asyncio
async def test_a_lone_change_is_written_at_once_and_a_burst_after_it_together(written):
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


@pytest.mark.asyncio
async def test_a_join_in_a_hurry_ends_the_gathering_wait_for_its_whole_batch(written):
    writer = PresenceWriter()
    await asyncio.wait_for(writer.put(1, 100, 0), 1.5)
    crossing = writer.put(1, 101, 1)  # a walker crossing a border: gathered
    await asyncio.sleep(0.3)
    assert len(written) == 1
    joined = writer.put(1, 102, 2, hurry=True)  # a join's welcome waits for this one
    assert joined is crossing  # one batch, one future
    await asyncio.wait_for(joined, 1.0)  # far within the 3 s gathering wait
    assert written[1:] == [{(1, 101): 1, (1, 102): 2}]
    # the hurry was for that batch only: the next crossing is gathered again
    later = writer.put(1, 103, 0)
    await asyncio.sleep(0.5)
    assert len(written) == 2
    await asyncio.wait_for(later, 10)
    assert written[2:] == [{(1, 103): 0}]
