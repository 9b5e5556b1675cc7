/** Outbox append throughput: sign one batch + insert it, its envelopes and bodies in one transaction. */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { generateKey } from '../src/crypto/keys.ts';
import type { EventDraft } from '../src/event/draft.ts';
import { EventSigner } from '../src/event/signer.ts';
import { BatchVerifier, keyRegistry } from '../src/event/verify.ts';
import { Outbox } from '../src/store/outbox.ts';
import { type Figure, perSecond, rate } from './lib.ts';

export async function benchOutbox(runs = 5): Promise<Figure[]> {
  const key = generateKey();
  const identity = { enterprise: 'acme', site: 'plant1', line: 'line1', gateway: 'gw1' };
  const verifier = new BatchVerifier(
    keyRegistry([
      { keyId: key.keyId, alg: key.alg, publicKey: key.publicKey, enterprise: 'acme', gateway: 'gw1' },
    ]),
  );
  const draft = (i: number): EventDraft => ({
    kind: 'measurement',
    dataClass: 'process',
    station: 'ST-30',
    device: 'oven1',
    sourceTimeMs: 1_700_000_000_000 + i,
    lot: `LOT-${i >> 8}`,
    values: { temp: { v: 180.25, unit: 'degC', q: 'good' } },
  });
  const figures: Figure[] = [];
  for (const synchronous of ['full', 'normal'] as const) {
    for (const batchSize of [1, 100, 500]) {
      const n = batchSize === 1 ? 1_000 : 20_000;
      const signer = new EventSigner(identity, key);
      figures.push(
        await rate(
          `append, ${batchSize === 1 ? '1 event' : `batches of ${batchSize}`}, synchronous=${synchronous}`,
          'events/s',
          runs,
          () => {
            const dir = mkdtempSync(join(tmpdir(), 'masbc-bench-'));
            const outbox = Outbox.open({
              path: join(dir, 'o.db'),
              verifier,
              maxBytes: 2 ** 40,
              maxRows: 1e9,
              synchronous,
            });
            const drafts = Array.from({ length: n }, (_, i) => draft(i));
            const r = perSecond(n, () => {
              for (let i = 0; i < n; i += batchSize) outbox.append(drafts.slice(i, i + batchSize), signer);
            });
            outbox.close();
            rmSync(dir, { recursive: true, force: true });
            return r;
          },
        ),
      );
    }
  }
  return figures;
}
