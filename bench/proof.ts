/**
 * Proof bundles: how fast a validator builds an order's bundle from its stores, and how fast the
 * verifier checks it, with node:crypto (`masbc-edge verify`) and with pure-JS @noble (what the
 * customer's browser runs; here in node, so a browser's figure is of the same order). One member's
 * validator commits `n` events of one order in batches of `batch`, from two gateways.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { buildProofBundle } from '../src/api/proof/produce.ts';
import { VerifyCache, verifyProofBundle } from '../src/api/proof/verify.ts';
import { loadKeyFile, nodeVerifier } from '../src/crypto/keys.ts';
import { createLocalAlliance } from '../src/devtools/local-alliance.ts';
import type { EventDraft } from '../src/event/draft.ts';
import { encodeBody } from '../src/event/event.ts';
import { EventSigner, emptyHead } from '../src/event/signer.ts';
import { silentLogger } from '../src/log/logger.ts';
import { startValidator } from '../src/validator/validator.ts';
import { type Figure, perSecond, rate } from './lib.ts';

function draft(i: number): EventDraft {
  return {
    kind: 'measurement',
    dataClass: 'process',
    station: 'ST-20',
    device: 'cmm1',
    sourceTimeMs: 1_800_000_000_000 + i,
    lot: `LOT-${i >> 8}`,
    order: 'ORD-BENCH',
    product: `SN-${i}`,
    step: 'OP30-MEASURE',
    values: { diameter: { v: 25 + (i % 7) / 1000, unit: 'mm', q: 'good' } },
  };
}

export async function benchProof(runs = 5, n = 2048, batch = 64): Promise<Figure[]> {
  const dir = mkdtempSync(join(tmpdir(), 'masbc-bench-proof-'));
  const alliance = await createLocalAlliance({ dir: join(dir, 'alliance'), members: ['acme'], gateways: 2 });
  const v = await startValidator({
    genesisFile: alliance.genesisFile,
    keyFile: alliance.keyFiles.get('acme')!,
    dataDir: join(dir, 'data'),
    log: silentLogger,
  });
  try {
    const signers = [1, 2].map((g) => ({
      signer: new EventSigner(
        { enterprise: 'acme', site: 's', line: `l${g}`, gateway: `gw-${g}` },
        loadKeyFile(alliance.gatewayKeyFiles.get(`acme/gw-${g}`)!),
      ),
      head: emptyHead,
    }));
    const txIds: string[] = [];
    for (let i = 0; i < n; i += batch) {
      const s = signers[(i / batch) % 2]!;
      const r = s.signer.sign(
        Array.from({ length: Math.min(batch, n - i) }, (_, k) => draft(i + k)),
        s.head,
      );
      s.head = r.head;
      txIds.push(r.batch.txId);
      const [verdict] = await v.client.submit([
        { tx: r.batch.tx, bodies: r.events.map((e) => encodeBody(e.body!)) },
      ]);
      if (!verdict?.accepted) throw new Error(`refused: ${JSON.stringify(verdict)}`);
    }
    while ((await v.client.receipts(txIds)).some((r) => r === null))
      await new Promise((r) => setTimeout(r, 50));
    const source = {
      chain: v.node.store,
      bodies: v.bodies,
      chainId: v.genesis.chainId,
      genesisHash: v.genesis.hash,
      genesisKeyIds: new Set(v.genesis.gateways.map((g) => g.publicKey.keyId)),
    };
    const request = { scope: { order: 'ORD-BENCH' } };
    const bundle = buildProofBundle(source, request);
    if (bundle.events.length !== n) throw new Error(`bundle holds ${bundle.events.length} events, not ${n}`);
    const bytes = JSON.stringify(bundle).length;
    const shape = `${n} events, ${bundle.batches.length} batches, ${bundle.blocks.length} blocks; ${Math.round(bytes / n)} B of JSON per event`;
    const check = (verifier?: typeof nodeVerifier) => () =>
      perSecond(n, () => {
        const r = verifyProofBundle(bundle, v.genesis.document, {
          cache: new VerifyCache(),
          ...(verifier ? { verifier } : {}),
        });
        if (!r.ok) throw new Error(`${r.first.code}: ${r.first.detail}`);
      });
    return [
      await rate(
        'build an order bundle from the stores',
        'events/s',
        runs,
        () => perSecond(n, () => buildProofBundle(source, request)),
        shape,
      ),
      await rate('verify, node:crypto', 'events/s', runs, check(nodeVerifier)),
      await rate('verify, pure JS (@noble, as in the browser)', 'events/s', runs, check()),
    ];
  } finally {
    await v.stop();
    rmSync(dir, { recursive: true, force: true });
  }
}
