/**
 * A real validator of a one-member alliance (acme, two gateways) with its block store and body store,
 * fed signed batches through its in-process client and waited on until they are final: where the
 * proof bundle tests get their bundles (never hand-written JSON).
 */
import { join } from 'node:path';
import type { ProofBundle } from '../../../src/api/proof/bundle.ts';
import { buildProofBundle, type ProofRequest } from '../../../src/api/proof/index.ts';
import { configTxId } from '../../../src/consensus/app/config-tx.ts';
import { loadKeyFile, type Signer } from '../../../src/crypto/keys.ts';
import { createLocalAlliance, type LocalAlliance } from '../../../src/devtools/local-alliance.ts';
import type { EventDraft } from '../../../src/event/draft.ts';
import { encodeBody } from '../../../src/event/event.ts';
import type { ChainHead } from '../../../src/event/signer.ts';
import { EventSigner, emptyHead } from '../../../src/event/signer.ts';
import { silentLogger } from '../../../src/log/logger.ts';
import { type RunningValidator, startValidator } from '../../../src/validator/validator.ts';

export interface TraceFixture {
  validator: RunningValidator;
  alliance: LocalAlliance;
  genesisFile: string;
  /** Signs the drafts as one batch of gateway `gw-<n>` (or one added) and waits until it is final. */
  commit(gateway: 1 | 2 | string, drafts: EventDraft[]): Promise<string>;
  /** A signer for another gateway of acme (its key registered on the chain or not). */
  addGateway(gateway: string, key: Signer): void;
  /** Submits a configuration transaction and waits until it is final; returns its height. */
  commitConfig(tx: Uint8Array): Promise<number>;
  /** acme's identity root (signs configuration transactions). */
  identityRoot(): Signer;
  bundle(request: ProofRequest): ProofBundle;
  stop(): Promise<void>;
}

/** With `api`, the validator also serves its HTTP API (credentials required) on a free loopback port. */
export async function startTraceFixture(dir: string, options: { api?: boolean } = {}): Promise<TraceFixture> {
  const alliance = await createLocalAlliance({ dir: join(dir, 'alliance'), members: ['acme'], gateways: 2 });
  const validator = await startValidator({
    genesisFile: alliance.genesisFile,
    keyFile: alliance.keyFiles.get('acme')!,
    dataDir: join(dir, 'data'),
    log: silentLogger,
    ...(options.api ? { api: { host: '127.0.0.1', port: 0 } } : {}),
  });
  const signers = new Map<string, { signer: EventSigner; head: ChainHead }>();
  const addGateway = (gateway: string, key: Signer) =>
    signers.set(gateway, {
      signer: new EventSigner({ enterprise: 'acme', site: 'plant1', line: gateway, gateway }, key),
      head: emptyHead,
    });
  for (const n of [1, 2]) {
    const key = loadKeyFile(alliance.gatewayKeyFiles.get(`acme/gw-${n}`)!);
    signers.set(String(n), {
      signer: new EventSigner(
        { enterprise: 'acme', site: 'plant1', line: `line${n}`, gateway: `gw-${n}` },
        key,
      ),
      head: emptyHead,
    });
  }
  return {
    validator,
    alliance,
    genesisFile: alliance.genesisFile,
    addGateway,
    identityRoot: () => loadKeyFile(alliance.identityRootFiles.get('acme')!),
    async commitConfig(tx) {
      const [r] = validator.node.submit([tx]);
      if (!r?.accepted) throw new Error(`configuration refused: ${JSON.stringify(r)}`);
      const id = configTxId(tx);
      for (let i = 0; i < 600; i++) {
        const at = validator.node.store.txLocation(id);
        if (at) return at.height;
        await new Promise((done) => setTimeout(done, 50));
      }
      throw new Error('configuration transaction not final after 30 s');
    },
    async commit(gateway, drafts) {
      const s = signers.get(String(gateway))!;
      const { batch, events, head } = s.signer.sign(drafts, s.head);
      s.head = head;
      const [verdict] = await validator.client.submit([
        { tx: batch.tx, bodies: events.map((e) => encodeBody(e.body!)) },
      ]);
      if (!verdict?.accepted) throw new Error(`batch refused: ${JSON.stringify(verdict)}`);
      // Final within a few view-change timeouts on any machine; polls the validator's own answer.
      for (let i = 0; i < 600; i++) {
        const [receipt] = await validator.client.receipts([batch.txId]);
        if (receipt) return batch.txId;
        await new Promise((r) => setTimeout(r, 50));
      }
      throw new Error(`batch ${batch.txId} not final after 30 s`);
    },
    bundle(request) {
      return buildProofBundle(
        {
          chain: validator.node.store,
          bodies: validator.bodies,
          chainId: validator.genesis.chainId,
          genesisHash: validator.genesis.hash,
          genesisKeyIds: new Set(validator.genesis.gateways.map((g) => g.publicKey.keyId)),
        },
        request,
      );
    },
    stop: () => validator.stop(),
  };
}

let t = 1_800_000_000_000;

/** A process draft of a station on order `order`, lot `lot`, part `product`. */
export function partDraft(o: {
  order?: string;
  lot?: string;
  product?: string;
  diameter?: number;
}): EventDraft {
  t += 1000;
  return {
    kind: 'part_completed',
    dataClass: 'process',
    station: 'ST-10',
    device: 'cnc1',
    sourceTimeMs: t,
    ...(o.lot ? { lot: o.lot } : {}),
    ...(o.order ? { order: o.order } : {}),
    ...(o.product ? { product: o.product } : {}),
    values: { diameter: { v: o.diameter ?? 25.001, unit: 'mm', q: 'good' } },
  };
}

/** An equipment-class draft (never in a customer's trace). */
export function statusDraft(order: string, lot?: string): EventDraft {
  t += 1000;
  return {
    kind: 'equipment_status',
    dataClass: 'equipment',
    station: 'ST-10',
    device: 'cnc1',
    sourceTimeMs: t,
    order,
    ...(lot ? { lot } : {}),
    values: { state: { v: 'running', q: 'good' } },
  };
}

/** An office draft of the order's life cycle or a lot binding (signed by a gateway key of the member). */
export function officeDraft(
  kind: 'order_accepted' | 'order_in_production' | 'order_closed' | 'lot_bound',
  order: string,
  o: { lot?: string; values?: EventDraft['values'] } = {},
): EventDraft {
  t += 1000;
  return {
    kind,
    dataClass: 'process',
    station: 'office',
    device: 'office',
    sourceTimeMs: t,
    order,
    ...(o.lot ? { lot: o.lot } : {}),
    values: o.values ?? {},
  };
}

/** The order_closed values of a summary. */
export function closedValues(s: { eventCount: number; eventsRoot: string }): EventDraft['values'] {
  return { eventCount: { v: s.eventCount, q: 'good' }, eventsRoot: { v: s.eventsRoot, q: 'good' } };
}
