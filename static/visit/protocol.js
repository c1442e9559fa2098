// The visitor protocol (docs/protocol.md) in JavaScript: the join ticket, the socket, the
// binary interest frames and the inputs. It knows nothing of pages: static/visit/visit.js
// draws what it hears.

export const FRAME_MAGIC = 0x4d46;
export const FRAME_VERSION = 2;
export const FRAME_KIND_INTEREST = 1;
export const HEADER_BYTES = 24;
export const ROW_BYTES = 24;
export const BODY_BYTES = 338;

export const ROW_AUTHORITATIVE = 0x1;
export const ROW_GHOST = 0x2;
export const ROW_STAGING = 0x4;
export const ROW_INCOMING = 0x8;
export const ROW_VISITOR = 0x100;
export const ROW_BONE = 0x200;
export const ROW_NPC = 0x400;

// Close codes after which joining again with the same ticket or at once cannot help.
export const CLOSE_REASONS = {
  1000: "you left",
  4400: "too many protocol errors",
  4401: "the join ticket was refused (missing, malformed or forged)",
  4402: "the join ticket expired before the socket opened",
  4403: "the join ticket was already used",
  4404: "the market is not live here",
  4408: "this page fell too far behind the market's events",
  4409: "another tab or program took over this visitor",
  4429: "too many connections or inputs from here",
  4503: "the market refused the join",
};

export class FrameError extends Error {}

// One interest frame: header fields and its rows, positions in metres. Entity ids are
// BigInts (they reach 2^64; a Number loses digits above 2^53).
export function decodeFrame(buffer) {
  const view = new DataView(buffer);
  if (buffer.byteLength < HEADER_BYTES) throw new FrameError(`a frame of ${buffer.byteLength} bytes is shorter than its header`);
  const magic = view.getUint16(0, true);
  const version = view.getUint8(2);
  const kind = view.getUint8(3);
  if (magic !== FRAME_MAGIC) throw new FrameError(`magic 0x${magic.toString(16)}, expected 0x4d46`);
  if (version !== FRAME_VERSION) throw new FrameError(`version ${version}, expected ${FRAME_VERSION}`);
  if (kind !== FRAME_KIND_INTEREST) throw new FrameError(`kind ${kind}, expected an interest frame`);
  const count = view.getUint16(16, true);
  const bodies = view.getUint16(18, true);
  const expected = HEADER_BYTES + count * ROW_BYTES + bodies * BODY_BYTES;
  if (buffer.byteLength !== expected) throw new FrameError(`${buffer.byteLength} bytes, expected ${expected}`);
  const rows = new Array(count);
  for (let i = 0; i < count; i += 1) {
    const at = HEADER_BYTES + i * ROW_BYTES;
    rows[i] = {
      id: view.getBigUint64(at, true),
      x: view.getUint16(at + 8, true) / 100,
      y: view.getUint16(at + 10, true) / 100,
      z: view.getUint16(at + 12, true) / 100,
      vx: view.getInt16(at + 14, true) / 100,
      vy: view.getInt16(at + 16, true) / 100,
      vz: view.getInt16(at + 18, true) / 100,
      flags: view.getUint16(at + 20, true),
      zone: view.getUint16(at + 22, true),
    };
  }
  return {
    ackSeq: view.getUint32(4, true),
    tickMs: Number(view.getBigUint64(8, true)),
    far: (view.getUint32(20, true) & 1) === 1,
    rows,
    bodies,
  };
}

export class JoinRefused extends Error {
  constructor(status, code, detail, retryAfter) {
    super(detail || code);
    this.status = status;
    this.code = code;
    this.retryAfter = retryAfter;
  }
}

// A join ticket: {ticket, expires_in, entity, ws}. `ask` holds key, resume, booth or at.
export async function joinTicket(marketId, ask) {
  let response;
  try {
    response = await fetch(`/api/markets/${marketId}/join/`, {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify(ask),
      credentials: "omit",
    });
  } catch (error) {
    throw new JoinRefused(0, "unreachable", "the market could not be reached", 2);
  }
  const body = await response.json().catch(() => ({}));
  if (!response.ok) {
    throw new JoinRefused(response.status, body.error || "refused", body.detail, Number(response.headers.get("Retry-After")) || 0);
  }
  return body;
}

// The socket of one visitor. handlers: welcome(msg), event(msg), frame(frame), error(msg),
// closed(code, reason).
export class VisitorSocket {
  constructor(path, ticket, position, handlers) {
    const scheme = location.protocol === "https:" ? "wss:" : "ws:";
    let url = `${scheme}//${location.host}${path}?ticket=${encodeURIComponent(ticket)}`;
    if (position) url += `&offset=${position.offset}&epoch=${encodeURIComponent(position.epoch)}`;
    this.handlers = handlers;
    this.seq = 0;
    this.socket = new WebSocket(url);
    this.socket.binaryType = "arraybuffer";
    this.socket.addEventListener("message", (event) => this.received(event.data));
    this.socket.addEventListener("close", (event) => handlers.closed(event.code, event.reason));
  }

  received(data) {
    if (data instanceof ArrayBuffer) {
      this.handlers.frame(decodeFrame(data));
      return;
    }
    const message = JSON.parse(data);
    if (message.type === "welcome") {
      // JSON.parse rounds ids above 2^53: read the entity's digits from the text itself
      message.entity = BigInt(data.match(/"entity"\s*:\s*(\d+)/)[1]);
      this.seq = Math.max(this.seq, message.last_seq || 0);
      this.handlers.welcome(message);
    } else if (message.type === "error") this.handlers.error(message);
    else this.handlers.event(message);
  }

  send(message) {
    if (this.socket.readyState === WebSocket.OPEN) this.socket.send(JSON.stringify(message));
  }

  // Walk with this velocity (m/s; y is ignored) until the next input.
  walk(vx, vz) {
    this.seq += 1;
    this.send({ type: "input", seq: this.seq, vel: [vx, 0, vz] });
  }

  ping(id) {
    this.send({ type: "ping", id, t: performance.now() });
  }

  leave() {
    this.send({ type: "leave" });
  }

  close() {
    this.socket.close();
  }
}
