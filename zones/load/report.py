"""A run's figures, verdicts and time series, from its record (record.RunRecord).

Latency and traffic figures cover the steady window (after the ramp-up, while the
scenarios run); zone figures, errors and overruns cover the whole run. Pass lines
decide whether the run passed (`loadtest --strict` exits 1 on a miss); targets are
reported, met or missed. A figure the run could not measure is None, and so is a
verdict that depends on it.
"""

import bisect
import math
import statistics
from collections import Counter
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np

from zones.core.constants import ENTITIES_PER_VISITOR, MIGRATION_HEADROOM, ZONE_CAPACITY
from zones.core.dispatch import MAX_CAPACITY

from .contributors import decision_figures, failover_figures, sample_at
from .record import RunRecord, Second, VisitorOutcome
from .scenarios import CROWDED, SCENARIOS

TARGET_P99_MS = 50.0
TARGET_JOIN_P99_MS = 1000.0  # a join never waits long behind the frames of those already in
TARGET_WEB_US_PER_FRAME = 30.0  # the web process's CPU for one frame delivered
TARGET_KBIT_S = 256.0
MIN_HEADROOM_PCT = 12.5
LOADED_SHARE = 0.95  # a run in which fewer visitors joined and stayed did not apply its load
SUMMARY_WINDOW_S = 0.5  # what one zone summary covers (zones/worker.py SUMMARY_EVERY_TICKS)
TARGET_DECISIONS_PER_S = 500.0  # NPC decisions dispatched and validated, with contributors
TARGET_DECISION_SERVER_P99_MS = 20.0  # the server's own time per decision answer
TARGET_FALLBACK_SHARE = 0.05  # requests the zones decided themselves ...
AMPLE_CAPACITY = 1.2  # ... when the contributors declare this much more than is in flight
TARGET_FAILOVER_DETECTED_S = 30.0  # contributors killed: dropped by the dispatcher within
TARGET_FAILOVER_REASSIGNED_S = 1.0  # and what they held out to others within, after that
CPU_KEYS = ("harness", "server", "web", "workers", "redis", "contributors", "machine")
"""CPU readings: this process; the server's process tree, its web process (the root) and
its zone workers (the rest); Redis (INFO cpu); the contributor agents' processes; every
core of the machine."""


def _num(value: float | None, digits: int = 3) -> float | None:
    """A JSON-safe number: rounded, None for NaN or missing."""
    if value is None or not math.isfinite(value):
        return None
    return round(float(value), digits)


def percentiles(values: np.ndarray) -> dict[str, float | None]:
    """p50, p99, max and mean of frame ages (ms); None each when there are none."""
    if values.size == 0:
        return {"p50": None, "p99": None, "max": None, "mean": None, "frames": 0}
    p50, p99 = np.percentile(values, [50, 99])
    return {
        "p50": _num(p50),
        "p99": _num(p99),
        "max": _num(values.max()),
        "mean": _num(values.mean()),
        "frames": int(values.size),
    }


def _latencies(seconds: Iterable[Second], scenario: str | None = None) -> np.ndarray:
    parts = [
        s.ages()
        for second in seconds
        for name, s in second.scenarios.items()
        if scenario is None or name == scenario
    ]
    return np.concatenate(parts) if parts else np.zeros(0)


def traffic(record: RunRecord, scenario: str) -> dict[str, Any]:
    """Frames and bandwidth per visitor of one scenario over the steady window."""
    steady = [s.scenarios[scenario] for s in record.seconds if s.steady and scenario in s.scenarios]
    joined = [v for v in record.visitors if v.scenario == scenario and v.joined]
    seconds = record.steady_s
    received = seconds > 0 and any(v.steady_frames for v in joined)
    kbits = [v.steady_bytes * 8 / 1000 / seconds for v in joined] if received else []
    frames = sum(s.frames for s in steady)
    return {
        "visitors": len(joined),
        "frames_per_s_per_visitor": _num(
            sum(v.steady_frames for v in joined) / seconds / len(joined)
            if joined and seconds > 0
            else None
        ),
        "kbit_s_per_visitor": _num(statistics.fmean(kbits) if kbits else None, 1),
        "kbit_s_worst_visitor": _num(max(kbits) if kbits else None, 1),
        "rows_per_frame": _num(sum(s.rows for s in steady) / frames if frames else None, 1),
        "bodies_per_frame": _num(sum(s.bodies for s in steady) / frames if frames else None, 1),
    }


def _headroom_pct(entities: int, capacity: int) -> float:
    return (capacity - entities) / capacity * 100


def zones_figures(record: RunRecord) -> dict[str, Any]:
    """Peaks and headroom over every second of the run, from the market summaries."""
    peaks: dict[int, int] = {}
    least: tuple[float, int | None] = (math.inf, None)
    in_flight = visitors = with_bones = 0
    subscribers: int | None = None
    step_p99: float | None = None
    for second in record.seconds:
        for index, zone in second.zones.items():
            if zone.subscribers is not None:
                subscribers = max(subscribers or 0, zone.subscribers)
            if zone.tick_p99_ms is not None:
                step_p99 = max(step_p99 or 0.0, zone.tick_p99_ms)
            peaks[index] = max(peaks.get(index, 0), zone.entities)
            least = min(least, (_headroom_pct(zone.entities, zone.capacity), index))
            in_flight = max(in_flight, zone.in_flight)
            visitors = max(visitors, zone.visitors)
            others = max(zone.entities - zone.visitors, 0)
            with_bones = max(with_bones, zone.visitors * ENTITIES_PER_VISITOR + others)
    fullest = max(peaks, key=lambda z: peaks[z]) if peaks else None
    return {
        "reported": len(peaks),
        "capacity": ZONE_CAPACITY,
        "spawn_cap": ZONE_CAPACITY - MIGRATION_HEADROOM,
        "peak_entities": peaks[fullest] if fullest is not None else None,
        "peak_zone": fullest,
        "peak_entities_per_zone": {str(z): peaks[z] for z in sorted(peaks)},
        "min_headroom_pct": _num(least[0], 2),
        "min_headroom_zone": least[1],
        "peak_in_flight": in_flight,
        "peak_visitors_per_zone": visitors,
        "peak_entities_counting_bones": with_bones if peaks else None,
        "peak_subscribers": subscribers,
        "zone_step_p99_ms_max": _num(step_p99),
        "degraded_windows": sum(record.degraded_windows.values()),
        "health_windows": record.health_windows,
    }


def zones_serving(seconds: Sequence[Second]) -> list[int]:
    """Zones serving some booth each second (a spare serving nothing reports booth -1)."""
    return [sum(1 for z in s.zones.values() if z.booth is None or z.booth >= 0) for s in seconds]


def repartitions_figures(record: RunRecord) -> dict[str, Any]:
    """The zones' splits and merges over the run: when each was planned and over, and how
    many zones served the market at most."""
    changes = []
    for t_s, event in record.repartitions:
        changes.append(
            {
                "t_s": _num(t_s, 1),
                **{
                    key: event.get(key)
                    for key in ("kind", "phase", "version", "source", "target", "booth", "took_s")
                },
            }
        )
    serving = zones_serving(record.seconds)
    planned = [c for c in changes if c["phase"] == "planned"]
    return {
        "splits": sum(c["kind"] == "split" for c in planned),
        "merges": sum(c["kind"] == "merge" for c in planned),
        "changes": changes,
        "zones_serving_max": max(serving, default=None),
    }


def migrations_per_second(record: RunRecord) -> list[float | None]:
    """Migrations the zones counted in each second of the run, from their summary windows.

    A window counts in the second in which its summary arrived; None before any came.
    """
    ends = [s.t_s for s in record.seconds]
    counted = [0.0] * len(ends)
    for window in record.migrations:
        at = bisect.bisect_left(ends, window.t_s)
        if at < len(ends):
            moved = window.count if window.count is not None else window.per_s * SUMMARY_WINDOW_S
            counted[at] += moved
    first = min((w.t_s for w in record.migrations), default=math.inf)
    rates: list[float | None] = []
    for i, end in enumerate(ends):
        span = end - (ends[i - 1] if i else 0.0)
        rates.append(_num(counted[i] / span, 2) if end >= first and span > 0 else None)
    return rates


def migrations_figures(record: RunRecord, per_second: list[float | None]) -> dict[str, Any]:
    """Migrations as the zones report them, and handoffs as the visitors saw them."""
    steady = [
        rate
        for rate, second in zip(per_second, record.seconds, strict=True)
        if second.steady and rate is not None
    ]
    counts = [w.count for w in record.migrations if w.count is not None]
    p50s = [w.p50_ms for w in record.migrations if w.p50_ms is not None]
    p99s = [w.p99_ms for w in record.migrations if w.p99_ms is not None]
    handoffs = np.array([ms for v in record.visitors for ms in v.handoff_ms])
    return {
        "per_s_mean": _num(statistics.fmean(steady) if steady else None, 2),
        "per_s_peak": _num(max(steady) if steady else None, 2),
        "count": sum(counts) if counts else None,
        "intent_to_ack_ms": {
            "p50": _num(statistics.median(p50s) if p50s else None),
            "p99": _num(max(p99s) if p99s else None),
            "windows": len(p50s),
            "how": "p50: median over the zones' summary windows; p99: max over windows",
        },
        "visitor_zone_changes": sum(v.zone_changes for v in record.visitors),
        "visitor_handoff_ms": {
            "p50": _num(np.percentile(handoffs, 50) if handoffs.size else None, 1),
            "p99": _num(np.percentile(handoffs, 99) if handoffs.size else None, 1),
            "how": "booth_entered to zone_changed at the visitor, the 4 s hysteresis included",
        },
    }


def _spread(values: Sequence[float]) -> dict[str, float | None]:
    times = np.array(values, np.float64)
    return {
        "count": int(times.size),
        "p50": _num(np.percentile(times, 50) if times.size else None, 1),
        "p99": _num(np.percentile(times, 99) if times.size else None, 1),
        "max": _num(times.max() if times.size else None, 1),
    }


def join_figures(record: RunRecord) -> dict[str, Any]:
    """Join request to welcome: while everyone is live (a visitor joining every 2 s of the
    steady phase), and over the ramp-up (the market still filling, the zones warming up)."""
    ramp_up = [v.join_ms for v in record.visitors if v.join_ms is not None]
    return {
        "live": {**_spread(record.live_join_ms), "failed": len(record.live_join_errors)},
        "ramp_up": _spread(ramp_up),
        "how": "ticket request to welcome at the harness, ms; ramp-up joins include retries",
    }


def errors_figures(visitors: Sequence[VisitorOutcome]) -> dict[str, Any]:
    joins = Counter(v.join_error for v in visitors if not v.joined)
    closes = Counter(str(v.close_code) for v in visitors if v.close_code is not None)
    frames = Counter(code for v in visitors for code in v.error_codes)
    return {
        "join_failures": sum(joins.values()),
        "join_errors": [{"error": e, "visitors": n} for e, n in joins.most_common(5)],
        "disconnects": sum(closes.values()),
        "close_codes": dict(closes),
        "leave_failures": sum(v.joined and not v.left_cleanly for v in visitors),
        "error_frames": dict(frames),
        "bad_frames": sum(v.bad_frames for v in visitors),
    }


def cpu_series(record: RunRecord) -> dict[str, list[float | None]]:
    """Cores used in each second (CPU seconds per wall second), per process kind."""
    series: dict[str, list[float | None]] = {key: [] for key in CPU_KEYS}
    before, at = record.cpu_start_s, 0.0
    for second in record.seconds:
        span = second.t_s - at
        for key in CPU_KEYS:
            now, then = second.cpu_s.get(key), before.get(key)
            if now is None or then is None or span <= 0:
                series[key].append(None)
            else:
                series[key].append(_num((now - then) / span))
        before, at = second.cpu_s, second.t_s
    return series


def cpu_figures(record: RunRecord, series: dict[str, list[float | None]]) -> dict[str, Any]:
    steady = [s.steady for s in record.seconds]
    figures: dict[str, Any] = {}
    for key, values in series.items():
        kept = [v for v, on in zip(values, steady, strict=True) if on and v is not None]
        figures[key] = (
            {"mean_cores": _num(statistics.fmean(kept), 3), "peak_cores": _num(max(kept), 3)}
            if kept
            else None
        )
    return figures


def cpu_per_frame(record: RunRecord, key: str) -> dict[str, Any]:
    """CPU of one process kind ("harness", "web", …) per frame the visitors received, over
    the steady window: what one more visitor's stream costs that process."""
    cpu_s, frames = 0.0, 0
    before = record.cpu_start_s
    for second in record.seconds:
        now, then = second.cpu_s.get(key), before.get(key)
        if second.steady and now is not None and then is not None:
            cpu_s += now - then
            frames += sum(s.frames for s in second.scenarios.values())
        before = second.cpu_s
    return {
        "us_per_frame": _num(cpu_s / frames * 1e6 if frames else None, 2),
        "frames": frames,
        "how": f"the {key} process's CPU seconds over the steady window / frames received",
    }


def _steady_span(record: RunRecord) -> tuple[float, float] | None:
    """From the end of the ramp-up to the end of the run, in seconds since the start."""
    steady = [i for i, s in enumerate(record.seconds) if s.steady]
    if not steady:
        return None
    first = steady[0]
    go = record.seconds[first - 1].t_s if first > 0 else 0.0
    return go, record.seconds[steady[-1]].t_s


def decisions_report(record: RunRecord) -> dict[str, Any] | None:
    """NPC decisions by the contributor agents over the steady window, from the
    dispatcher's figures; None for a run without contributors. `measured` is false when
    the dispatcher did not answer at least twice within the window."""
    fleet = record.contributors
    if fleet is None:
        return None
    declared = fleet["contributors"] * min(fleet["capacity_each"], MAX_CAPACITY)
    span = _steady_span(record)
    killed_at = fleet.get("killed_at_s")
    if span is not None and killed_at is not None:
        go, end = span
        span = (go, killed_at)  # the steady figures are those before the failover
    figures = decision_figures(record.decisions, *span, declared) if span else None
    report: dict[str, Any] = {"measured": figures is not None, **(figures or {})}
    if figures is not None:
        start, end = figures["window_s"]
        cpu_s = _cpu_between(record, "contributors", start, end)
        decided = figures["decided"]
        report["contributors_cpu_ms_per_decision"] = _num(
            cpu_s * 1000 / decided if cpu_s is not None and decided else None
        )
    if fleet.get("kill"):
        report["failover"] = _failover_report(record, declared, span)
    report["fleet"] = fleet
    return report


def _failover_report(
    record: RunRecord, declared: int, span: tuple[float, float] | None
) -> dict[str, Any]:
    """After killing the last process's contributors: when the dispatcher dropped them,
    when what they held was out to others, and the decisions from the kill to the end."""
    fleet = record.contributors or {}
    killed_at = fleet.get("killed_at_s")
    figures: dict[str, Any] = {"killed": fleet["kill"], "killed_at_s": killed_at}
    if killed_at is None or span is None or not record.decisions or not record.seconds:
        return {**figures, "measured": False}
    survivors = fleet["contributors"] - fleet["kill"]
    found = failover_figures(record.decisions, span[0], killed_at, survivors)
    after = decision_figures(record.decisions, killed_at, record.seconds[-1].t_s, declared)
    return {
        **figures,
        "measured": True,
        **found,
        "after": None
        if after is None
        else {k: after[k] for k in ("decided_per_s", "requests_per_s", "fallback_share")},
    }


def _cpu_between(record: RunRecord, key: str, start: float, end: float) -> float | None:
    """CPU seconds of `key` between the samples of the seconds nearest `start` and `end`."""
    readings = [(0.0, record.cpu_start_s.get(key))]
    readings += [(s.t_s, s.cpu_s.get(key)) for s in record.seconds]
    known = [(t, v) for t, v in readings if v is not None]
    if len(known) < 2:
        return None
    first = min(known, key=lambda r: abs(r[0] - start))
    last = min(known, key=lambda r: abs(r[0] - end))
    return last[1] - first[1] if last[0] > first[0] else None


def decisions_verdicts(figures: dict[str, Any]) -> list[dict[str, Any]]:
    """Targets of a run with contributors: decisions a second, the server's time per
    decision, the fallback share while capacity is ample, the failover when some were
    killed; latency as information."""
    return [*_decision_verdicts(figures), *_failover_verdicts(figures.get("failover"))]


def _failover_verdicts(failover: dict[str, Any] | None) -> list[dict[str, Any]]:
    if failover is None:
        return []
    detected, reassigned = failover.get("detected_s"), failover.get("reassigned_s")
    killed = failover["killed"]
    return [
        _verdict(
            f"failover: contributors killed ({killed}), dropped by the dispatcher after",
            "target",
            f"≤ {TARGET_FAILOVER_DETECTED_S:g} s",
            detected,
            None if detected is None else detected <= TARGET_FAILOVER_DETECTED_S,
            "s",
        ),
        _verdict(
            "failover: their requests out to others after that",
            "target",
            f"≤ {TARGET_FAILOVER_REASSIGNED_S:g} s",
            reassigned,
            None if reassigned is None else reassigned <= TARGET_FAILOVER_REASSIGNED_S,
            "s",
        ),
    ]


def _decision_verdicts(figures: dict[str, Any]) -> list[dict[str, Any]]:
    measured = figures["measured"]
    per_s = figures.get("decided_per_s")
    p99 = (figures.get("server_answer_ms") or {}).get("p99")
    share, ratio = figures.get("fallback_share"), figures.get("capacity_ratio")
    ample = ratio is not None and ratio >= AMPLE_CAPACITY
    latency = figures.get("latency_ms") or {}
    if share is None:
        share_text = None
    elif ratio is None:
        share_text = f"{100 * share:.2f} % (capacity against demand not measured)"
    else:
        share_text = f"{100 * share:.2f} % at capacity {ratio:g}× demand"
    return [
        _verdict(
            "NPC decisions dispatched and validated a second",
            "target",
            f"≥ {TARGET_DECISIONS_PER_S:g} /s",
            per_s if measured else None,
            None if per_s is None else per_s >= TARGET_DECISIONS_PER_S,
            "/s",
        ),
        _verdict(
            "server time per NPC decision p99",
            "target",
            f"≤ {TARGET_DECISION_SERVER_P99_MS:g} ms",
            p99,
            None if p99 is None else p99 <= TARGET_DECISION_SERVER_P99_MS,
            "ms",
        ),
        _verdict(
            "NPC fallback share with ample contributed capacity",
            "target",
            f"≤ {100 * TARGET_FALLBACK_SHARE:g} % when capacity ≥ {AMPLE_CAPACITY:g}× demand",
            share_text,
            None if share is None or not ample else share <= TARGET_FALLBACK_SHARE,
        ),
        _verdict(
            "NPC decision latency p50 / p95",
            "information",
            "the zone's request to the answer taken",
            f"{latency['p50']} / {latency['p95']}" if latency.get("p50") is not None else None,
            None,
            "ms",
        ),
    ]


def decision_series(record: RunRecord) -> dict[str, list[float | None]]:
    """Decisions taken from contributors, and requests the zones decided themselves, in
    each second (between the dispatcher's answers nearest its start and end)."""
    out: dict[str, list[float | None]] = {"decided_per_s": [], "fallback_per_s": []}
    samples, before = record.decisions, 0.0
    for second in record.seconds:
        rate: tuple[float | None, float | None] = (None, None)
        if samples:
            (t_a, a), (t_b, b) = sample_at(samples, before), sample_at(samples, second.t_s)
            if t_b > t_a:
                span = t_b - t_a
                rate = (
                    _num((b["decided"] - a["decided"]) / span, 1),
                    _num((b["expired"] - a["expired"]) / span, 1),
                )
        out["decided_per_s"].append(rate[0])
        out["fallback_per_s"].append(rate[1])
        before = second.t_s
    return out


def _verdict(
    name: str, kind: str, limit: str, measured: Any, ok: bool | None, unit: str = ""
) -> dict[str, Any]:
    return {
        "name": name,
        "kind": kind,
        "limit": limit,
        "measured": measured,
        "unit": unit,
        "ok": ok,
    }


def verdicts(report: dict[str, Any]) -> list[dict[str, Any]]:
    """Whether the load was applied, then the market's pass lines and targets."""
    zones, latency = report["zones"], report["latency_ms"]
    wanted, joined = report["run"]["visitors"], report["run"]["joined"]
    stayed = joined - report["errors"]["disconnects"]
    peak, headroom = zones["peak_entities"], zones["min_headroom_pct"]
    overruns, degraded = report["overruns"]["total"], zones["degraded_windows"]
    crowded = [
        (name, report["traffic"][name]["kbit_s_per_visitor"])
        for name in CROWDED
        if name in report["traffic"] and report["traffic"][name]["kbit_s_per_visitor"] is not None
    ]
    worst = max(crowded, key=lambda item: item[1]) if crowded else None
    known = report["summary"]["messages"] > 0
    web_us = report["web_cpu_per_frame"]["us_per_frame"]
    join_p99 = report["join_ms"]["live"]["p99"]
    return [
        _verdict(
            "visitors joined and stayed connected",
            "validity",
            f"≥ {LOADED_SHARE:.0%} of the visitors asked for",
            f"{stayed} of {wanted}",
            stayed >= LOADED_SHARE * wanted,
        ),
        _verdict(
            "no zone above its capacity (authority slots)",
            "pass line",
            f"≤ {ZONE_CAPACITY} entities",
            peak,
            None if peak is None else peak <= ZONE_CAPACITY,
            "entities",
        ),
        _verdict(
            "headroom throughout",
            "pass line",
            f"> {MIN_HEADROOM_PCT} %",
            headroom,
            None if headroom is None else headroom > MIN_HEADROOM_PCT,
            "%",
        ),
        _verdict(
            "tick → client p99",
            "target",
            f"≤ {TARGET_P99_MS:g} ms",
            latency["p99"],
            None if latency["p99"] is None else latency["p99"] <= TARGET_P99_MS,
            "ms",
        ),
        _verdict(
            "no tick overruns",
            "target",
            "0 overruns, 0 degraded windows",
            f"{overruns} overruns, {degraded} degraded windows" if known else None,
            (overruns == 0 and degraded == 0) if known else None,
        ),
        _verdict(
            "join request to welcome p99, everyone live",
            "target",
            f"≤ {TARGET_JOIN_P99_MS:g} ms",
            join_p99,
            None if join_p99 is None else join_p99 <= TARGET_JOIN_P99_MS,
            "ms",
        ),
        _verdict(
            "web process CPU per frame delivered",
            "target",
            f"≤ {TARGET_WEB_US_PER_FRAME:g} µs",
            web_us,
            None if web_us is None else web_us <= TARGET_WEB_US_PER_FRAME,
            "µs",
        ),
        _verdict(
            "bandwidth per visitor, crowded scenarios",
            "target",
            f"≤ {TARGET_KBIT_S:g} kbit/s",
            f"{worst[1]:g} kbit/s ({worst[0]})" if worst else _no_crowd(report),
            None if worst is None else worst[1] <= TARGET_KBIT_S,
        ),
        _verdict(
            "no zone above its capacity counting 56 entities a visitor",
            "information",
            f"≤ {ZONE_CAPACITY} entities",
            zones["peak_entities_counting_bones"],
            None,
            "entities",
        ),
    ]


def _no_crowd(report: dict[str, Any]) -> str | None:
    """What the bandwidth verdict says when it has no crowded figure."""
    if any(name in report["traffic"] for name in CROWDED):
        return None  # crowded visitors ran but received nothing: not measured
    return "no crowded scenario in this run"


def series(
    record: RunRecord, cpu: dict[str, list[float | None]], migrations: list[float | None]
) -> dict[str, Any]:
    """Per-second time series of the run, for charts."""
    seconds = record.seconds
    zones = sorted({z for s in seconds for z in s.zones})
    out: dict[str, Any] = {
        "t_s": [s.t_s for s in seconds],
        "steady": [s.steady for s in seconds],
        "connected": [s.connected for s in seconds],
        "frames_per_s": [],
        "kbit_s_per_visitor": [],
        "kbit_s_per_visitor_by_scenario": {},
        "latency_p50_ms": [],
        "latency_p99_ms": [],
        "latency_max_ms": [],
        "entities_per_zone": {str(z): [] for z in zones},
        "entities_max": [],
        "min_headroom_pct": [],
        "migrations_per_s": migrations,
        "overruns": [s.overruns for s in seconds],
        "degraded_zones": [],
        "zones_serving": zones_serving(seconds),
        "cpu_cores": cpu,
        "loop_lag_ms": [s.loop_lag_ms for s in seconds],
    }
    names = sorted({n for s in seconds for n in s.scenarios}, key=_scenario_order)
    for name in names:
        out["kbit_s_per_visitor_by_scenario"][name] = [
            _kbit_s(s.scenarios.get(name)) for s in seconds
        ]
    at = 0.0
    for s in seconds:
        span, at = s.t_s - at, s.t_s
        parts = s.scenarios.values()
        frames, sent = sum(p.frames for p in parts), sum(p.bytes for p in parts)
        out["frames_per_s"].append(_num(frames / span if span > 0 else None, 1))
        out["kbit_s_per_visitor"].append(
            _num(sent * 8 / 1000 / s.connected if s.connected else None, 1)
        )
        ages = percentiles(_latencies([s]))
        out["latency_p50_ms"].append(ages["p50"])
        out["latency_p99_ms"].append(ages["p99"])
        out["latency_max_ms"].append(ages["max"])
        for z in zones:
            out["entities_per_zone"][str(z)].append(s.zones[z].entities if z in s.zones else None)
        out["entities_max"].append(max((z.entities for z in s.zones.values()), default=None))
        out["min_headroom_pct"].append(
            _num(min(_headroom_pct(z.entities, z.capacity) for z in s.zones.values()), 2)
            if s.zones
            else None
        )
        out["degraded_zones"].append(sum(z.health == "degraded" for z in s.zones.values()))
    return out


def _kbit_s(second: Any) -> float | None:
    if second is None or not second.connected:
        return None
    return _num(second.bytes * 8 / 1000 / second.connected, 1)


def _scenario_order(name: str) -> int:
    return SCENARIOS.index(name) if name in SCENARIOS else len(SCENARIOS)


def report_build(record: RunRecord) -> dict[str, Any]:
    """Every figure of the run, its verdicts and its time series, ready for JSON."""
    steady = [s for s in record.seconds if s.steady]
    names = sorted({v.scenario for v in record.visitors}, key=_scenario_order)
    cpu = cpu_series(record)
    migrations = migrations_per_second(record)
    at_go = next((s.overruns for s in record.seconds if s.steady), None)
    last = record.seconds[-1].overruns if record.seconds else 0
    lags = [s.loop_lag_ms for s in steady]
    report: dict[str, Any] = {
        "run": {
            **record.settings,
            "booths": record.booths,
            "started_at": record.started_at,
            "steady_s": _num(record.steady_s, 1),
            "joined": sum(v.joined for v in record.visitors),
            "server": record.server,
        },
        "latency_ms": percentiles(_latencies(steady)),
        "latency_ms_by_scenario": {n: percentiles(_latencies(steady, n)) for n in names},
        "traffic": {n: traffic(record, n) for n in names},
        "migrations": migrations_figures(record, migrations),
        "zones": zones_figures(record),
        "repartitions": repartitions_figures(record),
        "overruns": {"total": last, "steady": last - at_go if at_go is not None else None},
        "errors": errors_figures(record.visitors),
        "join_ms": join_figures(record),
        "cpu_cores": cpu_figures(record, cpu),
        "harness_cpu_per_frame": {
            **cpu_per_frame(record, "harness"),
            "system_us_per_frame": cpu_per_frame(record, "harness_system")["us_per_frame"],
        },
        "web_cpu_per_frame": cpu_per_frame(record, "web"),
        "harness_loop_lag_ms": {
            "median": _num(statistics.median(lags) if lags else None),
            "max": _num(max(lags) if lags else None),
        },
        "summary": {"messages": record.summary_messages, "last_error": record.summary_error},
        "series": series(record, cpu, migrations),
    }
    decisions = decisions_report(record)
    if decisions is not None:
        report["npc_decisions"] = decisions
        report["series"]["npc_decisions"] = decision_series(record)
    report["verdicts"] = verdicts(report) + (decisions_verdicts(decisions) if decisions else [])
    return report


def verdict_lines(report: dict[str, Any]) -> list[str]:
    """One line per verdict, for the terminal."""
    lines = []
    for v in report["verdicts"]:
        state = {True: "met", False: "MISSED", None: "unknown"}[v["ok"]]
        if v["kind"] == "information":
            state = "info"
        measured = "not measured" if v["measured"] is None else f"{v['measured']} {v['unit']}"
        lines.append(f"{v['kind']:>11}  {state:<7} {v['name']}: {measured} (limit {v['limit']})")
    return lines


def repartition_lines(report: dict[str, Any]) -> list[str]:
    """One line per split or merge that was over, for the terminal."""
    lines = []
    for c in report["repartitions"]["changes"]:
        if c["phase"] == "done":
            lines.append(
                f"{'zones':>11}  {c['kind']:<7} at {c['t_s']} s: booth {c['booth']}, zone"
                f" {c['source']} → zone {c['target']}, handed over in {c['took_s']} s"
            )
    return lines


def pass_lines_missed(report: dict[str, Any]) -> list[str]:
    """Names of the pass lines not met (unknown counts as not met), the run's validity first.

    A run that did not load the market as asked passes nothing, whatever the zones said.
    """
    return [
        v["name"]
        for v in report["verdicts"]
        if v["kind"] in ("validity", "pass line") and v["ok"] is not True
    ]
