// The panel's charts: one line per booth over time, a dashed reference line, a time axis.
//
// The time axis spans what the page has seen, from its first report up to the last
// HISTORY_MS, so the lines fill the chart from the first seconds instead of crawling in
// from the right edge for minutes. The value axis always reaches the reference line (the
// capacity, the tick slot): how far a booth is from its limit is what the chart is for.

export const HISTORY_MS = 5 * 60 * 1000;
const SHORTEST_SPAN_MS = 10 * 1000;
const TIME_STEPS_MS = [5e3, 10e3, 15e3, 30e3, 60e3, 120e3];
const MOST_TIME_TICKS = 6;
const AXIS_PX = 14; // the strip under the plot that holds the time labels
const TOP_PX = 4;
const HEADROOM = 1.1; // the top of the value axis, over the larger of data and reference

function timeLabel(ms) {
  if (ms === 0) return "now";
  const seconds = Math.round(ms / 1000);
  return seconds % 60 === 0 ? `−${seconds / 60} min` : `−${seconds} s`;
}

function valueLabel(value) {
  return value >= 10 ? String(Math.round(value)) : value.toFixed(1);
}

// What a chart of `history` (zone → [{t, <key>}]) shows at `now` on a `width` × `height`
// canvas: the scales, the time ticks, the reference line and each zone's points, in CSS
// pixels. Drawing and the page's tests both read it. A null `reference` draws no line.
export function chartModel(history, key, reference, now, width, height) {
  let first = now;
  let largest = 0;
  history.forEach((series) =>
    series.forEach((p) => {
      first = Math.min(first, p.t);
      largest = Math.max(largest, p[key]);
    }),
  );
  const spanMs = Math.min(HISTORY_MS, Math.max(SHORTEST_SPAN_MS, now - first));
  const top = Math.max(largest, reference ?? 0) * HEADROOM || 1;
  const plotBottom = height - AXIS_PX;
  const x = (t) => width - ((now - t) / spanMs) * width;
  const y = (v) => plotBottom - (v / top) * (plotBottom - TOP_PX);
  const step = TIME_STEPS_MS.find((s) => spanMs / s <= MOST_TIME_TICKS) || TIME_STEPS_MS.at(-1);
  const ticks = [];
  for (let ago = 0; ago <= spanMs; ago += step) ticks.push({ x: x(now - ago), label: timeLabel(ago) });
  const series = new Map();
  history.forEach((points, zone) => {
    const shown = points.filter((p) => now - p.t <= spanMs);
    series.set(
      zone,
      shown.map((p) => [x(p.t), y(p[key])]),
    );
  });
  return {
    spanMs: spanMs,
    top: top,
    topLabel: valueLabel(top),
    reference: reference,
    referenceY: reference === null ? null : y(reference),
    plotBottom: plotBottom,
    width: width,
    height: height,
    ticks: ticks,
    series: series,
  };
}

// Draw `model` on `canvas` at the screen's pixel density; `colours` maps zone → colour.
export function drawChart(canvas, model, colours, referenceName) {
  const ratio = window.devicePixelRatio || 1;
  const w = model.width;
  const h = model.height;
  if (canvas.width !== Math.round(w * ratio) || canvas.height !== Math.round(h * ratio)) {
    canvas.width = Math.round(w * ratio);
    canvas.height = Math.round(h * ratio);
  }
  const g = canvas.getContext("2d");
  g.setTransform(ratio, 0, 0, ratio, 0, 0);
  g.clearRect(0, 0, w, h);
  g.font = "10px system-ui, sans-serif";
  g.textBaseline = "alphabetic";
  // the time axis: a baseline, a tick and a label per step, "now" at the right edge
  g.strokeStyle = "rgba(238, 240, 243, 0.35)";
  g.lineWidth = 1;
  g.beginPath();
  g.moveTo(0, model.plotBottom + 0.5);
  g.lineTo(w, model.plotBottom + 0.5);
  model.ticks.forEach((tick) => {
    g.moveTo(Math.round(tick.x) - 0.5, model.plotBottom);
    g.lineTo(Math.round(tick.x) - 0.5, model.plotBottom + 3);
  });
  g.stroke();
  g.fillStyle = "rgba(238, 240, 243, 0.75)";
  model.ticks.forEach((tick) => {
    const width = g.measureText(tick.label).width;
    const left = Math.min(w - width, Math.max(0, tick.x - width / 2));
    g.fillText(tick.label, left, h - 2);
  });
  // the top of the value axis, when the data reach above the reference line
  let labelLeft = 2;
  if (model.reference === null || model.top > model.reference * HEADROOM) {
    g.fillText(model.topLabel, 2, 11);
    labelLeft += g.measureText(model.topLabel).width + 8;
  }
  // the reference line, labelled at its left end
  if (model.reference !== null) {
    g.strokeStyle = "rgba(255, 255, 255, 0.8)";
    g.setLineDash([4, 3]);
    g.beginPath();
    g.moveTo(0, Math.round(model.referenceY) + 0.5);
    g.lineTo(w, Math.round(model.referenceY) + 0.5);
    g.stroke();
    g.setLineDash([]);
    const label = `${referenceName} ${valueLabel(model.reference)}`;
    g.fillText(label, labelLeft, Math.max(10, model.referenceY - 3));
  }
  // one line per booth; a booth with a single report so far shows as a dot
  model.series.forEach((points, zone) => {
    const colour = colours.get(zone) || "#ffffff";
    g.strokeStyle = colour;
    g.fillStyle = colour;
    g.lineWidth = 1.5;
    if (points.length === 1) {
      g.beginPath();
      g.arc(points[0][0], points[0][1], 2, 0, 2 * Math.PI);
      g.fill();
      return;
    }
    g.beginPath();
    points.forEach(([px, py], i) => (i ? g.lineTo(px, py) : g.moveTo(px, py)));
    g.stroke();
  });
}
