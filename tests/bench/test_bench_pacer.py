"""bench/bench_pacer.py: one short run of the current pacer, figures that add up."""

from bench.bench_pacer import measure
from tests.subprocesses import REPO_ROOT
from zones.client.burst import CHECK_S
from zones.load.drive import PACE_S


def test_a_short_run_checks_every_walker_every_check_period_waking_at_most_once_a_slot():
    walkers = 60
    figures = measure(str(REPO_ROOT), walkers, warmup=0.3, seconds=1.0)
    expected = walkers / CHECK_S  # 600 checks a second
    assert 0.8 * expected <= figures["checks_s"] <= 1.1 * expected
    assert 0 < figures["wakeups_s"] <= 1 / PACE_S + 1
    assert figures["us_per_check"] > 0 and figures["cores"] > 0
