"""A market restarted from its zones' snapshot lets go, at once, of the visitors' entities
that the host's book places in another market (market/character_snapshots.py)."""

import asyncio

import numpy as np
import pytest

from market import character_snapshots
from market.character_snapshots import held_elsewhere_leave
from market.live import LiveMarket
from market.services import DEMO_BOOTHS
from market.tickets import DISPOSABLE_ID_MIN, VISITOR_ID_BASE
from zones.core.ranges import floor_ranges
from zones.core.wire import ROW_DTYPE, RowFlag, rows_packet
from zones.gateway import Gateway, Link
from zones.logthrottle import LogThrottle

MARKET = 44
T0 = 1_800_000_000_000
LINKED, GHOST, NEVER_MOVED, ARRIVING, LEAVING = (VISITOR_ID_BASE + i for i in (1, 2, 3, 4, 5))
DISPOSABLE_GHOST = DISPOSABLE_ID_MIN + 5
NPC = 17


@pytest.fixture
async def market(monkeypatch):
    starts = tuple(int(s) for s in floor_ranges(len(DEMO_BOOTHS)).starts.tolist())
    live = LiveMarket(MARKET, tuple(DEMO_BOOTHS), starts)
    gateway = Gateway(live)
    monkeypatch.setattr(character_snapshots, "gateway_for", lambda _: gateway)
    assert await gateway.first_view(0.05) is False  # no zone has sent rows yet
    ids = [LINKED, GHOST, NEVER_MOVED, ARRIVING, LEAVING, DISPOSABLE_GHOST, NPC]
    for zone in range(len(DEMO_BOOTHS)):
        rows = np.zeros(len(ids) if zone == 0 else 0, ROW_DTYPE)
        rows["id"] = ids if zone == 0 else []
        rows["flags"] = RowFlag.AUTHORITATIVE
        await gateway.bus.publish(MARKET, zone, rows_packet(zone, 1, T0 + 50, rows))
    assert await gateway.first_view(2.0)
    deadline = asyncio.get_running_loop().time() + 2.0
    while gateway.view.size < len(ids):
        assert asyncio.get_running_loop().time() < deadline, "the rows never reached the view"
        await asyncio.sleep(0.002)
    gateway.links[LINKED] = Link(entity=LINKED, sink=None, stagger=0, seq_taken=0, zone=0, booth=0)  # type: ignore[arg-type]
    gateway.joining.add(ARRIVING)
    gateway.leave(LEAVING)  # released already: its row stays until its zone takes the despawn
    left: list[int] = []
    monkeypatch.setattr(gateway, "leave", left.append)
    yield live, gateway, left
    await gateway.stop()


@pytest.mark.asyncio
async def test_the_entities_the_book_places_elsewhere_leave_and_no_other(market, monkeypatch):
    live, gateway, left = market
    asked = []

    def host_call(market_id, path, body, timeout=None):
        asked.append((market_id, path, body))
        # the book's answer names a market for each character it moved; a socket attaching
        # NEVER_MOVED meanwhile (it came back here) keeps it whatever the answer says
        gateway.joining.add(NEVER_MOVED)
        return {
            "market": MARKET,
            "elsewhere": {str(GHOST): 2, str(DISPOSABLE_GHOST): 3, str(NEVER_MOVED): 2},
        }

    monkeypatch.setattr(character_snapshots, "host_call", host_call)
    assert await held_elsewhere_leave(live) == [GHOST, DISPOSABLE_GHOST]
    assert left == [GHOST, DISPOSABLE_GHOST]
    # asked only of visitors' entities no socket here holds or is attaching
    [(market_id, path, body)] = asked
    assert (market_id, path, body["market"]) == (MARKET, "/characters/elsewhere", MARKET)
    assert sorted(body["characters"]) == sorted(
        str(e) for e in (GHOST, NEVER_MOVED, DISPOSABLE_GHOST)
    )


@pytest.mark.asyncio
async def test_nothing_is_asked_when_every_visitor_has_its_socket_here(market, monkeypatch):
    live, gateway, left = market
    for entity in (GHOST, NEVER_MOVED, DISPOSABLE_GHOST):
        gateway.links[entity] = gateway.links[LINKED]

    def host_call(*args, **kwargs):
        raise AssertionError("the host was asked")

    monkeypatch.setattr(character_snapshots, "host_call", host_call)
    assert await held_elsewhere_leave(live) == [] and left == []


@pytest.mark.asyncio
@pytest.mark.parametrize("answer", [["not", "a", "dict"], {"elsewhere": "2"}, {"market": 1}])
async def test_an_answer_not_as_the_host_gives_it_is_logged_and_nothing_leaves(
    market, monkeypatch, caplog, answer
):
    live, gateway, left = market
    monkeypatch.setattr(character_snapshots, "host_call", lambda *a, **k: answer)
    with pytest.raises(ValueError, match="not the markets elsewhere"):
        await held_elsewhere_leave(live)
    # the snapshots' loop goes on: the failure is logged, not raised
    await character_snapshots._held_elsewhere_leave_logged(
        live, LogThrottle(character_snapshots.log)
    )
    assert left == []
    assert "asking the host who left failed" in caplog.text
