/**
 * Turns EventDrafts into SignedEvents: gives each the gateway's next `seq`, links it to the previous
 * event's id (`prev`), salts and commits to its body, and signs, per event or per batch.
 *
 * Batch mode signs one Merkle root (RFC 6962) over the batch's ids and the batch size; each event
 * carries its index, the size and its audit path, so it verifies alone while a verifier that sees the
 * whole batch checks one signature (EventVerifier caches verified roots).
 *
 * The signer holds no state: the caller passes the chain head (last seq and id) and stores the new
 * head in the same transaction as the events (see src/store/outbox.ts), so a crash can never leave
 * a seq used twice or skipped.
 */
import { randomBytes } from 'node:crypto';
import { fromHex, toBase64Url, zeroHashHex } from '../crypto/hash.ts';
import type { Signer } from '../crypto/keys.ts';
import { merklePaths } from '../crypto/merkle.ts';
import { signatureBatchMax } from './bounds.ts';
import type { EventDraft } from './draft.ts';
import {
  batchSignedBytes,
  bodyCommitment,
  type EventBody,
  type EventEnvelope,
  eventId,
  eventSignedBytes,
  eventVersion,
  type SignedEvent,
} from './event.ts';

export interface GatewayIdentity {
  enterprise: string;
  site: string;
  line: string;
  gateway: string;
}

/** The last event of a gateway's chain: seq 0 and the zero hash before the first event. */
export interface ChainHead {
  seq: number;
  id: string;
}

export const emptyHead: ChainHead = { seq: 0, id: zeroHashHex };

export type SigningMode = 'event' | 'batch';

export interface EventSignerOptions {
  mode: SigningMode;
  /** Wall clock for gatewayTimeMs; injectable for tests. */
  nowMs?: () => number;
  /** Source of the 16-byte body salt; injectable for reproducible tests. */
  salt?: () => Uint8Array;
}

/** 16-byte salts cut from one random draw of 4 KiB: a draw per event costs more than the rest of signing. */
function pooledSalt(): () => Uint8Array {
  let pool = new Uint8Array(0);
  let at = 0;
  return () => {
    if (at + 16 > pool.byteLength) {
      pool = new Uint8Array(randomBytes(4096));
      at = 0;
    }
    at += 16;
    return pool.subarray(at - 16, at);
  };
}

export class EventSigner {
  readonly identity: GatewayIdentity;
  readonly keyId: string;
  readonly #key: Signer;
  readonly #mode: SigningMode;
  readonly #now: () => number;
  readonly #salt: () => Uint8Array;

  constructor(identity: GatewayIdentity, key: Signer, options: EventSignerOptions) {
    this.identity = identity;
    this.#key = key;
    this.keyId = key.keyId;
    this.#mode = options.mode;
    this.#now = options.nowMs ?? Date.now;
    this.#salt = options.salt ?? pooledSalt();
  }

  /** Signs the drafts in order after `head`; in batch mode they form one signed batch. */
  sign(drafts: readonly EventDraft[], head: ChainHead): { events: SignedEvent[]; head: ChainHead } {
    if (drafts.length === 0) return { events: [], head };
    if (drafts.length > signatureBatchMax)
      throw new RangeError(`at most ${signatureBatchMax} events per signature batch`);
    const gatewayTimeMs = this.#now();
    let { seq, id: prev } = head;
    const unsigned: { id: string; env: EventEnvelope; body: EventBody }[] = [];
    for (const d of drafts) {
      const body: EventBody = {
        salt: toBase64Url(this.#salt()),
        site: this.identity.site,
        line: this.identity.line,
        station: d.station,
        device: d.device,
        rule: d.rule,
        lot: d.lot,
        product: d.product,
        order: d.order,
        step: d.step,
        values: d.values,
        gap: d.gap,
      };
      seq += 1;
      const env: EventEnvelope = {
        v: eventVersion,
        enterprise: this.identity.enterprise,
        gateway: this.identity.gateway,
        keyId: this.keyId,
        dataClass: d.dataClass,
        kind: d.kind,
        sourceTimeMs: Math.round(d.sourceTimeMs),
        gatewayTimeMs,
        seq,
        prev,
        body: bodyCommitment(body),
      };
      prev = eventId(env);
      unsigned.push({ id: prev, env, body });
    }
    const events =
      this.#mode === 'event' || unsigned.length === 1 ? this.#signEach(unsigned) : this.#signBatch(unsigned);
    return { events, head: { seq, id: prev } };
  }

  #signEach(unsigned: { id: string; env: EventEnvelope; body: EventBody }[]): SignedEvent[] {
    return unsigned.map((u) => ({
      ...u,
      sig: { t: 'event', sig: toBase64Url(this.#key.sign(eventSignedBytes(fromHex(u.id)))) },
    }));
  }

  #signBatch(unsigned: { id: string; env: EventEnvelope; body: EventBody }[]): SignedEvent[] {
    const { root, paths } = merklePaths(unsigned.map((u) => fromHex(u.id)));
    const sig = toBase64Url(this.#key.sign(batchSignedBytes(root, unsigned.length)));
    return unsigned.map((u, index) => ({
      ...u,
      sig: { t: 'batch', size: unsigned.length, index, path: paths[index]!.map(toBase64Url), sig },
    }));
  }
}
