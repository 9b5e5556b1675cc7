/**
 * Shared by the simulator's vitest files: the CI sweep's size, and seeds run in chunks (one `it` per
 * chunk, so each stays far below the test timeout and a failure names its seed).
 *
 * Size: `sweepSize` below (docs/consensus.md, "Simulator" has its measured cost); SIM_N4_SEEDS and
 * SIM_N7_SEEDS override it for one run. A longer run over fresh seeds is `node test/sim/soak.ts`.
 *
 * `SEED=<s> [N=<n>] [TRACE=1] [REAL_KEYS=1]` runs one seed instead (in sim-a.test.ts): TRACE=1 prints
 * every message, REAL_KEYS=1 signs with fresh Ed25519 keys instead of the simulator's keyed hash
 * (slower, and not bit-for-bit reproducible: the keys are random).
 */
import { expect, it } from 'vitest';
import { runScenario, type ScenarioResult } from './scenario.ts';

export const singleSeed = process.env.SEED !== undefined ? Number(process.env.SEED) : undefined;

/** Seeds per CI run, split evenly over sim-a.test.ts and sim-b.test.ts. */
export const sweepSize = {
  n4: Number(process.env.SIM_N4_SEEDS ?? 10_000),
  n7: Number(process.env.SIM_N7_SEEDS ?? 1_000),
};

/** Seeds per `it`: a chunk costs about 1.5 s of CPU at n=4 and 1 s at n=7 (bench.ts). */
const chunkSeeds = { 4: 100, 7: 25 } as Record<number, number>;

/** Half `part` (0 or 1) of the sweep at `n`: seeds 1..count/2 or count/2+1..count. */
export function sweepHalf(n: 4 | 7, part: 0 | 1): void {
  const count = n === 4 ? sweepSize.n4 : sweepSize.n7;
  const half = Math.ceil(count / 2);
  const from = part === 0 ? 1 : half + 1;
  sweep(n, from, part === 0 ? half : count - half, chunkSeeds[n]!);
}

export function sweep(n: number, from: number, count: number, chunk: number): void {
  for (let start = from; start < from + count; start += chunk) {
    const end = Math.min(start + chunk, from + count) - 1;
    it(`n=${n} seeds ${start}..${end}`, () => {
      let heights = 0;
      for (let seed = start; seed <= end; seed++) heights += runScenario({ seed, n }).committedHeight;
      // Guards against a vacuous pass: the scenarios must actually commit blocks.
      expect(heights).toBeGreaterThan(end - start + 1);
    });
  }
}

export function runSingle(seed: number): ScenarioResult {
  const n = Number(process.env.N ?? 4);
  const lines: string[] = [];
  const trace = process.env.TRACE ? (l: string) => lines.push(l) : undefined;
  try {
    return runScenario({ seed, n, trace, realKeys: process.env.REAL_KEYS === '1' });
  } finally {
    if (lines.length > 0) console.log(lines.join('\n'));
  }
}
