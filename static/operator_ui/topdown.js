// The default view: the market from straight above, orthographic. x runs right, z down.

import { drawLayout } from "../mapgen/draw.js";
import { DOT_MIGRATING, DOT_VISITOR, NO_ZONE } from "./feed.js";

const CLICK_SLOP_PX = 4;
const PICK_RADIUS_PX = 10;
const MIN_SCALE = 1; // pixels per metre
const MAX_SCALE = 80;
const LABEL_MARGIN_PX = 8;
const LABEL_BOTTOM_PX = 36; // clear of the key help line at the foot of the map

export class TopDown {
  constructor(canvas, labels, reservedRight, onPick) {
    this.canvas = canvas;
    this.context = canvas.getContext("2d");
    this.labels = labels;
    this.reservedRight = reservedRight; // () → pixels covered by the panel on the right
    this.onPick = onPick; // (pick) with pick = {id} or {x, z}
    this.geometry = null;
    this.layout = null; // a generated market's layout (static/mapgen/), drawn over the booths
    this.frame = null;
    this.npcColour = null; // (id) → the colour of that NPC's square (npcs.js), or null: all dark
    this.boothOf = (zone) => zone; // the booth a zone serves (a spare may serve part of one)
    this.marker = null; // {x, z, id?}
    this.scale = 4;
    this.originX = 0; // pixel of world x = lo
    this.originY = 0;
    this.drag = null;
    this.active = true;
    this.fitted = false;
    canvas.addEventListener("pointerdown", (e) => this.pointerDown(e));
    canvas.addEventListener("pointermove", (e) => this.pointerMove(e));
    canvas.addEventListener("pointerup", (e) => this.pointerUp(e));
    canvas.addEventListener("pointercancel", () => this.endDrag());
    canvas.addEventListener("wheel", (e) => this.wheel(e), { passive: false });
  }

  setGeometry(geometry) {
    this.geometry = geometry;
    if (!this.fitted) this.fit();
  }

  // The whole market in the part of the window the panel leaves free.
  fit() {
    if (!this.geometry) return;
    const { width, height } = this.size();
    const free = Math.max(200, width - this.reservedRight());
    const spanX = this.geometry.hi[0] - this.geometry.lo[0];
    const spanZ = this.geometry.hi[2] - this.geometry.lo[2];
    this.scale = Math.max(MIN_SCALE, Math.min((free - 48) / spanX, (height - 64) / spanZ));
    this.originX = (free - spanX * this.scale) / 2;
    this.originY = (height - spanZ * this.scale) / 2;
    this.fitted = true;
  }

  size() {
    return { width: this.canvas.clientWidth, height: this.canvas.clientHeight };
  }

  toScreen(x, z) {
    const lo = this.geometry.lo;
    return [this.originX + (x - lo[0]) * this.scale, this.originY + (z - lo[2]) * this.scale];
  }

  toWorld(px, py) {
    const lo = this.geometry.lo;
    return [lo[0] + (px - this.originX) / this.scale, lo[2] + (py - this.originY) / this.scale];
  }

  // The zone whose floor column is under canvas pixel (px, py), or -1 off the market.
  zoneAt(px, py) {
    const geo = this.geometry;
    const [x, z] = this.toWorld(px, py);
    const i = Math.floor((x - geo.lo[0]) / geo.cellX);
    const k = Math.floor((z - geo.lo[2]) / geo.cellZ);
    return i < 0 || k < 0 || i >= geo.count || k >= geo.count ? -1 : geo.grid[i][k];
  }

  activate() {
    this.active = true;
    this.canvas.hidden = false;
  }

  deactivate() {
    this.endDrag();
    this.active = false;
    this.canvas.hidden = true;
  }

  endDrag() {
    if (this.drag && this.canvas.hasPointerCapture(this.drag.pointer)) {
      this.canvas.releasePointerCapture(this.drag.pointer);
    }
    this.drag = null;
  }

  pointerDown(event) {
    if (!this.geometry || event.button !== 0) return;
    this.canvas.setPointerCapture(event.pointerId);
    this.drag = { pointer: event.pointerId, x: event.offsetX, y: event.offsetY, moved: false };
  }

  pointerMove(event) {
    const drag = this.drag;
    if (!drag || event.pointerId !== drag.pointer) return;
    const dx = event.offsetX - drag.x;
    const dy = event.offsetY - drag.y;
    if (!drag.moved && Math.hypot(dx, dy) < CLICK_SLOP_PX) return;
    drag.moved = true;
    this.originX += dx;
    this.originY += dy;
    drag.x = event.offsetX;
    drag.y = event.offsetY;
  }

  pointerUp(event) {
    const drag = this.drag;
    this.endDrag();
    if (!drag || drag.moved || event.pointerId !== drag.pointer) return;
    this.onPick(this.pick(event.offsetX, event.offsetY));
  }

  // The dot under the pointer, or the floor point.
  pick(px, py) {
    const frame = this.frame;
    let best = -1;
    let bestD = PICK_RADIUS_PX;
    if (frame) {
      for (let i = 0; i < frame.count; i += 1) {
        const [sx, sy] = this.toScreen(frame.x[i], frame.z[i]);
        const d = Math.hypot(sx - px, sy - py);
        if (d < bestD) {
          best = i;
          bestD = d;
        }
      }
    }
    if (best >= 0) return { id: frame.ids[best] };
    const [x, z] = this.toWorld(px, py);
    return { x: x, z: z };
  }

  wheel(event) {
    if (!this.geometry) return;
    event.preventDefault();
    const factor = Math.exp(-event.deltaY * 0.0015);
    const scale = Math.min(MAX_SCALE, Math.max(MIN_SCALE, this.scale * factor));
    const [x, z] = this.toWorld(event.offsetX, event.offsetY);
    this.scale = scale;
    const [sx, sy] = this.toScreen(x, z);
    this.originX += event.offsetX - sx;
    this.originY += event.offsetY - sy;
  }

  render(nowMs) {
    if (!this.active || !this.geometry) return;
    const ratio = window.devicePixelRatio || 1;
    const { width, height } = this.size();
    if (this.canvas.width !== Math.round(width * ratio) || this.canvas.height !== Math.round(height * ratio)) {
      this.canvas.width = Math.round(width * ratio);
      this.canvas.height = Math.round(height * ratio);
    }
    const g = this.context;
    g.setTransform(ratio, 0, 0, ratio, 0, 0);
    g.clearRect(0, 0, width, height);
    this.drawBooths(g);
    if (this.layout) drawLayout(g, this.layout, (x, z) => this.toScreen(x, z));
    this.drawDots(g);
    this.drawMarker(g, nowMs);
    const free = {
      left: LABEL_MARGIN_PX,
      top: LABEL_MARGIN_PX,
      right: width - this.reservedRight(),
      bottom: height - LABEL_BOTTOM_PX,
    };
    this.labels.placeWithin(this.geometry, (x, z) => this.toScreen(x, z), free);
  }

  drawBooths(g) {
    const geo = this.geometry;
    const w = geo.cellX * this.scale;
    const h = geo.cellZ * this.scale;
    g.globalAlpha = 0.32;
    geo.booths.forEach((booth) => {
      // one path per booth, filled once: no seams where its columns meet
      g.fillStyle = booth.colour;
      g.beginPath();
      booth.columns.forEach(([i, k]) => {
        const [sx, sy] = this.toScreen(geo.lo[0] + i * geo.cellX, geo.lo[2] + k * geo.cellZ);
        g.rect(sx, sy, w + 0.5, h + 0.5);
      });
      g.fill();
    });
    g.globalAlpha = 1;
    g.strokeStyle = "#e9edf2";
    g.lineWidth = 2;
    g.beginPath();
    geo.borders.forEach(([x0, z0, x1, z1]) => {
      const [a, b] = this.toScreen(x0, z0);
      const [c, d] = this.toScreen(x1, z1);
      g.moveTo(a, b);
      g.lineTo(c, d);
    });
    g.stroke();
  }

  drawDots(g) {
    const frame = this.frame;
    if (!frame) return;
    const geo = this.geometry;
    const visitor = Math.max(2.5, Math.min(6, this.scale * 0.45));
    g.lineWidth = 1;
    for (let i = 0; i < frame.count; i += 1) {
      const [sx, sy] = this.toScreen(frame.x[i], frame.z[i]);
      if (frame.kind[i] & DOT_MIGRATING) {
        const toBooth = frame.to[i] !== NO_ZONE ? this.boothOf(frame.to[i]) : -1;
        const to = geo.booths[toBooth] || null;
        g.strokeStyle = to ? to.colour : "#ffffff";
        g.lineWidth = 2;
        g.beginPath();
        g.arc(sx, sy, visitor + 3, 0, 2 * Math.PI);
        g.stroke();
        // no arrow between two zones of one booth: the dot stays in its booth
        if (to && toBooth !== this.boothOf(frame.zone[i])) {
          this.arrow(g, sx, sy, this.toScreen(to.anchor[0], to.anchor[1]), to.colour);
        }
        g.lineWidth = 1;
      }
      if (frame.kind[i] & DOT_VISITOR) {
        g.fillStyle = "#ffffff";
        g.strokeStyle = "#111318";
        g.beginPath();
        g.arc(sx, sy, visitor, 0, 2 * Math.PI);
        g.fill();
        g.stroke();
      } else {
        const half = visitor * 0.55;
        g.fillStyle = this.npcColour ? this.npcColour(frame.ids[i]) : "#0d0f13";
        g.fillRect(sx - half, sy - half, 2 * half, 2 * half);
        if (this.npcColour) {
          g.strokeStyle = "#0d0f13";
          g.strokeRect(sx - half, sy - half, 2 * half, 2 * half);
        }
      }
    }
  }

  // A short arrow from a dot towards the booth taking it over.
  arrow(g, sx, sy, target, colour) {
    const dx = target[0] - sx;
    const dy = target[1] - sy;
    const length = Math.hypot(dx, dy) || 1;
    const ux = dx / length;
    const uy = dy / length;
    const tip = [sx + ux * 16, sy + uy * 16];
    g.strokeStyle = colour;
    g.fillStyle = colour;
    g.lineWidth = 2;
    g.beginPath();
    g.moveTo(sx, sy);
    g.lineTo(tip[0], tip[1]);
    g.stroke();
    g.beginPath();
    g.moveTo(tip[0] + ux * 5, tip[1] + uy * 5);
    g.lineTo(tip[0] - uy * 4, tip[1] + ux * 4);
    g.lineTo(tip[0] + uy * 4, tip[1] - ux * 4);
    g.fill();
  }

  drawMarker(g, nowMs) {
    if (!this.marker) return;
    const [sx, sy] = this.toScreen(this.marker.x, this.marker.z);
    const pulse = (nowMs % 1200) / 1200;
    g.strokeStyle = `rgba(255, 80, 160, ${1 - pulse})`;
    g.lineWidth = 3;
    g.beginPath();
    g.arc(sx, sy, 8 + pulse * 16, 0, 2 * Math.PI);
    g.stroke();
    g.fillStyle = "#ff50a0";
    g.beginPath();
    g.arc(sx, sy, 4, 0, 2 * Math.PI);
    g.fill();
  }
}
