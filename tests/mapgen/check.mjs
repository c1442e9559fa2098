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

// Median milliseconds of one generate() of each config, over `repeats` timed runs after
// three untimed ones (the first calls compile the code).
export function generationMs(configs, repeats) {
  return configs.map(function (config) {
    for (let r = 0; r < 3; r += 1) generate(config);
    const runs = [];
    for (let r = 0; r < repeats; r += 1) {
      const start = performance.now();
      generate(config);
      runs.push(performance.now() - start);
    }
    runs.sort((a, b) => a - b);
    return { median: runs[Math.floor(runs.length / 2)], fastest: runs[0] };
  });
}

export function run(request) {
  const out = {};
  if (request.vectors) out.vectors = vectorsComputed(request.vectors);
  if (request.configs) out.layouts = layoutsComputed(request.configs, request.full || 0);
  if (request.time) out.times = generationMs(request.time.configs, request.time.repeats);
  return out;
}
