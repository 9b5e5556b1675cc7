/** Second half of the simulator sweep (see sim-a.test.ts). With SEED set, sim-a runs that seed alone. */
import { describe } from 'vitest';
import { singleSeed, sweep } from './sweep.ts';

// With SEED set the one seed runs in sim-a.test.ts; this file then has nothing to do.
describe.skipIf(singleSeed !== undefined)('simulator, second half', () => {
  describe('n=4', () => sweep(4, 501, 500, 50));
  describe('n=7', () => sweep(7, 16, 15, 5));
});
