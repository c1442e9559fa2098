"""The load report as one self-contained HTML page: verdicts, figures, then charts over time.

Charts are inline SVG drawn here (no script, no stylesheet or font from elsewhere),
so the page opens from a CI artefact or a mail attachment as it is.
"""

import html
import json
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from zones.core.constants import ZONE_CAPACITY

from .report import MIN_HEADROOM_PCT, TARGET_DECISIONS_PER_S, TARGET_KBIT_S, TARGET_P99_MS

WIDTH, HEIGHT = 760, 244
LEFT, RIGHT, TOP, BOTTOM = 60, 16, 44, 34
PALETTE = ("#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#17becf")
GRID = "#e3e3e3"
FAINT = "#b9c3cf"


@dataclass(frozen=True)
class Line:
    label: str
    values: Sequence[float | None]
    colour: str
    width: float = 1.8
    legend: bool = True


@dataclass(frozen=True)
class Limit:
    value: float
    label: str


def nice_step(span: float, ticks: int = 5) -> float:
    """A round step (1, 2 or 5 × 10^k) giving about `ticks` intervals over `span`."""
    if span <= 0 or not math.isfinite(span):
        return 1.0
    raw = span / ticks
    power = 10 ** math.floor(math.log10(raw))
    for factor in (1, 2, 5, 10):
        if factor * power >= raw:
            return factor * power
    return 10 * power


def _ticks(top: float, step: float) -> list[float]:
    """0, step, 2·step, … up to `top`."""
    return [i * step for i in range(int(top / step + 1e-9) + 1)]


def _fmt(value: float) -> str:
    return f"{value:,.0f}" if abs(value) >= 100 or value == int(value) else f"{value:,.3g}"


def line_chart(
    title: str,
    unit: str,
    xs: Sequence[float],
    lines: Sequence[Line],
    *,
    limits: Sequence[Limit] = (),
    ramp_until: float | None = None,
    ramp_label: str = "ramp-up",
) -> str:
    """An SVG line chart over time (s); None values break a line; the time up to
    `ramp_until` is shaded and named `ramp_label`."""
    values = [v for line in lines for v in line.values if v is not None and math.isfinite(v)]
    top = max([*values, *(limit.value for limit in limits), 0.0])
    step = nice_step(top * 1.1 or 1.0)
    y_max = step * math.ceil((top * 1.1 or 1.0) / step)
    x_max = max(xs, default=1.0) or 1.0
    plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM

    def px(x: float) -> float:
        return LEFT + x / x_max * plot_w

    def py(y: float) -> float:
        return TOP + plot_h - y / y_max * plot_h

    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {WIDTH} {HEIGHT}" '
        f'width="{WIDTH}" height="{HEIGHT}" role="img" aria-label="{html.escape(title)}">',
        f'<text x="{LEFT}" y="18" class="title">{html.escape(title)}</text>',
    ]
    if ramp_until:
        width = px(min(ramp_until, x_max)) - LEFT
        parts.append(
            f'<rect x="{LEFT}" y="{TOP}" width="{width:.1f}" height="{plot_h}" fill="#f4f4f4"/>'
            f'<text x="{LEFT + 4}" y="{TOP + 12}" class="note">{html.escape(ramp_label)}</text>'
        )
    parts += [
        f'<line x1="{LEFT}" x2="{WIDTH - RIGHT}" y1="{py(t):.1f}" y2="{py(t):.1f}" stroke="{GRID}"/>'
        f'<text x="{LEFT - 6}" y="{py(t) + 4:.1f}" class="axis" text-anchor="end">{_fmt(t)}</text>'
        for t in _ticks(y_max, step)
    ]
    parts += [
        f'<text x="{px(t):.1f}" y="{HEIGHT - BOTTOM + 16}" class="axis" '
        f'text-anchor="middle">{_fmt(t)}</text>'
        for t in _ticks(x_max, nice_step(x_max, 8))
    ]
    parts.append(
        f'<text x="{WIDTH - RIGHT}" y="{HEIGHT - 4}" class="axis" text-anchor="end">'
        f"seconds · {html.escape(unit)}</text>"
    )
    for limit in limits:
        y = py(limit.value)
        parts.append(
            f'<line x1="{LEFT}" x2="{WIDTH - RIGHT}" y1="{y:.1f}" y2="{y:.1f}" '
            f'stroke="#444" stroke-dasharray="6 4"/>'
            f'<text x="{WIDTH - RIGHT - 4}" y="{y - 4:.1f}" class="note" text-anchor="end">'
            f"{html.escape(limit.label)}</text>"
        )
    for line in lines:
        for run in _runs(xs, line.values):
            points = " ".join(f"{px(x):.1f},{py(y):.1f}" for x, y in run)
            if len(run) == 1:
                x, y = run[0]
                parts.append(
                    f'<circle cx="{px(x):.1f}" cy="{py(y):.1f}" r="2" fill="{line.colour}"/>'
                )
            else:
                parts.append(
                    f'<polyline points="{points}" fill="none" stroke="{line.colour}" '
                    f'stroke-width="{line.width}"/>'
                )
    legend_x = LEFT
    for line in (line for line in lines if line.legend):
        parts.append(
            f'<rect x="{legend_x}" y="25" width="10" height="10" fill="{line.colour}"/>'
            f'<text x="{legend_x + 14}" y="34" class="axis">{html.escape(line.label)}</text>'
        )
        legend_x += 20 + 7 * len(line.label)
    parts.append(
        f'<line x1="{LEFT}" x2="{LEFT}" y1="{TOP}" y2="{TOP + plot_h}" stroke="#888"/>'
        f'<line x1="{LEFT}" x2="{WIDTH - RIGHT}" y1="{TOP + plot_h}" y2="{TOP + plot_h}" '
        f'stroke="#888"/></svg>'
    )
    return "".join(parts)


def _runs(xs: Sequence[float], ys: Sequence[float | None]) -> list[list[tuple[float, float]]]:
    """The stretches of consecutive known values, as (x, y) points."""
    runs: list[list[tuple[float, float]]] = [[]]
    for x, y in zip(xs, ys, strict=True):
        if y is None or not math.isfinite(y):
            if runs[-1]:
                runs.append([])
        else:
            runs[-1].append((x, y))
    return [run for run in runs if run]


# --- the page --------------------------------------------------------------------------------


def _cell(value: Any) -> str:
    if value is None:
        return '<td class="none">—</td>'
    if isinstance(value, float):
        return f"<td>{value:,.3g}</td>" if abs(value) < 1000 else f"<td>{value:,.0f}</td>"
    return f"<td>{html.escape(str(value))}</td>"


def _table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    head = "".join(f"<th>{html.escape(h)}</th>" for h in headers)
    body = "".join("<tr>" + "".join(_cell(v) for v in row) + "</tr>" for row in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def verdict_table(report: dict[str, Any]) -> str:
    rows = []
    for v in report["verdicts"]:
        state = {True: "met", False: "missed", None: "unknown"}[v["ok"]]
        if v["kind"] == "information":
            state = "info"
        rows.append(
            f'<tr class="{state}"><td>{html.escape(v["kind"])}</td>'
            f"<td><b>{state}</b></td><td>{html.escape(v['name'])}</td>"
            f"{_cell(_with_unit(v))}<td>{html.escape(v['limit'])}</td></tr>"
        )
    head = "<tr><th>kind</th><th>verdict</th><th>what</th><th>measured</th><th>limit</th></tr>"
    return f'<table class="verdicts"><thead>{head}</thead><tbody>{"".join(rows)}</tbody></table>'


def _with_unit(verdict: dict[str, Any]) -> str | None:
    measured = verdict["measured"]
    if measured is None:
        return None
    text = f"{measured:,}" if isinstance(measured, int | float) else str(measured)
    return f"{text} {verdict.get('unit', '')}".strip()


def figure_tables(report: dict[str, Any]) -> str:
    latency = report["latency_ms_by_scenario"]
    traffic = report["traffic"]
    names = list(traffic)
    scenario_rows = [
        [
            name,
            traffic[name]["visitors"],
            latency[name]["p50"],
            latency[name]["p99"],
            latency[name]["max"],
            traffic[name]["frames_per_s_per_visitor"],
            traffic[name]["kbit_s_per_visitor"],
            traffic[name]["kbit_s_worst_visitor"],
            traffic[name]["rows_per_frame"],
            traffic[name]["bodies_per_frame"],
        ]
        for name in names
    ]
    every = report["latency_ms"]
    scenario_rows.append(["all", report["run"]["joined"], every["p50"], every["p99"], every["max"]])
    scenario_rows[-1] += [None] * 5
    zones, migrations, errors = report["zones"], report["migrations"], report["errors"]
    cpu = report["cpu_cores"]
    ack = migrations["intent_to_ack_ms"]
    handoff = migrations["visitor_handoff_ms"]
    other_rows = [
        ["zones reported by the summaries", zones["reported"]],
        ["peak entities in one zone (authority slots)", zones["peak_entities"]],
        ["fullest zone", zones["peak_zone"]],
        ["least headroom seen, %", zones["min_headroom_pct"]],
        ["peak visitors in one zone", zones["peak_visitors_per_zone"]],
        ["peak entities in one zone counting 56 a visitor", zones["peak_entities_counting_bones"]],
        ["peak entities in flight in one zone", zones["peak_in_flight"]],
        ["most subscribers to one zone's rows", zones["peak_subscribers"]],
        ["zone step p99, worst zone, ms", zones["zone_step_p99_ms_max"]],
        ["migrations per second, mean / peak", _pair(migrations, "per_s_mean", "per_s_peak")],
        ["migrations counted by the zones", migrations["count"]],
        ["intent → ack p50 (median over windows), ms", ack["p50"]],
        ["intent → ack p99 (max over windows), ms", ack["p99"]],
        ["zone changes seen by visitors", migrations["visitor_zone_changes"]],
        ["booth entered → zone changed p50 / p99, ms", _pair(handoff, "p50", "p99")],
        ["tick overruns, whole run / steady window", _pair(report["overruns"], "total", "steady")],
        ["degraded zone windows", zones["degraded_windows"]],
        ["zone summaries by health", json.dumps(zones["health_windows"])],
        ["failed joins", errors["join_failures"]],
        [
            "join request to welcome p50 / p99, ms: everyone live",
            _pair(report["join_ms"]["live"], "p50", "p99"),
        ],
        [
            "join request to welcome p50 / p99, ms: ramp-up",
            _pair(report["join_ms"]["ramp_up"], "p50", "p99"),
        ],
        ["disconnects by the server during the run", errors["disconnects"]],
        ["leaves at the end not answered with 1000", errors["leave_failures"]],
        ["error frames", json.dumps(errors["error_frames"]) if errors["error_frames"] else 0],
        [
            "harness event loop lag, median / max of each second's worst, ms",
            _pair(report["harness_loop_lag_ms"], "median", "max"),
        ],
    ]
    for key, figures in cpu.items():
        text = (
            None
            if figures is None
            else f"{figures['mean_cores']} mean, {figures['peak_cores']} peak"
        )
        other_rows.append([f"CPU cores: {key}", text])
    for key in ("web", "harness"):
        per_frame = report[f"{key}_cpu_per_frame"]["us_per_frame"]
        system = report[f"{key}_cpu_per_frame"].get("system_us_per_frame")
        if per_frame is not None and system is not None:
            per_frame = f"{per_frame} ({system} of it in the kernel)"
        other_rows.append([f"CPU µs per frame delivered: {key}", per_frame])
    for entry in errors["join_errors"]:
        other_rows.append([f"join error ({entry['visitors']} visitors)", entry["error"]])
    return (
        decisions_table(report)
        + "<h2>Per scenario (steady window)</h2>"
        + _table(
            [
                "scenario",
                "visitors",
                "p50 ms",
                "p99 ms",
                "max ms",
                "frames/s each",
                "kbit/s each",
                "kbit/s worst",
                "rows/frame",
                "bodies/frame",
            ],
            scenario_rows,
        )
        + "<h2>Market</h2>"
        + _table(["figure", "value"], other_rows)
        + repartitions_table(report)
    )


def repartitions_table(report: dict[str, Any]) -> str:
    """The zones' splits and merges over the run ("" for a market that had none and no
    spare zone to have them with)."""
    if not _splitting(report):
        return ""
    figures = report["repartitions"]
    changes = figures["changes"]
    if not changes:
        return "<h2>Splits and merges</h2><p>No zone split or merged during the run.</p>"
    rows = [
        [
            c["t_s"],
            c["kind"],
            c["phase"],
            c["booth"],
            f"zone {c['source']} → zone {c['target']}",
            c["version"],
            c["took_s"],
        ]
        for c in changes
    ]
    return (
        "<h2>Splits and merges</h2>"
        + f"<p>{figures['splits']} splits, {figures['merges']} merges; at most"
        + f" {figures['zones_serving_max']} zones served the market at once.</p>"
        + _table(
            ["at, s", "change", "phase", "booth", "codes handed", "map version", "took, s"],
            rows,
        )
    )


def _splitting(report: dict[str, Any]) -> bool:
    """Whether the run's market could split (it had spare zones) or did."""
    spares = (report["run"].get("server") or {}).get("spare_zones")
    return bool(spares or report["repartitions"]["changes"])


def decisions_table(report: dict[str, Any]) -> str:
    """The NPC decision figures of a run with contributor agents ("" without)."""
    d = report.get("npc_decisions")
    if d is None:
        return ""
    fleet = d["fleet"]
    counts = fleet["counts"]
    head = (
        f"{fleet['contributors']} contributors (utility policy) in {fleet['processes']}"
        f" processes, capacity {fleet['capacity_each']} each"
    )
    if not d["measured"]:
        errors = "; ".join(fleet["errors"]) or "no answer from the dispatcher"
        return (
            "<h2>NPC decisions (contributor agents)</h2>"
            f"<p>{html.escape(head)}: not measured ({html.escape(errors)})</p>"
        )
    window = d["window_s"]
    per = d["per_contributor_per_s"]
    rows = [
        ["dispatcher figures from … to, s since the start", f"{window[0]:g} to {window[1]:g}"],
        ["decisions dispatched and validated a second", d["decided_per_s"]],
        ["requests resolved a second (demand)", d["requests_per_s"]],
        ["fallback share (requests the zones decided themselves)", d["fallback_share"]],
        ["server time per answer p50 / p99, ms", _pair(d["server_answer_ms"], "p50", "p99")],
        ["wait in the hub before the first send p50 / p99, ms", _pair(d["hub_wait_ms"], "p50", "p99")],
        ["decision latency p50 / p95, ms", _pair(d["latency_ms"], "p50", "p95")],
        ["capacity declared / decisions in flight (mean)", _pair(d, "capacity_declared", "in_flight_mean")],
        ["capacity against demand, ×", d["capacity_ratio"]],
        ["contributors connected at the end", d["contributors_connected"]],
        ["valid decisions a second per contributor, least / most", None if per is None else f"{per[0]} / {per[1]}"],
        ["contributors' CPU per decision, ms", d.get("contributors_cpu_ms_per_decision")],
        ["contributors' counts: requests / answered / applied / refused",
         f"{counts['requests']} / {counts['answered']} / {counts['applied']} / {counts['refused']}"],
    ]  # fmt: skip
    failover = d.get("failover")
    if failover is not None:
        after = failover.get("after") or {}
        rows += [
            [f"failover: contributors killed ({failover['killed']}) at, s", failover["killed_at_s"]],
            ["failover: dropped by the dispatcher after, s", failover.get("detected_s")],
            ["failover: their requests out to others after that, s", failover.get("reassigned_s")],
            ["after the failover: decisions a second / fallback share",
             _pair(after, "decided_per_s", "fallback_share") if after else None],
        ]  # fmt: skip
    return (
        "<h2>NPC decisions (contributor agents, steady window)</h2>"
        f"<p>{html.escape(head)}</p>" + _table(["figure", "value"], rows)
    )


def _pair(source: dict[str, Any], first: str, second: str) -> str | None:
    a, b = source.get(first), source.get(second)
    if a is None and b is None:
        return None
    return f"{'—' if a is None else a} / {'—' if b is None else b}"


Spec = tuple[str, str, list[Line], list[Limit]]  # title, unit, lines, limits of one chart


def chart_svgs(report: dict[str, Any]) -> list[tuple[str, str]]:
    """(file name, SVG) of every chart over time, in reading order."""
    s = report["series"]
    xs = s["t_s"]
    ramp = next((t for t, steady in zip(xs, s["steady"], strict=True) if steady), None)
    ramp_until = (ramp - 1.0) if ramp else None
    by_scenario = [
        Line(name, values, PALETTE[(i + 2) % len(PALETTE)], width=1.2)
        for i, (name, values) in enumerate(s["kbit_s_per_visitor_by_scenario"].items())
    ]
    zone_lines = [
        Line(f"zone {z}", values, FAINT, width=0.8, legend=False)
        for z, values in s["entities_per_zone"].items()
    ]
    cpu_lines = [
        Line(key, values, PALETTE[i % len(PALETTE)])
        for i, (key, values) in enumerate(s["cpu_cores"].items())
        if any(v is not None for v in values)
    ]
    headroom_line = ZONE_CAPACITY * (1 - MIN_HEADROOM_PCT / 100)

    def one(title: str, unit: str, key: str, colour: str, *limits: Limit) -> Spec:
        return title, unit, [Line(key.replace("_", " "), s[key], colour)], list(limits)

    specs: list[Spec] = [
        one("Visitors connected", "visitors", "connected", PALETTE[0]),
        (
            "Tick → client latency per second",
            "ms",
            [
                Line("p50", s["latency_p50_ms"], PALETTE[0]),
                Line("p99", s["latency_p99_ms"], PALETTE[1]),
                Line("max", s["latency_max_ms"], FAINT, width=1.0),
            ],
            [Limit(TARGET_P99_MS, f"target p99 {TARGET_P99_MS:g} ms")],
        ),
        one("Frames per second, all visitors", "frames/s", "frames_per_s", PALETTE[0]),
        (
            "Bandwidth per visitor",
            "kbit/s",
            [Line("all visitors", s["kbit_s_per_visitor"], PALETTE[0]), *by_scenario],
            [Limit(TARGET_KBIT_S, f"target {TARGET_KBIT_S:g} kbit/s")],
        ),
        (
            "Entities per zone (grey: each zone)",
            "authority slots",
            [*zone_lines, Line("fullest zone", s["entities_max"], PALETTE[1])],
            [
                Limit(ZONE_CAPACITY, f"capacity {ZONE_CAPACITY}"),
                Limit(headroom_line, f"{MIN_HEADROOM_PCT:g} % headroom"),
            ],
        ),
        one(
            "Least headroom of any zone",
            "%",
            "min_headroom_pct",
            PALETTE[2],
            Limit(MIN_HEADROOM_PCT, f"pass line {MIN_HEADROOM_PCT:g} %"),
        ),
        one(
            "Migrations per second (zone summaries)", "migrations/s", "migrations_per_s", PALETTE[4]
        ),
        (
            "Tick overruns since the start, and zones degraded",
            "count",
            [
                Line("overruns", s["overruns"], PALETTE[1]),
                Line("degraded zones", s["degraded_zones"], PALETTE[3]),
            ],
            [],
        ),
        ("CPU", "cores", cpu_lines, []),
        one("Harness event loop: worst late wake-up each second", "ms", "loop_lag_ms", PALETTE[5]),
    ]
    if _splitting(report):
        specs.append(
            one(
                "Zones serving the market (splits add one, merges take one)",
                "zones",
                "zones_serving",
                PALETTE[2],
            )
        )
    decisions = s.get("npc_decisions")
    if decisions is not None:
        specs.append(
            (
                "NPC decisions per second (contributor agents)",
                "decisions/s",
                [
                    Line("dispatched and validated", decisions["decided_per_s"], PALETTE[0]),
                    Line(
                        "decided by the zones (fallback)", decisions["fallback_per_s"], PALETTE[1]
                    ),
                ],
                [Limit(TARGET_DECISIONS_PER_S, f"target {TARGET_DECISIONS_PER_S:g}/s")],
            )
        )
    return [
        (
            f"{i:02d}-{_slug(title)}.svg",
            line_chart(title, unit, xs, lines, limits=limits, ramp_until=ramp_until),
        )
        for i, (title, unit, lines, limits) in enumerate(specs, start=1)
    ]


def _slug(title: str) -> str:
    words = "".join(c if c.isalnum() else " " for c in title.lower()).split()
    return "-".join(words[:5])


def charts(report: dict[str, Any]) -> str:
    """Every chart over time, in reading order, as HTML figures."""
    return "".join(f"<figure>{svg}</figure>" for _, svg in chart_svgs(report))


STYLE = """
body { font: 14px/1.4 system-ui, sans-serif; margin: 24px auto; max-width: 980px; color: #222; }
h1 { font-size: 22px; } h2 { font-size: 17px; margin-top: 28px; }
table { border-collapse: collapse; margin: 8px 0; }
th, td { border: 1px solid #ddd; padding: 4px 8px; text-align: left; }
th { background: #f6f6f6; } td.none { color: #999; }
tr.met td:nth-child(2) { color: #17803d; } tr.missed td:nth-child(2) { color: #c0262d; }
tr.unknown td:nth-child(2), tr.info td:nth-child(2) { color: #777; }
figure { margin: 16px 0; }
svg .title { font-size: 14px; font-weight: 600; } svg .axis { font-size: 11px; fill: #555; }
svg .note { font-size: 11px; fill: #444; }
p.run { color: #555; }
"""


def report_html(report: dict[str, Any]) -> str:
    """The whole page."""
    run = report["run"]
    server = run.get("server") or {}
    described = ", ".join(f"{k} {v}" for k, v in server.items() if v is not None)
    intro = (
        f"{run['joined']} of {run['visitors']} visitors joined, scenario {run['scenario']},"
        f" {run['booths']} booths, {run['steady_s']} s measured after a"
        f" {run['ramp_up_s']:g} s ramp-up; started {run['started_at']}; {run['url']}"
        + (f"; server: {described}" if described else "")
    )
    return (
        "<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>"
        "<title>Load run report</title>"
        f"<style>{STYLE}</style></head><body>"
        "<h1>Load run report</h1>"
        f'<p class="run">{html.escape(intro)}</p>'
        "<h2>Verdicts</h2>"
        f"{verdict_table(report)}"
        f"{figure_tables(report)}"
        "<h2>Over time</h2>"
        f"{charts(report)}"
        "</body></html>"
    )
