/**
 * Skips that say why. `it.skipIf(cond)` skips without a reason that any reporter sees; `itUnless(reason)`
 * is `it` when `reason` is null, and otherwise defines the same tests as skipping themselves with
 * `ctx.skip(reason)`, so the reason reaches vitest's output and CI's list of skipped tests
 * (test/helpers/ci-summary.ts fails a run where a skipped test gives none).
 *
 * @example
 *   itUnless(missing('socat', 'apt-get install -y socat'))('reads over RTU', async () => { … });
 */
import { it } from 'vitest';

export function itUnless(reason: string | null | undefined | false): typeof it {
  if (!reason) return it;
  const skipping = (name: string) =>
    it(name, (ctx) => {
      ctx.skip(reason);
    });
  return skipping as unknown as typeof it;
}
