/**
 * Turns EventDrafts into a signed batch: gives each draft the gateway's next `seq`, links it to the
 * previous event's id (`prev`), salts and commits to its body, and signs the batch once (batch.ts):
 * one transaction of the chain, plus the events with their bodies for the gateway and its member.
 *
 * The signer holds no state: the caller passes the chain head (last seq and id) and stores the new
 * head in the same transaction as the batch (see src/store/outbox.ts), so a crash can never leave a
 * seq used twice or skipped.
 */
import { randomBytes } from 'node:crypto';
import { sha256, toBase64Url, toHex, zeroHashHex } from '../crypto/hash.ts';
import type { Signer } from '../crypto/keys.ts';
import { merkleRoot } from '../crypto/merkle.ts';
import {
  type BatchHeader,
  batchSigningBytes,
  batchTxId,
  batchVersion,
  encodeBatchHeader,
  encodeBatchTx,
} from './batch.ts';
import { batchEventsMax } from './bounds.ts';
import type { EventDraft } from './draft.ts';
import {
  bodyCommitment,
  type EventBody,
  type EventEnvelope,
  type EventRecord,
  encodeEnvelope,
  eventVersion,
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

/** A batch as signed: the transaction's bytes and id, and its header. */
export interface SignedBatch {
  tx: Uint8Array;
  /** Transaction id, lower-case hex. */
  txId: string;
  header: BatchHeader;
}

export interface EventSignerOptions {
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
  readonly #now: () => number;
  readonly #salt: () => Uint8Array;

  constructor(identity: GatewayIdentity, key: Signer, options: EventSignerOptions = {}) {
    this.identity = identity;
    this.#key = key;
    this.keyId = key.keyId;
    this.#now = options.nowMs ?? Date.now;
    this.#salt = options.salt ?? pooledSalt();
  }

  /** Signs the drafts in order after `head`, as one batch (1 to batchEventsMax drafts). */
  sign(
    drafts: readonly EventDraft[],
    head: ChainHead,
  ): { batch: SignedBatch; events: EventRecord[]; head: ChainHead } {
    if (drafts.length < 1 || drafts.length > batchEventsMax)
      throw new RangeError(`a batch holds 1 to ${batchEventsMax} events, got ${drafts.length}`);
    const gatewayTimeMs = this.#now();
    let { seq, id: prev } = head;
    const events: EventRecord[] = [];
    const envelopes: Uint8Array[] = [];
    const ids: Uint8Array[] = [];
    let envelopeBytes = 0;
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
      const bytes = encodeEnvelope(env);
      const id = sha256(bytes);
      prev = toHex(id);
      envelopes.push(bytes);
      ids.push(id);
      envelopeBytes += bytes.byteLength;
      events.push({ id: prev, env, body });
    }
    const header: BatchHeader = {
      v: batchVersion,
      enterprise: this.identity.enterprise,
      gateway: this.identity.gateway,
      keyId: this.keyId,
      firstSeq: head.seq + 1,
      count: drafts.length,
      prev: head.id,
      root: toHex(merkleRoot(ids)),
      envelopeBytes,
    };
    const headerBytes = encodeBatchHeader(header);
    const signature = this.#key.sign(batchSigningBytes(headerBytes));
    const tx = encodeBatchTx(headerBytes, signature, envelopes);
    return {
      batch: { tx, txId: toHex(batchTxId(headerBytes, signature)), header },
      events,
      head: { seq, id: prev },
    };
  }
}
