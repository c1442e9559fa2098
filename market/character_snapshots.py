"""What a market process tells its host of the characters it holds, every few seconds.

The host's store keeps each character's newest state (host/persistence.py, checkpointed
every FABRIC_HOST_CHECKPOINT_MS): which market it was in, where it stood, its booth, the
name and colour it goes by. A keyed visitor who joins again without saying where, in
the market it was last seen in, stands where it stood, even after the market process or
the whole host restarted.
"""

import asyncio
import logging
import time
from typing import Any

from market.host_calls import HostCallRefused, host_call
from market.live import LiveMarket
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


async def character_snapshots_forever(live: LiveMarket, every_s: float) -> None:
    """Send `characters_snapshot` to the host every `every_s`; failures are logged, not fatal."""
    failures = LogThrottle(log)
    while True:
        await asyncio.sleep(every_s)
        snapshot = characters_snapshot(live)
        try:
            await asyncio.to_thread(host_call, live.market_id, "/snapshots", snapshot)
        except HostCallRefused as refused:
            failures.warning("push", "character snapshots to the host failed: %s", refused.detail)
        else:
            if failures.failing("push"):
                failures.clear("push", "character snapshots reach the host again")
