"""Visitors' inputs on their way to the zones: one message per zone per tick.

Commands wait here until the gateway's next flush, then go to the zone holding
each visitor as one Inputs message per zone. Every LEASE_EVERY-th tick every zone
with visitors of this gateway gets one, commands or not, naming the visitors the
gateway vouches for: a visitor no gateway vouches for leaves after the zones'
30 s lease. Visitors who left go as one Despawn per zone, to every zone that
publishes a row of them: in a handoff that is two zones, and a despawn sent to
one of them only would leave the other's copy to the lease.
"""

from collections.abc import Mapping

import numpy as np

from zones.core.relay_messages import Despawn, Inputs
from zones.core.wire import COMMAND_DTYPE, CommandKind

LEASE_EVERY = 5  # 4 times a second, well inside the 30 s lease

Command = tuple[int, int, tuple[float, float, float], int]  # entity, kind, vector, seq


class InputBatcher:
    """What this gateway's visitors sent or did since the last flush."""

    def __init__(self) -> None:
        self._commands: list[Command] = []
        self._departed: dict[int, int] = {}  # detached: entity → zone for its last command
        self._leaving: dict[int, int | None] = {}  # entity → the zone it was last known in

    def command(self, entity: int, kind: int, vec: tuple[float, float, float], seq: int) -> None:
        self._commands.append((entity, kind, vec, seq))

    def depart(self, entity: int, zone: int, seq: int) -> None:
        """The socket closed: stop the entity where it stands; it stays for its lease."""
        self._commands.append((entity, CommandKind.VELOCITY, (0.0, 0.0, 0.0), seq))
        self._departed[entity] = zone

    def leave(self, entity: int, zone: int | None) -> None:
        """Remove the entity with the next flush; `zone` if no zone's rows show it."""
        self._commands = [c for c in self._commands if c[0] != entity]
        self._leaving[entity] = zone

    def batch(
        self, zone_of: Mapping[int, int], rows_of: Mapping[int, np.ndarray], gateway: str, tick: int
    ) -> list[tuple[int, Inputs | Despawn]]:
        """This flush's messages, each with its zone; empties the batcher.

        `zone_of` maps each connected visitor to its zone; `rows_of` each zone to the
        rows it last published; `gateway` is this gateway's reply channel.
        """
        messages: list[tuple[int, Inputs | Despawn]] = list(self._despawns(rows_of))
        commands, zones = self._command_rows(zone_of)
        alive: dict[int, list[int]] = {}
        for entity, zone in zone_of.items():
            alive.setdefault(zone, []).append(entity)
        vouch = tick % LEASE_EVERY == 0
        for zone in sorted(set(alive) | set(zones.tolist())):
            mine = commands[zones == zone]
            if mine.size or vouch:
                ids = np.array(alive.get(zone, []), np.uint64)
                messages.append((zone, Inputs(gateway=gateway, commands=mine, alive=ids)))
        self._commands, self._departed = [], {}
        return messages

    def _command_rows(self, zone_of: Mapping[int, int]) -> tuple[np.ndarray, np.ndarray]:
        """COMMAND_DTYPE rows of every queued command, and the zone each goes to."""
        rows = np.zeros(len(self._commands), COMMAND_DTYPE)
        if not self._commands:
            return rows, np.zeros(0, np.int64)
        entities, kinds, vecs, seqs = zip(*self._commands, strict=True)
        rows["id"], rows["kind"], rows["vec"], rows["seq"] = entities, kinds, vecs, seqs
        zones = np.array([zone_of.get(e, self._departed.get(e, -1)) for e in entities], np.int64)
        return rows[zones >= 0], zones[zones >= 0]

    def _despawns(self, rows_of: Mapping[int, np.ndarray]) -> list[tuple[int, Despawn]]:
        if not self._leaving:
            return []
        leaving, self._leaving = self._leaving, {}
        ids = np.fromiter(leaving, np.uint64, len(leaving))
        unseen = np.ones(ids.size, bool)
        found: dict[int, np.ndarray] = {}
        for zone, rows in rows_of.items():
            here = np.isin(ids, rows["id"])
            if here.any():
                found[zone] = ids[here]
                unseen &= ~here
        for entity in ids[unseen].tolist():  # spawned, not yet published: its known zone
            zone = leaving[entity]
            if zone is not None:
                known = found.get(zone, np.zeros(0, np.uint64))
                found[zone] = np.concatenate([known, np.array([entity], np.uint64)])
        return [(zone, Despawn(ids=found[zone])) for zone in sorted(found)]
