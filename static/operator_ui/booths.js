// The booths seen from above, from the feed's hello: which booth owns each floor column,
// where each booth's name goes, and the border lines between booths. Both views draw these.

export function boothGeometry(hello) {
  const [lo, hi] = hello.layout.bounds;
  const count = hello.columns.count;
  const grid = hello.columns.booth; // [x column][z column] → zone
  const cellX = (hi[0] - lo[0]) / count;
  const cellZ = (hi[2] - lo[2]) / count;
  const booths = hello.layout.booths.map(function (booth) {
    return { zone: booth.zone, name: booth.name, colour: booth.colour, columns: [] };
  });
  for (let i = 0; i < count; i += 1) {
    for (let k = 0; k < count; k += 1) booths[grid[i][k]].columns.push([i, k]);
  }
  booths.forEach(function (booth) {
    // The name goes on the booth's own column nearest its centroid: a booth need not be
    // convex, and its centroid may lie in another booth.
    const n = booth.columns.length || 1;
    const ci = booth.columns.reduce((s, c) => s + c[0], 0) / n;
    const ck = booth.columns.reduce((s, c) => s + c[1], 0) / n;
    let best = booth.columns[0] || [0, 0];
    let bestD = Infinity;
    booth.columns.forEach(function (c) {
      const d = (c[0] - ci) ** 2 + (c[1] - ck) ** 2;
      if (d < bestD) {
        best = c;
        bestD = d;
      }
    });
    booth.anchor = [lo[0] + (best[0] + 0.5) * cellX, lo[2] + (best[1] + 0.5) * cellZ];
    booth.centre = [lo[0] + (ci + 0.5) * cellX, lo[2] + (ck + 0.5) * cellZ];
  });
  // Border segments [x0, z0, x1, z1]: between columns of different booths, and the edge.
  const borders = [];
  const owner = (i, k) => (i < 0 || k < 0 || i >= count || k >= count ? -1 : grid[i][k]);
  for (let i = 0; i <= count; i += 1) {
    for (let k = 0; k < count; k += 1) {
      if (owner(i - 1, k) !== owner(i, k)) {
        const x = lo[0] + i * cellX;
        borders.push([x, lo[2] + k * cellZ, x, lo[2] + (k + 1) * cellZ]);
      }
    }
  }
  for (let k = 0; k <= count; k += 1) {
    for (let i = 0; i < count; i += 1) {
      if (owner(i, k - 1) !== owner(i, k)) {
        const z = lo[2] + k * cellZ;
        borders.push([lo[0] + i * cellX, z, lo[0] + (i + 1) * cellX, z]);
      }
    }
  }
  return { lo: lo, hi: hi, count: count, grid: grid, cellX: cellX, cellZ: cellZ, booths: booths, borders: borders };
}

// Where a booth's name goes on a flat map: its anchor when the anchor is inside `free` (a
// rectangle of screen pixels), else the point of the booth's part inside `free` nearest the
// anchor, so that a booth zoomed into keeps its name on screen; null when no part of the
// booth is inside `free`. toScreen(x, z) → [px, py].
export function labelPoint(geometry, booth, toScreen, free) {
  const at = toScreen(booth.anchor[0], booth.anchor[1]);
  const inside = (p) => p[0] >= free.left && p[0] <= free.right && p[1] >= free.top && p[1] <= free.bottom;
  if (inside(at)) return at;
  const { lo, cellX, cellZ } = geometry;
  let best = null;
  let bestD = Infinity;
  booth.columns.forEach(([i, k]) => {
    const [x0, y0] = toScreen(lo[0] + i * cellX, lo[2] + k * cellZ);
    const [x1, y1] = toScreen(lo[0] + (i + 1) * cellX, lo[2] + (k + 1) * cellZ);
    const left = Math.max(Math.min(x0, x1), free.left);
    const right = Math.min(Math.max(x0, x1), free.right);
    const top = Math.max(Math.min(y0, y1), free.top);
    const bottom = Math.min(Math.max(y0, y1), free.bottom);
    if (left > right || top > bottom) return;
    const px = Math.min(right, Math.max(left, at[0]));
    const py = Math.min(bottom, Math.max(top, at[1]));
    const d = (px - at[0]) ** 2 + (py - at[1]) ** 2;
    if (d < bestD) {
      best = [px, py];
      bestD = d;
    }
  });
  return best;
}

// One label element per booth, placed by whichever view is showing.
export class BoothLabels {
  constructor(layer) {
    this.layer = layer;
    this.elements = [];
    this.sizes = [];
  }

  build(geometry) {
    this.layer.replaceChildren();
    this.elements = geometry.booths.map((booth) => {
      const label = document.createElement("div");
      label.className = "booth-label";
      label.textContent = booth.name;
      label.title = `${booth.name} (zone ${booth.zone})`;
      label.dataset.zone = String(booth.zone);
      label.style.setProperty("--booth-colour", booth.colour);
      this.layer.appendChild(label);
      return label;
    });
    this.sizes = this.elements.map(() => null);
  }

  // project(x, y, z) → [x, y] in pixels, or null when the anchor is behind the camera
  place(geometry, project) {
    geometry.booths.forEach((booth, i) => this.put(i, project(booth.anchor[0], 0, booth.anchor[1])));
  }

  // On a flat map: every label inside `free` (screen pixels) whole, over its own booth.
  placeWithin(geometry, toScreen, free) {
    geometry.booths.forEach((booth, i) => {
      const [w, h] = this.size(i);
      const inset = {
        left: free.left + w / 2,
        right: free.right - w / 2,
        top: free.top + h / 2,
        bottom: free.bottom - h / 2,
      };
      this.put(i, labelPoint(geometry, booth, toScreen, inset));
    });
  }

  // A label's size in pixels, measured once it has been shown (labels are centred on their point).
  size(i) {
    if (this.sizes[i] === null && this.elements[i].dataset.hidden !== "true") {
      const label = this.elements[i];
      if (label.offsetWidth) this.sizes[i] = [label.offsetWidth, label.offsetHeight];
    }
    return this.sizes[i] || [0, 0];
  }

  put(i, at) {
    const label = this.elements[i];
    label.dataset.hidden = at === null ? "true" : "false";
    if (at !== null) {
      label.style.left = `${at[0].toFixed(1)}px`;
      label.style.top = `${at[1].toFixed(1)}px`;
    }
  }
}
