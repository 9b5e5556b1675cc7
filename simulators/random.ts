/**
 * Deterministic randomness for the simulators: a seeded PRNG with independent streams, and smooth
 * value noise that is a pure function of time.
 *
 * Why streams: each machine draws from its own stream (derived from the scenario seed and the machine
 * id), so adding a machine or a sensor does not shift the random numbers every other machine sees.
 * Why value noise: analog values (spindle speed, temperatures) are sampled whenever a protocol server
 * or a test asks; making them a pure function of (seed, channel, time) keeps the ground truth identical
 * however often `step()` is called.
 *
 * @example
 *   const rng = new Rng(42, streamId('CNC1'));
 *   rng.next();            // uniform in [0, 1)
 *   rng.gaussian();        // standard normal
 *   valueNoise(42, streamId('CNC1.load'), 1_500, 1_000); // smooth, in [-1, 1]
 */

/** Integer hash with good avalanche (lowbias32 by Chris Wellons), input and output uint32. */
export function hash32(x: number): number {
  let h = x >>> 0;
  h ^= h >>> 16;
  h = Math.imul(h, 0x7feb352d);
  h ^= h >>> 15;
  h = Math.imul(h, 0x846ca68b);
  h ^= h >>> 16;
  return h >>> 0;
}

/** Stable uint32 id for a stream name (FNV-1a over UTF-16 code units, then mixed). */
export function streamId(name: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < name.length; i++) {
    h ^= name.charCodeAt(i);
    h = Math.imul(h, 0x01000193);
  }
  return hash32(h);
}

/** splitmix32: expands one uint32 into a sequence of well-mixed uint32 values (used for seeding). */
function splitmix32(state: { s: number }): number {
  state.s = (state.s + 0x9e3779b9) >>> 0;
  let z = state.s;
  z = Math.imul(z ^ (z >>> 16), 0x85ebca6b);
  z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35);
  return (z ^ (z >>> 16)) >>> 0;
}

/**
 * xoshiro128** (Blackman and Vigna): 128-bit state, period 2^128 - 1, fast on 32-bit integer maths.
 * Not cryptographic; it only has to be reproducible and statistically decent.
 */
export class Rng {
  private s0: number;
  private s1: number;
  private s2: number;
  private s3: number;

  constructor(seed: number, stream = 0) {
    const st = { s: (hash32(seed >>> 0) ^ hash32((stream >>> 0) ^ 0x5bd1e995)) >>> 0 };
    this.s0 = splitmix32(st);
    this.s1 = splitmix32(st);
    this.s2 = splitmix32(st);
    this.s3 = splitmix32(st);
    // An all-zero state is the one fixed point of xoshiro; splitmix32 never yields four zeros in a row,
    // but the invariant is cheap to assert.
    if ((this.s0 | this.s1 | this.s2 | this.s3) === 0) throw new Error('Rng: all-zero state');
  }

  /** Next uint32. */
  nextU32(): number {
    const result = Math.imul(rotl(Math.imul(this.s1, 5), 7), 9) >>> 0;
    const t = this.s1 << 9;
    this.s2 ^= this.s0;
    this.s3 ^= this.s1;
    this.s1 ^= this.s2;
    this.s0 ^= this.s3;
    this.s2 ^= t;
    this.s3 = rotl(this.s3, 11);
    return result;
  }

  /** Uniform in [0, 1) with 32 bits of resolution. */
  next(): number {
    return this.nextU32() / 4294967296;
  }

  /** Uniform in [lo, hi). */
  range(lo: number, hi: number): number {
    return lo + (hi - lo) * this.next();
  }

  /** Uniform integer in [lo, hi] (inclusive); the range must be below 2^32. */
  int(lo: number, hi: number): number {
    return lo + Math.floor(this.next() * (hi - lo + 1));
  }

  /** True with probability p. */
  chance(p: number): boolean {
    return this.next() < p;
  }

  /** Standard normal by Box-Muller (two uniforms per call, no cached spare, so draws stay aligned). */
  gaussian(): number {
    const u1 = 1 - this.next(); // (0, 1]: log(0) is never taken
    const u2 = this.next();
    return Math.sqrt(-2 * Math.log(u1)) * Math.cos(2 * Math.PI * u2);
  }

  /** One element of a non-empty list. */
  pick<T>(items: readonly T[]): T {
    const item = items[this.int(0, items.length - 1)];
    if (item === undefined) throw new Error('Rng.pick: empty list');
    return item;
  }
}

function rotl(x: number, k: number): number {
  return ((x << k) | (x >>> (32 - k))) >>> 0;
}

/** Uniform in [-1, 1], a pure function of (seed, channel, knot index). */
function knot(seed: number, channel: number, index: number): number {
  // Knot indices can exceed 2^32 for small periods over long runs: fold the high part in.
  const lo = index >>> 0;
  const hi = Math.floor(index / 4294967296) >>> 0;
  const h = hash32(hash32(hash32(seed ^ channel) ^ lo) ^ hash32(hi ^ 0x27d4eb2f));
  return (h / 4294967295) * 2 - 1;
}

/**
 * Smooth noise in [-1, 1]: random knots every `periodMs`, cosine-interpolated between them.
 * A pure function of its arguments, so any process sampling at any time sees the same curve.
 */
export function valueNoise(seed: number, channel: number, tMs: number, periodMs: number): number {
  const x = tMs / periodMs;
  const i = Math.floor(x);
  const f = x - i;
  const w = (1 - Math.cos(Math.PI * f)) / 2;
  return knot(seed, channel, i) * (1 - w) + knot(seed, channel, i + 1) * w;
}
