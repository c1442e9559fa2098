// The operator dashboard: wires the feed to the two views and the panel (docs/dashboard.md).

import { generate } from "../mapgen/mapgen.js";
import { BoothLabels, boothGeometry } from "./booths.js";
import { DOT_MIGRATING, DOT_VISITOR, connectFeed } from "./feed.js";
import { Hud } from "./hud.js";
import { NpcPanel, NpcStatus, legendEntries, npcColour, statusFields, NEEDS, STATES } from "./npcs.js";
import { OrbitView } from "./orbit.js";
import { OrbitAssets } from "./orbit_assets.js";
import { TopDown } from "./topdown.js";
import { RepartitionPanel } from "./zones.js";

const STALE_AFTER_MS = 2000;

const root = document.getElementById("dashboard");
const banner = document.getElementById("banner");
const empty = document.getElementById("empty");
const feedStatus = document.getElementById("feed-status");
const modeName = document.getElementById("mode-name");
const selection = document.getElementById("selection");
const hudElement = document.getElementById("hud");
const labels = new BoothLabels(document.getElementById("labels"));
const hud = new Hud({
  body: document.getElementById("zones-body"),
  totals: document.getElementById("totals"),
  legend: document.getElementById("chart-legend"),
  chartNote: document.getElementById("chart-note"),
  entitiesChart: document.getElementById("chart-entities"),
  tickChart: document.getElementById("chart-tick"),
});

const repartitions = new RepartitionPanel({
  section: document.getElementById("repartitions"),
  list: document.getElementById("repartitions-list"),
  none: document.getElementById("repartitions-none"),
});
const showRepartitions = () => repartitions.render(hud.booths, hud.spares);
hud.onRegroup = showRepartitions;

const npcStatus = new NpcStatus();
const npcPanel = new NpcPanel({
  contributors: document.getElementById("npc-contributors"),
  summary: document.getElementById("npc-summary"),
  bans: document.getElementById("npc-bans"),
  bansNone: document.getElementById("npc-bans-none"),
  activeChart: document.getElementById("chart-npcs-active"),
  decisionsChart: document.getElementById("chart-npcs-decisions"),
  latencyChart: document.getElementById("chart-npcs-latency"),
  ratesChart: document.getElementById("chart-npcs-rates"),
});
const npcByButton = document.getElementById("npc-by");
const npcLegend = document.getElementById("npc-legend");
const npcCounts = document.getElementById("npc-counts");
let npcBy = "need"; // what an NPC's colour on the map says: "need" or "state"

let mode = "topdown";
let live = false;
let lastFrame = null;
let lastFrameAt = 0;
let marker = null; // {x, z} placed on the floor, or {id, x, z} following an entity

const reservedRight = () => hudElement.offsetWidth + 24;
const topdown = new TopDown(document.getElementById("topdown"), labels, reservedRight, pick);
topdown.npcColour = (id) => npcColour(npcStatus.get(id), npcBy);
topdown.boothOf = (zone) => hud.boothIndexOf(zone);

function showNpcBy(by) {
  npcBy = by;
  npcByButton.dataset.by = by;
  npcByButton.textContent = by === "need" ? "most urgent need" : "state";
  npcLegend.replaceChildren(
    ...legendEntries(by).map((entry) => {
      const item = document.createElement("li");
      item.dataset.name = entry.name;
      const swatch = document.createElement("span");
      swatch.className = "swatch npc-swatch";
      swatch.style.background = entry.colour;
      item.append(swatch, entry.name);
      return item;
    }),
  );
}
showNpcBy(npcBy);
npcByButton.addEventListener("click", () => showNpcBy(npcBy === "need" ? "state" : "need"));

function statusUpdate(frame) {
  npcStatus.update(frame);
  const c = npcStatus.counts();
  npcCounts.textContent =
    STATES.map((name, i) => `${c.states[i]} ${name}`).join(" · ") +
    ` — lowest: ` +
    NEEDS.map((name, i) => `${name} ${c.needs[i]}`).join(", ") +
    ` — ${c.critical} under 25`;
  follow(lastFrame);
}
const orbit = new OrbitView(document.getElementById("orbit"), labels, reservedRight);
orbit.boothOf = (zone) => hud.boothIndexOf(zone);
const orbitAssets = new OrbitAssets(orbit, JSON.parse(root.dataset.furnishedZones || "[]"));

// A generated market's layout, made here from its map config by the same generator the
// server ran (static/mapgen/, docs/mapgen.md), and drawn by both views.
const mapConfig = document.getElementById("market-map-config");
const layout = mapConfig ? generate(JSON.parse(mapConfig.textContent)) : null;
if (layout) {
  topdown.layout = layout;
  orbit.setLayout(layout);
}

function showBanner(text) {
  banner.textContent = text || "";
  banner.hidden = !text;
}

function pick(target) {
  if (target.id !== undefined) {
    marker = { id: target.id, x: 0, z: 0, lost: false };
    follow(lastFrame);
  } else {
    marker = { x: target.x, z: target.z };
    selection.textContent = `Marker at x ${target.x.toFixed(1)} m, z ${target.z.toFixed(1)} m.`;
  }
  topdown.marker = orbit.marker = marker;
}

// The marker follows its entity's authoritative position in every frame.
function follow(frame) {
  if (!marker || marker.id === undefined || !frame) return;
  const i = frame.ids.indexOf(marker.id);
  if (i < 0) {
    if (!marker.lost) selection.textContent = `Entity ${marker.id} has left the market.`;
    marker.lost = true;
    return;
  }
  marker.x = frame.x[i];
  marker.z = frame.z[i];
  marker.lost = false;
  const zone = frame.zone[i];
  const booth = hud.boothServedBy(zone);
  const own = booth && hud.boothIndexOf(zone) === zone; // the booth's own zone, not a spare
  let what = "Visitor";
  if (!(frame.kind[i] & DOT_VISITOR)) {
    const status = npcStatus.get(marker.id);
    const f = status === undefined ? null : statusFields(status);
    what = f ? `NPC (${STATES[f.state]}, ${NEEDS[f.need]} lowest${f.leased ? ", awaiting a decision" : ""})` : "NPC";
  }
  selection.textContent =
    `${what} ${marker.id} in ${booth ? booth.name : "zone " + zone}${booth && !own ? ` (zone ${zone})` : ""}` +
    ` at x ${marker.x.toFixed(1)} m, z ${marker.z.toFixed(1)} m` +
    (frame.kind[i] & DOT_MIGRATING ? ", being handed over" : "") +
    ".";
}

function overview(frame) {
  lastFrame = frame;
  lastFrameAt = Date.now();
  topdown.frame = orbit.frame = frame;
  follow(frame);
  let visitors = 0;
  let migrating = 0;
  for (let i = 0; i < frame.count; i += 1) {
    if (frame.kind[i] & DOT_VISITOR) visitors += 1;
    if (frame.kind[i] & DOT_MIGRATING) migrating += 1;
  }
  hud.counts(visitors, frame.count - visitors, migrating);
  npcPanel.active(frame.count - visitors);
  empty.hidden = frame.count !== 0;
  if (live && !banner.hidden && banner.dataset.kind === "stale") showBanner("");
}

function hello(message) {
  const geometry = boothGeometry(message);
  labels.build(geometry);
  hud.setLayout(message);
  showRepartitions();
  topdown.setGeometry(geometry);
  orbit.setGeometry(geometry);
  orbitAssets.load(message.market);
}

function state(name, detail) {
  live = name === "live";
  feedStatus.className = `feed-status ${name}`;
  banner.dataset.kind = name;
  if (name === "connecting") {
    feedStatus.textContent = "Connecting…";
  } else if (name === "live") {
    feedStatus.textContent = "Live";
    showBanner("");
  } else if (name === "reconnecting") {
    feedStatus.textContent = "Reconnecting…";
    showBanner(`Reconnecting: ${detail}`);
  } else if (name === "refused") {
    feedStatus.textContent = "Refused";
    showBanner(detail);
  }
}

function toggle() {
  if (mode === "topdown") {
    topdown.deactivate();
    orbit.activate();
    mode = "orbit";
    if (orbit.failure) showBanner(orbit.failure);
  } else {
    orbit.deactivate();
    topdown.activate();
    mode = "topdown";
    if (orbit.failure) showBanner("");
  }
  root.dataset.mode = mode;
  modeName.textContent = mode === "orbit" ? "Orbit" : "Top-down";
}

document.addEventListener("keydown", function (event) {
  const typing = event.target instanceof HTMLInputElement || event.target instanceof HTMLTextAreaElement;
  if (typing || event.altKey || event.ctrlKey || event.metaKey) return;
  if (event.key === "Tab" && !event.shiftKey) {
    event.preventDefault();
    if (!event.repeat) toggle();
  } else if (event.key === "n" || event.key === "N") {
    showNpcBy(npcBy === "need" ? "state" : "need");
  } else if (event.key === "Home") {
    event.preventDefault();
    if (mode === "topdown") topdown.fit();
    else if (orbit.renderer) orbit.home();
  }
});

window.addEventListener("resize", () => topdown.fit());

window.setInterval(function () {
  if (live && lastFrameAt && Date.now() - lastFrameAt > STALE_AFTER_MS) {
    const seconds = Math.round((Date.now() - lastFrameAt) / 1000);
    showBanner(`No frames from the zones for ${seconds} s: are the zone workers running?`);
    banner.dataset.kind = "stale";
  }
}, 1000);

function frameLoop(nowMs) {
  if (mode === "topdown") topdown.render(nowMs);
  else orbit.render(nowMs);
  window.requestAnimationFrame(frameLoop);
}
window.requestAnimationFrame(frameLoop);

connectFeed(root.dataset.socketPath, {
  hello: hello,
  summary: (s) => hud.summary(s),
  overview: overview,
  npcStatus: statusUpdate,
  npcs: (report) => npcPanel.figures(report),
  bans: (bans) => npcPanel.setBans(bans),
  ban: (ban) => npcPanel.ban(ban),
  repartitions: (changes) => {
    repartitions.reset(changes);
    showRepartitions();
  },
  repartition: (change) => {
    repartitions.add(change, Date.now());
    showRepartitions();
  },
  state: state,
});

// For the page's own tests: what is showing, without reading pixels.
window.fabricDashboard = {
  get mode() {
    return mode;
  },
  get frame() {
    return lastFrame;
  },
  get marker() {
    return marker;
  },
  zones: hud.zones,
  charts: hud.charts,
  // the zones under each booth and the idle spares, as the table shows them (zones.js)
  get zoneGroups() {
    return hud.groups;
  },
  // the splits and merges in the timeline, newest first
  get repartitions() {
    return repartitions.model.entries;
  },
  npcCharts: npcPanel.charts,
  get npcReport() {
    return npcPanel.report;
  },
  get npcBy() {
    return npcBy;
  },
  // the status byte of NPC `id` (a BigInt) from the status frames, or undefined
  npcStatus(id) {
    return npcStatus.get(id);
  },
  // the colour the top-down view draws NPC `id` in
  npcColour(id) {
    return npcColour(npcStatus.get(id), npcBy);
  },
  get geometry() {
    return topdown.geometry;
  },
  layout: layout,
  // boxes the orbit view stands on the floor for the generated layout (0 before it is built)
  get orbitBoxes() {
    return orbit.layoutGroup ? orbit.layoutGroup.children.length : 0;
  },
  // where world point (x, z) is drawn in the top-down view, in page pixels
  screenAt(x, z) {
    const [px, py] = topdown.toScreen(x, z);
    const box = topdown.canvas.getBoundingClientRect();
    return [box.left + px, box.top + py];
  },
  // where entity `i` of the newest frame is drawn in the top-down view, in page pixels
  screenOf(i) {
    return this.screenAt(lastFrame.x[i], lastFrame.z[i]);
  },
  // the zone whose floor is under page pixel (px, py) in the top-down view, or -1
  zoneAt(px, py) {
    const box = topdown.canvas.getBoundingClientRect();
    return topdown.zoneAt(px - box.left, py - box.top);
  },
};
