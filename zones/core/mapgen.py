"""Procedural markets: a MapConfig and a seed make the static market, byte for byte.

`generate(config)` lays out the booths, their walls, the aisles and open floor, the
props, the items non-player characters use, their spawn points, the portals and the
static collider boxes, each with a deterministic id. `canonical(layout)` is its one
serialisation (JSON, sorted keys, no spaces, integers only) and `layout_hash` the
SHA-256 of those bytes. static/mapgen/mapgen.js is the same generator for browsers
and Node: every length is an integer number of centimetres, every choice is drawn
from the 32-bit generator of prng32.py, and there is no floating point on the way,
so both produce the same bytes (docs/mapgen.md describes the format and the rules).
"""

import bisect
import hashlib
import itertools
import json
from dataclasses import dataclass, field
from typing import Any

from .prng32 import MASK32, Xoshiro128

FORMAT = 1
GENERATOR = "fabric-mapgen/1"

MAX_BOOTHS = 32  # one zone per booth: zones/core/constants.py MAX_ZONES
MIN_BOOTH_CM = 400
MAX_BOOTH_CM = 2400
MIN_BOUND_M, MAX_BOUND_M = 16, 1024
MAX_PORTALS = 8
ENTRANCE_CM = 150  # kept clear of props inside a booth's open side
CLEARANCE_CM = 50  # between a thing and the wall or aisle edge it stands by
PLACE_TRIES = 12
MAX_ITEMS = 256  # whatever the density: a market's items and NPC spawn points are capped
MAX_NPC_SPAWNS = 1024

ARRANGEMENTS = ("grid", "rows", "ring")
SIDES = ("north", "east", "south", "west")  # north is the low-z edge

# Streams of the generator: one per phase, so a phase draws the same numbers
# whatever the phases before it drew.
STREAM_BOOTHS, STREAM_PROPS, STREAM_ITEMS, STREAM_NPCS = 1, 2, 3, 4

# name → kinds: (kind, width x cm, depth z cm, height cm)
PROP_SETS: dict[str, tuple[tuple[str, int, int, int], ...]] = {
    "market": (("crate", 80, 80, 80), ("barrel", 60, 60, 90), ("sacks", 100, 60, 50)),
    "garden": (("planter", 120, 60, 70), ("tree", 100, 100, 400), ("flowerbed", 200, 80, 30)),
    "workshop": (("workbench", 180, 80, 90), ("anvil", 60, 40, 80), ("rack", 200, 50, 200)),
    "lanterns": (("lantern_post", 30, 30, 300), ("brazier", 70, 70, 100)),
}

# kind → (need it restores, amount restored, users at once, width, depth, height, weight)
ITEM_KINDS: dict[str, tuple[str, int, int, int, int, int, int]] = {
    "food_stall": ("hunger", 60, 3, 300, 200, 250, 3),
    "wash_fountain": ("hygiene", 50, 2, 200, 200, 150, 2),
    "stage": ("fun", 40, 8, 600, 400, 100, 1),
    "games": ("fun", 30, 2, 300, 300, 120, 2),
    "bench": ("energy", 40, 2, 200, 60, 50, 4),
}
ITEM_ORDER = tuple(sorted(ITEM_KINDS))

PALETTE = (
    "#e4572e", "#17bebb", "#ffc914", "#76b041", "#2e86ab", "#a23b72",
    "#f18f01", "#c73e1d", "#3b1f2b", "#6a994e", "#bc4749", "#386641",
)  # fmt: skip

PORTAL_WIDTH_CM = 300
PORTAL_DEPTH_CM = 150


class MapConfigError(ValueError):
    """A MapConfig the generator refuses; the message says which field and why."""


@dataclass(frozen=True)
class Floor:
    """The floor: aisle width, walls, how far booths may shrink into their plots."""

    aisle_cm: int = 400
    wall_cm: int = 20
    wall_height_cm: int = 300
    tile_cm: int = 200
    inset_cm: int = 100  # the most a booth shrinks on each side inside its plot


@dataclass(frozen=True)
class Portal:
    """A portal on the outer aisle: which side, where along it (per mille), and where to."""

    side: str
    at: int = 500
    target: int | None = None


@dataclass(frozen=True)
class MapConfig:
    """Everything that decides a generated market; `generate` is a function of it alone."""

    market_id: int
    seed: int
    instance_id: int = 0
    bounds_m: tuple[int, int] = (128, 128)  # x, z
    floor: Floor = field(default_factory=Floor)
    booths: int = 8
    arrangement: str = "grid"
    prop_sets: tuple[str, ...] = ("market",)
    item_density: int = 20  # items per 10,000 m² of floor
    npc_density: int = 50  # NPC spawn points per 10,000 m² of floor
    portals: tuple[Portal, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        """The config as plain JSON data, the form `from_dict` reads and the JS takes."""
        return {
            "market_id": self.market_id,
            "instance_id": self.instance_id,
            "seed": self.seed,
            "bounds_m": list(self.bounds_m),
            "floor": {
                "aisle_cm": self.floor.aisle_cm,
                "wall_cm": self.floor.wall_cm,
                "wall_height_cm": self.floor.wall_height_cm,
                "tile_cm": self.floor.tile_cm,
                "inset_cm": self.floor.inset_cm,
            },
            "booths": self.booths,
            "arrangement": self.arrangement,
            "prop_sets": list(self.prop_sets),
            "item_density": self.item_density,
            "npc_density": self.npc_density,
            "portals": [{"side": p.side, "at": p.at, "target": p.target} for p in self.portals],
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "MapConfig":
        """A config from JSON data; missing fields take their defaults, unknown ones are refused."""
        if not isinstance(data, dict):
            raise MapConfigError("a map config is a JSON object")
        known = set(cls.__dataclass_fields__)
        unknown = sorted(set(data) - known)
        if unknown:
            raise MapConfigError(f"unknown field {unknown[0]!r}; known: {', '.join(sorted(known))}")
        for name in ("market_id", "seed"):
            if name not in data:
                raise MapConfigError(f"{name} is required")
        values = dict(data)
        floor = values.get("floor", {})
        if not isinstance(floor, dict):
            raise MapConfigError("floor must be an object")
        floor_known = set(Floor.__dataclass_fields__)
        if set(floor) - floor_known:
            bad = sorted(set(floor) - floor_known)[0]
            raise MapConfigError(
                f"unknown floor field {bad!r}; known: {', '.join(sorted(floor_known))}"
            )
        values["floor"] = Floor(**floor)
        if "bounds_m" in values:
            bounds = values["bounds_m"]
            if not isinstance(bounds, list | tuple) or len(bounds) != 2:
                raise MapConfigError("bounds_m must be [x, z] in whole metres")
            values["bounds_m"] = tuple(bounds)
        if "prop_sets" in values:
            if not isinstance(values["prop_sets"], list | tuple):
                raise MapConfigError("prop_sets must be a list of names")
            values["prop_sets"] = tuple(values["prop_sets"])
        portals = []
        for portal in values.get("portals", ()):
            if not isinstance(portal, dict) or "side" not in portal:
                raise MapConfigError("each portal is an object with a side")
            if set(portal) - {"side", "at", "target"}:
                raise MapConfigError("a portal has only side, at and target")
            portals.append(Portal(**portal))
        values["portals"] = tuple(portals)
        config = cls(**values)
        config.validate()
        return config

    def validate(self) -> None:
        """Raise MapConfigError naming the first field out of range."""
        _int_in("market_id", self.market_id, 1, 2**31 - 1)
        _int_in("instance_id", self.instance_id, 0, 2**31 - 1)
        _int_in("seed", self.seed, 0, MASK32)
        for axis, value in zip("xz", self.bounds_m, strict=True):
            _int_in(f"bounds_m {axis}", value, MIN_BOUND_M, MAX_BOUND_M)
        floor = self.floor
        _int_in("floor.aisle_cm", floor.aisle_cm, 200, 1200)
        _int_in("floor.wall_cm", floor.wall_cm, 10, 100)
        _int_in("floor.wall_height_cm", floor.wall_height_cm, 100, 800)
        _int_in("floor.tile_cm", floor.tile_cm, 50, 1000)
        _int_in("floor.inset_cm", floor.inset_cm, 0, 200)
        _int_in("booths", self.booths, 1, MAX_BOOTHS)
        if self.arrangement not in ARRANGEMENTS:
            raise MapConfigError(
                f"unknown arrangement {self.arrangement!r}; choose one of {', '.join(ARRANGEMENTS)}"
            )
        if not self.prop_sets:
            raise MapConfigError("prop_sets needs at least one prop set")
        for name in self.prop_sets:
            if name not in PROP_SETS:
                raise MapConfigError(
                    f"unknown prop set {name!r}; choose from {', '.join(sorted(PROP_SETS))}"
                )
        if len(set(self.prop_sets)) != len(self.prop_sets):
            raise MapConfigError("prop_sets names a prop set twice")
        _int_in("item_density", self.item_density, 0, 200)
        _int_in("npc_density", self.npc_density, 0, 1000)
        if len(self.portals) > MAX_PORTALS:
            raise MapConfigError(f"at most {MAX_PORTALS} portals, got {len(self.portals)}")
        for i, portal in enumerate(self.portals):
            if portal.side not in SIDES:
                raise MapConfigError(
                    f"portal {i}: unknown side {portal.side!r}; choose one of {', '.join(SIDES)}"
                )
            _int_in(f"portal {i} at", portal.at, 0, 1000)
            if portal.target is not None:
                _int_in(f"portal {i} target", portal.target, 1, 2**31 - 1)


def _int_in(name: str, value: Any, lo: int, hi: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int):
        raise MapConfigError(f"{name} must be a whole number, got {value!r}")
    if not lo <= value <= hi:
        raise MapConfigError(f"{name} must be {lo}..{hi}, got {value}")


def _overlaps(a: list[int], b: list[int]) -> bool:
    """Whether two rectangles [x0, z0, x1, z1] share any area."""
    return a[0] < b[2] and b[0] < a[2] and a[1] < b[3] and b[1] < a[3]


class _Blocked:
    """Rectangles placed so far, bucketed by 10 m cells: whether a new rectangle or point
    touches one is then a look at its own cells, not at every rectangle (the answer is
    the same, so the JavaScript, which looks at all of them, agrees)."""

    CELL = 1000

    def __init__(self) -> None:
        self.cells: dict[tuple[int, int], list[list[int]]] = {}

    def _keys(self, rect: list[int]) -> list[tuple[int, int]]:
        c = self.CELL
        return [
            (cx, cz)
            for cx in range(rect[0] // c, (rect[2] - 1) // c + 1)
            for cz in range(rect[1] // c, (rect[3] - 1) // c + 1)
        ]

    def add(self, rect: list[int]) -> None:
        for key in self._keys(rect):
            self.cells.setdefault(key, []).append(rect)

    def overlaps(self, rect: list[int]) -> bool:
        return any(
            _overlaps(rect, other) for key in self._keys(rect) for other in self.cells.get(key, ())
        )

    def covers(self, x: int, z: int) -> bool:
        return any(
            r[0] <= x < r[2] and r[1] <= z < r[3]
            for r in self.cells.get((x // self.CELL, z // self.CELL), ())
        )


def _plots(config: MapConfig) -> tuple[int, int, list[tuple[int, int]], list[str | None]]:
    """Columns, rows, the plots booths take in booth order as (column, row), and the
    side each faces (None: drawn by the generator)."""
    n = config.booths
    if config.arrangement == "rows":
        rows = 2 if n > 1 else 1
        columns = (n + rows - 1) // rows
        cells = [(i % columns, i // columns) for i in range(n)]
        return columns, rows, cells, ["south" if r == 0 else "north" for _, r in cells]
    side = 1
    if config.arrangement == "grid":
        while side * side < n:
            side += 1
        rows = (n + side - 1) // side
        cells = [(i % side, i // side) for i in range(n)]
        return side, rows, cells, [None] * n
    # ring: the plots round the edge of a side x side grid, clockwise from the north-west
    while side * side - max(side - 2, 0) ** 2 < n:
        side += 1
    ring: list[tuple[int, int]] = []
    ring += [(c, 0) for c in range(side)]
    ring += [(side - 1, r) for r in range(1, side)]
    if side > 1:
        ring += [(c, side - 1) for c in range(side - 2, -1, -1)]
        ring += [(0, r) for r in range(side - 2, 0, -1)]
    cells = ring[:n]
    facing: list[str | None] = []
    for c, r in cells:
        if side < 3:
            facing.append(None)
        elif r == 0:
            facing.append("south")
        elif r == side - 1:
            facing.append("north")
        elif c == 0:
            facing.append("east")
        else:
            facing.append("west")
    return side, side, cells, facing


def _wall_boxes(
    rect: list[int], facing: str, thick: int, height: int
) -> list[tuple[str, list[int]]]:
    """The three walls of a booth, the open side facing `facing`: (side, box)."""
    x0, z0, x1, z1 = rect
    sides = {
        "north": [x0, 0, z0, x1, height, z0 + thick],
        "south": [x0, 0, z1 - thick, x1, height, z1],
        "west": [x0, 0, z0, x0 + thick, height, z1],
        "east": [x1 - thick, 0, z0, x1, height, z1],
    }
    return [(side, sides[side]) for side in SIDES if side != facing]


def generate(config: MapConfig) -> dict[str, Any]:
    """The market `config` describes, as JSON data: integers in centimetres, y up."""
    config.validate()
    floor = config.floor
    width, depth = config.bounds_m[0] * 100, config.bounds_m[1] * 100
    aisle, thick, height = floor.aisle_cm, floor.wall_cm, floor.wall_height_cm

    columns, rows, cells, facing_fixed = _plots(config)
    inner_x0, inner_z0 = thick, thick
    inner_w, inner_d = width - 2 * thick, depth - 2 * thick
    plot_w = min((inner_w - (columns + 1) * aisle) // columns, MAX_BOOTH_CM)
    plot_d = min((inner_d - (rows + 1) * aisle) // rows, MAX_BOOTH_CM)
    if plot_w < MIN_BOOTH_CM or plot_d < MIN_BOOTH_CM:
        need_x = (columns * MIN_BOOTH_CM + (columns + 1) * aisle + 2 * thick + 99) // 100
        need_z = (rows * MIN_BOOTH_CM + (rows + 1) * aisle + 2 * thick + 99) // 100
        raise MapConfigError(
            f"bounds {config.bounds_m[0]} x {config.bounds_m[1]} m are too small for"
            f" {config.booths} booths arranged as {config.arrangement} ({columns} x {rows}"
            f" plots of at least {MIN_BOOTH_CM} cm with {aisle} cm aisles): need at least"
            f" {need_x} x {need_z} m"
        )
    block_w = columns * plot_w + (columns + 1) * aisle
    block_d = rows * plot_d + (rows + 1) * aisle
    origin_x = inner_x0 + (inner_w - block_w) // 2
    origin_z = inner_z0 + (inner_d - block_d) // 2

    def plot_rect(c: int, r: int) -> list[int]:
        x0 = origin_x + aisle + c * (plot_w + aisle)
        z0 = origin_z + aisle + r * (plot_d + aisle)
        return [x0, z0, x0 + plot_w, z0 + plot_d]

    # Booths: each shrinks into its plot by its own insets and opens on one side.
    rng = Xoshiro128(config.seed, STREAM_BOOTHS)
    shift = rng.below(len(PALETTE))
    booths: list[dict[str, Any]] = []
    walls: list[dict[str, Any]] = []
    used = set()
    for index, ((c, r), fixed) in enumerate(zip(cells, facing_fixed, strict=True)):
        used.add((c, r))
        px0, pz0, px1, pz1 = plot_rect(c, r)
        limit = min(floor.inset_cm, (plot_w - MIN_BOOTH_CM) // 2, (plot_d - MIN_BOOTH_CM) // 2)
        insets = [rng.below(limit + 1) for _ in range(4)]
        rect = [px0 + insets[3], pz0 + insets[0], px1 - insets[1], pz1 - insets[2]]
        facing = fixed if fixed is not None else SIDES[rng.below(4)]
        booth_id = f"b{index:02d}"
        booths.append(
            {
                "id": booth_id,
                "index": index,
                "name": f"Booth {index + 1}",
                "colour": PALETTE[(shift + index) % len(PALETTE)],
                "rect": rect,
                "facing": facing,
            }
        )
        for side, box in _wall_boxes(rect, facing, thick, height):
            walls.append({"id": f"{booth_id}.wall.{side}", "box": box})
    edges = {
        "north": [0, 0, 0, width, height, thick],
        "east": [width - thick, 0, 0, width, height, depth],
        "south": [0, 0, depth - thick, width, height, depth],
        "west": [0, 0, 0, thick, height, depth],
    }
    for side in SIDES:
        walls.append({"id": f"edge.{side}", "box": edges[side]})

    # Walkable floor: the aisles between plot columns and rows, and plots left empty.
    aisles: list[dict[str, Any]] = []
    for c in range(columns + 1):
        x0 = origin_x + c * (plot_w + aisle)
        aisles.append(
            {"id": f"aisle.x.{c}", "rect": [x0, inner_z0, x0 + aisle, inner_z0 + inner_d]}
        )
    for r in range(rows + 1):
        z0 = origin_z + r * (plot_d + aisle)
        aisles.append(
            {"id": f"aisle.z.{r}", "rect": [inner_x0, z0, inner_x0 + inner_w, z0 + aisle]}
        )
    open_floor: list[dict[str, Any]] = []
    for r in range(rows):
        for c in range(columns):
            if (c, r) not in used:
                open_floor.append({"id": f"open.{c}.{r}", "rect": plot_rect(c, r)})

    # Portals stand in the outer aisle, `at` per mille along their side.
    portals: list[dict[str, Any]] = []
    portal_depth = min(PORTAL_DEPTH_CM, aisle - 2 * CLEARANCE_CM)
    for i, portal in enumerate(config.portals):
        if portal.side in ("north", "south"):
            span = block_w - PORTAL_WIDTH_CM
            x0 = origin_x + span * portal.at // 1000
            z0 = (
                origin_z + CLEARANCE_CM
                if portal.side == "north"
                else origin_z + block_d - CLEARANCE_CM - portal_depth
            )
            rect = [x0, z0, x0 + PORTAL_WIDTH_CM, z0 + portal_depth]
        else:
            span = block_d - PORTAL_WIDTH_CM
            z0 = origin_z + span * portal.at // 1000
            x0 = (
                origin_x + CLEARANCE_CM
                if portal.side == "west"
                else origin_x + block_w - CLEARANCE_CM - portal_depth
            )
            rect = [x0, z0, x0 + portal_depth, z0 + PORTAL_WIDTH_CM]
        for other in portals:
            if _overlaps(rect, other["rect"]):
                raise MapConfigError(f"portal {i} overlaps {other['id']}: move it along its side")
        portals.append(
            {"id": f"portal.{i}", "side": portal.side, "target": portal.target, "rect": rect}
        )

    # Props: one to three per booth, inside it, clear of its walls and its entrance.
    rng = Xoshiro128(config.seed, STREAM_PROPS)
    kinds = [kind for name in config.prop_sets for kind in PROP_SETS[name]]
    props: list[dict[str, Any]] = []
    for booth in booths:
        x0, z0, x1, z1 = booth["rect"]
        room = [x0 + thick + CLEARANCE_CM, z0 + thick + CLEARANCE_CM]
        room += [x1 - thick - CLEARANCE_CM, z1 - thick - CLEARANCE_CM]
        side = booth["facing"]
        if side == "north":
            room[1] = z0 + ENTRANCE_CM
        elif side == "south":
            room[3] = z1 - ENTRANCE_CM
        elif side == "west":
            room[0] = x0 + ENTRANCE_CM
        else:
            room[2] = x1 - ENTRANCE_CM
        placed: list[list[int]] = []
        wanted = 1 + rng.below(3)
        for p in range(wanted):
            kind, kw, kd, kh = kinds[rng.below(len(kinds))]
            turn = rng.below(4)
            w, d = (kd, kw) if turn % 2 else (kw, kd)
            for _ in range(PLACE_TRIES):
                free_x, free_z = room[2] - room[0] - w, room[3] - room[1] - d
                if free_x < 0 or free_z < 0:
                    break
                px, pz = room[0] + rng.below(free_x + 1), room[1] + rng.below(free_z + 1)
                rect = [px, pz, px + w, pz + d]
                if any(_overlaps(rect, other) for other in placed):
                    continue
                placed.append(rect)
                props.append(
                    {
                        "id": f"{booth['id']}.prop.{p}",
                        "kind": kind,
                        "booth": booth["index"],
                        "turn": turn,
                        "box": [px, 0, pz, px + w, kh, pz + d],
                    }
                )
                break

    # Items: things NPCs use, in the aisles and the open floor, clear of each other and portals.
    walkable = [a["rect"] for a in aisles] + [o["rect"] for o in open_floor]
    # the floor is drawn from by area: a spot in [0, walk_area) falls in the first
    # rectangle whose running total of areas passes it
    walk_ends = list(itertools.accumulate((r[2] - r[0]) * (r[3] - r[1]) for r in walkable))
    walk_area = walk_ends[-1]
    floor_m2 = width * depth // 10_000
    rng = Xoshiro128(config.seed, STREAM_ITEMS)
    weights = [ITEM_KINDS[k][6] for k in ITEM_ORDER]
    total_weight = sum(weights)
    blocked = _Blocked()
    for portal_placed in portals:
        blocked.add(portal_placed["rect"])
    items: list[dict[str, Any]] = []
    for i in range(min(floor_m2 * config.item_density // 10_000, MAX_ITEMS)):
        pick = rng.below(total_weight)
        index = 0
        while pick >= weights[index]:
            pick -= weights[index]
            index += 1
        kind = ITEM_ORDER[index]
        need, restores, capacity, kw, kd, kh, _ = ITEM_KINDS[kind]
        turn = rng.below(2)
        w, d = (kd, kw) if turn else (kw, kd)
        for _ in range(PLACE_TRIES):
            area = walkable[bisect.bisect_right(walk_ends, rng.below(walk_area))]
            free_x = area[2] - area[0] - 2 * CLEARANCE_CM - w
            free_z = area[3] - area[1] - 2 * CLEARANCE_CM - d
            if free_x < 0 or free_z < 0:
                continue
            px = area[0] + CLEARANCE_CM + rng.below(free_x + 1)
            pz = area[1] + CLEARANCE_CM + rng.below(free_z + 1)
            rect = [px, pz, px + w, pz + d]
            if blocked.overlaps(rect):
                continue
            blocked.add(rect)
            items.append(
                {
                    "id": f"item.{i:03d}",
                    "kind": kind,
                    "need": need,
                    "restores": restores,
                    "capacity": capacity,
                    "turn": turn,
                    "box": [px, 0, pz, px + w, kh, pz + d],
                }
            )
            break

    # NPC spawn points: on the walkable floor, off every item.
    rng = Xoshiro128(config.seed, STREAM_NPCS)
    npcs: list[dict[str, Any]] = []
    for i in range(min(floor_m2 * config.npc_density // 10_000, MAX_NPC_SPAWNS)):
        for _ in range(PLACE_TRIES):
            area = walkable[bisect.bisect_right(walk_ends, rng.below(walk_area))]
            x = area[0] + rng.below(area[2] - area[0])
            z = area[1] + rng.below(area[3] - area[1])
            if blocked.covers(x, z):
                continue
            npcs.append({"id": f"npc.{i:03d}", "at": [x, z]})
            break

    colliders = [{"id": w["id"], "box": w["box"]} for w in walls]
    colliders += [{"id": p["id"], "box": p["box"]} for p in props]
    colliders += [{"id": it["id"], "box": it["box"]} for it in items]
    colliders.sort(key=lambda c: c["id"])
    return {
        "format": FORMAT,
        "generator": GENERATOR,
        "config": config.to_dict(),
        "bounds": [width, height, depth],
        "floor": {
            "tile": floor.tile_cm,
            "tiles": [-(-width // floor.tile_cm), -(-depth // floor.tile_cm)],
        },
        "booths": booths,
        "walls": walls,
        "aisles": aisles,
        "open": open_floor,
        "props": props,
        "items": items,
        "npc_spawns": npcs,
        "portals": portals,
        "colliders": colliders,
    }


def canonical(layout: dict[str, Any]) -> bytes:
    """The one byte form of a layout: JSON, keys sorted, no spaces, ASCII."""
    return json.dumps(layout, sort_keys=True, separators=(",", ":"), ensure_ascii=True).encode(
        "ascii"
    )


def layout_hash(layout: dict[str, Any]) -> str:
    """SHA-256 hex of the canonical bytes."""
    return hashlib.sha256(canonical(layout)).hexdigest()
