/** Second half of the simulator sweep (see sim-a.test.ts). With SEED set, sim-a runs that seed alone. */
import { describe } from 'vitest';
import { singleSeed, sweepHalf } from './sweep.ts';

// With SEED set the one seed runs in sim-a.test.ts; this file then has nothing to do.
describe.skipIf(singleSeed !== undefined)('simulator, second half', () => {
  describe('n=4', () => sweepHalf(4, 1));
  describe('n=7', () => sweepHalf(7, 1));
});
