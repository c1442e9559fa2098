"""The report from synthetic samples: percentiles, bandwidth, headroom, verdicts, charts."""

import json
import re
from array import array

import numpy as np
import pytest

from zones.load.html import nice_step, report_html
from zones.load.record import (
    MigrationSample,
    RunRecord,
    ScenarioSecond,
    Second,
    VisitorOutcome,
    ZoneSecond,
)
from zones.load.report import pass_lines_missed, repartition_lines, report_build, verdict_lines

RAMP, STEADY = 2, 8


def second(t: int, *, ages: np.ndarray, entities: tuple[int, int], overruns: int = 0) -> Second:
    steady = t > RAMP
    per_visitor_bytes = 20 * 1000  # 160 kbit/s
    return Second(
        t_s=float(t),
        steady=steady,
        scenarios={
            "crowd": ScenarioSecond(
                connected=4,
                frames=80,
                bytes=4 * per_visitor_bytes,
                rows=800,
                bodies=160,
                latencies_ms=array("d", ages),
            ),
            "browse": ScenarioSecond(
                connected=2,
                frames=40,
                bytes=2 * per_visitor_bytes // 4,
                latencies_ms=array("d", ages[:10]),
            ),
        },
        zones={
            0: ZoneSecond(
                entities[0], 2, 1800, visitors=4, health="ok", tick_p99_ms=1.5, subscribers=3
            ),
            1: ZoneSecond(entities[1], 0, 1800, visitors=2, health="ok"),
        },
        overruns=overruns,
        cpu_s={
            "harness": 0.1 * t,
            "harness_system": 0.04 * t,  # of its 0.1 cores, 0.04 in the kernel
            "server": 0.5 * t,
            "web": 0.003 * t,  # 25 µs for each of its 120 frames a second: within the target
            "workers": 0.2 * t,
            "redis": None,
            "machine": 1.5 * t,
        },
        loop_lag_ms=1.0,
    )


def record(
    *, ages: np.ndarray | None = None, fullest: int = 100, overruns: int = 0, refused: int = 0
) -> RunRecord:
    ages = np.arange(1.0, 101.0) / 4 if ages is None else ages  # 0.25 … 25 ms
    seconds = [
        second(t, ages=ages, entities=(fullest if t == 6 else 10, 5), overruns=overruns)
        for t in range(1, RAMP + STEADY + 1)
    ]
    visitors = [
        VisitorOutcome(
            "crowd",
            True,
            join_ms=40.0 * (i + 1),
            steady_frames=160,
            steady_bytes=8 * 20_000,
            zone_changes=1,
        )
        for i in range(4)
    ]
    visitors += [
        VisitorOutcome("browse", True, steady_frames=160, steady_bytes=8 * 5_000, handoff_ms=[4500])
        for _ in range(2)
    ]
    visitors += [
        VisitorOutcome("browse", False, join_error="JoinRefused: 409 market_not_live")
        for _ in range(refused)
    ]
    return RunRecord(
        settings={
            "url": "http://127.0.0.1:1",
            "market": 1,
            "visitors": 6 + refused,
            "scenario": "all",
            "duration_s": 8.0,
            "ramp_up_s": 2.0,
            "seed": 1,
        },
        booths=2,
        started_at="2026-11-21T10:00:00+00:00",
        steady_s=8.0,
        seconds=seconds,
        visitors=visitors,
        live_join_ms=[90.0, 110.0],
        cpu_start_s=dict.fromkeys(
            ("harness", "harness_system", "server", "web", "workers", "machine"), 0.0
        ),
        migrations=[
            MigrationSample(2.5, 0, 4.0, count=2, p50_ms=100.0, p99_ms=150.0),
            MigrationSample(3.0, 1, 8.0, count=4, p50_ms=120.0, p99_ms=400.0),
            MigrationSample(4.2, 1, 8.0, count=4, p50_ms=130.0, p99_ms=200.0),
            MigrationSample(4.7, 1, 6.0),  # a server that does not count: 6/s over 0.5 s
        ],
        degraded_windows={0: 0, 1: 0},
        summary_messages=40,
    )


def verdict(report: dict, name: str) -> dict:
    return next(v for v in report["verdicts"] if v["name"].startswith(name))


def test_latency_percentiles_cover_the_steady_window_exactly():
    report = report_build(record())
    crowd = report["latency_ms_by_scenario"]["crowd"]
    expected = np.tile(np.arange(1.0, 101.0) / 4, STEADY)
    assert crowd["frames"] == expected.size
    assert crowd["p50"] == pytest.approx(np.percentile(expected, 50), abs=1e-3)
    assert crowd["p99"] == pytest.approx(np.percentile(expected, 99), abs=1e-3)
    assert crowd["max"] == 25.0
    assert report["latency_ms"]["frames"] == STEADY * 110


def test_bandwidth_and_frames_are_per_visitor_per_second_of_the_steady_window():
    traffic = report_build(record())["traffic"]
    assert traffic["crowd"]["kbit_s_per_visitor"] == pytest.approx(160.0)
    assert traffic["browse"]["kbit_s_per_visitor"] == pytest.approx(40.0)
    assert traffic["crowd"]["frames_per_s_per_visitor"] == pytest.approx(20.0)
    assert traffic["crowd"]["rows_per_frame"] == 10.0 and traffic["crowd"]["bodies_per_frame"] == 2


def test_a_healthy_run_meets_every_pass_line_and_target():
    report = report_build(record())
    assert [v["ok"] for v in report["verdicts"] if v["kind"] != "information"] == [True] * 8
    assert pass_lines_missed(report) == []
    assert report["zones"]["min_headroom_pct"] == pytest.approx((1800 - 100) / 18, abs=0.01)
    assert report["zones"]["peak_entities_counting_bones"] == 4 * 56 + 96
    assert report["errors"]["join_failures"] == 0
    assert report["zones"]["peak_subscribers"] == 3
    assert report["zones"]["zone_step_p99_ms_max"] == 1.5


def test_a_run_that_could_not_apply_its_load_passes_nothing():
    report = report_build(record(refused=1))
    assert verdict(report, "visitors joined")["measured"] == "6 of 7"
    assert verdict(report, "visitors joined")["ok"] is False
    assert pass_lines_missed(report) == ["visitors joined and stayed connected"]
    assert report["errors"]["join_errors"] == [
        {"error": "JoinRefused: 409 market_not_live", "visitors": 1}
    ]


def test_headroom_below_an_eighth_misses_a_pass_line_even_for_one_second():
    report = report_build(record(fullest=1600))
    assert report["zones"]["min_headroom_pct"] == pytest.approx(200 / 18, abs=0.01)
    assert verdict(report, "headroom")["ok"] is False
    assert verdict(report, "no zone above its capacity (")["ok"] is True
    assert pass_lines_missed(report) == ["headroom throughout"]
    assert report["zones"]["peak_zone"] == 0


def test_slow_frames_overruns_and_fat_frames_miss_their_targets_without_failing_the_run():
    slow = record(ages=np.full(100, 80.0), overruns=3)
    for s in slow.seconds:
        s.scenarios["crowd"].bytes *= 2
    for v in slow.visitors:
        v.steady_bytes *= 2
    report = report_build(slow)
    assert verdict(report, "tick → client p99")["ok"] is False
    assert verdict(report, "no tick overruns")["ok"] is False
    assert verdict(report, "bandwidth")["ok"] is False
    assert "320 kbit/s (crowd)" in verdict(report, "bandwidth")["measured"]
    assert pass_lines_missed(report) == []
    assert any("MISSED" in line and "p99" in line for line in verdict_lines(report))


def test_figures_nobody_measured_are_unknown_and_unknown_pass_lines_count_as_missed():
    bare = record()
    for s in bare.seconds:
        s.zones = {}
    bare.summary_messages = 0
    report = report_build(bare)
    assert report["zones"]["peak_entities"] is None
    assert verdict(report, "headroom")["ok"] is None
    assert verdict(report, "no tick overruns")["ok"] is None
    assert pass_lines_missed(report) == [
        "no zone above its capacity (authority slots)",
        "headroom throughout",
    ]


def test_migration_latency_is_the_median_of_window_p50s_and_the_max_of_window_p99s():
    migrations = report_build(record())["migrations"]
    assert migrations["intent_to_ack_ms"]["p50"] == 120.0
    assert migrations["intent_to_ack_ms"]["p99"] == 400.0
    assert migrations["count"] == 10
    assert migrations["per_s_peak"] == 7.0  # second 5: 4 counted + 3 from the rate
    assert migrations["per_s_mean"] == pytest.approx((6 + 7) / STEADY, abs=0.01)
    assert migrations["visitor_zone_changes"] == 4
    assert migrations["visitor_handoff_ms"]["p50"] == 4500


def test_series_have_one_value_per_second_and_cpu_is_in_cores():
    report = report_build(record())
    series = report["series"]
    assert len(series["t_s"]) == RAMP + STEADY
    for key in ("connected", "frames_per_s", "latency_p99_ms", "min_headroom_pct", "overruns"):
        assert len(series[key]) == RAMP + STEADY, key
    assert series["entities_per_zone"]["0"][5] == 100
    assert series["migrations_per_s"] == [None, None, 6.0, 0.0, 7.0, 0.0, 0.0, 0.0, 0.0, 0.0]
    assert series["cpu_cores"]["server"] == [0.5] * 10
    assert series["cpu_cores"]["redis"] == [None] * 10
    assert report["cpu_cores"]["harness"] == {"mean_cores": 0.1, "peak_cores": 0.1}
    json.dumps(report, allow_nan=False)  # strict JSON: no NaN anywhere


def test_the_page_shows_the_verdicts_first_then_inline_charts_and_loads_nothing():
    page = report_html(report_build(record(fullest=1600)))
    assert page.index("Verdicts") < page.index("<svg")
    assert page.count("<svg") >= 8
    assert "missed" in page and "headroom throughout" in page
    assert "Tick → client latency per second" in page
    assert not re.search(r"<script|<link|<img|src=|href=|@import|url\(", page)


def test_chart_steps_are_round_numbers():
    assert [nice_step(span) for span in (1, 7, 48, 1800, 0.3)] == [0.2, 2, 10, 500, 0.1]


def test_visitors_that_received_nothing_leave_the_bandwidth_unknown_not_met():
    silent = record()
    for v in silent.visitors:
        v.steady_frames = v.steady_bytes = 0
    report = report_build(silent)
    assert report["traffic"]["crowd"]["kbit_s_per_visitor"] is None
    assert report["traffic"]["crowd"]["frames_per_s_per_visitor"] == 0
    assert verdict(report, "bandwidth")["ok"] is None


def test_a_run_without_crowded_scenarios_says_so_instead_of_judging_bandwidth():
    browsing = record()
    browsing.visitors = [v for v in browsing.visitors if v.scenario == "browse"]
    for s in browsing.seconds:
        del s.scenarios["crowd"]
    bandwidth = verdict(report_build(browsing), "bandwidth")
    assert bandwidth["ok"] is None and bandwidth["measured"] == "no crowded scenario in this run"


def test_the_harness_cost_per_frame_is_its_steady_cpu_over_the_frames_received():
    report = report_build(record())
    cost = report["harness_cpu_per_frame"]
    steady_seconds = STEADY
    assert cost["frames"] == steady_seconds * 120  # 80 crowd + 40 browse frames a second
    assert cost["us_per_frame"] == pytest.approx(0.1 / 120 * 1e6, abs=0.01)
    assert cost["system_us_per_frame"] == pytest.approx(0.04 / 120 * 1e6, abs=0.01)
    assert "833.33 (333.33 of it in the kernel)" in report_html(report)
    web = report["web_cpu_per_frame"]  # the web process's over the same frames
    assert web["us_per_frame"] == pytest.approx(0.003 / 120 * 1e6, abs=0.01)
    assert verdict(report, "web process CPU per frame")["ok"] is True
    json.dumps(report)  # JSON-safe


def test_a_web_process_spending_more_than_30_us_a_frame_misses_its_target():
    busy = record()
    for second in busy.seconds:
        second.cpu_s["web"] *= 100  # 2.5 ms a frame
    assert verdict(report_build(busy), "web process CPU per frame")["ok"] is False


def test_join_times_are_reported_and_a_live_join_slower_than_a_second_misses_its_target():
    quick = record()
    quick.live_join_ms = [120.0, 80.0, 300.0]
    report = report_build(quick)
    assert report["join_ms"]["ramp_up"]["p50"] == 100.0
    assert report["join_ms"]["ramp_up"]["max"] == 160.0
    assert report["join_ms"]["live"]["max"] == 300.0 and report["join_ms"]["live"]["count"] == 3
    assert verdict(report, "join request to welcome")["ok"] is True
    slow = record()
    slow.live_join_ms = [120.0, 5000.0]
    assert verdict(report_build(slow), "join request to welcome")["ok"] is False
    none = record()
    none.live_join_ms = []
    assert verdict(report_build(none), "join request to welcome")["ok"] is None


def dispatcher(decided: int, expired: int, *, latency_avg_ms: float = 100.0) -> dict:
    return {
        "decided": decided,
        "expired": expired,
        "waiting": 0,
        "latency_p50_ms": 80.0,
        "latency_p95_ms": 150.0,
        "latency_avg_ms": latency_avg_ms,
        "server": {"answer_ms_p50": 0.5, "answer_ms_p99": 4.0, "queue_ms_p50": 50.0},
        "contributors": [
            {"name": "a", "decisions_per_min": 600.0},
            {"name": "b", "decisions_per_min": 1200.0},
            {"name": "server", "decisions_per_min": 60.0, "last_resort": True},
        ],
    }


def with_contributors(run: RunRecord, per_s: int, expired_per_s: int, capacity: int) -> RunRecord:
    """A dispatcher answering at every second's end (and once before the run), its
    counts growing by `per_s` decided and `expired_per_s` expired a second."""
    run.decisions = [
        (float(t), dispatcher(per_s * t, expired_per_s * t)) for t in range(RAMP + STEADY + 1)
    ]
    run.contributors = {
        "contributors": 2,
        "processes": 1,
        "capacity_each": capacity,
        "policy": "utility",
        "counts": {"requests": 10, "answered": 10, "applied": 9, "refused": 0},
        "errors": [],
    }
    return run


def test_npc_decisions_are_the_dispatcher_s_counts_over_the_steady_window():
    run = with_contributors(record(), per_s=600, expired_per_s=0, capacity=64)
    report = report_build(run)
    d = report["npc_decisions"]
    assert d["measured"] and d["window_s"] == [RAMP, RAMP + STEADY]
    assert d["decided"] == 600 * STEADY and d["decided_per_s"] == 600.0
    assert d["fallback_share"] == 0.0 and d["capacity_declared"] == 128
    assert d["in_flight_mean"] == 60.0 and d["capacity_ratio"] == pytest.approx(128 / 60, 0.01)
    assert d["per_contributor_per_s"] == [10.0, 20.0]  # the server's own endpoint left out
    assert report["series"]["npc_decisions"]["decided_per_s"] == [600.0] * (RAMP + STEADY)
    assert verdict(report, "NPC decisions dispatched")["ok"] is True
    assert verdict(report, "server time per NPC decision p99")["measured"] == 4.0
    assert verdict(report, "NPC fallback share")["ok"] is True
    assert "NPC decisions (contributor agents" in report_html(report)
    json.dumps(report, allow_nan=False)


def test_decisions_below_the_target_or_falling_back_with_ample_capacity_miss_their_targets():
    report = report_build(with_contributors(record(), per_s=270, expired_per_s=30, capacity=64))
    d = report["npc_decisions"]
    assert d["decided_per_s"] == 270.0 and d["requests_per_s"] == 300.0
    assert d["fallback_share"] == 0.1
    assert verdict(report, "NPC decisions dispatched")["ok"] is False
    assert verdict(report, "NPC fallback share")["ok"] is False  # 128 held vs 30 in flight


def test_the_fallback_share_is_not_judged_when_the_contributors_lack_capacity():
    report = report_build(with_contributors(record(), per_s=270, expired_per_s=30, capacity=10))
    assert report["npc_decisions"]["capacity_ratio"] < 1.2
    share = verdict(report, "NPC fallback share")
    assert share["ok"] is None and share["measured"].startswith("10.00 %")


def test_contributors_the_dispatcher_never_answered_are_reported_as_not_measured():
    run = with_contributors(record(), per_s=1, expired_per_s=0, capacity=64)
    run.decisions = []
    run.contributors["errors"] = ["RuntimeError: refused: banned"]
    report = report_build(run)
    assert report["npc_decisions"]["measured"] is False
    assert verdict(report, "NPC decisions dispatched")["ok"] is None
    assert "refused: banned" in report_html(report)


def test_a_run_without_contributors_has_no_decision_figures():
    report = report_build(record())
    assert "npc_decisions" not in report and "npc_decisions" not in report["series"]
    assert not any(v["name"].startswith("NPC") for v in report["verdicts"])


def test_killing_contributors_ends_the_steady_figures_and_reports_the_failover():
    run = with_contributors(record(), per_s=100, expired_per_s=0, capacity=64)
    run.contributors.update(kill=1, kill_at_s=3.0, killed_at_s=6.0)
    for t, stats in run.decisions:
        if t >= 7:  # the dispatcher dropped the killed one a second after the kill
            stats["contributors"] = stats["contributors"][1:]
        if t == 7:
            stats["waiting"] = 40  # what it held, waiting a moment
    report = report_build(run)
    d = report["npc_decisions"]
    assert d["window_s"] == [RAMP, 6.0]
    failover = d["failover"]
    assert failover["measured"] and failover["detected_s"] == 1.0
    assert failover["reassigned_s"] == 1.0  # out to others by the next answer
    assert failover["after"]["decided_per_s"] == 100.0
    assert verdict(report, "failover: contributors killed (1)")["ok"] is True
    assert verdict(report, "failover: their requests out")["ok"] is True
    page = report_html(report)
    assert "failover: contributors killed (1) at, s</td><td>6</td>" in page
    assert "dropped by the dispatcher after, s</td><td>1</td>" in page


def test_a_failover_never_seen_is_unknown_not_met():
    run = with_contributors(record(), per_s=100, expired_per_s=0, capacity=64)
    run.contributors.update(kill=1, kill_at_s=3.0, killed_at_s=6.0)  # listed to the end
    report = report_build(run)
    assert report["npc_decisions"]["failover"]["detected_s"] is None
    assert verdict(report, "failover: contributors killed (1)")["ok"] is None


def repartition(kind: str, phase: str, source: int, target: int, took_s=None) -> dict:
    return {
        "type": "zones_repartitioned",
        "kind": kind,
        "phase": phase,
        "version": 1 if kind == "split" else 2,
        "source": source,
        "target": target,
        "booth": 0,
        "took_s": took_s,
    }


def test_splits_and_merges_are_listed_over_time_with_the_zones_serving_each_second():
    run = record()
    run.server = {"spare_zones": 1}
    run.repartitions = [
        (3.2, repartition("split", "planned", 0, 2)),
        (4.1, repartition("split", "done", 0, 2, took_s=0.9)),
        (8.0, repartition("merge", "planned", 2, 0)),
        (8.6, repartition("merge", "done", 2, 0, took_s=0.6)),
    ]
    for s in run.seconds[3:8]:  # the spare serves booth 0 from the fourth second to the eighth
        s.zones[2] = ZoneSecond(300, 0, 1800, visitors=0, health="ok", booth=0)
    for s in run.seconds[8:]:
        s.zones[2] = ZoneSecond(0, 0, 1800, visitors=0, health="ok", booth=-1)
    report = report_build(run)
    figures = report["repartitions"]
    assert (figures["splits"], figures["merges"], figures["zones_serving_max"]) == (1, 1, 3)
    assert [(c["t_s"], c["kind"], c["phase"]) for c in figures["changes"]] == [
        (3.2, "split", "planned"),
        (4.1, "split", "done"),
        (8.0, "merge", "planned"),
        (8.6, "merge", "done"),
    ]
    assert report["series"]["zones_serving"] == [2, 2, 2, 3, 3, 3, 3, 3, 2, 2]
    assert repartition_lines(report) == [
        "      zones  split   at 4.1 s: booth 0, zone 0 → zone 2, handed over in 0.9 s",
        "      zones  merge   at 8.6 s: booth 0, zone 2 → zone 0, handed over in 0.6 s",
    ]
    page = report_html(report)
    assert "<h2>Splits and merges</h2>" in page and "1 splits, 1 merges" in page
    assert "zone 0 → zone 2" in page and "Zones serving the market" in page


def test_a_run_with_spares_and_no_change_says_so_and_one_without_spares_says_nothing():
    run = record()
    run.server = {"spare_zones": 2}
    assert "No zone split or merged during the run." in report_html(report_build(run))
    run.server = {}
    assert "Splits and merges" not in report_html(report_build(run))
