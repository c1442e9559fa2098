// The operators' feed socket: hello, the market's ops events and overview frames
// (docs/dashboard.md). Reconnects by itself with a growing delay and resumes the events
// from the last one it got (offset and epoch), so no summary or health report is lost or
// repeated; the page hears about every state change.

const FRAME_MAGIC = 0x4d46;
const KIND_OVERVIEW = 2;
export const KIND_NPC_STATUS = 3;
const HEADER_BYTES = 16;
const RECORD_BYTES = 18;
const STATUS_RECORD_BYTES = 9;
const FIRST_DELAY_MS = 500;
const LONGEST_DELAY_MS = 10000;
// the ops events the page applies (docs/dashboard.md); it ignores any other
const EVENT_TYPES = ["market_summary", "zone_health", "npc_decisions", "contributor_banned", "zones_repartitioned"];

export const DOT_VISITOR = 0x1;
export const DOT_NPC = 0x2;
export const DOT_MIGRATING = 0x4;
export const NO_ZONE = 0xff;

// The record count of a frame of `kind` whose records are `recordBytes` long; an error
// naming `what` when the buffer is not such a frame.
function recordCount(buffer, kind, recordBytes, what) {
  const view = new DataView(buffer);
  if (buffer.byteLength < HEADER_BYTES) throw new Error(`${what} frame shorter than its header`);
  if (view.getUint16(0, true) !== FRAME_MAGIC || view.getUint8(3) !== kind) {
    throw new Error(`not an ${what} frame`);
  }
  const count = view.getUint32(4, true);
  if (buffer.byteLength !== HEADER_BYTES + count * recordBytes) {
    throw new Error(`${what} frame of ${buffer.byteLength} bytes cannot hold ${count} records`);
  }
  return count;
}

// An NPC status frame (zones/core/npcview.py) as arrays: ids and status bytes (npcs.js).
export function parseNpcStatus(buffer) {
  const count = recordCount(buffer, KIND_NPC_STATUS, STATUS_RECORD_BYTES, "NPC status");
  const view = new DataView(buffer);
  const ids = new BigUint64Array(count);
  const status = new Uint8Array(count);
  for (let i = 0, at = HEADER_BYTES; i < count; i += 1, at += STATUS_RECORD_BYTES) {
    ids[i] = view.getBigUint64(at, true);
    status[i] = view.getUint8(at + 8);
  }
  return { tickMs: Number(view.getBigUint64(8, true)), count: count, ids: ids, status: status };
}

// One overview frame as arrays, one entry per visitor or NPC.
export function parseOverview(buffer) {
  const count = recordCount(buffer, KIND_OVERVIEW, RECORD_BYTES, "overview");
  const view = new DataView(buffer);
  const frame = {
    tickMs: Number(view.getBigUint64(8, true)),
    count: count,
    ids: new BigUint64Array(count),
    x: new Float32Array(count),
    y: new Float32Array(count),
    z: new Float32Array(count),
    kind: new Uint8Array(count),
    zone: new Uint8Array(count),
    to: new Uint8Array(count),
  };
  for (let i = 0, at = HEADER_BYTES; i < count; i += 1, at += RECORD_BYTES) {
    frame.ids[i] = view.getBigUint64(at, true);
    frame.x[i] = view.getInt16(at + 8, true) / 100;
    frame.y[i] = view.getInt16(at + 10, true) / 100;
    frame.z[i] = view.getInt16(at + 12, true) / 100;
    frame.kind[i] = view.getUint8(at + 14);
    frame.zone[i] = view.getUint8(at + 15);
    frame.to[i] = view.getUint8(at + 16);
  }
  return frame;
}

// Zones of an ops snapshot as the summaries the panel takes: figures where a worker
// reported them, the supervisor's health alone where it did not.
function snapshotSummaries(state) {
  const reported = Object.values(state.zones);
  return [
    { tick: state.tick, zones: reported.filter((zone) => zone.entities !== undefined) },
    { health_only: true, zones: reported.filter((zone) => zone.entities === undefined) },
  ];
}

// handlers: hello(message), summary(summary), overview(frame), npcStatus(frame),
// npcs(report), bans(list), ban(ban), repartitions(list) (the snapshot's splits and merges,
// oldest first), repartition(change) (a `zones_repartitioned` event), state(name, detail)
// where name is "connecting", "live", "reconnecting" or "refused".
export function connectFeed(path, handlers) {
  let delayMs = FIRST_DELAY_MS;
  let socket = null;
  let stopped = false;
  let position = null; // {offset, epoch} of the last event applied

  function applySnapshot(state, offset, epoch) {
    position = { offset: offset, epoch: epoch };
    snapshotSummaries(state).forEach((summary) => handlers.summary(summary));
    if (state.npcs) handlers.npcs(state.npcs);
    handlers.bans(state.bans || []);
    handlers.repartitions(state.repartitions || []);
  }

  function applyEvent(message) {
    if (position && message.offset <= position.offset) return; // applied before a reconnect
    position = { offset: message.offset, epoch: position ? position.epoch : "" };
    if (message.type === "market_summary") {
      handlers.summary({ tick: message.tick, hlc: message.hlc, overruns: message.overruns, zones: message.zones });
    } else if (message.type === "npc_decisions") {
      handlers.npcs(message);
    } else if (message.type === "contributor_banned") {
      handlers.ban(message);
    } else if (message.type === "zones_repartitioned") {
      handlers.repartition(message);
    } else {
      const zones = message.zones.map((zone) => ({ zone: zone, health: message.health }));
      handlers.summary({ health_only: true, zones: zones });
    }
  }

  function open() {
    const scheme = window.location.protocol === "https:" ? "wss:" : "ws:";
    const resume = position ? `?offset=${position.offset}&epoch=${encodeURIComponent(position.epoch)}` : "";
    socket = new WebSocket(`${scheme}//${window.location.host}${path}${resume}`);
    socket.binaryType = "arraybuffer";
    let refusal = null;
    handlers.state("connecting");
    socket.addEventListener("message", function (event) {
      if (typeof event.data !== "string") {
        const kind = event.data.byteLength > 3 ? new DataView(event.data).getUint8(3) : 0;
        if (kind === KIND_NPC_STATUS) handlers.npcStatus(parseNpcStatus(event.data));
        else handlers.overview(parseOverview(event.data));
        return;
      }
      const message = JSON.parse(event.data);
      if (message.type === "hello") {
        delayMs = FIRST_DELAY_MS;
        handlers.hello(message);
        handlers.state("live");
      } else if (message.type === "snapshot") {
        if (message.recovered !== true || !position) applySnapshot(message.state, message.offset, message.epoch);
      } else if (message.type === "events_reset") {
        applySnapshot(message.snapshot, message.offset, message.epoch);
      } else if (EVENT_TYPES.includes(message.type)) {
        applyEvent(message);
      } else if (message.type === "error") {
        refusal = message;
      }
    });
    socket.addEventListener("close", function (event) {
      if (stopped) return;
      // Refusals that a retry cannot fix (signed out, not an operator) stop here.
      if (refusal && (event.code === 4401 || event.code === 4403)) {
        handlers.state("refused", refusal.message);
        return;
      }
      const why = refusal ? refusal.message : "the connection to the market dropped";
      handlers.state("reconnecting", `${why}; retrying in ${(delayMs / 1000).toFixed(1)} s`);
      window.setTimeout(open, delayMs);
      delayMs = Math.min(delayMs * 2, LONGEST_DELAY_MS);
    });
  }

  open();
  return {
    close: function () {
      stopped = true;
      if (socket) socket.close();
    },
  };
}
