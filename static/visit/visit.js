// The visitor page: join, walk with the keyboard, see who is around from the interest
// frames, and see each booth's placed assets appear as you enter it.
//
// The page is a real visitor (static/visit/protocol.js): it counts in its booth, it is
// handed between zones, and a refused ticket is shown, not retried. Your key stays in this
// browser (localStorage), so the same browser is the same visitor; a guest is disposable.
// While the socket drops for another reason the page joins again as the same visitor and
// resumes its events.

import * as THREE from "three";
import { boothGeometry } from "../operator_ui/booths.js";
import { ChunkCache, assetKey } from "../assets3d/chunk_cache.js";
import { Furnisher } from "../assets3d/furnish.js";
import { floorObjects } from "../assets3d/floor3d.js";
import {
  CLOSE_REASONS,
  JoinRefused,
  ROW_BONE,
  ROW_NPC,
  ROW_VISITOR,
  VisitorSocket,
  joinTicket,
} from "./protocol.js";

const KEY_STORAGE = "fabric-visitor-key";
const WALK_M_S = 4;
const NEARBY_M = 5;
const RETRY_MS = [500, 1000, 2000, 4000, 8000];
const KEEPALIVE_MS = 1000;
const CAMERA_BACK_M = 9;
const CAMERA_UP_M = 6;

const data = JSON.parse(document.getElementById("visit-data").textContent);
const geometry = boothGeometry(data.plan);
const $ = (id) => document.getElementById(id);
const query = new URLSearchParams(location.search);

const state = {
  mode: null, // "key" or "guest"
  key: null,
  resume: null,
  position: null, // events position {offset, epoch}
  socket: null,
  entity: null,
  me: null, // my newest row
  zone: null, // authority
  booth: null, // the booth I stand in
  rows: [],
  tries: 0,
  keys: new Set(),
  assetToken: null,
  connection: "Not joined",
};

// What tests and the bench read: booth loads (time to drawn, chunks fetched and cached).
const stats = { loads: [], frames: 0, framesAt: performance.now(), socketFrames: 0 };
window.fabricVisit = { state, stats, project, fps };

const cache = new ChunkCache(() => (state.assetToken ? { Authorization: "Bearer " + state.assetToken } : {}));
const furnisher = new Furnisher(cache);
const booths = new Map(); // zone → {group, loading}

// --- the scene ---------------------------------------------------------------------------

// No multisampling: on a software renderer it costs more than the rest of the frame.
const renderer = new THREE.WebGLRenderer({ antialias: false, preserveDrawingBuffer: true });
renderer.setPixelRatio(window.devicePixelRatio || 1);
renderer.setClearColor("#1d2026");
$("scene").appendChild(renderer.domElement);
const scene = new THREE.Scene();
scene.add(new THREE.AmbientLight("#ffffff", 1.2));
const sun = new THREE.DirectionalLight("#ffffff", 1.5);
sun.position.set(30, 60, 20);
scene.add(sun);
scene.add(...floorObjects(geometry));
const camera = new THREE.PerspectiveCamera(55, 1, 0.1, 500);
const meMesh = new THREE.Mesh(new THREE.ConeGeometry(0.35, 1.8, 16), new THREE.MeshBasicMaterial({ color: "#ffd23f" }));
meMesh.visible = false;
scene.add(meMesh);
const othersGeometry = new THREE.BufferGeometry();
const others = new THREE.Points(othersGeometry, new THREE.PointsMaterial({ size: 0.6, vertexColors: true }));
others.frustumCulled = false;
scene.add(others);

function project(x, y, z) {
  const v = new THREE.Vector3(x, y, z).project(camera);
  const box = renderer.domElement.getBoundingClientRect();
  return [box.left + ((v.x + 1) / 2) * box.width, box.top + ((1 - v.y) / 2) * box.height];
}

function fps() {
  const now = performance.now();
  const rate = (stats.frames * 1000) / Math.max(1, now - stats.framesAt);
  stats.frames = 0;
  stats.framesAt = now;
  return rate;
}

const OTHERS_MAX = 128; // a frame holds at most 96 rows (docs/protocol.md)
const othersPositions = new THREE.BufferAttribute(new Float32Array(OTHERS_MAX * 3), 3);
const othersColours = new THREE.BufferAttribute(new Float32Array(OTHERS_MAX * 3), 3);
othersGeometry.setAttribute("position", othersPositions);
othersGeometry.setAttribute("color", othersColours);

function drawOthers() {
  let n = 0;
  for (const r of state.rows) {
    if (!(r.flags & (ROW_VISITOR | ROW_NPC)) || r.flags & ROW_BONE || r.id === state.entity) continue;
    if (n === OTHERS_MAX) break;
    othersPositions.array.set([r.x, r.y + 0.2, r.z], n * 3);
    othersColours.array.set(r.flags & ROW_NPC ? [0.54, 0.58, 0.65] : [1, 1, 1], n * 3);
    n += 1;
  }
  othersGeometry.setDrawRange(0, n);
  othersPositions.needsUpdate = true;
  othersColours.needsUpdate = true;
}

function frameLoop() {
  const box = $("scene");
  const size = renderer.getSize(new THREE.Vector2());
  if (size.x !== box.clientWidth || size.y !== box.clientHeight) {
    renderer.setSize(box.clientWidth, box.clientHeight);
    camera.aspect = box.clientWidth / Math.max(1, box.clientHeight);
    camera.updateProjectionMatrix();
  }
  if (state.me) {
    const { x, y, z } = state.me;
    meMesh.visible = true;
    meMesh.position.set(x, y - 0.1, z);
    camera.position.set(x, y + CAMERA_UP_M, z + CAMERA_BACK_M);
    camera.lookAt(x, y, z - 2);
  } else {
    const [cx, cz] = [(geometry.lo[0] + geometry.hi[0]) / 2, (geometry.lo[2] + geometry.hi[2]) / 2];
    camera.position.set(cx, 120, cz + 90);
    camera.lookAt(cx, 0, cz);
  }
  renderer.render(scene, camera);
  stats.frames += 1;
  requestAnimationFrame(frameLoop);
}
requestAnimationFrame(frameLoop);

// --- the HUD -----------------------------------------------------------------------------

function hud() {
  const booth = state.booth === null ? null : geometry.booths[state.booth];
  $("hud-booth").textContent = booth ? booth.name : "—";
  $("hud-swatch").style.background = booth ? booth.colour : "transparent";
  const near = state.me
    ? state.rows.filter(
        (r) =>
          (r.flags & (ROW_VISITOR | ROW_NPC)) &&
          !(r.flags & ROW_BONE) &&
          r.id !== state.entity &&
          Math.hypot(r.x - state.me.x, r.z - state.me.z) <= NEARBY_M,
      ).length
    : 0;
  $("hud-near").textContent = `${near} ${near === 1 ? "person" : "people"} nearby`;
  $("hud-connection").textContent = state.connection;
  $("hud").dataset.booth = state.booth === null ? "" : String(state.booth);
  $("hud").dataset.zone = state.zone === null ? "" : String(state.zone);
}

function connection(text, kind) {
  state.connection = text;
  $("hud").dataset.connection = kind;
  hud();
}

// --- booth assets ------------------------------------------------------------------------

async function boothLoad(zone, reason) {
  const started = performance.now();
  const before = { ...cache.stats };
  let manifest;
  try {
    // The market writes a visitor as its booth's visitor before the welcome or the
    // booth_entered that names the booth (docs/protocol.md §2): one request is enough.
    const response = await fetch(`/markets/${data.market}/zones/${zone}/assets`, {
      headers: state.assetToken ? { Authorization: "Bearer " + state.assetToken } : {},
      credentials: "omit",
    });
    if (!response.ok) {
      $("hud-assets").textContent = "This booth shares no assets with visitors.";
      stats.loads.push({ zone, reason, refused: response.status });
      return;
    }
    manifest = await response.json();
  } catch {
    $("hud-assets").textContent = "The booth's assets could not be loaded.";
    return;
  }
  // the same layout of the same bytes is already drawn: nothing to do
  const signature = manifest.layout_version + ":" + manifest.assets.map((a) => a.id + "=" + assetKey(a)).join(";");
  const old = booths.get(zone);
  if (old && old.signature === signature) return;
  const group = furnisher.booth(manifest, (asset, error) => console.warn(`${asset.name}: ${error.message}`));
  booths.set(zone, { group, signature });
  scene.add(group);
  const drawn = await group.userData.done;
  if (old) furnisher.release(old.group);
  await new Promise((resolve) => requestAnimationFrame(() => requestAnimationFrame(resolve)));
  const load = {
    zone,
    reason,
    drawn,
    ms: performance.now() - started,
    fetched: cache.stats.fetched - before.fetched,
    fromCache: cache.stats.fromCache - before.fromCache,
  };
  stats.loads.push(load);
  if (zone === state.booth) $("hud-assets").textContent = drawn ? `${drawn} placed ${drawn === 1 ? "asset" : "assets"}` : "Nothing placed here yet.";
  $("hud").dataset.assetsZone = String(zone);
}

// --- the socket --------------------------------------------------------------------------

async function join() {
  connection(state.tries ? "Reconnecting…" : "Connecting…", "connecting");
  const ask = {};
  if (state.mode === "key") ask.key = state.key;
  else if (state.resume) ask.resume = state.resume;
  if (!state.entity && query.has("booth")) ask.booth = Number(query.get("booth"));
  if (!state.entity && query.has("at")) ask.at = query.get("at").split(",").map(Number);
  let ticket;
  try {
    ticket = await joinTicket(data.market, ask);
  } catch (error) {
    if (error instanceof JoinRefused && (error.status === 0 || error.status === 429 || error.status >= 500)) {
      retry(`${error.message}; trying again`, (error.retryAfter || 1) * 1000);
      return;
    }
    if (error.code === "resume_expired") state.resume = null;
    connection(`Refused: ${error.message}`, "refused");
    return;
  }
  const socket = new VisitorSocket(ticket.ws, ticket.ticket, state.position, {
    welcome(message) {
      state.tries = 0;
      state.entity = message.entity; // a BigInt (protocol.js)
      state.zone = message.zone;
      state.booth = message.booth.zone;
      state.resume = message.resume;
      state.assetToken = message.assets.token;
      state.position = { offset: message.events.offset, epoch: message.events.epoch };
      connection(message.resumed ? "Live (resumed)" : "Live", "live");
      boothLoad(state.booth, "welcome");
    },
    event(message) {
      if (typeof message.offset === "number") state.position = { ...state.position, offset: message.offset };
      if (message.type === "booth_entered") {
        state.booth = message.zone;
        hud();
        boothLoad(message.zone, "booth_entered");
      } else if (message.type === "zone_changed") {
        state.zone = message.to;
        hud();
      } else if (message.type === "asset_changed" && message.zone === state.booth) {
        boothLoad(message.zone, "asset_changed");
      } else if (message.type === "asset_token") {
        state.assetToken = message.token;
      } else if (message.type === "resume") {
        state.resume = message.resume;
      } else if (message.type === "events_reset") {
        state.position = { offset: message.offset, epoch: message.epoch };
      } else if (message.type === "zone_health") {
        connection(message.health === "ok" ? "Live" : `Your zone is ${message.health}: ${message.reason}`, message.health === "ok" ? "live" : "outage");
      }
    },
    frame(frame) {
      stats.socketFrames += 1;
      state.rows = frame.rows;
      const mine = frame.rows.find((r) => r.id === state.entity);
      if (mine) {
        state.me = mine;
        state.zone = mine.zone;
      }
      drawOthers();
      hud();
    },
    error(message) {
      state.lastError = message;
      if (message.code !== "rate_limited") console.warn(`market: ${message.code}: ${message.message}`);
    },
    closed(code, reason) {
      if (state.socket !== socket) return;
      state.socket = null;
      if (code in CLOSE_REASONS) {
        const why = state.lastError && code === 4503 ? state.lastError.message : CLOSE_REASONS[code];
        connection(code === 1000 ? "Left the market" : `Refused: ${why}`, code === 1000 ? "left" : "refused");
        $("hud").dataset.close = String(code);
        return;
      }
      retry(`connection lost (${code}${reason ? ": " + reason : ""})`, RETRY_MS[Math.min(state.tries, RETRY_MS.length - 1)]);
    },
  });
  state.socket = socket;
}

function retry(why, delayMs) {
  state.tries += 1;
  connection(`Reconnecting: ${why}`, "connecting");
  setTimeout(join, delayMs);
}

// --- walking -----------------------------------------------------------------------------

const DIRECTIONS = {
  ArrowUp: [0, -1], KeyW: [0, -1],
  ArrowDown: [0, 1], KeyS: [0, 1],
  ArrowLeft: [-1, 0], KeyA: [-1, 0],
  ArrowRight: [1, 0], KeyD: [1, 0],
}; // prettier-ignore

function steer() {
  if (!state.socket) return;
  let vx = 0;
  let vz = 0;
  state.keys.forEach((code) => {
    vx += DIRECTIONS[code][0];
    vz += DIRECTIONS[code][1];
  });
  const length = Math.hypot(vx, vz) || 1;
  state.socket.walk((vx / length) * WALK_M_S, (vz / length) * WALK_M_S);
}

document.addEventListener("keydown", (event) => {
  if (!(event.code in DIRECTIONS) || event.target.closest("input, button")) return;
  event.preventDefault();
  if (!state.keys.has(event.code)) {
    state.keys.add(event.code);
    steer();
  }
});
document.addEventListener("keyup", (event) => {
  if (state.keys.delete(event.code)) steer();
});
window.addEventListener("blur", () => {
  state.keys.clear();
  steer();
});
setInterval(() => state.keys.size && steer(), KEEPALIVE_MS);

// --- starting ----------------------------------------------------------------------------

function start(mode) {
  state.mode = mode;
  if (mode === "key") {
    let key = localStorage.getItem(KEY_STORAGE);
    if (!key) {
      const bytes = crypto.getRandomValues(new Uint8Array(24));
      key = Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
      localStorage.setItem(KEY_STORAGE, key);
    }
    state.key = key;
  }
  $("start").hidden = true;
  $("scene").focus();
  join();
}

$("join-key").addEventListener("click", () => start("key"));
$("join-guest").addEventListener("click", () => start("guest"));
$("leave").addEventListener("click", () => state.socket && state.socket.leave());
$("join-key-note").textContent = localStorage.getItem(KEY_STORAGE)
  ? "This browser walks in as the visitor it was last time."
  : "This browser gets a key of its own, kept here: next time you are the same visitor.";
hud();
