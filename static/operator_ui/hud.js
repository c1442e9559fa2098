// The panel pinned over the map: a row per zone, the totals of the map and two small
// charts over time with their legend.

import { HISTORY_MS, chartModel, drawChart } from "./charts.js";

const LOW_HEADROOM = 0.125; // the plan's pass line: more than 12.5 % of capacity free
const SLOT_MS = 50;

function plural(count, noun) {
  return `${count} ${noun}${count === 1 ? "" : "s"}`;
}

function cell(row, className) {
  const td = document.createElement("td");
  if (className) td.className = className;
  row.appendChild(td);
  return td;
}

export class Hud {
  constructor(elements) {
    this.body = elements.body;
    this.totals = elements.totals;
    this.legend = elements.legend;
    this.entitiesChart = elements.entitiesChart;
    this.tickChart = elements.tickChart;
    this.charts = {}; // name → the model last drawn (charts.js)
    this.zones = new Map(); // zone → newest report
    this.history = new Map(); // zone → [{t, entities, p99}]
    this.rows = new Map();
    this.booths = [];
    this.capacity = 0;
  }

  setLayout(hello) {
    this.capacity = hello.capacity;
    this.booths = hello.layout.booths;
    this.body.replaceChildren();
    this.rows.clear();
    this.booths.forEach((booth) => {
      const row = document.createElement("tr");
      row.dataset.zone = String(booth.zone);
      const name = cell(row);
      const swatch = document.createElement("span");
      swatch.className = "swatch";
      swatch.style.background = booth.colour;
      name.append(swatch, booth.name);
      name.title = `${booth.name} (zone ${booth.zone})`;
      const cells = {
        entities: cell(row, "entities"),
        headroom: cell(row, "headroom"),
        tick: cell(row, "tick"),
        migrations: cell(row, "migrations"),
        subscribers: cell(row, "subscribers"),
        health: cell(row, "health-cell"),
      };
      cells.entities.textContent = "–";
      cells.health.innerHTML = '<span class="health health-unknown">waiting</span>';
      this.body.appendChild(row);
      this.rows.set(booth.zone, { row: row, cells: cells });
    });
    this.legend.replaceChildren(
      ...this.booths.map((booth) => {
        const item = document.createElement("li");
        item.dataset.zone = String(booth.zone);
        const swatch = document.createElement("span");
        swatch.className = "swatch";
        swatch.style.background = booth.colour;
        item.append(swatch, booth.name);
        return item;
      }),
    );
  }

  // A summary from a zone worker, or a health-only report from the supervisor.
  summary(summary) {
    const now = Date.now();
    summary.zones.forEach((report) => {
      const known = this.zones.get(report.zone);
      const merged = summary.health_only ? Object.assign({}, known || {}, { health: report.health }) : report;
      this.zones.set(report.zone, merged);
      if (!summary.health_only) {
        const series = this.history.get(report.zone) || [];
        series.push({ t: now, entities: report.entities, p99: report.tick_p99_ms });
        while (series.length && series[0].t < now - HISTORY_MS) series.shift();
        this.history.set(report.zone, series);
      }
      this.render(report.zone, merged, summary.tick);
    });
    this.drawCharts();
  }

  render(zone, report, tick) {
    const entry = this.rows.get(zone);
    if (!entry) return;
    const c = entry.cells;
    const health = report.health || "unknown";
    if (report.entities !== undefined) {
      const capacity = report.capacity || this.capacity;
      const headroom = capacity - report.entities;
      c.entities.textContent = `${report.entities} / ${capacity}`;
      c.entities.dataset.entities = String(report.entities);
      if (tick) c.entities.dataset.tick = String(tick);
      c.headroom.textContent = `${headroom} (${Math.round((100 * headroom) / capacity)} %)`;
      entry.row.classList.toggle("low-headroom", headroom / capacity <= LOW_HEADROOM);
      c.tick.textContent = `${report.tick_ms.toFixed(1)} / ${report.tick_p99_ms.toFixed(1)}`;
      c.migrations.textContent = report.migrations_per_s.toFixed(1);
      c.subscribers.textContent = report.subscribers === undefined ? "–" : String(report.subscribers);
    }
    c.health.innerHTML = "";
    const pill = document.createElement("span");
    pill.className = `health health-${health}`;
    pill.textContent = health;
    c.health.appendChild(pill);
    entry.row.dataset.health = health;
  }

  // The dots of the frame the map is drawing, counted: the totals never disagree with the map
  // (the zones' own reports, which arrive at another pace, fill the table).
  counts(visitors, npcs, migrating) {
    this.totals.textContent =
      `On the map: ${plural(visitors, "visitor")} · ${plural(npcs, "NPC")}` +
      ` · ${migrating} being handed over`;
  }

  drawCharts() {
    const colours = new Map(this.booths.map((booth) => [booth.zone, booth.colour]));
    this.charts.entities = this.chart(this.entitiesChart, "entities", this.capacity, "capacity", colours);
    this.charts.tick = this.chart(this.tickChart, "p99", SLOT_MS, "slot", colours);
  }

  chart(canvas, key, reference, referenceName, colours) {
    const width = canvas.clientWidth || canvas.width;
    const height = canvas.clientHeight || canvas.height;
    const model = chartModel(this.history, key, reference, Date.now(), width, height);
    drawChart(canvas, model, colours, referenceName);
    return model;
  }
}
