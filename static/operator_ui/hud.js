// The panel pinned over the map: a row per booth (with a row per zone inside a booth that
// several zones serve, and the idle spare zones apart), the totals of the map and two small
// charts over time with their legend.

import { HISTORY_MS, chartModel, drawChart } from "./charts.js";
import { SPARE, SPARE_COLOUR, boothOf, hasSpareZones, zoneGroups } from "./zones.js";

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

const HEALTH_ORDER = ["ok", "unknown", "degraded", "restarting", "quarantined"];

// The worst of the zones' health: a booth is as healthy as its sickest zone.
function worstHealth(reports) {
  let worst = "ok";
  reports.forEach((report) => {
    const health = (report && report.health) || "unknown";
    if (HEALTH_ORDER.indexOf(health) > HEALTH_ORDER.indexOf(worst)) worst = health;
  });
  return worst;
}

function healthPill(td, health) {
  const pill = document.createElement("span");
  pill.className = `health health-${health}`;
  pill.textContent = health;
  td.replaceChildren(pill);
}

function swatch(colour) {
  const element = document.createElement("span");
  element.className = "swatch";
  element.style.background = colour;
  return element;
}

// A row of the table: its name cell and the figure cells, in the header's order.
function figureRow() {
  const row = document.createElement("tr");
  const name = cell(row, "name");
  const cells = {
    entities: cell(row, "entities"),
    headroom: cell(row, "headroom"),
    tick: cell(row, "tick"),
    migrations: cell(row, "migrations"),
    subscribers: cell(row, "subscribers"),
    health: cell(row, "health-cell"),
  };
  cells.entities.textContent = "–";
  healthPill(cells.health, "unknown");
  cells.health.firstChild.textContent = "waiting";
  return { row: row, name: name, cells: cells };
}

export class Hud {
  constructor(elements) {
    this.body = elements.body;
    this.totals = elements.totals;
    this.legend = elements.legend;
    this.chartNote = elements.chartNote || null;
    this.entitiesChart = elements.entitiesChart;
    this.tickChart = elements.tickChart;
    this.charts = {}; // name → the model last drawn (charts.js)
    this.zones = new Map(); // zone → newest report
    this.history = new Map(); // zone → [{t, entities, p99}]
    this.rows = new Map(); // zone → its row
    this.boothRows = new Map(); // booth → the row heading its zones, while it has several
    this.groups = null; // zoneGroups (zones.js) the table shows
    this.groupsKey = "";
    this.booths = [];
    this.capacity = 0;
    this.spares = false; // whether the market runs spare zones (zones.js hasSpareZones)
    this.onRegroup = null; // called when the zones serving the booths change
  }

  setLayout(hello) {
    this.capacity = hello.capacity;
    this.booths = hello.layout.booths;
    this.rows.clear();
    this.boothRows.clear();
    this.groupsKey = "";
    this.regroup();
    this.zones.forEach((report, zone) => this.render(zone, report));
    this.renderBooths();
  }

  // The booth zone `zone` serves now, as an index of the layout's booths, or -1.
  boothIndexOf(zone) {
    return boothOf(zone, this.zones.get(zone), this.booths.length);
  }

  // The layout's booth that zone `zone` serves now, or null for a spare serving nothing.
  boothServedBy(zone) {
    return this.booths[this.boothIndexOf(zone)] || null;
  }

  // The colour of zone `zone`'s lines: its booth's, grey for an idle spare.
  zoneColour(zone) {
    const booth = this.boothServedBy(zone);
    return booth ? booth.colour : SPARE_COLOUR;
  }

  zoneRow(zone) {
    let entry = this.rows.get(zone);
    if (!entry) {
      entry = figureRow();
      entry.row.dataset.zone = String(zone);
      this.rows.set(zone, entry);
    }
    return entry;
  }

  // Lay the table out again when the zones serving the booths changed: a booth with one
  // zone is one row, as in a market without spare zones; a booth with several heads its
  // zones' rows; spare zones serving nothing come last, apart.
  regroup() {
    const groups = zoneGroups(this.booths, this.zones);
    const key = JSON.stringify([groups.booths.map((g) => g.zones), groups.spares]);
    if (key === this.groupsKey) return false;
    this.groups = groups;
    this.groupsKey = key;
    const rows = [];
    this.boothRows.clear();
    groups.booths.forEach((group) => {
      const title = `${group.name} (zone${group.zones.length === 1 ? "" : "s"} ${group.zones.join(", ")})`;
      if (group.zones.length === 1) {
        const entry = this.zoneRow(group.zones[0]);
        entry.row.className = "";
        entry.row.dataset.booth = String(group.booth);
        entry.name.replaceChildren(swatch(group.colour), group.name);
        entry.name.title = title;
        rows.push(entry.row);
        return;
      }
      // several zones (or, for a moment, none): a row for the booth, then one per zone
      const head = figureRow();
      head.row.className = "booth-row";
      head.row.dataset.booth = String(group.booth);
      head.name.replaceChildren(swatch(group.colour), group.name);
      head.name.title = group.zones.length ? title : `${group.name} (no zone reports serving it)`;
      this.boothRows.set(group.booth, head);
      rows.push(head.row);
      group.zones.forEach((zone) => {
        const entry = this.zoneRow(zone);
        entry.row.className = "zone-row";
        entry.row.dataset.booth = String(group.booth);
        entry.name.replaceChildren(swatch(group.colour), `zone ${zone}`);
        entry.name.title = `zone ${zone}, serving part of ${group.name}`;
        rows.push(entry.row);
      });
    });
    if (groups.spares.length) {
      const head = document.createElement("tr");
      head.className = "spare-row";
      const name = cell(head, "name");
      name.textContent = "Spare zones";
      const note = cell(head, "spare-note");
      note.colSpan = 6;
      note.textContent = "idle: serving no booth until a crowded zone splits";
      rows.push(head);
      groups.spares.forEach((zone) => {
        const entry = this.zoneRow(zone);
        entry.row.className = "zone-row spare";
        entry.row.dataset.booth = String(SPARE);
        const tag = document.createElement("span");
        tag.className = "zone-tag";
        tag.textContent = "spare";
        entry.name.replaceChildren(swatch(SPARE_COLOUR), `zone ${zone} `, tag);
        entry.name.title = `zone ${zone}, a spare zone serving nothing`;
        rows.push(entry.row);
      });
    }
    this.body.replaceChildren(...rows);
    this.spares = hasSpareZones(this.booths.length, this.zones, 0);
    this.showLegend();
    if (this.onRegroup) this.onRegroup();
    return true;
  }

  // One line per booth in the legend; with spare zones, one per zone in the colour of the
  // booth it serves, and grey for the idle ones.
  showLegend() {
    const items = this.booths.map((booth, i) => {
      const item = document.createElement("li");
      item.dataset.zone = String(i);
      item.append(swatch(booth.colour), booth.name);
      return item;
    });
    if (this.spares) {
      const item = document.createElement("li");
      item.dataset.zone = "spare";
      item.append(swatch(SPARE_COLOUR), "idle spare zones");
      items.push(item);
    }
    this.legend.replaceChildren(...items);
    if (this.chartNote) {
      this.chartNote.textContent = this.spares
        ? "Since this page opened, up to the last 5 minutes; one line per zone, in the colour of the booth it serves:"
        : "Since this page opened, up to the last 5 minutes; one line per booth:";
    }
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
    });
    if (this.regroup()) this.zones.forEach((report, zone) => this.render(zone, report));
    summary.zones.forEach((report) => this.render(report.zone, this.zones.get(report.zone), summary.tick));
    this.renderBooths();
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
    healthPill(c.health, health);
    entry.row.dataset.health = health;
  }

  // The rows heading a booth's several zones: their entities and capacity added up, the
  // slowest tick, the handoffs out of any of them, the sickest health.
  renderBooths() {
    if (!this.groups) return;
    this.boothRows.forEach((head, booth) => {
      const reports = this.groups.booths[booth].zones.map((zone) => this.zones.get(zone));
      const figures = reports.filter((report) => report && report.entities !== undefined);
      const c = head.cells;
      if (figures.length) {
        const entities = figures.reduce((sum, r) => sum + r.entities, 0);
        const capacity = figures.reduce((sum, r) => sum + (r.capacity || this.capacity), 0);
        const headroom = capacity - entities;
        c.entities.textContent = `${entities} / ${capacity}`;
        c.entities.dataset.entities = String(entities);
        c.headroom.textContent = `${headroom} (${Math.round((100 * headroom) / capacity)} %)`;
        head.row.classList.toggle("low-headroom", headroom / capacity <= LOW_HEADROOM);
        const last = Math.max(...figures.map((r) => r.tick_ms));
        const p99 = Math.max(...figures.map((r) => r.tick_p99_ms));
        c.tick.textContent = `${last.toFixed(1)} / ${p99.toFixed(1)}`;
        c.migrations.textContent = figures.reduce((sum, r) => sum + r.migrations_per_s, 0).toFixed(1);
        c.subscribers.textContent = "";
      }
      const health = reports.length ? worstHealth(reports) : "unknown";
      healthPill(c.health, health);
      head.row.dataset.health = health;
    });
  }

  // The dots of the frame the map is drawing, counted: the totals never disagree with the map
  // (the zones' own reports, which arrive at another pace, fill the table).
  counts(visitors, npcs, migrating) {
    this.totals.textContent =
      `On the map: ${plural(visitors, "visitor")} · ${plural(npcs, "NPC")}` +
      ` · ${migrating} being handed over`;
  }

  drawCharts() {
    const colours = new Map();
    this.history.forEach((_, zone) => colours.set(zone, this.zoneColour(zone)));
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
