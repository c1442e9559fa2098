// NPCs and their contributors on the dashboard (docs/dashboard.md, "NPCs and contributors"):
// each NPC's status from the zone workers' status frames (feed.js parses them), the
// colour the map draws it in, and the panel of contributors with its charts, fed by the
// dispatcher's `npc_decisions` reports and `contributor_banned` events.

import { HISTORY_MS, chartModel, drawChart } from "./charts.js";

const STATUS_KEPT_MS = 10000; // an NPC no worker reported for this long is gone
// The bans the panel lists, newest last: as many as the server's snapshot keeps
// (BANS_KEPT in market/events/projections.py).
export const BANS_KEPT = 20;

export const STATES = ["idle", "moving", "interacting"];
export const NEEDS = ["hunger", "hygiene", "fun", "energy"];
export const URGENCIES = ["content", "low", "critical"];
const STATE_COLOURS = ["#8a93a6", "#4ea1ff", "#7bd88f"];
const NEED_COLOURS = ["#ff9f43", "#3fd0e0", "#e36bd6", "#ffd93d"];
const NO_STATUS = "#0d0f13"; // an NPC no status frame has told about yet

// One status byte as its parts (bits: 0-1 state, 2-3 most urgent need, 4-5 urgency, 6 leased).
export function statusFields(status) {
  return {
    state: status & 0x3,
    need: (status >> 2) & 0x3,
    urgency: (status >> 4) & 0x3,
    leased: (status & 0x40) !== 0,
  };
}

// The colour of an NPC with `status` (or undefined: not told yet) when the map shows `by`
// ("state" or "need"); by need, a content NPC is drawn dim, a critical one bright.
export function npcColour(status, by) {
  if (status === undefined) return NO_STATUS;
  const f = statusFields(status);
  if (by === "state") return STATE_COLOURS[f.state] || NO_STATUS;
  const colour = NEED_COLOURS[f.need];
  return f.urgency === 0 ? colour + "59" : f.urgency === 1 ? colour + "b3" : colour;
}

export function legendEntries(by) {
  if (by === "state") return STATES.map((name, i) => ({ name: name, colour: STATE_COLOURS[i] }));
  return NEEDS.map((name, i) => ({ name: `${name} lowest`, colour: NEED_COLOURS[i] }));
}

// Every NPC's newest status, from the frames of all zone workers.
export class NpcStatus {
  constructor() {
    this.byId = new Map(); // id (BigInt) → {status, at}
  }

  update(frame, now = Date.now()) {
    for (let i = 0; i < frame.count; i += 1) this.byId.set(frame.ids[i], { status: frame.status[i], at: now });
    for (const [id, entry] of this.byId) if (now - entry.at > STATUS_KEPT_MS) this.byId.delete(id);
  }

  get(id) {
    const entry = this.byId.get(id);
    return entry ? entry.status : undefined;
  }

  // How many NPCs are in each state and have each need lowest.
  counts() {
    const states = [0, 0, 0];
    const needs = [0, 0, 0, 0];
    let critical = 0;
    for (const { status } of this.byId.values()) {
      const f = statusFields(status);
      states[f.state] += 1;
      needs[f.need] += 1;
      if (f.urgency === 2) critical += 1;
    }
    return { states: states, needs: needs, critical: critical };
  }
}

function percent(share) {
  return share === null || share === undefined ? "–" : `${Math.round(share * 100)} %`;
}

function ms(value) {
  return value === null || value === undefined ? "–" : value.toFixed(value >= 100 ? 0 : 1);
}

// The contributors' table, the bans and the market's NPC charts.
export class NpcPanel {
  constructor(elements) {
    this.elements = elements;
    this.report = null; // the newest npc_decisions report
    this.bans = [];
    this.history = { active: [], decisions: [], latency: [], success: [], fallback: [] };
    this.charts = {}; // name → the model last drawn (charts.js)
    this.lastActiveAt = 0;
  }

  // The dispatcher's figures (an npc_decisions event, or the snapshot's).
  figures(report) {
    if (!report) return;
    const now = Date.now();
    this.report = report;
    const push = (name, value) => {
      if (value === null || value === undefined) return;
      const series = this.history[name];
      series.push({ t: now, v: value });
      while (series.length && series[0].t < now - HISTORY_MS) series.shift();
    };
    push("decisions", report.decisions_per_min);
    push("latency", report.latency_avg_ms);
    push("success", report.success_rate === null ? null : 100 * report.success_rate);
    push("fallback", report.fallback_rate === null ? null : 100 * report.fallback_rate);
    this.renderContributors();
    this.drawCharts();
  }

  setBans(bans) {
    this.bans = (bans || []).slice(-BANS_KEPT);
    this.renderBans();
  }

  ban(ban) {
    this.bans.push(ban);
    if (this.bans.length > BANS_KEPT) this.bans.splice(0, this.bans.length - BANS_KEPT);
    this.renderBans();
  }

  // NPCs on the map, sampled once a second from the overview frames.
  active(count, now = Date.now()) {
    if (now - this.lastActiveAt < 1000) return;
    this.lastActiveAt = now;
    const series = this.history.active;
    series.push({ t: now, v: count });
    while (series.length && series[0].t < now - HISTORY_MS) series.shift();
    this.drawCharts();
  }

  renderContributors() {
    const r = this.report;
    const body = this.elements.contributors;
    const rows = (r.contributors || []).map((c) => {
      const row = document.createElement("tr");
      row.dataset.name = c.name;
      const values = [
        c.last_resort ? `${c.name} (server)` : c.name,
        String(c.held),
        String(Math.round(c.decisions_per_min)),
        ms(c.latency_p50_ms),
        ms(c.latency_p95_ms),
        percent(c.valid_share),
        percent(c.fallback_share),
      ];
      values.forEach((value) => {
        const td = document.createElement("td");
        td.textContent = value;
        row.appendChild(td);
      });
      return row;
    });
    if (!rows.length) {
      const row = document.createElement("tr");
      const td = document.createElement("td");
      td.colSpan = 7;
      td.className = "none";
      td.textContent = "No contributor connected: the zones decide for their NPCs.";
      row.appendChild(td);
      rows.push(row);
    }
    body.replaceChildren(...rows);
    this.elements.summary.textContent =
      `${r.decisions_per_min} decisions/min · avg latency ${ms(r.latency_avg_ms)} ms` +
      ` · success ${percent(r.success_rate)} · fallback ${percent(r.fallback_rate)}` +
      ` · ${r.waiting} waiting · ${r.banned} banned`;
  }

  renderBans() {
    const list = this.elements.bans;
    const items = this.bans
      .slice()
      .reverse()
      .map((ban) => {
        const li = document.createElement("li");
        li.textContent = `${ban.contributor}: ${ban.reason} (${Math.round(ban.seconds / 60)} min)`;
        return li;
      });
    list.replaceChildren(...items);
    this.elements.bansNone.hidden = items.length > 0;
  }

  drawCharts() {
    const one = (name) => new Map([[0, this.history[name].map((p) => ({ t: p.t, v: p.v }))]]);
    const white = new Map([[0, "#eef0f3"]]);
    const now = Date.now();
    const draw = (canvas, history, reference, referenceName, colours) => {
      const width = canvas.clientWidth || canvas.width;
      const height = canvas.clientHeight || canvas.height;
      const model = chartModel(history, "v", reference, now, width, height);
      drawChart(canvas, model, colours, referenceName);
      return model;
    };
    const e = this.elements;
    this.charts.active = draw(e.activeChart, one("active"), null, "", white);
    this.charts.decisions = draw(e.decisionsChart, one("decisions"), null, "", white);
    this.charts.latency = draw(e.latencyChart, one("latency"), 2000, "resent after", white);
    const rates = new Map([
      [0, this.history.success],
      [1, this.history.fallback],
    ]);
    this.charts.rates = draw(e.ratesChart, rates, 5, "fallback target", new Map([[0, "#7bd88f"], [1, "#ff9f43"]]));
  }
}
