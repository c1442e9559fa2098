"""The map generator in Python: golden layouts, determinism, the layout's rules, bad input."""

import json

import pytest

from tests.mapgen.cases import BASE_CONFIGS, vectors
from zones.core.mapgen import (
    ITEM_KINDS,
    MapConfig,
    MapConfigError,
    Portal,
    canonical,
    generate,
    layout_hash,
)


def layout_of(data):
    return generate(MapConfig.from_dict(data))


def overlap(a, b):
    return a[0] < b[2] and b[0] < a[2] and a[1] < b[3] and b[1] < a[3]


def flat(box):
    """A collider box [x0, y0, z0, x1, y1, z1] as the floor rectangle [x0, z0, x1, z1]."""
    return [box[0], box[2], box[3], box[5]]


def test_golden_layouts_hash_as_recorded():
    for v in vectors()["layouts"]:
        assert layout_hash(layout_of(v["config"])) == v["sha256"], v["config"]


def test_same_config_same_bytes_and_another_seed_other_bytes():
    config = dict(BASE_CONFIGS[0], seed=99)
    assert canonical(layout_of(config)) == canonical(layout_of(dict(config)))
    assert layout_hash(layout_of(config)) != layout_hash(layout_of(dict(config, seed=100)))


def test_canonical_form_is_sorted_compact_ascii_integers():
    layout = layout_of(dict(BASE_CONFIGS[1], seed=7))
    text = canonical(layout)
    assert text.isascii() and b" " not in text.replace(b"Booth ", b"")
    parsed = json.loads(text)
    assert canonical(parsed) == text
    assert list(parsed) == sorted(parsed)

    def numbers(value):
        if isinstance(value, dict):
            for item in value.values():
                yield from numbers(item)
        elif isinstance(value, list):
            for item in value:
                yield from numbers(item)
        elif isinstance(value, int | float) and not isinstance(value, bool):
            yield value

    assert all(isinstance(n, int) for n in numbers(parsed))


@pytest.mark.parametrize("base", BASE_CONFIGS, ids=lambda b: b["arrangement"])
@pytest.mark.parametrize("seed", [0, 1, 12345, 2**31, 2**32 - 1])
def test_layout_rules_hold(base, seed):
    layout = layout_of(dict(base, seed=seed))
    width, height, depth = layout["bounds"]
    ids = [
        thing["id"]
        for key in ("booths", "walls", "aisles", "open", "props", "items", "npc_spawns", "portals")
        for thing in layout[key]
    ]
    assert len(ids) == len(set(ids))
    assert [b["index"] for b in layout["booths"]] == list(range(base["booths"]))
    booths = [b["rect"] for b in layout["booths"]]
    for i, rect in enumerate(booths):
        assert 0 <= rect[0] < rect[2] <= width and 0 <= rect[1] < rect[3] <= depth
        assert rect[2] - rect[0] >= 400 and rect[3] - rect[1] >= 400
        assert not any(overlap(rect, other) for other in booths[i + 1 :])
    # three walls per booth, open on the side it faces, and four round the edge
    assert len(layout["walls"]) == 3 * len(booths) + 4
    for booth in layout["booths"]:
        assert f"{booth['id']}.wall.{booth['facing']}" not in ids
    for prop in layout["props"]:
        inside = booths[prop["booth"]]
        x0, z0, x1, z1 = flat(prop["box"])
        assert inside[0] < x0 and x1 < inside[2] and inside[1] < z0 and z1 < inside[3]
    placed = [flat(item["box"]) for item in layout["items"]] + [
        p["rect"] for p in layout["portals"]
    ]
    for i, rect in enumerate(placed):
        assert not any(overlap(rect, booth) for booth in booths)
        assert not any(overlap(rect, other) for other in placed[i + 1 :])
        assert rect[0] >= 0 and rect[2] <= width and rect[1] >= 0 and rect[3] <= depth
    for item in layout["items"]:
        need, restores, capacity = ITEM_KINDS[item["kind"]][:3]
        assert (item["need"], item["restores"], item["capacity"]) == (need, restores, capacity)
    for npc in layout["npc_spawns"]:
        x, z = npc["at"]
        assert not any(r[0] <= x < r[2] and r[1] <= z < r[3] for r in booths + placed)
    solid = {w["id"] for w in layout["walls"]} | {p["id"] for p in layout["props"]}
    solid |= {item["id"] for item in layout["items"]}
    assert [c["id"] for c in layout["colliders"]] == sorted(solid)
    for collider in layout["colliders"]:
        box = collider["box"]
        assert box[0] < box[3] and 0 == box[1] < box[4] and box[2] < box[5]
    assert len(layout["portals"]) == len(base.get("portals", []))


def test_item_kinds_cover_the_needs_npcs_have():
    layout = layout_of({"market_id": 1, "seed": 3, "bounds_m": [256, 256], "item_density": 200})
    kinds = {item["kind"] for item in layout["items"]}
    assert kinds == set(ITEM_KINDS)
    assert {item["need"] for item in layout["items"]} == {"hunger", "hygiene", "fun", "energy"}


def test_config_round_trips_through_its_dict():
    config = MapConfig(market_id=4, seed=8, booths=3, portals=(Portal("west", 10, 2),))
    assert MapConfig.from_dict(json.loads(json.dumps(config.to_dict()))) == config


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"seed": -1}, r"seed must be 0\.\.4294967295, got -1"),
        ({"seed": 2**32}, r"seed must be 0\.\.4294967295, got 4294967296"),
        ({"seed": 1.5}, r"seed must be a whole number"),
        ({"booths": 0}, r"booths must be 1\.\.32, got 0"),
        ({"booths": 33}, r"booths must be 1\.\.32, got 33"),
        ({"bounds_m": [15, 128]}, r"bounds_m x must be 16\.\.1024, got 15"),
        (
            {"bounds_m": [32, 32], "booths": 32},
            r"bounds 32 x 32 m are too small for 32 booths arranged as grid .* need at least 53 x 53 m",
        ),
        (
            {"prop_sets": ["market", "space"]},
            r"unknown prop set 'space'; choose from garden, lanterns",
        ),
        ({"prop_sets": []}, r"prop_sets needs at least one prop set"),
        ({"arrangement": "spiral"}, r"unknown arrangement 'spiral'"),
        ({"portals": [{"side": "up"}]}, r"portal 0: unknown side 'up'"),
        (
            {"portals": [{"side": "north", "at": 500}, {"side": "north", "at": 510}]},
            r"portal 1 overlaps portal\.0",
        ),
        ({"colour": "red"}, r"unknown field 'colour'"),
        ({"floor": {"aisle_cm": 100}}, r"floor\.aisle_cm must be 200\.\.1200, got 100"),
        ({"item_density": 201}, r"item_density must be 0\.\.200, got 201"),
    ],
)
def test_bad_input_is_refused_with_a_clear_message(change, message):
    data = {"market_id": 1, "seed": 1, **change}
    with pytest.raises(MapConfigError, match=message):
        layout_of(data)


def test_a_missing_seed_is_refused():
    with pytest.raises(MapConfigError, match="seed is required"):
        MapConfig.from_dict({"market_id": 1})


def test_the_bounds_the_message_asks_for_are_enough():
    layout = layout_of({"market_id": 1, "seed": 1, "bounds_m": [53, 53], "booths": 32})
    assert len(layout["booths"]) == 32


def test_the_generator_and_the_npcs_agree_on_the_item_kinds():
    """The generated layout (mirrored in JavaScript, byte for byte) names items the zones'
    NPCs use with their own advertisements: the same kinds, the same slots, and the need
    each layout entry names is the one the kind restores most."""
    from zones.core import mapgen
    from zones.core.constants import ITEM_KINDS, NEEDS

    assert sorted(mapgen.ITEM_KINDS) == sorted(ITEM_KINDS)
    for kind, (need, _, slots, *_) in mapgen.ITEM_KINDS.items():
        restore, npc_slots, _ = ITEM_KINDS[kind]
        assert slots == npc_slots, kind
        assert need == NEEDS[max(range(len(NEEDS)), key=lambda i: restore[i])], kind
