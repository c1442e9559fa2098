"""Spawning a joining visitor's entity: where, the request to its zone, the zone's answer.

The gateway sends a Spawn to the zone owning the spawn position in the newest map it
holds (`zones`: the booths' own layout until a split or merge changes it) and waits for the
zone's Spawned, which it receives on its own channel. A refusal, or no answer
within JOIN_TIMEOUT_S, becomes JoinRefused with a code and a sentence for the
visitor (docs/protocol.md §4).
"""

import asyncio
from collections.abc import Sequence
from typing import Any

import numpy as np

from zones.channels import zone_channel
from zones.core.crowd import floor_points
from zones.core.ranges import RangeMap
from zones.core.relay_messages import Spawn, Spawned, relay_to_wire
from zones.core.views import MARKET_HI, MARKET_LO, booths_under
from zones.core.wire import SPAWN_DTYPE, RowFlag

# A loaded market answers a spawn late rather than never; the SDK waits 10 s for its welcome.
JOIN_TIMEOUT_S = 8.0


class JoinRefused(Exception):
    """A join the market cannot take: `code` and a sentence for the visitor."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code, self.message = code, message


class Spawner:
    """One gateway's spawn requests, each waiting for its zone's answer."""

    def __init__(
        self, layer: Any, market_id: int, booths: Sequence[tuple[str, str]], ranges: RangeMap
    ) -> None:
        self.layer, self.market_id, self.booths, self.ranges = layer, market_id, booths, ranges
        self.zones = ranges  # who serves where: the gateway replaces it with newer maps
        self._waiting: dict[int, asyncio.Future[tuple[bool, Spawned]]] = {}
        self._rng = np.random.default_rng()

    async def spawn(
        self,
        entity: int,
        booth: int | None,
        at: tuple[float, float, float] | None,
        reply_to: str,
    ) -> tuple[int, np.ndarray]:
        """Spawn `entity` at `at`, or on `booth`'s floor, or anywhere: (zone, position)."""
        position = self._position(booth, at)
        zone = int(booths_under(position[None, :], self.zones)[0])
        name = self.booths[int(booths_under(position[None, :], self.ranges)[0])][0]
        row = np.zeros(1, SPAWN_DTYPE)
        row["id"], row["pos"], row["kind"] = entity, position, RowFlag.VISITOR_ROOT
        answer: asyncio.Future[tuple[bool, Spawned]] = asyncio.get_running_loop().create_future()
        self._waiting[entity] = answer
        try:
            await self.layer.send(
                zone_channel(self.market_id, zone),
                relay_to_wire(Spawn(gateway=reply_to, rows=row)),
            )
            ok, spawned = await asyncio.wait_for(answer, JOIN_TIMEOUT_S)
        except TimeoutError:
            raise JoinRefused(
                "booth_unavailable",
                f"booth {name!r} did not answer within {JOIN_TIMEOUT_S:g} s",
            ) from None
        finally:
            self._waiting.pop(entity, None)
        if not ok:
            raise _refusal(name, spawned.reason)
        return spawned.zone, position

    def answered(self, message: Spawned) -> None:
        """A zone's answer: wake every join it answers."""
        for ok, ids in ((True, message.spawned), (False, message.refused)):
            for entity in ids.tolist():
                answer = self._waiting.get(entity)
                if answer is not None and not answer.done():
                    answer.set_result((ok, message))

    def _position(self, booth: int | None, at: tuple[float, float, float] | None) -> np.ndarray:
        if at is not None:
            return np.array(at, np.float32)
        zone = int(self._rng.integers(len(self.booths))) if booth is None else booth
        points = floor_points(self.ranges, zone, self._rng, 1, MARKET_LO, MARKET_HI)
        return np.asarray(points[0], np.float32)


def _refusal(name: str, reason: str) -> JoinRefused:
    if reason == "quarantined":
        return JoinRefused(
            "booth_quarantined",
            f"booth {name!r} is quarantined after repeated crashes; try another booth",
        )
    return JoinRefused("booth_full", f"booth {name!r} is full; try another booth")
