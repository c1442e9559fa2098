// The booth editor: the booth's assets in a list, their placements on the floor, publish.
//
// The page loads the booth's manifest (its assets) and its layout (placements and their
// version), edits a copy of the placements, and publishes it with PUT /shards/<booth>/layout
// naming the version it started from: if someone published in between, the market answers
// 409 and the page says so instead of overwriting the newer layout.

import { boothGeometry } from "../operator_ui/booths.js";
import { RequestRefused, formatBytes, sendJson } from "../chunks/api.js";
import { ChunkCache } from "../assets3d/chunk_cache.js";
import { Furnisher, isImage, isModel } from "../assets3d/furnish.js";
import { BoothFloor } from "./floor.js";
import { modelPicture } from "./preview.js";

const POLL_MS = 1000;
const ROTATE_STEP = Math.PI / 12;

const data = JSON.parse(document.getElementById("editor-data").textContent);
const geometry = boothGeometry(data.plan);
const $ = (id) => document.getElementById(id);
const state = {
  version: null,
  placements: [],
  assets: new Map(), // id → manifest asset
  selected: null,
  dirty: false,
  publishing: false,
};
const cache = new ChunkCache();
const furnisher = new Furnisher(cache);
const pictures = new Map(); // asset id → {src, image}

const floor = new BoothFloor($("floor"), geometry, data.zone, {
  select(index) {
    state.selected = index;
    render();
  },
  move(index, x, z) {
    const p = state.placements[index];
    p.position = [round(x), p.position[1], round(z)];
    changed();
  },
  drop(assetId, x, z) {
    place(assetId, x, z);
  },
  refused(message) {
    say(message, true);
  },
});

window.boothFloor = floor; // for tests: where the floor draws a point, what it holds

function round(value) {
  return Math.round(value * 100) / 100;
}

function say(message, alarm) {
  const line = $("message");
  line.textContent = message;
  line.className = alarm ? "message alarm" : "message";
  line.hidden = !message;
}

function changed() {
  state.dirty = true;
  render();
}

function place(assetId, x, z) {
  state.placements.push({ asset: assetId, position: [round(x), 0, round(z)], yaw: 0, scale: 1 });
  state.selected = state.placements.length - 1;
  say("");
  changed();
}

function render() {
  floor.placements = state.placements;
  floor.selected = state.selected;
  floor.names = new Map(
    [...state.assets.values()].map((a) => [a.id, { name: a.name, image: (pictures.get(a.id) || {}).image }]),
  );
  floor.draw();
  const selection = $("selection");
  const p = state.selected === null ? null : state.placements[state.selected];
  selection.hidden = !p;
  if (p) {
    $("selected-name").textContent = (state.assets.get(p.asset) || { name: "asset " + p.asset }).name;
    setField("field-x", p.position[0]);
    setField("field-z", p.position[2]);
    setField("field-rotation", Math.round((p.yaw * 180) / Math.PI));
    setField("field-scale", p.scale);
  }
  $("publish").disabled = state.publishing || state.version === null;
  $("layout-state").textContent =
    state.version === null
      ? "Loading…"
      : (state.dirty ? "Unpublished changes · " : "Published · ") +
        `version ${state.version}, ${state.placements.length} placed`;
}

function setField(id, value) {
  $(id).value = String(value); // renders follow changes, never typing, so this is safe
}

function edit(update) {
  const p = state.placements[state.selected];
  if (!p) return;
  const before = JSON.stringify(p);
  update(p);
  if (!floor.inside(p.position[0], p.position[2])) {
    Object.assign(p, JSON.parse(before));
    say("That spot is outside this booth: keep the asset on its coloured floor.", true);
  }
  changed();
}

$("field-x").addEventListener("change", (e) => edit((p) => (p.position = [Number(e.target.value), p.position[1], p.position[2]])));
$("field-z").addEventListener("change", (e) => edit((p) => (p.position = [p.position[0], p.position[1], Number(e.target.value)])));
$("field-rotation").addEventListener("change", (e) => edit((p) => (p.yaw = (Number(e.target.value) * Math.PI) / 180)));
$("field-scale").addEventListener("change", (e) =>
  edit((p) => (p.scale = Math.min(20, Math.max(0.05, Number(e.target.value) || 1)))),
);
$("rotate-left").addEventListener("click", () => edit((p) => (p.yaw += ROTATE_STEP)));
$("rotate-right").addEventListener("click", () => edit((p) => (p.yaw -= ROTATE_STEP)));
$("remove").addEventListener("click", removeSelected);
$("publish").addEventListener("click", publish);
$("reload").addEventListener("click", () => window.location.reload());
document.addEventListener("keydown", function (event) {
  if (event.target.closest("input")) return;
  if ((event.key === "Delete" || event.key === "Backspace") && state.selected !== null) removeSelected();
  if (event.key === "q") edit((p) => (p.yaw += ROTATE_STEP));
  if (event.key === "e") edit((p) => (p.yaw -= ROTATE_STEP));
});

function removeSelected() {
  if (state.selected === null) return;
  state.placements.splice(state.selected, 1);
  state.selected = null;
  changed();
}

async function publish() {
  state.publishing = true;
  render();
  try {
    const answer = await sendJson(
      "PUT",
      `/shards/${data.booth}/layout`,
      { version: state.version, placements: state.placements },
      "Publishing the layout",
    );
    state.version = answer.version;
    state.placements = answer.placements;
    state.dirty = false;
    say(`Published: visitors now see version ${answer.version}.`);
    $("reload").hidden = true;
  } catch (error) {
    say(error instanceof RequestRefused ? error.message : String(error), true);
    $("reload").hidden = !(error instanceof RequestRefused && error.status === 409);
  } finally {
    state.publishing = false;
    render();
  }
}

function assetRow(asset) {
  const row = document.createElement("li");
  row.className = "asset";
  row.dataset.asset = String(asset.id);
  const placeable = isModel(asset) || isImage(asset);
  row.draggable = placeable;
  row.addEventListener("dragstart", (e) => e.dataTransfer.setData("text/x-asset", String(asset.id)));
  const preview = document.createElement("div");
  preview.className = "preview";
  const text = document.createElement("div");
  text.className = "about";
  const name = document.createElement("strong");
  name.textContent = asset.name;
  const kind = document.createElement("span");
  kind.className = "kind";
  kind.textContent = `${asset.content_type} · ${formatBytes(asset.size)}`;
  const status = document.createElement("span");
  status.className = "status";
  text.append(name, kind, status);
  row.append(preview, text);
  if (placeable) {
    const button = document.createElement("button");
    button.type = "button";
    button.textContent = "Place";
    button.title = "Place in the middle of the booth (or drag onto the floor)";
    button.addEventListener("click", () => place(asset.id, ...geometry.booths[data.zone].anchor));
    row.append(button);
  } else {
    status.textContent = "Download only: not shown in the booth.";
  }
  return row;
}

function showPreview(asset, row) {
  const preview = row.querySelector(".preview");
  const status = row.querySelector(".status");
  if (isImage(asset)) {
    const states = {
      pending: "Making thumbnail…",
      failed: "No thumbnail: the image does not decode.",
      ready: "",
      none: "",
    };
    status.textContent = states[asset.thumbnail_state] || "";
    row.dataset.thumbnail = asset.thumbnail_state;
    if (asset.thumbnail && !preview.querySelector("img")) {
      const image = new Image();
      image.alt = "Thumbnail of " + asset.name;
      image.src = asset.thumbnail.url;
      image.addEventListener("load", () => {
        pictures.set(asset.id, { image });
        render();
      });
      preview.append(image);
    }
  } else if (isModel(asset) && !preview.querySelector("img")) {
    status.textContent = "Loading model…";
    furnisher.prototype(asset).then(
      (proto) => {
        const src = modelPicture(proto.object);
        status.textContent = "";
        if (!src) return;
        const image = new Image();
        image.alt = "Preview of " + asset.name;
        image.src = src;
        image.addEventListener("load", () => {
          pictures.set(asset.id, { image });
          render();
        });
        preview.append(image);
        row.dataset.preview = "ready";
      },
      (error) => (status.textContent = "The model does not load: " + error.message),
    );
  }
}

async function loadAssets() {
  let manifest;
  try {
    manifest = await sendJson("GET", `/shards/${data.booth}/assets`, undefined, "Loading the booth's assets");
  } catch (error) {
    say(error.message, true);
    return;
  }
  const list = $("assets");
  let pending = false;
  manifest.assets.forEach((asset) => {
    const known = state.assets.get(asset.id);
    state.assets.set(asset.id, asset);
    let row = list.querySelector(`[data-asset="${asset.id}"]`);
    if (!row) {
      row = assetRow(asset);
      list.append(row);
    }
    if (!known || known.thumbnail_state !== asset.thumbnail_state) showPreview(asset, row);
    pending = pending || asset.thumbnail_state === "pending";
  });
  $("assets-empty").hidden = manifest.assets.length > 0;
  render();
  if (pending) setTimeout(loadAssets, POLL_MS);
}

async function loadLayout() {
  try {
    const layout = await sendJson("GET", `/shards/${data.booth}/layout`, undefined, "Loading the layout");
    state.version = layout.version;
    state.placements = layout.placements;
  } catch (error) {
    say(error.message, true);
  }
  render();
}

window.addEventListener("beforeunload", function (event) {
  if (state.dirty) event.preventDefault();
});

loadAssets();
loadLayout();
