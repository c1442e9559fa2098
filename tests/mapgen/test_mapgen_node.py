"""The JavaScript generator under Node gives the Python generator's bytes."""

import pytest

from tests.mapgen.cases import node_run, seeded_configs, vectors
from zones.core.mapgen import MapConfig, MapConfigError, canonical, generate, layout_hash

FULL_TEXT = 60  # configs whose whole canonical text is compared, not only its hash


def python_results(configs):
    results = []
    for config in configs:
        try:
            layout = generate(MapConfig.from_dict(config))
        except MapConfigError as error:
            results.append({"error": str(error)})
            continue
        text = canonical(layout)
        results.append({"sha256": layout_hash(layout), "length": len(text), "text": text})
    return results


def assert_same(configs, js_results, full=FULL_TEXT):
    assert len(js_results) == len(configs)
    for i, (mine, theirs) in enumerate(zip(python_results(configs), js_results, strict=True)):
        if "error" in mine or "error" in theirs:
            assert mine.get("error") == theirs.get("error"), configs[i]
            continue
        assert theirs["sha256"] == mine["sha256"], configs[i]
        assert theirs["length"] == mine["length"], configs[i]
        if i < full:
            assert theirs["text"].encode("ascii") == mine["text"], configs[i]


def test_golden_vectors_in_node(tmp_path):
    golden = vectors()
    computed = node_run({"vectors": golden}, tmp_path)["vectors"]
    assert computed["reference"] == golden["reference"]["outputs"]
    assert computed["mix32"] == [mixed for _, mixed in golden["mix32"]]
    assert computed["seeded"] == [v["outputs"] for v in golden["seeded"]]
    assert computed["below"] == [v["values"] for v in golden["below"]]
    assert computed["layouts"] == [v["sha256"] for v in golden["layouts"]]


def test_node_and_python_agree_byte_for_byte_on_a_thousand_seeds(tmp_path):
    configs = seeded_configs()
    assert len({c["seed"] for c in configs}) == 1000
    js = node_run({"configs": configs, "full": FULL_TEXT}, tmp_path)["layouts"]
    assert_same(configs, js)


@pytest.mark.parametrize(
    "change",
    [
        {"seed": -1},
        {"seed": 2**32},
        {"booths": 0},
        {"booths": 33},
        {"bounds_m": [32, 32], "booths": 32},
        {"bounds_m": [10, 64]},
        {"prop_sets": ["space"]},
        {"arrangement": "spiral"},
        {"portals": [{"side": "east"}, {"side": "east", "at": 490}]},
        {"floor": {"wall_cm": 5}},
        {"colour": "red"},
    ],
)
def test_node_refuses_bad_input_with_the_python_message(change, tmp_path):
    config = {"market_id": 1, "seed": 1, **change}
    js = node_run({"configs": [config]}, tmp_path)["layouts"]
    assert "error" in js[0]
    assert_same([config], js)
