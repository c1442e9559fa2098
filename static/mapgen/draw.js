// Drawing a generated layout (mapgen.js) seen from above on a 2-D canvas: open floor,
// booth floors, walls, props, items coloured by the need they restore, portals and,
// when asked, NPC spawn points. Lengths in the layout are centimetres; toScreen takes metres.

export const NEED_COLOURS = {
  hunger: "#f4a259",
  hygiene: "#5bc0eb",
  fun: "#e86a92",
  energy: "#9bc53d",
};
export const PORTAL_COLOUR = "#b388ff";
export const WALL_COLOUR = "#c9ced6";
export const PROP_COLOUR = "#7b8394";

const M = 0.01; // metres per centimetre

// A rectangle [x0, z0, x1, z1] (cm) added to the path, at least `least` pixels across.
function rect(g, toScreen, r, least = 0) {
  const [x0, y0] = toScreen(r[0] * M, r[1] * M);
  const [x1, y1] = toScreen(r[2] * M, r[3] * M);
  const w = Math.max(Math.abs(x1 - x0), least);
  const h = Math.max(Math.abs(y1 - y0), least);
  g.rect((x0 + x1) / 2 - w / 2, (y0 + y1) / 2 - h / 2, w, h);
}

// A box [x0, y0, z0, x1, y1, z1] as its floor rectangle [x0, z0, x1, z1].
export const footprint = (box) => [box[0], box[2], box[3], box[5]];

export function drawLayout(g, layout, toScreen, options = {}) {
  g.save();
  g.fillStyle = "rgba(255, 255, 255, 0.06)";
  g.beginPath();
  layout.aisles.forEach((a) => rect(g, toScreen, a.rect));
  layout.open.forEach((o) => rect(g, toScreen, o.rect));
  g.fill();

  g.globalAlpha = 0.18;
  layout.booths.forEach(function (booth) {
    g.fillStyle = booth.colour;
    g.beginPath();
    rect(g, toScreen, booth.rect);
    g.fill();
  });
  g.globalAlpha = 1;

  // walls at least 2 px thick, so a booth's open side shows at any zoom
  g.fillStyle = WALL_COLOUR;
  g.beginPath();
  layout.walls.forEach((w) => rect(g, toScreen, footprint(w.box), 2));
  g.fill();

  g.fillStyle = PROP_COLOUR;
  g.beginPath();
  layout.props.forEach((p) => rect(g, toScreen, footprint(p.box)));
  g.fill();

  g.lineWidth = 1;
  g.strokeStyle = "#111318";
  layout.items.forEach(function (item) {
    g.fillStyle = NEED_COLOURS[item.need] || "#ffffff";
    g.beginPath();
    rect(g, toScreen, footprint(item.box));
    g.fill();
    g.stroke();
  });

  g.lineWidth = 2;
  g.strokeStyle = PORTAL_COLOUR;
  g.fillStyle = "rgba(179, 136, 255, 0.45)";
  layout.portals.forEach(function (portal) {
    g.beginPath();
    rect(g, toScreen, portal.rect);
    g.fill();
    g.stroke();
  });

  if (options.names) {
    g.font = "12px system-ui, sans-serif";
    g.textAlign = "center";
    g.textBaseline = "middle";
    g.fillStyle = "#e9edf2";
    layout.booths.forEach(function (booth) {
      const [x0, z0, x1, z1] = booth.rect;
      const [sx, sy] = toScreen((x0 + x1) / 2 * M, (z0 + z1) / 2 * M);
      g.fillText(booth.name, sx, sy);
    });
  }

  if (options.spawns) {
    g.fillStyle = "#e9edf2";
    layout.npc_spawns.forEach(function (npc) {
      const [sx, sy] = toScreen(npc.at[0] * M, npc.at[1] * M);
      g.fillRect(sx - 1, sy - 1, 2, 2);
    });
  }
  g.restore();
}

// A canvas showing the whole layout, fitted with a margin; returns the metres → pixels map.
export function drawLayoutFitted(canvas, layout, options = {}) {
  const ratio = window.devicePixelRatio || 1;
  const width = canvas.clientWidth;
  const height = canvas.clientHeight;
  canvas.width = Math.round(width * ratio);
  canvas.height = Math.round(height * ratio);
  const g = canvas.getContext("2d");
  g.setTransform(ratio, 0, 0, ratio, 0, 0);
  g.fillStyle = "#1d2026";
  g.fillRect(0, 0, width, height);
  const spanX = layout.bounds[0] * M;
  const spanZ = layout.bounds[2] * M;
  const scale = Math.min((width - 16) / spanX, (height - 16) / spanZ);
  const ox = (width - spanX * scale) / 2;
  const oz = (height - spanZ * scale) / 2;
  const toScreen = (x, z) => [ox + x * scale, oz + z * scale];
  drawLayout(g, layout, toScreen, options);
  return toScreen;
}

// One line of what a layout holds, for a caption.
export function layoutSummary(layout) {
  const c = layout.config;
  return (
    `${layout.booths.length} booths (${c.arrangement}), ${layout.walls.length} walls,` +
    ` ${layout.props.length} props, ${layout.items.length} items,` +
    ` ${layout.npc_spawns.length} NPC spawn points, ${layout.portals.length} portals;` +
    ` ${c.bounds_m[0]} x ${c.bounds_m[1]} m, seed ${c.seed}.`
  );
}
