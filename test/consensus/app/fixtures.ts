/** Signed batches for the ledger tests: real keys, the real signer, deterministic salts and clocks. */

import { GatewayRegistry } from '../../../src/consensus/app/registry.ts';
import { txIdOf } from '../../../src/consensus/app/tx.ts';
import { blockHash, txRootOf } from '../../../src/consensus/core/signing.ts';
import type { Block } from '../../../src/consensus/core/types.ts';
import { sha256 } from '../../../src/crypto/hash.ts';
import { generateKey, type KeyAlgorithm, publicKeyRecord, type Signer } from '../../../src/crypto/keys.ts';
import type { BatchHeader } from '../../../src/event/batch.ts';
import type { EventDraft } from '../../../src/event/draft.ts';
import { type EventRecord, encodeBody } from '../../../src/event/event.ts';
import { type ChainHead, EventSigner, emptyHead } from '../../../src/event/signer.ts';

export const genesisHash = sha256(new TextEncoder().encode('ledger test genesis'));
const encoder = new TextEncoder();

/** A signed batch as the ledger sees it, with what the test needs to know of it. */
export interface SignedTx {
  /** The transaction's bytes. */
  tx: Uint8Array;
  /** Transaction id, hex. */
  txId: string;
  /** Id of its last event: what the gateway's next batch links to. */
  id: string;
  header: BatchHeader;
  events: EventRecord[];
  /** The events' bodies as canonical JSON (never on the chain). */
  bodies: string[];
}

export function draft(i: number, overrides: Partial<EventDraft> = {}): EventDraft {
  return {
    kind: 'part_completed',
    dataClass: 'process',
    station: 'ST-10',
    device: 'cnc1',
    sourceTimeMs: 1_763_880_000_000 + i,
    lot: 'LOT-2026-000123',
    order: 'ORD-0042',
    product: `SN-${i}`,
    step: 'OP20-FINISH',
    values: { diameter: { v: 25 + i / 1000, unit: 'mm', q: 'good' } },
    ...overrides,
  };
}

/** A gateway with its key and chain head; signs in order like the outbox does. */
export class TestGateway {
  readonly enterprise: string;
  readonly gateway: string;
  readonly key: Signer & { exportPem(): string };
  head: ChainHead = emptyHead;
  readonly #signer: EventSigner;
  #n = 0;

  constructor(enterprise: string, gateway: string, alg: KeyAlgorithm = 'ed25519') {
    this.enterprise = enterprise;
    this.gateway = gateway;
    this.key = generateKey(alg);
    let salt = 0;
    this.#signer = new EventSigner({ enterprise, site: 'plant1', line: 'line1', gateway }, this.key, {
      nowMs: () => 1_763_880_000_500 + this.#n,
      salt: () => sha256(encoder.encode(`${enterprise}/${gateway}/${salt++}`)).subarray(0, 16),
    });
  }

  get chain(): string {
    return `${this.enterprise}/${this.gateway}`;
  }

  /** Signs `count` events after the current head, `perBatch` to a batch (one transaction each). */
  sign(count: number, perBatch = 1, overrides: Partial<EventDraft> = {}): SignedTx[] {
    const out: SignedTx[] = [];
    for (let done = 0; done < count; done += perBatch) {
      const n = Math.min(perBatch, count - done);
      const drafts = Array.from({ length: n }, () => draft(this.#n++, overrides));
      const r = this.#signer.sign(drafts, this.head);
      this.head = r.head;
      out.push({
        tx: r.batch.tx,
        txId: r.batch.txId,
        id: r.head.id,
        header: r.batch.header,
        events: r.events,
        bodies: r.events.map((e) => encodeBody(e.body!)),
      });
    }
    return out;
  }

  entry() {
    return { memberId: this.enterprise, gateway: this.gateway, publicKey: publicKeyRecord(this.key) };
  }
}

export function registryOf(...gateways: TestGateway[]): GatewayRegistry {
  return new GatewayRegistry(gateways.map((g) => g.entry()));
}

/** A block at `height` on `parent` (hash) holding `txs`. */
export function blockOf(height: number, prevHash: Uint8Array, txs: Uint8Array[]): Block {
  return {
    header: {
      version: 2,
      chainId: 'ledger-test',
      height,
      view: 0,
      prevHash,
      timestampMs: 1_763_880_000_000 + height,
      txRoot: txRootOf(txs.map(txIdOf)),
      txCount: txs.length,
      proposer: 0,
    },
    txs,
  };
}

/** Blocks 1…k on the test genesis, one per list of transactions. */
export function chainOf(...blocks: Uint8Array[][]): Block[] {
  const out: Block[] = [];
  let prev = genesisHash;
  for (const [i, txs] of blocks.entries()) {
    const b = blockOf(i + 1, prev, txs);
    out.push(b);
    prev = blockHash(b.header);
  }
  return out;
}
