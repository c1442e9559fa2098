"""The pieces the load harness and bench/bench_contributors.py share: processes of
contributors, and the dispatcher's figures over a window."""

from zones.load.contributors import child_argv, decision_figures, failover, groups_of, window


def stats(decided: int, expired: int, contributors: int = 2, waiting: int = 0) -> dict:
    return {
        "decided": decided,
        "expired": expired,
        "waiting": waiting,
        "latency_avg_ms": 200.0,
        "contributors": [{"name": str(i), "decisions_per_min": 60.0} for i in range(contributors)],
    }


def test_contributors_are_shared_out_over_the_processes_first_ones_fullest():
    assert groups_of(20, 4) == [(0, 5), (5, 5), (10, 5), (15, 5)]
    assert groups_of(5, 2) == [(0, 3), (3, 2)]
    assert groups_of(2, 1) == [(0, 2)]
    assert groups_of(20, 4, last=5) == [(0, 5), (5, 5), (10, 5), (15, 5)]
    assert groups_of(10, 3, last=1) == [(0, 5), (5, 4), (9, 1)]  # the one to kill: alone


def test_a_process_of_contributors_is_told_its_keys_capacity_and_whether_it_polls():
    argv = child_argv("http://127.0.0.1:1", 3, 5, 4, 64, poll=True)
    assert argv[1:3] == ["-m", "zones.load.contributors"]
    assert argv[argv.index("--first") + 1] == "5" and argv[argv.index("--count") + 1] == "4"
    assert "--poll" in argv and "--seconds" not in argv
    assert child_argv("u", 1, 0, 1, 1, seconds=30)[-2:] == ["--seconds", "30"]


def test_a_window_counts_between_the_answers_nearest_its_ends():
    samples = [(0.0, stats(0, 0)), (1.0, stats(90, 10)), (3.0, stats(270, 30))]
    w = window(samples, 1.2, 3.5)
    assert w["seconds"] == 2.0 and w["decided_per_s"] == 90.0 and w["requests_per_s"] == 100.0
    assert w["fallback_share"] == 0.1
    assert window(samples, 3.0, 3.0)["decided_per_s"] is None  # no length, no rate


def test_decision_figures_need_two_answers_within_the_window():
    samples = [(0.0, stats(0, 0)), (5.0, stats(500, 0))]
    assert decision_figures(samples, 1.0, 10.0, 128) is None
    figures = decision_figures(samples, 0.0, 10.0, 128)
    assert figures["decided_per_s"] == 100.0 and figures["in_flight_mean"] == 20.0
    assert figures["capacity_ratio"] == 6.4 and figures["per_contributor_per_s"] == [1.0, 1.0]


def test_a_failover_is_detected_when_the_dispatcher_lists_only_the_survivors():
    samples = [(t, stats(0, 0, contributors=4, waiting=2)) for t in range(5)]
    samples += [(5.5, stats(0, 0, contributors=2, waiting=30)), (6.0, stats(0, 0, 2, waiting=3))]
    assert failover(samples, 0.0, 5.0, 2).startswith("detected 0.50 s after the failover")
    assert "reassigned 0.50 s after detection" in failover(samples, 0.0, 5.0, 2)
    assert failover(samples[:5], 0.0, 4.5, 2) == "not detected before the end of the run"
