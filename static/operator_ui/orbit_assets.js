// The booths' placed assets in the orbit view: models through the glTF loader, images as
// framed panels (static/assets3d/furnish.js), fetched by hash through the chunk API with
// the operator's session and kept in the browser by hash, so that a second visit to the
// dashboard downloads nothing. The furniture stands in a group of its own, added to the
// orbit view's scene once that is built (on the first Tab).

import * as THREE from "three";
import { ChunkCache } from "../assets3d/chunk_cache.js";
import { Furnisher } from "../assets3d/furnish.js";

export class OrbitAssets {
  constructor(orbit, zones) {
    this.orbit = orbit;
    this.zones = zones; // the zones whose booths have placements (from the page)
    this.cache = new ChunkCache();
    this.furnisher = new Furnisher(this.cache);
    this.root = new THREE.Group();
    this.root.name = "booth-assets";
    this.booths = new Map(); // zone → group
    this.loaded = 0; // booths drawn
    this.market = null;
    window.fabricOrbitAssets = this; // for tests and the bench: what is drawn
    this.attach();
  }

  attach() {
    if (this.orbit.scene && this.root.parent !== this.orbit.scene) this.orbit.scene.add(this.root);
    requestAnimationFrame(() => this.attach());
  }

  // Fetch every furnished booth's manifest once per market (the hello names the market).
  load(market) {
    if (this.market === market) return;
    this.market = market;
    this.zones.forEach((zone) => this.booth(zone));
  }

  async booth(zone) {
    const response = await fetch(`/markets/${this.market}/zones/${zone}/assets`, { credentials: "same-origin" });
    if (!response.ok) return;
    const manifest = await response.json();
    const group = this.furnisher.booth(manifest, (asset, error) => console.warn(`${asset.name}: ${error.message}`));
    const old = this.booths.get(zone);
    this.booths.set(zone, group);
    this.root.add(group);
    if (old) this.furnisher.release(old);
    await group.userData.done;
    this.loaded += 1;
  }
}
