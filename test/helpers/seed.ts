/**
 * Seeds for tests that make random choices (kill moments, delays): a fresh seed each run, or the one
 * in an environment variable to replay a failure exactly; a failure's message names both.
 *
 * @example
 *   const s = testSeed('KILL9_SEED');
 *   await withSeed(s, async () => { … s.rng.int(0, 60) … });
 */
import { randomInt } from 'node:crypto';
import { Rng } from '../../simulators/random.ts';

export interface TestSeed {
  seed: number;
  rng: Rng;
  /** What to set to replay this run, e.g. `KILL9_SEED=123`. */
  replay: string;
}

export function testSeed(envName: string): TestSeed {
  const given = process.env[envName];
  const seed = given === undefined || given === '' ? randomInt(2 ** 31) : Number(given);
  if (!Number.isSafeInteger(seed) || seed < 0) throw new Error(`${envName}=${given}: not a seed`);
  return { seed, rng: new Rng(seed), replay: `${envName}=${seed}` };
}

/** Runs `fn`; when it throws, the error's message ends with the seed and how to replay it. */
export async function withSeed<T>(s: TestSeed, fn: () => Promise<T>): Promise<T> {
  try {
    return await fn();
  } catch (err) {
    if (err instanceof Error) {
      err.message += `\n(random choices from seed ${s.seed}; replay with ${s.replay})`;
      throw err;
    }
    throw new Error(`${String(err)} (random choices from seed ${s.seed}; replay with ${s.replay})`);
  }
}
