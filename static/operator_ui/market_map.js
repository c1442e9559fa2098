// A generated market's map: the layout generated again here from the stored config, its
// hash compared with the one the server recorded when it created the market.

import { drawLayoutFitted, layoutSummary } from "../mapgen/draw.js";
import { generate, layoutHash } from "../mapgen/mapgen.js";

const config = JSON.parse(document.getElementById("market-map-config").textContent);
const layout = generate(config);
const hash = layoutHash(layout);
const canvas = document.getElementById("preview");
drawLayoutFitted(canvas, layout, { spawns: true, names: true });
document.getElementById("preview-summary").textContent = layoutSummary(layout);
document.getElementById("browser-hash").textContent = hash;
const same = hash === document.getElementById("server-hash").textContent.trim();
const verdict = document.getElementById("hash-verdict");
verdict.textContent = same ? "the same layout" : "a different layout: the generators disagree";
verdict.className = same ? "same" : "error";
window.addEventListener("resize", () => drawLayoutFitted(canvas, layout, { spawns: true, names: true }));
window.fabricMarketMap = { layout: layout, hash: hash, same: same };
