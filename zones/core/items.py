"""The items of a booth that NPCs use: food stalls, wash fountains, stages, games, benches.

Each item advertises what it restores of each need per second of use, how many NPCs
may use it at once (its slots) and how long one use lasts (constants.ITEM_KINDS).
A zone's items are part of its configuration (ZoneParams.items), laid out from the
booth's floor (`booth_items`) or taken from a generated market's layout
(`items_from_layout`); which NPCs hold their slots is part of its state: an NPC claims a
slot of an item by having `use_item` of that item as its action (npc.py), so a
claim moves, snapshots and replays with the NPC's row, and an NPC holds at most
one claim.
"""

from dataclasses import dataclass
from typing import Any

import numpy as np

from .constants import FLOOR_Y_M, ITEM_KINDS, SIM_TICK_HZ
from .hilbert import encode_positions
from .ranges import RangeMap

KIND_NAMES: tuple[str, ...] = tuple(ITEM_KINDS)
"""Item kinds by number: the index of each in constants.ITEM_KINDS."""

BOOTH_ITEMS: tuple[str, ...] = (
    "food_stall",
    "wash_fountain",
    "stage",
    "games",
    "bench",
    "bench",
)
"""What every booth holds when the market's layout names nothing else."""

ITEM_ID_BASE = 1 << 48
"""Item ids are ITEM_ID_BASE + zone × 4096 + index: apart from every entity id in use."""


@dataclass(frozen=True, eq=False)
class Items:
    """A zone's items as arrays, sorted by id."""

    id: np.ndarray  # (I,) uint64
    kind: np.ndarray  # (I,) uint8, index into KIND_NAMES
    pos: np.ndarray  # (I, 3) float32, m
    restore: np.ndarray  # (I, 4) float32, need points per tick while used
    slots: np.ndarray  # (I,) int32, NPCs that may use it at once
    use_ticks: np.ndarray  # (I,) int32, ticks one use lasts

    @classmethod
    def none(cls) -> "Items":
        return cls.of([], np.zeros((0, 3), np.float32), [])

    @classmethod
    def of(cls, kinds: list[str], pos: np.ndarray, ids: list[int]) -> "Items":
        """Items of the named kinds at `pos`, with these ids."""
        order = np.argsort(np.asarray(ids, np.uint64), kind="stable")
        ads = [ITEM_KINDS[k] for k in kinds]
        restore = np.array([a[0] for a in ads], np.float32).reshape(-1, 4) / SIM_TICK_HZ
        return cls(
            id=np.asarray(ids, np.uint64)[order],
            kind=np.array([KIND_NAMES.index(k) for k in kinds], np.uint8)[order],
            pos=np.asarray(pos, np.float32).reshape(-1, 3)[order],
            restore=restore[order],
            slots=np.array([a[1] for a in ads], np.int32)[order],
            use_ticks=np.array([round(a[2] * SIM_TICK_HZ) for a in ads], np.int32)[order],
        )

    @classmethod
    def joined(cls, parts: "list[Items]") -> "Items":
        """Every part's items in one set, sorted by id (the parts' ids are distinct)."""
        if not parts:
            return cls.none()
        ids = np.concatenate([p.id for p in parts])
        order = np.argsort(ids, kind="stable")
        return cls(
            id=ids[order],
            kind=np.concatenate([p.kind for p in parts])[order],
            pos=np.concatenate([p.pos for p in parts])[order],
            restore=np.concatenate([p.restore for p in parts])[order],
            slots=np.concatenate([p.slots for p in parts])[order],
            use_ticks=np.concatenate([p.use_ticks for p in parts])[order],
        )

    @property
    def size(self) -> int:
        return int(self.id.size)

    def index_of(self, ids: np.ndarray) -> np.ndarray:
        """Index of each item id, or -1 for an id that is not one of these items."""
        if self.id.size == 0:
            return np.full(len(ids), -1, np.int64)
        ids = np.asarray(ids, np.uint64)
        found = np.minimum(np.searchsorted(self.id, ids), self.id.size - 1)
        return np.where(self.id[found] == ids, found, -1)

    def kind_name(self, index: int) -> str:
        return KIND_NAMES[int(self.kind[index])]


def booth_items(
    ranges: RangeMap,
    zone: int,
    lo: np.ndarray,
    hi: np.ndarray,
    kinds: tuple[str, ...] = BOOTH_ITEMS,
) -> Items:
    """The items of `zone`'s booth, spread over its floor: the same for the same layout.

    Points are drawn from a generator seeded by the zone, kept only where the range map
    puts them in this zone, and at least 4 m from each other where the floor allows.
    """
    rng = np.random.default_rng(0x17E5 + zone)
    chosen: list[np.ndarray] = []
    lo3, hi3 = np.asarray(lo, np.float32), np.asarray(hi, np.float32)
    margin = np.float32(2.0)
    for attempt in range(4000):
        point = rng.uniform(lo3 + margin, hi3 - margin).astype(np.float32)
        point[1] = FLOOR_Y_M
        if ranges.assign(encode_positions(point[None, :], lo3, hi3))[0] != zone:
            continue
        spacing = 4.0 if attempt < 2000 else 0.0
        if any(float(np.linalg.norm(point - other)) < spacing for other in chosen):
            continue
        chosen.append(point)
        if len(chosen) == len(kinds):
            break
    else:
        raise ValueError(f"zone {zone} has no floor for its items")
    ids = [ITEM_ID_BASE + zone * 4096 + i for i in range(len(kinds))]
    return Items.of(list(kinds), np.stack(chosen), ids)


def items_from_layout(
    layout: dict[str, Any], ranges: RangeMap, zone: int, lo: np.ndarray, hi: np.ndarray
) -> Items:
    """The items of a generated market's layout (zones/core/mapgen.py) that stand in `zone`.

    Each item is placed at the centre of its box (centimetres in the layout), on the
    floor; its kind's advertisement and use time come from constants.ITEM_KINDS, its
    slots from the layout's `capacity`. An item's id is ITEM_ID_BASE + zone × 4096 + its
    number in the layout (`item.NNN`). Items of a kind this build does not know, and
    items outside the market's bounds, are left out.
    """
    kinds: list[str] = []
    points: list[list[float]] = []
    ids: list[int] = []
    slots: list[int] = []
    lo3, hi3 = np.asarray(lo, np.float32), np.asarray(hi, np.float32)
    for item in layout.get("items", ()):
        kind = item.get("kind")
        if kind not in ITEM_KINDS:
            continue
        x0, _, z0, x1, _, z1 = item["box"]
        point = np.array([(x0 + x1) / 200.0, FLOOR_Y_M, (z0 + z1) / 200.0], np.float32)
        if np.any(point < lo3) or np.any(point > hi3):
            continue
        if ranges.assign(encode_positions(point[None, :], lo3, hi3))[0] != zone:
            continue
        number = int(str(item["id"]).rsplit(".", 1)[-1])
        kinds.append(kind)
        points.append(point.tolist())
        ids.append(ITEM_ID_BASE + zone * 4096 + number)
        slots.append(int(item.get("capacity", ITEM_KINDS[kind][1])))
    items = Items.of(kinds, np.array(points, np.float32).reshape(-1, 3), ids)
    order = np.argsort(np.asarray(ids, np.uint64), kind="stable")
    capacity = np.asarray(slots, np.int32)[order]
    return Items(
        id=items.id,
        kind=items.kind,
        pos=items.pos,
        restore=items.restore,
        slots=np.maximum(capacity, 1),
        use_ticks=items.use_ticks,
    )
