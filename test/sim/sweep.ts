/**
 * Shared by the simulator's vitest files: runs seeds in chunks (one `it` per chunk, so each stays
 * far below the test timeout and a failure names its seed). `SEED=<s> [N=<n>] [TRACE=1] [REAL_KEYS=1]`
 * runs one seed instead (in sim-a.test.ts): TRACE=1 prints every message, REAL_KEYS=1 signs with
 * fresh Ed25519 keys instead of the simulator's keyed hash (slower, and not bit-for-bit reproducible:
 * the keys are random).
 */
import { expect, it } from 'vitest';
import { runScenario, type ScenarioResult } from './scenario.ts';

export const singleSeed = process.env.SEED !== undefined ? Number(process.env.SEED) : undefined;

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
