/**
 * Signing and verification throughput of batches (the chain's transactions): a batch per event vs
 * batches of 256, Ed25519 vs P-256. "verify" is what a validator does with each batch it receives:
 * decode it, hash every envelope, recompute the root, check one signature.
 */
import { generateKey, type KeyAlgorithm } from '../src/crypto/keys.ts';
import type { EventDraft } from '../src/event/draft.ts';
import { EventSigner, emptyHead } from '../src/event/signer.ts';
import { BatchVerifier, keyRegistry } from '../src/event/verify.ts';
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
    for (const size of [1, batch]) {
      const signer = new EventSigner(identity, key);
      const label = `${alg} ${size === 1 ? 'a batch per event' : `batches of ${size}`}`;
      figures.push(
        await rate(`sign ${label}`, 'events/s', runs, () =>
          perSecond(n, () => {
            let head = emptyHead;
            for (let i = 0; i < n; i += size) head = signer.sign(input.slice(i, i + size), head).head;
          }),
        ),
      );
      let head = emptyHead;
      const txs: Uint8Array[] = [];
      for (let i = 0; i < n; i += size) {
        const r = signer.sign(input.slice(i, i + size), head);
        head = r.head;
        txs.push(r.batch.tx.slice());
      }
      figures.push(
        await rate(`verify ${label}`, 'events/s', runs, () =>
          perSecond(n, () => {
            const verifier = new BatchVerifier(keys);
            for (const tx of txs) verifier.verify(tx);
          }),
        ),
      );
    }
  }
  return figures;
}
