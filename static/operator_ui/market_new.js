// The new-market form: the preview is generated and drawn here from the fields, by the
// same generator the server runs, so what is drawn is what will be created.

import { drawLayoutFitted, layoutSummary } from "../mapgen/draw.js";
import { MapConfigError, generate, layoutHash } from "../mapgen/mapgen.js";

const form = document.getElementById("market-form");
const canvas = document.getElementById("preview");
const summary = document.getElementById("preview-summary");
const problem = document.getElementById("preview-error");
const NUMBERS = ["seed", "instance_id", "booths", "item_density", "npc_density"];
const FLOOR = ["aisle_cm", "wall_cm", "wall_height_cm", "tile_cm", "inset_cm"];

function whole(name, text) {
  const trimmed = String(text).trim();
  if (!/^-?\d+$/.test(trimmed)) throw new MapConfigError(`${name} must be a whole number, got '${trimmed}'`);
  return Number(trimmed);
}

// The config the fields describe, with market id 1 as the server checks it before the
// market (and so its id) exists.
export function configFromForm() {
  const data = new FormData(form);
  const config = { market_id: 1 };
  NUMBERS.forEach((name) => (config[name] = whole(name, data.get(name))));
  config.arrangement = data.get("arrangement");
  config.bounds_m = [whole("bounds x", data.get("bounds_x")), whole("bounds z", data.get("bounds_z"))];
  config.floor = {};
  FLOOR.forEach((name) => (config.floor[name] = whole(`floor.${name}`, data.get(name))));
  config.prop_sets = data.getAll("prop_sets");
  config.portals = [];
  String(data.get("portals") || "")
    .replace(/,/g, "\n")
    .split("\n")
    .forEach(function (line) {
      if (!line.trim()) return;
      const parts = line.split(":").map((p) => p.trim());
      if (parts.length > 3) throw new MapConfigError(`a portal is SIDE[:AT[:TARGET]], not '${line.trim()}'`);
      const portal = { side: parts[0] };
      if (parts.length > 1 && parts[1]) portal.at = whole("portal at", parts[1]);
      if (parts.length > 2 && parts[2]) portal.target = whole("portal target", parts[2]);
      config.portals.push(portal);
    });
  return config;
}

let shown = null;

function preview() {
  try {
    const layout = generate(configFromForm());
    drawLayoutFitted(canvas, layout, { spawns: true, names: true });
    summary.textContent = layoutSummary(layout);
    problem.hidden = true;
    shown = layout;
  } catch (error) {
    if (!(error instanceof MapConfigError)) throw error;
    problem.textContent = error.message;
    problem.hidden = false;
    shown = null;
  }
}

form.addEventListener("input", preview);
window.addEventListener("resize", () => shown && drawLayoutFitted(canvas, shown, { spawns: true, names: true }));
preview();

// For the page's tests: the layout previewed, and its hash.
window.fabricMarketNew = {
  get layout() {
    return shown;
  },
  get hash() {
    return shown ? layoutHash(shown) : null;
  },
  get problem() {
    return problem.hidden ? null : problem.textContent;
  },
};
