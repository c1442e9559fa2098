"""The 32-bit generator against the golden vectors, in Python."""

import pytest

from tests.mapgen.cases import vectors
from zones.core.prng32 import Xoshiro128, mix32


def test_reference_state_gives_the_reference_outputs():
    v = vectors()["reference"]
    rng = Xoshiro128.from_state(*v["state"])
    assert [rng.next_u32() for _ in v["outputs"]] == v["outputs"]


def test_mix32_vectors():
    for value, mixed in vectors()["mix32"]:
        assert mix32(value) == mixed


def test_seeded_streams_match_the_vectors():
    for v in vectors()["seeded"]:
        rng = Xoshiro128(v["seed"], v["stream"])
        assert [rng.next_u32() for _ in v["outputs"]] == v["outputs"], v


def test_below_matches_the_vectors_and_stays_in_range():
    for v in vectors()["below"]:
        rng = Xoshiro128(v["seed"], v["stream"])
        values = [rng.below(v["bound"]) for _ in v["values"]]
        assert values == v["values"], v
        assert all(0 <= x < v["bound"] for x in values)


def test_streams_of_one_seed_differ():
    first = [Xoshiro128(5, s).next_u32() for s in range(16)]
    assert len(set(first)) == 16


@pytest.mark.parametrize(
    ("seed", "stream", "message"),
    [(-1, 0, "seed must be"), (2**32, 0, "seed must be"), (0, 2**32, "stream must be")],
)
def test_out_of_range_seed_or_stream_is_refused(seed, stream, message):
    with pytest.raises(ValueError, match=message):
        Xoshiro128(seed, stream)


def test_below_refuses_an_empty_range_and_the_zero_state():
    with pytest.raises(ValueError, match="bound must be"):
        Xoshiro128(1).below(0)
    with pytest.raises(ValueError, match="all-zero"):
        Xoshiro128.from_state(0, 0, 0, 0)
