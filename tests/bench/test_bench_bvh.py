"""bench/bench_bvh.py's many starts: every start refined never costs more than it began."""

import numpy as np

from bench.bench_bvh import starts


def test_many_starts_refine_each_start_and_say_how_far_the_target_is(capsys) -> None:
    found = starts([300], seed=1, count=4, max_passes=10)
    costs = found[300]
    assert costs.shape == (4, 2)
    before, after = costs[:, 0], costs[:, 1]
    assert np.all(after <= before)  # refining never raises a tree's cost
    assert np.any(after < before)  # and it found something to change
    assert np.all(after > 0)
    said = capsys.readouterr().out
    assert f"refined {after.min():.4f}× to {after.max():.4f}×" in said
    assert f"the best is {after.min() - 0.85:+.4f} from it" in said


def test_the_starts_are_the_same_for_the_same_seed() -> None:
    first = starts([200], seed=3, count=3, max_passes=10)[200]
    again = starts([200], seed=3, count=3, max_passes=10)[200]
    assert np.array_equal(first, again)
