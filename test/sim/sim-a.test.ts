/**
 * The seeded simulator (docs/consensus.md, "Simulator"), first half of the sweep; sim-b.test.ts
 * holds the second half so the two run on two cores. 1,000 seeds with n=4 and 30 with n=7 in all;
 * even seeds run the ledger application (signed events from simulated gateways, docs/ledger.md),
 * odd seeds opaque transactions.
 * Reproduce a failure: SEED=<seed> N=<n> npx vitest run test/sim/   (TRACE=1 prints every message)
 */
import { describe, expect, it } from 'vitest';
import { runSingle, singleSeed, sweep } from './sweep.ts';

const seed = singleSeed;
if (seed !== undefined) {
  it(`seed ${seed}`, () => {
    const r = runSingle(seed);
    console.log(JSON.stringify(r));
    expect(r.committedHeight).toBeGreaterThan(0);
  });
} else {
  describe('simulator, n=4', () => sweep(4, 1, 500, 50));
  describe('simulator, n=7', () => sweep(7, 1, 15, 5));
}
