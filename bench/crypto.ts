/**
 * Signing and verification throughput: per-event vs Merkle-batch signatures, Ed25519 vs P-256.
 * "verify" is what a validator does for each event it receives; in batch mode one verifier sees the
 * whole batch, so it checks one signature plus one audit path per event.
 */
import { generateKey, type KeyAlgorithm } from '../src/crypto/keys.ts';
import type { EventDraft } from '../src/event/draft.ts';
import { EventSigner, emptyHead, type SigningMode } from '../src/event/signer.ts';
import { EventVerifier, keyRegistry } from '../src/event/verify.ts';
import { type Figure, perSecond, rate } from './lib.ts';

const identity = { enterprise: 'acme', site: 'plant1', line: 'line1', gateway: 'gw1' };

function drafts(n: number): EventDraft[] {
  return Array.from({ length: n }, (_, i) => ({
    kind: 'part_completed',
    dataClass: 'process',
    station: 'ST-10',
    device: 'cnc1',
    sourceTimeMs: 1_700_000_000_000 + i,
    lot: 'LOT-2026-000123',
    order: 'ORD-0042',
    product: `SN-${i}`,
    step: 'OP20-FINISH',
    values: {
      diameter: { v: 25.001, unit: 'mm', q: 'good' },
      spindleLoad: { v: 41.5, unit: '%', q: 'good' },
    },
  }));
}

export async function benchCrypto(runs = 5): Promise<Figure[]> {
  const figures: Figure[] = [];
  const n = 2048;
  const batch = 256;
  const input = drafts(n);
  for (const alg of ['ed25519', 'p256'] as KeyAlgorithm[]) {
    const key = generateKey(alg);
    const keys = keyRegistry([
      { keyId: key.keyId, alg, publicKey: key.publicKey, enterprise: 'acme', gateway: 'gw1' },
    ]);
    for (const mode of ['event', 'batch'] as SigningMode[]) {
      const signer = new EventSigner(identity, key, { mode });
      const label = `${alg} ${mode === 'event' ? 'per-event' : `batch of ${batch}`}`;
      figures.push(
        await rate(`sign ${label}`, 'events/s', runs, () =>
          perSecond(n, () => {
            let head = emptyHead;
            for (let i = 0; i < n; i += batch) head = signer.sign(input.slice(i, i + batch), head).head;
          }),
        ),
      );
      let head = emptyHead;
      const signed: unknown[] = [];
      for (let i = 0; i < n; i += batch) {
        const r = signer.sign(input.slice(i, i + batch), head);
        head = r.head;
        signed.push(...r.events.map((e) => JSON.parse(JSON.stringify(e))));
      }
      figures.push(
        await rate(`verify ${label}`, 'events/s', runs, () =>
          perSecond(n, () => {
            const verifier = new EventVerifier(keys);
            for (const e of signed) verifier.verify(e);
          }),
        ),
      );
    }
  }
  return figures;
}
