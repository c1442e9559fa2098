// The panel pinned over the map: a row per zone and two small charts over time.

const HISTORY_MS = 5 * 60 * 1000;
const LOW_HEADROOM = 0.125; // the plan's pass line: more than 12.5 % of capacity free
const SLOT_MS = 50;

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
    this.entitiesChart = elements.entitiesChart;
    this.tickChart = elements.tickChart;
    this.zones = new Map(); // zone → newest report
    this.history = new Map(); // zone → [{t, entities, p99}]
    this.rows = new Map();
    this.booths = [];
    this.capacity = 0;
    this.tick = 0;
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
  }

  // A summary from a zone worker, or a health-only report from the supervisor.
  summary(summary) {
    const now = Date.now();
    if (summary.tick) this.tick = summary.tick;
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

  // What the overview frame counts, beside what the zones report.
  counts(visitors, npcs, migrating) {
    let entities = 0;
    this.zones.forEach((report) => (entities += report.entities || 0));
    this.totals.textContent =
      `Tick ${this.tick} · ${entities} entities · ${visitors} visitors · ${npcs} NPCs` +
      ` · ${migrating} migrating`;
  }

  drawCharts() {
    this.chart(this.entitiesChart, "entities", this.capacity);
    this.chart(this.tickChart, "p99", SLOT_MS);
  }

  chart(canvas, key, line) {
    const g = canvas.getContext("2d");
    const w = canvas.width;
    const h = canvas.height;
    g.clearRect(0, 0, w, h);
    const now = Date.now();
    let top = 1;
    this.history.forEach((series) => series.forEach((p) => (top = Math.max(top, p[key]))));
    top *= 1.25;
    const y = (v) => h - 4 - (v / top) * (h - 14);
    const x = (t) => w - ((now - t) / HISTORY_MS) * w;
    g.font = "10px system-ui, sans-serif";
    g.fillStyle = "rgba(238, 240, 243, 0.7)";
    g.fillText(top >= 10 ? Math.round(top).toString() : top.toFixed(1), 2, 10);
    if (line <= top) {
      g.strokeStyle = "rgba(255, 107, 107, 0.8)";
      g.setLineDash([4, 3]);
      g.beginPath();
      g.moveTo(0, y(line));
      g.lineTo(w, y(line));
      g.stroke();
      g.setLineDash([]);
    }
    this.history.forEach((series, zone) => {
      const booth = this.booths[zone];
      g.strokeStyle = booth ? booth.colour : "#ffffff";
      g.lineWidth = 1.5;
      g.beginPath();
      series.forEach((p, i) => (i ? g.lineTo(x(p.t), y(p[key])) : g.moveTo(x(p.t), y(p[key]))));
      g.stroke();
    });
  }
}
