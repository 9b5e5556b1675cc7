/** Signed events for the ledger tests: real keys, the real signer, deterministic salts and clocks. */

import { GatewayRegistry } from '../../../src/consensus/app/registry.ts';
import { blockHash, txRootOf } from '../../../src/consensus/core/signing.ts';
import type { Block } from '../../../src/consensus/core/types.ts';
import { sha256 } from '../../../src/crypto/hash.ts';
import { generateKey, type KeyAlgorithm, publicKeyRecord, type Signer } from '../../../src/crypto/keys.ts';
import type { EventDraft } from '../../../src/event/draft.ts';
import { encodeEvent, type SignedEvent } from '../../../src/event/event.ts';
import { type ChainHead, EventSigner, emptyHead, type SigningMode } from '../../../src/event/signer.ts';

export const genesisHash = sha256(new TextEncoder().encode('ledger test genesis'));
const encoder = new TextEncoder();

export function bytesOf(e: SignedEvent): Uint8Array {
  return encoder.encode(encodeEvent(e));
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
  readonly #signer: Map<SigningMode, EventSigner>;
  #n = 0;

  constructor(enterprise: string, gateway: string, alg: KeyAlgorithm = 'ed25519') {
    this.enterprise = enterprise;
    this.gateway = gateway;
    this.key = generateKey(alg);
    let salt = 0;
    const options = {
      nowMs: () => 1_763_880_000_500 + this.#n,
      salt: () => sha256(encoder.encode(`${enterprise}/${gateway}/${salt++}`)).subarray(0, 16),
    };
    const identity = { enterprise, site: 'plant1', line: 'line1', gateway };
    this.#signer = new Map([
      ['event', new EventSigner(identity, this.key, { mode: 'event', ...options })],
      ['batch', new EventSigner(identity, this.key, { mode: 'batch', ...options })],
    ]);
  }

  get chain(): string {
    return `${this.enterprise}/${this.gateway}`;
  }

  /** Signs `count` events (one batch in batch mode) after the current head. */
  sign(count: number, mode: SigningMode = 'batch', overrides: Partial<EventDraft> = {}): SignedEvent[] {
    const drafts = Array.from({ length: count }, () => draft(this.#n++, overrides));
    const r = this.#signer.get(mode)!.sign(drafts, this.head);
    this.head = r.head;
    return r.events;
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
      version: 1,
      chainId: 'ledger-test',
      height,
      view: 0,
      prevHash,
      timestampMs: 1_763_880_000_000 + height,
      txRoot: txRootOf(txs),
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
