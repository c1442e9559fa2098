"""A soak's report: every figure as a series over the run, and whether each stayed flat.

"Flat after the warm-up" is judged on a least-squares line through a series' samples
taken after the warm-up: its value at the last sample may exceed its value at the first
by at most TOLERANCE of the latter, or by the series' FLOORS allowance when that is
larger (5 % of 12 open descriptors is less than one). A line rather than the two end
samples, so that one busy moment at either end (a collection about to run, a burst of
arrivals) neither hides a leak nor makes one. Falling is flat: memory given back is no
leak. The harness's own process is reported, not judged: it is not the market.
"""

from collections.abc import Sequence
from typing import Any

import numpy as np

from .html import FAINT, PALETTE, Limit, Line, line_chart

TOLERANCE = 0.05
MIN_POINTS = 3  # samples after the warm-up below which a series is not judged
FLOORS = {"rss_kib": 2048, "fds": 2, "bytes": 1 << 20, "keys": 10, "rows": 5}
UNITS = {"rss_kib": "KiB", "fds": "descriptors", "bytes": "bytes", "keys": "keys", "rows": "rows"}
ALL_TABLES = "all tables"
PRESENCE_TABLE = "market_relationtuple"
"""Holds a `booth:<z>#visitor` tuple for every visitor in the market (docs/permissions.md),
so its count follows how many are in at the moment of a reading: it is judged net of
them, as the tuples beyond the visitors present (grants, namespaces, the creator's)."""


def series_of(samples: Sequence[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """name → {"kind", "values"} of every judged figure, one value per sample (None where
    the figure was missing: a process between two lives, Redis not answering)."""
    found: dict[str, dict[str, Any]] = {}

    def put(name: str, kind: str, i: int, value: float | None) -> None:
        entry = found.setdefault(name, {"kind": kind, "values": [None] * len(samples)})
        entry["values"][i] = value

    for i, sample in enumerate(samples):
        for role, reading in sample.get("processes", {}).items():
            put(f"{role} RSS", "rss_kib", i, reading["rss_kib"])
            put(f"{role} descriptors", "fds", i, reading["fds"])
        redis = sample.get("redis")
        if redis is not None:
            put("Redis memory used", "bytes", i, redis["used_memory"])
            put("Redis keys", "keys", i, redis["keys"])
        rows = sample.get("rows") or {}
        if rows:
            put(f"rows: {ALL_TABLES}", "rows", i, sum(rows.values()))
        for table, count in rows.items():
            if table == PRESENCE_TABLE and "connected" in sample.get("load", {}):
                count -= sample["load"]["connected"]
                table = f"{table} beyond the visitors present"
            put(f"rows: {table}", "rows", i, count)
    return found


def trend(
    ts: Sequence[float], values: Sequence[float | None], warm_up_s: float
) -> tuple[float, float, int] | None:
    """(value at the first, value at the last sample after the warm-up, samples), read off
    the least-squares line through those samples; None with fewer than MIN_POINTS."""
    points = [(t, v) for t, v in zip(ts, values, strict=True) if v is not None and t >= warm_up_s]
    if len(points) < MIN_POINTS:
        return None
    t = np.array([p[0] for p in points], np.float64)
    v = np.array([p[1] for p in points], np.float64)
    slope, intercept = np.polyfit(t, v, 1)
    return float(intercept + slope * t[0]), float(intercept + slope * t[-1]), len(points)


def judge(
    name: str, kind: str, ts: Sequence[float], values: Sequence[float | None], warm_up_s: float
) -> dict[str, Any]:
    """One figure's verdict: flat (True), grew (False), or not judged (None: too few samples)."""
    found = trend(ts, values, warm_up_s)
    verdict: dict[str, Any] = {"name": name, "kind": kind, "unit": UNITS[kind]}
    if found is None:
        return {**verdict, "flat": None, "why": f"fewer than {MIN_POINTS} samples after warm-up"}
    start, end, points = found
    allowed = max(TOLERANCE * max(start, 0.0), FLOORS[kind])
    grew = end - start
    return {
        **verdict,
        "start": round(start, 1),
        "end": round(end, 1),
        "growth": round(grew, 1),
        "growth_pct": round(100 * grew / start, 2) if start > 0 else None,
        "allowed": round(allowed, 1),
        "samples": points,
        "flat": bool(grew <= allowed),
    }


def restarts(samples: Sequence[dict[str, Any]]) -> dict[str, int]:
    """How often each process role changed pid during the run (a crash and a restart)."""
    last: dict[str, int] = {}
    counted: dict[str, int] = {}
    for sample in samples:
        for role, reading in sample.get("processes", {}).items():
            if role in last and last[role] != reading["pid"]:
                counted[role] = counted.get(role, 0) + 1
            last[role] = reading["pid"]
    return counted


def soak_report_build(
    run: dict[str, Any], samples: Sequence[dict[str, Any]], warm_up_s: float
) -> dict[str, Any]:
    """The report: the run, what the load did, a verdict per figure, and every sample."""
    ts = [float(sample["t_s"]) for sample in samples]
    series = series_of(samples)
    verdicts = [
        judge(name, entry["kind"], ts, entry["values"], warm_up_s) for name, entry in series.items()
    ]
    judged = [v["flat"] for v in verdicts if v["flat"] is not None]
    return {
        "run": run,
        "load": samples[-1]["load"] if samples else {},
        "warm_up_s": warm_up_s,
        "tolerance_pct": TOLERANCE * 100,
        "flat": all(judged) if judged else None,
        "grew": [v["name"] for v in verdicts if v["flat"] is False],
        "restarts": restarts(samples),
        "verdicts": verdicts,
        "t_s": ts,
        "series": series,
        "samples": list(samples),
    }


def verdict_lines(report: dict[str, Any]) -> list[str]:
    """The report in a few lines for the terminal."""
    flat = report["flat"]
    head = {True: "FLAT", False: "GREW", None: "NOT JUDGED"}[flat]
    lines = [
        f"{head}: every figure after the {report['warm_up_s']:g} s warm-up within"
        f" {report['tolerance_pct']:g} % (or its floor)"
    ]
    for v in report["verdicts"]:
        if v["flat"] is False:
            lines.append(
                f"  grew: {v['name']}: {v['start']:,.0f} → {v['end']:,.0f} {v['unit']}"
                f" (+{v['growth']:,.0f}, allowed {v['allowed']:,.0f})"
            )
    for role, count in report["restarts"].items():
        lines.append(f"  {role} restarted {count} time{'s' * (count != 1)}")
    return lines


# --- charts ----------------------------------------------------------------------------------


def _scaled(values: Sequence[float | None], factor: float) -> list[float | None]:
    return [None if v is None else v * factor for v in values]


def _relative(values: Sequence[float | None], base: float) -> list[float | None]:
    return [None if v is None else 100.0 * v / base for v in values]


def soak_charts(report: dict[str, Any]) -> list[tuple[str, str]]:
    """(file name, SVG): every judged figure relative to its start after the warm-up, then
    process memory, descriptors, Redis and the database over the run."""
    ts, series, warm = report["t_s"], report["series"], report["warm_up_s"]
    grew = set(report["grew"])
    flat: list[Line] = []
    grown: list[Line] = []
    for v in report["verdicts"]:
        if v["flat"] is None or v["start"] <= 0:
            continue
        values = _relative(series[v["name"]]["values"], v["start"])
        if v["name"] in grew:
            grown.append(Line(v["name"], values, PALETTE[(1 + len(grown)) % len(PALETTE)]))
        else:
            flat.append(Line(v["name"], values, FAINT, width=0.8, legend=False))
    relative = flat + grown  # the grown ones drawn last, over the grey
    limit = [Limit(100 * (1 + TOLERANCE), f"+{TOLERANCE:.0%} of the start after warm-up")]

    def by_kind(kind: str, factor: float) -> list[Line]:
        chosen = [(n, e) for n, e in series.items() if e["kind"] == kind]
        return [
            Line(
                name.rsplit(" ", 1)[0], _scaled(entry["values"], factor), PALETTE[i % len(PALETTE)]
            )
            for i, (name, entry) in enumerate(chosen)
        ]

    rows = [
        Line(name.removeprefix("rows: "), entry["values"], PALETTE[i % len(PALETTE)])
        for i, (name, entry) in enumerate(
            sorted(
                ((n, e) for n, e in series.items() if e["kind"] == "rows"),
                key=lambda item: -max((v or 0) for v in item[1]["values"]),
            )[:5]
        )
    ]
    redis = [
        Line(name, _scaled(entry["values"], 1 / (1 << 20)), PALETTE[0])
        for name, entry in series.items()
        if entry["kind"] == "bytes"
    ]
    specs = [
        (
            "soak.svg",
            "Every figure judged, as % of its start after the warm-up (grey: flat)",
            "%",
            relative,
            limit,
        ),
        ("rss.svg", "Resident memory per process", "MiB", by_kind("rss_kib", 1 / 1024), []),
        ("descriptors.svg", "Open descriptors per process", "descriptors", by_kind("fds", 1), []),
        ("redis.svg", "Redis memory used", "MiB", redis, []),
        ("rows.svg", "Database rows: all tables and the largest", "rows", rows, []),
    ]
    return [
        (
            name,
            line_chart(
                title, unit, ts, lines, limits=limits, ramp_until=warm, ramp_label="warm-up"
            ),
        )
        for name, title, unit, lines, limits in specs
        if lines
    ]
