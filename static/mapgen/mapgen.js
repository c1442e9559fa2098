// Procedural markets: a map config and a seed make the static market, byte for byte.
//
// The same generator as zones/core/mapgen.py, for browsers and Node: every length is an
// integer number of centimetres, every choice comes from the 32-bit generator of
// prng32.js, and there is no floating point on the way, so for one config both produce the
// same canonical bytes (docs/mapgen.md describes the format and the rules).

import { MASK32, Xoshiro128 } from "./prng32.js";
import { sha256Hex } from "./sha256.js";

export const FORMAT = 1;
export const GENERATOR = "fabric-mapgen/1";

const MAX_BOOTHS = 32;
const MIN_BOOTH_CM = 400;
const MAX_BOOTH_CM = 2400;
const MIN_BOUND_M = 16;
const MAX_BOUND_M = 1024;
const MAX_PORTALS = 8;
const ENTRANCE_CM = 150;
const CLEARANCE_CM = 50;
const PLACE_TRIES = 12;
const MAX_ITEMS = 256;
const MAX_NPC_SPAWNS = 1024;

export const ARRANGEMENTS = ["grid", "rows", "ring"];
export const SIDES = ["north", "east", "south", "west"];

const STREAM_BOOTHS = 1;
const STREAM_PROPS = 2;
const STREAM_ITEMS = 3;
const STREAM_NPCS = 4;

export const PROP_SETS = {
  market: [["crate", 80, 80, 80], ["barrel", 60, 60, 90], ["sacks", 100, 60, 50]],
  garden: [["planter", 120, 60, 70], ["tree", 100, 100, 400], ["flowerbed", 200, 80, 30]],
  workshop: [["workbench", 180, 80, 90], ["anvil", 60, 40, 80], ["rack", 200, 50, 200]],
  lanterns: [["lantern_post", 30, 30, 300], ["brazier", 70, 70, 100]],
};

// kind → [need it restores, amount restored, users at once, width, depth, height, weight]
export const ITEM_KINDS = {
  food_stall: ["hunger", 60, 3, 300, 200, 250, 3],
  wash_fountain: ["hygiene", 50, 2, 200, 200, 150, 2],
  stage: ["fun", 40, 8, 600, 400, 100, 1],
  games: ["fun", 30, 2, 300, 300, 120, 2],
  bench: ["energy", 40, 2, 200, 60, 50, 4],
};
const ITEM_ORDER = Object.keys(ITEM_KINDS).sort();

const PALETTE = [
  "#e4572e", "#17bebb", "#ffc914", "#76b041", "#2e86ab", "#a23b72",
  "#f18f01", "#c73e1d", "#3b1f2b", "#6a994e", "#bc4749", "#386641",
];

const PORTAL_WIDTH_CM = 300;
const PORTAL_DEPTH_CM = 150;

const FLOOR_DEFAULTS = { aisle_cm: 400, wall_cm: 20, wall_height_cm: 300, tile_cm: 200, inset_cm: 100 };
const CONFIG_DEFAULTS = {
  instance_id: 0,
  bounds_m: [128, 128],
  booths: 8,
  arrangement: "grid",
  prop_sets: ["market"],
  item_density: 20,
  npc_density: 50,
  portals: [],
};

export class MapConfigError extends Error {
  constructor(message) {
    super(message);
    this.name = "MapConfigError";
  }
}

function intIn(name, value, lo, hi) {
  if (typeof value !== "number" || !Number.isInteger(value)) {
    throw new MapConfigError(`${name} must be a whole number, got ${JSON.stringify(value)}`);
  }
  if (value < lo || value > hi) throw new MapConfigError(`${name} must be ${lo}..${hi}, got ${value}`);
}

// The config with every default filled in, checked; the form zones/core/mapgen.py's
// MapConfig.to_dict gives.
export function normaliseConfig(data) {
  if (data === null || typeof data !== "object" || Array.isArray(data)) {
    throw new MapConfigError("a map config is a JSON object");
  }
  const known = ["market_id", "seed", ...Object.keys(CONFIG_DEFAULTS), "floor"].sort();
  const unknown = Object.keys(data).filter((k) => !known.includes(k)).sort();
  if (unknown.length) throw new MapConfigError(`unknown field '${unknown[0]}'; known: ${known.join(", ")}`);
  for (const name of ["market_id", "seed"]) {
    if (!(name in data)) throw new MapConfigError(`${name} is required`);
  }
  const floorIn = data.floor === undefined ? {} : data.floor;
  if (floorIn === null || typeof floorIn !== "object" || Array.isArray(floorIn)) {
    throw new MapConfigError("floor must be an object");
  }
  const floorKnown = Object.keys(FLOOR_DEFAULTS).sort();
  const floorBad = Object.keys(floorIn).filter((k) => !floorKnown.includes(k)).sort();
  if (floorBad.length) {
    throw new MapConfigError(`unknown floor field '${floorBad[0]}'; known: ${floorKnown.join(", ")}`);
  }
  const config = { ...CONFIG_DEFAULTS, ...data, floor: { ...FLOOR_DEFAULTS, ...floorIn } };
  if (!Array.isArray(config.bounds_m) || config.bounds_m.length !== 2) {
    throw new MapConfigError("bounds_m must be [x, z] in whole metres");
  }
  if (!Array.isArray(config.prop_sets)) throw new MapConfigError("prop_sets must be a list of names");
  config.portals = (config.portals || []).map(function (portal) {
    if (portal === null || typeof portal !== "object" || !("side" in portal)) {
      throw new MapConfigError("each portal is an object with a side");
    }
    if (Object.keys(portal).some((k) => !["side", "at", "target"].includes(k))) {
      throw new MapConfigError("a portal has only side, at and target");
    }
    return { side: portal.side, at: portal.at === undefined ? 500 : portal.at, target: portal.target ?? null };
  });
  validate(config);
  return {
    market_id: config.market_id,
    instance_id: config.instance_id,
    seed: config.seed,
    bounds_m: [config.bounds_m[0], config.bounds_m[1]],
    floor: {
      aisle_cm: config.floor.aisle_cm,
      wall_cm: config.floor.wall_cm,
      wall_height_cm: config.floor.wall_height_cm,
      tile_cm: config.floor.tile_cm,
      inset_cm: config.floor.inset_cm,
    },
    booths: config.booths,
    arrangement: config.arrangement,
    prop_sets: [...config.prop_sets],
    item_density: config.item_density,
    npc_density: config.npc_density,
    portals: config.portals,
  };
}

function validate(config) {
  intIn("market_id", config.market_id, 1, 2 ** 31 - 1);
  intIn("instance_id", config.instance_id, 0, 2 ** 31 - 1);
  intIn("seed", config.seed, 0, MASK32);
  intIn("bounds_m x", config.bounds_m[0], MIN_BOUND_M, MAX_BOUND_M);
  intIn("bounds_m z", config.bounds_m[1], MIN_BOUND_M, MAX_BOUND_M);
  const floor = config.floor;
  intIn("floor.aisle_cm", floor.aisle_cm, 200, 1200);
  intIn("floor.wall_cm", floor.wall_cm, 10, 100);
  intIn("floor.wall_height_cm", floor.wall_height_cm, 100, 800);
  intIn("floor.tile_cm", floor.tile_cm, 50, 1000);
  intIn("floor.inset_cm", floor.inset_cm, 0, 200);
  intIn("booths", config.booths, 1, MAX_BOOTHS);
  if (!ARRANGEMENTS.includes(config.arrangement)) {
    throw new MapConfigError(
      `unknown arrangement '${config.arrangement}'; choose one of ${ARRANGEMENTS.join(", ")}`,
    );
  }
  if (!config.prop_sets.length) throw new MapConfigError("prop_sets needs at least one prop set");
  for (const name of config.prop_sets) {
    if (!Object.prototype.hasOwnProperty.call(PROP_SETS, name)) {
      throw new MapConfigError(
        `unknown prop set '${name}'; choose from ${Object.keys(PROP_SETS).sort().join(", ")}`,
      );
    }
  }
  if (new Set(config.prop_sets).size !== config.prop_sets.length) {
    throw new MapConfigError("prop_sets names a prop set twice");
  }
  intIn("item_density", config.item_density, 0, 200);
  intIn("npc_density", config.npc_density, 0, 1000);
  if (config.portals.length > MAX_PORTALS) {
    throw new MapConfigError(`at most ${MAX_PORTALS} portals, got ${config.portals.length}`);
  }
  config.portals.forEach(function (portal, i) {
    if (!SIDES.includes(portal.side)) {
      throw new MapConfigError(`portal ${i}: unknown side '${portal.side}'; choose one of ${SIDES.join(", ")}`);
    }
    intIn(`portal ${i} at`, portal.at, 0, 1000);
    if (portal.target !== null) intIn(`portal ${i} target`, portal.target, 1, 2 ** 31 - 1);
  });
}

function overlaps(a, b) {
  return a[0] < b[2] && b[0] < a[2] && a[1] < b[3] && b[1] < a[3];
}

function plots(config) {
  const n = config.booths;
  if (config.arrangement === "rows") {
    const rows = n > 1 ? 2 : 1;
    const columns = Math.floor((n + rows - 1) / rows);
    const cells = [];
    for (let i = 0; i < n; i += 1) cells.push([i % columns, Math.floor(i / columns)]);
    return [columns, rows, cells, cells.map((c) => (c[1] === 0 ? "south" : "north"))];
  }
  let side = 1;
  if (config.arrangement === "grid") {
    while (side * side < n) side += 1;
    const rows = Math.floor((n + side - 1) / side);
    const cells = [];
    for (let i = 0; i < n; i += 1) cells.push([i % side, Math.floor(i / side)]);
    return [side, rows, cells, cells.map(() => null)];
  }
  while (side * side - Math.max(side - 2, 0) ** 2 < n) side += 1;
  const ring = [];
  for (let c = 0; c < side; c += 1) ring.push([c, 0]);
  for (let r = 1; r < side; r += 1) ring.push([side - 1, r]);
  if (side > 1) {
    for (let c = side - 2; c >= 0; c -= 1) ring.push([c, side - 1]);
    for (let r = side - 2; r > 0; r -= 1) ring.push([0, r]);
  }
  const cells = ring.slice(0, n);
  const facing = cells.map(function ([c, r]) {
    if (side < 3) return null;
    if (r === 0) return "south";
    if (r === side - 1) return "north";
    if (c === 0) return "east";
    return "west";
  });
  return [side, side, cells, facing];
}

function wallBoxes(rect, facing, thick, height) {
  const [x0, z0, x1, z1] = rect;
  const sides = {
    north: [x0, 0, z0, x1, height, z0 + thick],
    south: [x0, 0, z1 - thick, x1, height, z1],
    west: [x0, 0, z0, x0 + thick, height, z1],
    east: [x1 - thick, 0, z0, x1, height, z1],
  };
  return SIDES.filter((side) => side !== facing).map((side) => [side, sides[side]]);
}

const div = (a, b) => Math.floor(a / b); // only ever of non-negative integers here
const pad = (n, width) => String(n).padStart(width, "0");

function pickArea(walkable, spot) {
  let area = walkable[0];
  for (area of walkable) {
    const size = (area[2] - area[0]) * (area[3] - area[1]);
    if (spot < size) break;
    spot -= size;
  }
  return area;
}

// The market `configData` describes, as JSON data: integers in centimetres, y up.
export function generate(configData) {
  const config = normaliseConfig(configData);
  const floor = config.floor;
  const width = config.bounds_m[0] * 100;
  const depth = config.bounds_m[1] * 100;
  const aisle = floor.aisle_cm;
  const thick = floor.wall_cm;
  const height = floor.wall_height_cm;

  const [columns, rows, cells, facingFixed] = plots(config);
  const innerX0 = thick;
  const innerZ0 = thick;
  const innerW = width - 2 * thick;
  const innerD = depth - 2 * thick;
  const plotW = Math.min(div(innerW - (columns + 1) * aisle, columns), MAX_BOOTH_CM);
  const plotD = Math.min(div(innerD - (rows + 1) * aisle, rows), MAX_BOOTH_CM);
  if (plotW < MIN_BOOTH_CM || plotD < MIN_BOOTH_CM) {
    const needX = div(columns * MIN_BOOTH_CM + (columns + 1) * aisle + 2 * thick + 99, 100);
    const needZ = div(rows * MIN_BOOTH_CM + (rows + 1) * aisle + 2 * thick + 99, 100);
    throw new MapConfigError(
      `bounds ${config.bounds_m[0]} x ${config.bounds_m[1]} m are too small for` +
        ` ${config.booths} booths arranged as ${config.arrangement} (${columns} x ${rows}` +
        ` plots of at least ${MIN_BOOTH_CM} cm with ${aisle} cm aisles): need at least` +
        ` ${needX} x ${needZ} m`,
    );
  }
  const blockW = columns * plotW + (columns + 1) * aisle;
  const blockD = rows * plotD + (rows + 1) * aisle;
  const originX = innerX0 + div(innerW - blockW, 2);
  const originZ = innerZ0 + div(innerD - blockD, 2);
  const plotRect = function (c, r) {
    const x0 = originX + aisle + c * (plotW + aisle);
    const z0 = originZ + aisle + r * (plotD + aisle);
    return [x0, z0, x0 + plotW, z0 + plotD];
  };

  let rng = new Xoshiro128(config.seed, STREAM_BOOTHS);
  const shift = rng.below(PALETTE.length);
  const booths = [];
  const walls = [];
  const used = new Set();
  cells.forEach(function ([c, r], index) {
    used.add(`${c},${r}`);
    const [px0, pz0, px1, pz1] = plotRect(c, r);
    const limit = Math.min(floor.inset_cm, div(plotW - MIN_BOOTH_CM, 2), div(plotD - MIN_BOOTH_CM, 2));
    const insets = [];
    for (let k = 0; k < 4; k += 1) insets.push(rng.below(limit + 1));
    const rect = [px0 + insets[3], pz0 + insets[0], px1 - insets[1], pz1 - insets[2]];
    const facing = facingFixed[index] !== null ? facingFixed[index] : SIDES[rng.below(4)];
    const boothId = `b${pad(index, 2)}`;
    booths.push({
      id: boothId,
      index: index,
      name: `Booth ${index + 1}`,
      colour: PALETTE[(shift + index) % PALETTE.length],
      rect: rect,
      facing: facing,
    });
    for (const [side, box] of wallBoxes(rect, facing, thick, height)) {
      walls.push({ id: `${boothId}.wall.${side}`, box: box });
    }
  });
  const edges = {
    north: [0, 0, 0, width, height, thick],
    east: [width - thick, 0, 0, width, height, depth],
    south: [0, 0, depth - thick, width, height, depth],
    west: [0, 0, 0, thick, height, depth],
  };
  for (const side of SIDES) walls.push({ id: `edge.${side}`, box: edges[side] });

  const aisles = [];
  for (let c = 0; c <= columns; c += 1) {
    const x0 = originX + c * (plotW + aisle);
    aisles.push({ id: `aisle.x.${c}`, rect: [x0, innerZ0, x0 + aisle, innerZ0 + innerD] });
  }
  for (let r = 0; r <= rows; r += 1) {
    const z0 = originZ + r * (plotD + aisle);
    aisles.push({ id: `aisle.z.${r}`, rect: [innerX0, z0, innerX0 + innerW, z0 + aisle] });
  }
  const openFloor = [];
  for (let r = 0; r < rows; r += 1) {
    for (let c = 0; c < columns; c += 1) {
      if (!used.has(`${c},${r}`)) openFloor.push({ id: `open.${c}.${r}`, rect: plotRect(c, r) });
    }
  }

  const portals = [];
  const portalDepth = Math.min(PORTAL_DEPTH_CM, aisle - 2 * CLEARANCE_CM);
  config.portals.forEach(function (portal, i) {
    let rect;
    if (portal.side === "north" || portal.side === "south") {
      const x0 = originX + div((blockW - PORTAL_WIDTH_CM) * portal.at, 1000);
      const z0 =
        portal.side === "north" ? originZ + CLEARANCE_CM : originZ + blockD - CLEARANCE_CM - portalDepth;
      rect = [x0, z0, x0 + PORTAL_WIDTH_CM, z0 + portalDepth];
    } else {
      const z0 = originZ + div((blockD - PORTAL_WIDTH_CM) * portal.at, 1000);
      const x0 =
        portal.side === "west" ? originX + CLEARANCE_CM : originX + blockW - CLEARANCE_CM - portalDepth;
      rect = [x0, z0, x0 + portalDepth, z0 + PORTAL_WIDTH_CM];
    }
    for (const other of portals) {
      if (overlaps(rect, other.rect)) {
        throw new MapConfigError(`portal ${i} overlaps ${other.id}: move it along its side`);
      }
    }
    portals.push({ id: `portal.${i}`, side: portal.side, target: portal.target, rect: rect });
  });

  rng = new Xoshiro128(config.seed, STREAM_PROPS);
  const kinds = [];
  for (const name of config.prop_sets) kinds.push(...PROP_SETS[name]);
  const props = [];
  for (const booth of booths) {
    const [x0, z0, x1, z1] = booth.rect;
    const room = [x0 + thick + CLEARANCE_CM, z0 + thick + CLEARANCE_CM, x1 - thick - CLEARANCE_CM, z1 - thick - CLEARANCE_CM];
    if (booth.facing === "north") room[1] = z0 + ENTRANCE_CM;
    else if (booth.facing === "south") room[3] = z1 - ENTRANCE_CM;
    else if (booth.facing === "west") room[0] = x0 + ENTRANCE_CM;
    else room[2] = x1 - ENTRANCE_CM;
    const placed = [];
    const wanted = 1 + rng.below(3);
    for (let p = 0; p < wanted; p += 1) {
      const [kind, kw, kd, kh] = kinds[rng.below(kinds.length)];
      const turn = rng.below(4);
      const w = turn % 2 ? kd : kw;
      const d = turn % 2 ? kw : kd;
      for (let t = 0; t < PLACE_TRIES; t += 1) {
        const freeX = room[2] - room[0] - w;
        const freeZ = room[3] - room[1] - d;
        if (freeX < 0 || freeZ < 0) break;
        const px = room[0] + rng.below(freeX + 1);
        const pz = room[1] + rng.below(freeZ + 1);
        const rect = [px, pz, px + w, pz + d];
        if (placed.some((other) => overlaps(rect, other))) continue;
        placed.push(rect);
        props.push({
          id: `${booth.id}.prop.${p}`,
          kind: kind,
          booth: booth.index,
          turn: turn,
          box: [px, 0, pz, px + w, kh, pz + d],
        });
        break;
      }
    }
  }

  const walkable = aisles.map((a) => a.rect).concat(openFloor.map((o) => o.rect));
  let walkArea = 0;
  for (const r of walkable) walkArea += (r[2] - r[0]) * (r[3] - r[1]);
  const floorM2 = div(width * depth, 10000);
  rng = new Xoshiro128(config.seed, STREAM_ITEMS);
  const weights = ITEM_ORDER.map((k) => ITEM_KINDS[k][6]);
  const totalWeight = weights.reduce((s, v) => s + v, 0);
  const blocked = portals.map((p) => p.rect);
  const items = [];
  const itemCount = Math.min(div(floorM2 * config.item_density, 10000), MAX_ITEMS);
  for (let i = 0; i < itemCount; i += 1) {
    let pick = rng.below(totalWeight);
    let index = 0;
    while (pick >= weights[index]) {
      pick -= weights[index];
      index += 1;
    }
    const kind = ITEM_ORDER[index];
    const [need, restores, capacity, kw, kd, kh] = ITEM_KINDS[kind];
    const turn = rng.below(2);
    const w = turn ? kd : kw;
    const d = turn ? kw : kd;
    for (let t = 0; t < PLACE_TRIES; t += 1) {
      const area = pickArea(walkable, rng.below(walkArea));
      const freeX = area[2] - area[0] - 2 * CLEARANCE_CM - w;
      const freeZ = area[3] - area[1] - 2 * CLEARANCE_CM - d;
      if (freeX < 0 || freeZ < 0) continue;
      const px = area[0] + CLEARANCE_CM + rng.below(freeX + 1);
      const pz = area[1] + CLEARANCE_CM + rng.below(freeZ + 1);
      const rect = [px, pz, px + w, pz + d];
      if (blocked.some((other) => overlaps(rect, other))) continue;
      blocked.push(rect);
      items.push({
        id: `item.${pad(i, 3)}`,
        kind: kind,
        need: need,
        restores: restores,
        capacity: capacity,
        turn: turn,
        box: [px, 0, pz, px + w, kh, pz + d],
      });
      break;
    }
  }

  rng = new Xoshiro128(config.seed, STREAM_NPCS);
  const npcs = [];
  const npcCount = Math.min(div(floorM2 * config.npc_density, 10000), MAX_NPC_SPAWNS);
  for (let i = 0; i < npcCount; i += 1) {
    for (let t = 0; t < PLACE_TRIES; t += 1) {
      const area = pickArea(walkable, rng.below(walkArea));
      const x = area[0] + rng.below(area[2] - area[0]);
      const z = area[1] + rng.below(area[3] - area[1]);
      if (blocked.some((r) => r[0] <= x && x < r[2] && r[1] <= z && z < r[3])) continue;
      npcs.push({ id: `npc.${pad(i, 3)}`, at: [x, z] });
      break;
    }
  }

  const colliders = walls
    .map((w) => ({ id: w.id, box: w.box }))
    .concat(props.map((p) => ({ id: p.id, box: p.box })))
    .concat(items.map((it) => ({ id: it.id, box: it.box })));
  colliders.sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
  return {
    format: FORMAT,
    generator: GENERATOR,
    config: config,
    bounds: [width, height, depth],
    floor: { tile: floor.tile_cm, tiles: [Math.ceil(width / floor.tile_cm), Math.ceil(depth / floor.tile_cm)] },
    booths: booths,
    walls: walls,
    aisles: aisles,
    open: openFloor,
    props: props,
    items: items,
    npc_spawns: npcs,
    portals: portals,
    colliders: colliders,
  };
}

// JSON as Python's json.dumps(sort_keys=True, separators=(",", ":"), ensure_ascii=True)
// writes it, for the data a layout holds: objects, arrays, strings, integers, null.
function writeCanonical(value, out) {
  if (value === null) out.push("null");
  else if (typeof value === "number") {
    if (!Number.isSafeInteger(value)) throw new TypeError(`not an integer: ${value}`);
    out.push(String(value));
  } else if (typeof value === "string") {
    out.push(JSON.stringify(value).replace(/[\u007f-\uffff]/g, (ch) => "\\u" + ch.charCodeAt(0).toString(16).padStart(4, "0")));
  } else if (typeof value === "boolean") out.push(value ? "true" : "false");
  else if (Array.isArray(value)) {
    out.push("[");
    value.forEach(function (item, i) {
      if (i) out.push(",");
      writeCanonical(item, out);
    });
    out.push("]");
  } else {
    out.push("{");
    Object.keys(value)
      .sort()
      .forEach(function (key, i) {
        if (i) out.push(",");
        writeCanonical(key, out);
        out.push(":");
        writeCanonical(value[key], out);
      });
    out.push("}");
  }
}

export function canonical(layout) {
  const out = [];
  writeCanonical(layout, out);
  return out.join("");
}

export function canonicalBytes(layout) {
  return new TextEncoder().encode(canonical(layout));
}

export function layoutHash(layout) {
  return sha256Hex(canonicalBytes(layout));
}
