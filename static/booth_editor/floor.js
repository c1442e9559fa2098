// The booth's floor from above, as the dashboard draws the market (static/operator_ui/
// booths.js): x to the right, z down, the booth's own columns in its colour, the other
// booths dim. Placements are drawn as their footprints, turned by their yaw; they can be
// picked, dragged (never off the booth's floor) and dropped onto from the asset list.

const FOOTPRINT_M = 1; // side of a placement's square at scale 1
const MARGIN_COLUMNS = 1;
const FOOTPRINT_MIN_PX = 18; // small placements stay big enough to see and pick

export class BoothFloor {
  // callbacks: {select(index | null), move(index, x, z), drop(assetId, x, z), refused(message)}
  constructor(canvas, geometry, zone, callbacks) {
    this.canvas = canvas;
    this.context = canvas.getContext("2d");
    this.geometry = geometry;
    this.zone = zone;
    this.callbacks = callbacks;
    this.placements = [];
    this.names = new Map(); // asset id → {name, image}
    this.selected = null;
    this.drag = null;
    const own = geometry.booths[zone].columns;
    const is = own.map((c) => c[0]);
    const ks = own.map((c) => c[1]);
    this.view = {
      x0: geometry.lo[0] + (Math.min(...is) - MARGIN_COLUMNS) * geometry.cellX,
      x1: geometry.lo[0] + (Math.max(...is) + 1 + MARGIN_COLUMNS) * geometry.cellX,
      z0: geometry.lo[2] + (Math.min(...ks) - MARGIN_COLUMNS) * geometry.cellZ,
      z1: geometry.lo[2] + (Math.max(...ks) + 1 + MARGIN_COLUMNS) * geometry.cellZ,
    };
    canvas.addEventListener("pointerdown", (e) => this.pointerDown(e));
    canvas.addEventListener("pointermove", (e) => this.pointerMove(e));
    canvas.addEventListener("pointerup", () => (this.drag = null));
    canvas.addEventListener("pointercancel", () => (this.drag = null));
    canvas.addEventListener("dragover", (e) => e.preventDefault());
    canvas.addEventListener("drop", (e) => this.dropped(e));
    new ResizeObserver(() => this.draw()).observe(canvas);
  }

  fit() {
    const width = this.canvas.clientWidth;
    const height = this.canvas.clientHeight;
    const spanX = this.view.x1 - this.view.x0;
    const spanZ = this.view.z1 - this.view.z0;
    this.scale = Math.min(width / spanX, height / spanZ);
    this.originX = (width - spanX * this.scale) / 2 - this.view.x0 * this.scale;
    this.originY = (height - spanZ * this.scale) / 2 - this.view.z0 * this.scale;
  }

  toScreen(x, z) {
    return [this.originX + x * this.scale, this.originY + z * this.scale];
  }

  toWorld(px, py) {
    return [(px - this.originX) / this.scale, (py - this.originY) / this.scale];
  }

  // Whether floor point (x, z) is on this booth's own columns (the server checks the same).
  inside(x, z) {
    const g = this.geometry;
    const i = Math.floor((x - g.lo[0]) / g.cellX);
    const k = Math.floor((z - g.lo[2]) / g.cellZ);
    return i >= 0 && k >= 0 && i < g.count && k < g.count && g.grid[i][k] === this.zone;
  }

  eventWorld(event) {
    const box = this.canvas.getBoundingClientRect();
    return this.toWorld(event.clientX - box.left, event.clientY - box.top);
  }

  pointerDown(event) {
    const [x, z] = this.eventWorld(event);
    let hit = null;
    this.placements.forEach((p, index) => {
      const half = this.footprint(p) / this.scale / 2;
      if (Math.abs(p.position[0] - x) <= half && Math.abs(p.position[2] - z) <= half) hit = index;
    });
    this.callbacks.select(hit);
    if (hit !== null) {
      this.drag = { index: hit, dx: this.placements[hit].position[0] - x, dz: this.placements[hit].position[2] - z };
      this.canvas.setPointerCapture(event.pointerId);
    }
  }

  pointerMove(event) {
    if (!this.drag) return;
    const [x, z] = this.eventWorld(event);
    const nx = x + this.drag.dx;
    const nz = z + this.drag.dz;
    if (this.inside(nx, nz)) this.callbacks.move(this.drag.index, nx, nz);
  }

  dropped(event) {
    event.preventDefault();
    const assetId = Number(event.dataTransfer.getData("text/x-asset"));
    if (!assetId) return;
    const [x, z] = this.eventWorld(event);
    if (this.inside(x, z)) this.callbacks.drop(assetId, x, z);
    else this.callbacks.refused("That spot is outside this booth: drop the asset on its coloured floor.");
  }

  draw() {
    const canvas = this.canvas;
    const ratio = window.devicePixelRatio || 1;
    if (canvas.width !== canvas.clientWidth * ratio || canvas.height !== canvas.clientHeight * ratio) {
      canvas.width = canvas.clientWidth * ratio;
      canvas.height = canvas.clientHeight * ratio;
    }
    this.fit();
    const ctx = this.context;
    const g = this.geometry;
    ctx.setTransform(ratio, 0, 0, ratio, 0, 0);
    ctx.fillStyle = "#1d2026";
    ctx.fillRect(0, 0, canvas.clientWidth, canvas.clientHeight);
    for (let i = 0; i < g.count; i += 1) {
      for (let k = 0; k < g.count; k += 1) {
        const zone = g.grid[i][k];
        const [px, py] = this.toScreen(g.lo[0] + i * g.cellX, g.lo[2] + k * g.cellZ);
        ctx.globalAlpha = zone === this.zone ? 1 : 0.25;
        ctx.fillStyle = g.booths[zone].colour;
        ctx.fillRect(px, py, g.cellX * this.scale + 0.5, g.cellZ * this.scale + 0.5);
      }
    }
    ctx.globalAlpha = 1;
    ctx.strokeStyle = "#e9edf2";
    ctx.lineWidth = 1.5;
    ctx.beginPath();
    g.borders.forEach(([x0, z0, x1, z1]) => {
      const [a, b] = this.toScreen(x0, z0);
      const [c, d] = this.toScreen(x1, z1);
      ctx.moveTo(a, b);
      ctx.lineTo(c, d);
    });
    ctx.stroke();
    this.placements.forEach((p, index) => this.drawPlacement(p, index === this.selected));
  }

  footprint(p) {
    return Math.max(FOOTPRINT_MIN_PX, FOOTPRINT_M * p.scale * this.scale);
  }

  drawPlacement(p, selected) {
    const ctx = this.context;
    const [px, py] = this.toScreen(p.position[0], p.position[2]);
    const side = this.footprint(p);
    const about = this.names.get(p.asset) || { name: "asset " + p.asset };
    ctx.save();
    ctx.translate(px, py);
    ctx.rotate(-p.yaw); // counter-clockwise seen from above is clockwise on this z-down map
    if (about.image) ctx.drawImage(about.image, -side / 2, -side / 2, side, side);
    else {
      ctx.fillStyle = "rgba(255, 255, 255, 0.85)";
      ctx.fillRect(-side / 2, -side / 2, side, side);
    }
    ctx.strokeStyle = selected ? "#ff50a0" : "#1d2026";
    ctx.lineWidth = selected ? 3 : 1.5;
    ctx.strokeRect(-side / 2, -side / 2, side, side);
    ctx.beginPath(); // the facing: +z before the turn
    ctx.moveTo(0, 0);
    ctx.lineTo(0, side / 2 + 8);
    ctx.stroke();
    ctx.restore();
    ctx.fillStyle = "#ffffff";
    ctx.font = "12px system-ui, sans-serif";
    ctx.textAlign = "center";
    ctx.fillText(about.name, px, py - side / 2 - 6);
  }
}
