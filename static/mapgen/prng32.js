// A 32-bit pseudo-random generator that JavaScript and Python compute bit for bit.
//
// xoshiro128** seeded from a 32-bit seed and a 32-bit stream number
// through the finaliser mix32, exactly as zones/core/prng32.py: every operation is kept
// modulo 2^32 with Math.imul and >>> 0. tests/mapgen_vectors.json holds vectors both match.

export const MASK32 = 0xffffffff;
const GOLDEN32 = 0x9e3779b9;
const TWO32 = 4294967296;

export function mix32(value) {
  let v = value >>> 0;
  v = (v ^ (v >>> 16)) >>> 0;
  v = Math.imul(v, 0x7feb352d) >>> 0;
  v = (v ^ (v >>> 15)) >>> 0;
  v = Math.imul(v, 0x846ca68b) >>> 0;
  v = (v ^ (v >>> 16)) >>> 0;
  return v;
}

function rotl(value, bits) {
  return ((value << bits) | (value >>> (32 - bits))) >>> 0;
}

export class Xoshiro128 {
  constructor(seed, stream = 0) {
    if (!Number.isInteger(seed) || seed < 0 || seed > MASK32) {
      throw new RangeError(`seed must be 0..${MASK32}, got ${seed}`);
    }
    if (!Number.isInteger(stream) || stream < 0 || stream > MASK32) {
      throw new RangeError(`stream must be 0..${MASK32}, got ${stream}`);
    }
    const base = (seed ^ mix32(stream ^ 0x5851f42d)) >>> 0;
    this.s0 = mix32(base + GOLDEN32);
    this.s1 = mix32(base + 2 * GOLDEN32);
    this.s2 = mix32(base + 3 * GOLDEN32);
    this.s3 = mix32(base + 4 * GOLDEN32);
  }

  static fromState(s0, s1, s2, s3) {
    const rng = new Xoshiro128(0);
    rng.s0 = s0 >>> 0;
    rng.s1 = s1 >>> 0;
    rng.s2 = s2 >>> 0;
    rng.s3 = s3 >>> 0;
    return rng;
  }

  nextU32() {
    let { s0, s1, s2, s3 } = this;
    const result = Math.imul(rotl(Math.imul(s1, 5) >>> 0, 7), 9) >>> 0;
    const t = (s1 << 9) >>> 0;
    s2 = (s2 ^ s0) >>> 0;
    s3 = (s3 ^ s1) >>> 0;
    s1 = (s1 ^ s2) >>> 0;
    s0 = (s0 ^ s3) >>> 0;
    s2 = (s2 ^ t) >>> 0;
    s3 = rotl(s3, 11);
    this.s0 = s0;
    this.s1 = s1;
    this.s2 = s2;
    this.s3 = s3;
    return result;
  }

  // A uniform integer in [0, bound), 1 <= bound <= 2^32, by rejection (no modulo bias).
  below(bound) {
    if (!Number.isInteger(bound) || bound < 1 || bound > TWO32) {
      throw new RangeError(`bound must be 1..2^32, got ${bound}`);
    }
    const limit = TWO32 - (TWO32 % bound);
    for (;;) {
      const value = this.nextU32();
      if (value < limit) return value % bound;
    }
  }

  between(lo, hi) {
    return lo + this.below(hi - lo + 1);
  }
}
