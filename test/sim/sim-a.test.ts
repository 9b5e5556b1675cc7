/**
 * The seeded simulator (docs/consensus.md, "Simulator"), first half of the sweep; sim-b.test.ts
 * holds the second half so the two can run on two cores. 10,000 seeds with n=4 and 1,000 with n=7
 * in all (sweep.ts); even seeds run the ledger application (signed events from simulated gateways,
 * docs/ledger.md), odd seeds opaque transactions. A failure prints its seed, its scenario and the
 * command that replays it:
 *   SEED=<seed> N=<n> npx vitest run test/sim/   (TRACE=1 prints every message)
 */
import { describe, expect, it } from 'vitest';
import { runSingle, singleSeed, sweepHalf } from './sweep.ts';

const seed = singleSeed;
if (seed !== undefined) {
  it(`seed ${seed}`, () => {
    const r = runSingle(seed);
    console.log(JSON.stringify(r));
    expect(r.committedHeight).toBeGreaterThan(0);
  });
} else {
  describe('simulator, n=4', () => sweepHalf(4, 0));
  describe('simulator, n=7', () => sweepHalf(7, 0));
}
