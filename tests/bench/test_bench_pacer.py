"""bench/bench_pacer.py: one short run of the current pacer, figures that add up.

A loaded machine delays the pacer's timer, and a late check plans the next one CHECK_S
after itself, so how many checks fit in a second depends on the machine; what does not is
that every walker is checked in the window and none more often than once a check period.
"""

import math

from bench.bench_pacer import measure
from tests.subprocesses import REPO_ROOT
from zones.client.burst import CHECK_S
from zones.load.drive import PACE_S


def test_a_short_run_checks_every_walker_at_most_once_a_check_period_waking_at_most_once_a_slot():
    walkers = 60
    figures = measure(str(REPO_ROOT), walkers, warmup=0.3, seconds=1.0)
    # each standing walker is sent its walk again at each of its checks
    periods = math.ceil(figures["seconds"] / CHECK_S)
    assert 1 <= figures["stuck_sends_least"] <= figures["stuck_sends_most"] <= periods + 1
    assert 0 < figures["checks_s"] <= 1.1 * walkers / CHECK_S
    assert 0 < figures["wakeups_s"] <= 1 / PACE_S + 1
    assert figures["us_per_check"] > 0 and figures["cores"] > 0
