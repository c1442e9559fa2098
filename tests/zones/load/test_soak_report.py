"""The soak's verdict: flat after the warm-up within 5 % (or a floor), judged on a fitted line."""

import numpy as np
import pytest

from zones.load.soak import REGULAR_EVERY, arrival_schedule
from zones.load.soak_report import (
    judge,
    restarts,
    series_of,
    soak_charts,
    soak_report_build,
    trend,
    verdict_lines,
)

MINUTES = [60.0 * i for i in range(31)]  # a 30-minute run read every minute
WARM_UP_S = 300.0


def noisy(level: float, spread: float, seed: int = 3) -> list[float]:
    rng = np.random.default_rng(seed)
    return [level * (1 + spread * float(rng.uniform(-1, 1))) for _ in MINUTES]


def test_a_level_figure_with_noise_is_flat():
    verdict = judge("web RSS", "rss_kib", MINUTES, noisy(150_000, 0.03), WARM_UP_S)
    assert verdict["flat"] is True
    assert abs(verdict["growth_pct"]) < 5


def test_a_figure_growing_by_eight_percent_after_the_warm_up_grew():
    values = [100_000 + max(0.0, t - WARM_UP_S) * 8_000 / (1800 - WARM_UP_S) for t in MINUTES]
    verdict = judge("zone worker RSS", "rss_kib", MINUTES, values, WARM_UP_S)
    assert verdict["flat"] is False
    assert verdict["start"] == pytest.approx(100_000, rel=1e-6)
    assert verdict["growth"] == pytest.approx(8_000, rel=1e-6)
    assert verdict["growth_pct"] == pytest.approx(8.0, rel=1e-3)
    assert verdict["allowed"] == pytest.approx(5_000, rel=1e-6)


def test_one_high_reading_at_the_end_does_not_make_a_leak_nor_hide_one():
    level = [1_000.0] * len(MINUTES)
    spike = [*level[:-1], 1_200.0]  # the last reading 20 % up, the rest flat
    assert judge("rows", "rows", MINUTES, spike, WARM_UP_S)["flat"] is True
    rising = [1_000.0 + 4.0 * i for i in range(len(MINUTES))]  # +2.5 % a run, 10 % in all
    dipped = [*rising[:-1], 1_000.0]  # one low last reading does not hide the rise
    assert judge("rows", "rows", MINUTES, dipped, WARM_UP_S)["flat"] is False


def test_growth_during_the_warm_up_and_memory_given_back_are_flat():
    warming = [min(t, WARM_UP_S) * 100 + 50_000 for t in MINUTES]
    assert judge("web RSS", "rss_kib", MINUTES, warming, WARM_UP_S)["flat"] is True
    falling = [200_000 - t * 10 for t in MINUTES]
    assert judge("web RSS", "rss_kib", MINUTES, falling, WARM_UP_S)["flat"] is True


def test_small_counts_are_judged_against_their_floor_not_five_percent_of_almost_nothing():
    one_more = [12.0] * 20 + [13.0] * 11  # a descriptor more is noise
    assert judge("worker descriptors", "fds", MINUTES, one_more, WARM_UP_S)["flat"] is True
    leaking = [12.0 + i for i in range(len(MINUTES))]  # one more each minute is a leak
    assert judge("worker descriptors", "fds", MINUTES, leaking, WARM_UP_S)["flat"] is False


def test_missing_readings_are_skipped_and_too_few_are_not_judged():
    gaps = [None if i % 2 else 500.0 for i in range(len(MINUTES))]
    assert judge("Redis keys", "keys", MINUTES, gaps, WARM_UP_S)["flat"] is True
    assert trend([0.0, 400.0, 500.0], [1.0, 2.0, None], WARM_UP_S) is None
    assert judge("Redis keys", "keys", [0.0, 400.0], [1.0, 2.0], WARM_UP_S)["flat"] is None


def sample(t_s, *, worker_rss, worker_pid=200, rows=1_000, redis_keys=50):
    return {
        "t_s": t_s,
        "processes": {
            "runmarket": {"pid": 100, "rss_kib": 150_000, "fds": 40},
            "zoneworker 0,1": {"pid": worker_pid, "rss_kib": worker_rss, "fds": 30},
        },
        "harness": {"pid": 1, "rss_kib": 10 * t_s + 1, "fds": 9},  # reported, never judged
        "redis": {
            "used_memory": 2_000_000,
            "used_memory_rss": 9_000_000,
            "keys": redis_keys,
            "clients": 12,
        },
        "rows": {"market_booth": 8, "market_outboxevent": rows},
        "load": {"joins": int(t_s)},
    }


def test_a_planted_leak_is_the_one_figure_that_grew_and_a_restart_is_counted():
    samples = [
        sample(t, worker_rss=120_000 + int(t) * 10, worker_pid=200 if t < 900 else 201)
        for t in MINUTES
    ]
    report = soak_report_build({"duration_s": 1800}, samples, WARM_UP_S)
    assert report["flat"] is False
    assert report["grew"] == ["zoneworker 0,1 RSS"]
    assert report["restarts"] == {"zoneworker 0,1": 1}
    assert report["load"] == {"joins": 1800}
    names = {v["name"] for v in report["verdicts"]}
    assert {"runmarket RSS", "runmarket descriptors", "Redis memory used", "Redis keys"} <= names
    assert {"rows: all tables", "rows: market_booth", "rows: market_outboxevent"} <= names
    assert not any("harness" in name for name in names)
    assert len(report["samples"]) == len(MINUTES) == len(report["t_s"])
    lines = verdict_lines(report)
    assert lines[0].startswith("GREW") and "zoneworker 0,1 RSS" in lines[1]
    assert "zoneworker 0,1 restarted 1 time" in lines[-1]


def test_without_the_leak_the_same_run_is_flat_and_its_charts_draw_every_figure():
    samples = [sample(t, worker_rss=120_000) for t in MINUTES]
    report = soak_report_build({"duration_s": 1800}, samples, WARM_UP_S)
    assert report["flat"] is True and report["grew"] == [] and report["restarts"] == {}
    assert verdict_lines(report) == [
        "FLAT: every figure after the 300 s warm-up within 5 % (or its floor)"
    ]
    charts = dict(soak_charts(report))
    assert list(charts) == ["soak.svg", "rss.svg", "descriptors.svg", "redis.svg", "rows.svg"]
    assert all(svg.startswith("<svg") and "warm-up" in svg for svg in charts.values())
    assert "zoneworker 0,1" in charts["rss.svg"] and "market_outboxevent" in charts["rows.svg"]


def test_series_follow_a_role_and_leave_gaps_where_it_was_not_read():
    samples = [sample(0.0, worker_rss=1), sample(60.0, worker_rss=2)]
    del samples[0]["processes"]["zoneworker 0,1"]
    samples[1]["redis"] = None
    found = series_of(samples)
    assert found["zoneworker 0,1 RSS"] == {"kind": "rss_kib", "values": [None, 2]}
    assert found["Redis keys"]["values"] == [50, None]
    assert found["rows: all tables"]["values"] == [1_008, 1_008]
    assert restarts(samples) == {}


def test_presence_tuples_are_judged_beyond_the_visitors_present():
    present = [int(v) for v in noisy(360, 0.15)]  # visitors come and go: 306 to 414
    present[-3:] = [414, 414, 414]  # a busy end
    samples = [sample(t, worker_rss=120_000) for t in MINUTES]
    for s, n in zip(samples, present, strict=True):
        s["rows"]["market_relationtuple"] = 12 + n  # grants, namespaces, and one a visitor
        s["load"]["connected"] = n
    report = soak_report_build({"duration_s": 1800}, samples, WARM_UP_S)
    assert report["flat"] is True, report["grew"]
    found = series_of(samples)
    assert set(found["rows: market_relationtuple beyond the visitors present"]["values"]) == {12}
    assert "rows: market_relationtuple" not in found
    # the control: tuples that stay after their visitors left are still found
    for i, s in enumerate(samples):
        s["rows"]["market_relationtuple"] += i
    grew = soak_report_build({"duration_s": 1800}, samples, WARM_UP_S)["grew"]
    assert "rows: market_relationtuple beyond the visitors present" in grew


def test_arrivals_are_evenly_spaced_with_one_regular_in_eleven():
    arrivals = arrival_schedule(100, regulars=5, duration_s=110.0)
    assert len(arrivals) == 110
    assert sum(regular for _, regular in arrivals) == 100 // (REGULAR_EVERY - 1)
    times = [t for t, _ in arrivals]
    assert times == pytest.approx([float(i) for i in range(110)])
    assert not any(regular for _, regular in arrival_schedule(100, regulars=0, duration_s=10))
