// What the JavaScript generator computes for the Python tests to compare: the golden
// vectors of tests/mapgen_vectors.json and the canonical hash of each config given.
// Loaded by node_run.mjs under Node and by a page in Chromium.

import { MapConfigError, canonical, generate, layoutHash } from "../../static/mapgen/mapgen.js";
import { Xoshiro128, mix32 } from "../../static/mapgen/prng32.js";

export function vectorsComputed(vectors) {
  const ref = vectors.reference.state;
  const reference = Xoshiro128.fromState(ref[0], ref[1], ref[2], ref[3]);
  return {
    reference: vectors.reference.outputs.map(() => reference.nextU32()),
    mix32: vectors.mix32.map(([input]) => mix32(input)),
    seeded: vectors.seeded.map(function (v) {
      const rng = new Xoshiro128(v.seed, v.stream);
      return v.outputs.map(() => rng.nextU32());
    }),
    below: vectors.below.map(function (v) {
      const rng = new Xoshiro128(v.seed, v.stream);
      return v.values.map(() => rng.below(v.bound));
    }),
    layouts: vectors.layouts.map((v) => layoutHash(generate(v.config))),
  };
}

// For each config: {sha256, length} of its canonical bytes, `text` too for the first
// `fullCount`, or {error} with the MapConfigError's message.
export function layoutsComputed(configs, fullCount) {
  return configs.map(function (config, i) {
    try {
      const layout = generate(config);
      const result = { sha256: layoutHash(layout), length: canonical(layout).length };
      if (i < fullCount) result.text = canonical(layout);
      return result;
    } catch (error) {
      if (error instanceof MapConfigError) return { error: error.message };
      throw error;
    }
  });
}

// Median milliseconds of generate() per config, over `repeats` runs of all of them.
export function generationMs(configs, repeats) {
  const perRun = [];
  for (let r = 0; r < repeats; r += 1) {
    for (const config of configs) {
      const start = performance.now();
      generate(config);
      perRun.push(performance.now() - start);
    }
  }
  perRun.sort((a, b) => a - b);
  return perRun[Math.floor(perRun.length / 2)];
}

export function run(request) {
  const out = {};
  if (request.vectors) out.vectors = vectorsComputed(request.vectors);
  if (request.configs) out.layouts = layoutsComputed(request.configs, request.full || 0);
  if (request.time) out.medianMs = generationMs(request.time.configs, request.time.repeats);
  return out;
}
