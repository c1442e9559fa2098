"""What a market process tells its host of the characters it holds, every few seconds.

The host's store keeps each character's newest state (host/persistence.py, checkpointed
every FABRIC_HOST_CHECKPOINT_MS): which market it was in, where it stood, its booth, the
name and colour it goes by. A keyed visitor who joins again without saying where, in
the market it was last seen in, stands where it stood, even after the market process or
the whole host restarted.

The other way, the process asks which of the visitors' entities it has with no socket
here the host's book places in another market: a market restarted from its zones'
snapshot and input log restores every visitor it held, and one that joined another
market while this one was down (its release stood, as no process of it ran) is that
market's now. Those entities leave at once, not after their lease: once when the zones'
rows are first seen, then with every snapshot sent.
"""

import asyncio
import logging
import time
from typing import Any

from market.host_calls import HostCallRefused, host_call
from market.live import LiveMarket
from market.tickets import DISPOSABLE_ID_END, VISITOR_ID_BASE
from zones.gateway import gateway_for
from zones.logthrottle import LogThrottle

log = logging.getLogger(__name__)


def characters_snapshot(live: LiveMarket) -> dict[str, Any]:
    """The visitors this web process holds, as the host's store keeps characters."""
    gateway = gateway_for(live)
    now_ms = time.time_ns() // 1_000_000
    characters = []
    for entity, link in list(gateway.links.items()):
        row = gateway.row_of(entity)
        if row is None:
            continue
        pos = [round(float(v), 3) for v in row["pos"]]
        character = getattr(link.sink, "character", None) or {}
        state = {"market": live.market_id, "pos": pos, "booth": link.booth, **character}
        characters.append({"character_id": str(entity), "state": state})
    return {
        "instance_id": live.market_id,
        "revision": now_ms,
        "at_ms": now_ms,
        "characters": characters,
        "instance": {"visitors": len(gateway.links)},
    }


FIRST_VIEW_WAIT_S = 30.0  # a market's zones restoring a large snapshot take a while


async def held_elsewhere_leave(live: LiveMarket) -> list[int]:
    """Have the entities the host's book places in another market leave (see the module's
    docstring); the ids that left. HostCallRefused if the host cannot be asked."""
    gateway = gateway_for(live)
    unattached = gateway.unattached(VISITOR_ID_BASE, DISPOSABLE_ID_END)
    if not unattached:
        return []
    answer = await asyncio.to_thread(
        host_call,
        live.market_id,
        "/characters/elsewhere",
        {"market": live.market_id, "characters": [str(e) for e in unattached]},
    )
    left = []
    elsewhere = answer.get("elsewhere") if isinstance(answer, dict) else None
    if not isinstance(elsewhere, dict):
        raise ValueError(f"the host answered {str(answer)[:200]}, not the markets elsewhere")
    # asked again: one that came back here meanwhile (or started leaving) is not left
    still = set(gateway.unattached(VISITOR_ID_BASE, DISPOSABLE_ID_END))
    for character_id, market in sorted(elsewhere.items()):
        entity = int(character_id)
        if entity not in still:
            continue
        gateway.leave(entity)
        left.append(entity)
        log.info("visitor %d is market %s's now: its entity here leaves", entity, market)
    return left


async def character_snapshots_forever(live: LiveMarket, every_s: float) -> None:
    """Send `characters_snapshot` to the host every `every_s`, and have the entities held
    elsewhere leave, first as soon as the zones are seen; failures are logged, not fatal."""
    failures = LogThrottle(log)
    try:
        viewed = await gateway_for(live).first_view(FIRST_VIEW_WAIT_S)
    except Exception as error:  # Redis out of reach: the rounds below ask again
        failures.warning("elsewhere", "the zones' rows could not be followed: %r", error)
        viewed = False
    if viewed:
        await _held_elsewhere_leave_logged(live, failures)
    while True:
        await asyncio.sleep(every_s)
        await _held_elsewhere_leave_logged(live, failures)
        snapshot = characters_snapshot(live)
        try:
            await asyncio.to_thread(host_call, live.market_id, "/snapshots", snapshot)
        except HostCallRefused as refused:
            failures.warning("push", "character snapshots to the host failed: %s", refused.detail)
        else:
            if failures.failing("push"):
                failures.clear("push", "character snapshots reach the host again")


async def _held_elsewhere_leave_logged(live: LiveMarket, failures: LogThrottle) -> None:
    """`held_elsewhere_leave`, its failures logged: the snapshots go on whatever happens."""
    try:
        await held_elsewhere_leave(live)
    except HostCallRefused as refused:
        failures.warning("elsewhere", "asking the host who left failed: %s", refused.detail)
    except Exception as error:  # an answer not as the host gives it, or the gateway's error
        failures.warning("elsewhere", "asking the host who left failed: %r", error)
    else:
        if failures.failing("elsewhere"):
            failures.clear("elsewhere", "the host answers who left again")
