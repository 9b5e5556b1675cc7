/**
 * Verification of signed events, the same for per-event and batch signatures. Every refusal is a
 * typed error with a stable `code`, so peers can count refusals by reason.
 *
 * @example
 *   const verifier = new EventVerifier(keys);
 *   verifier.verify(event);                  // structure, size, id, commitment, key, signature
 *   verifier.checkLink(head, event);         // seq and prev against the gateway's last event
 */
import { CanonicalEncodingError, encodeCanonical } from '../crypto/canonical.ts';
import { fromBase64Url, fromHex, toHex } from '../crypto/hash.ts';
import { type KeyAlgorithm, nodeVerifier, type SignatureVerifier } from '../crypto/keys.ts';
import { rootFromPath } from '../crypto/merkle.ts';
import { eventBytesMax } from './bounds.ts';
import {
  batchSignedBytes,
  bodyCommitment,
  eventId,
  eventSignedBytes,
  type SignedEvent,
  signedEventSchema,
} from './event.ts';
import type { ChainHead } from './signer.ts';

export type EventRejectionCode =
  | 'malformed'
  | 'oversize'
  | 'id_mismatch'
  | 'body_mismatch'
  | 'unknown_key'
  | 'bad_signature'
  | 'non_monotonic_seq'
  | 'seq_gap'
  | 'broken_prev';

/** Base class of every refusal; `code` is stable and safe to count. */
export class EventRejected extends Error {
  override name = 'EventRejected';
  readonly code: EventRejectionCode;
  constructor(code: EventRejectionCode, message: string) {
    super(message);
    this.code = code;
  }
}
export class MalformedEvent extends EventRejected {
  override name = 'MalformedEvent';
  constructor(message: string) {
    super('malformed', message);
  }
}
export class OversizeEvent extends EventRejected {
  override name = 'OversizeEvent';
  constructor(bytes: number) {
    super('oversize', `event is ${bytes} bytes; the limit is ${eventBytesMax}`);
  }
}
export class IdMismatch extends EventRejected {
  override name = 'IdMismatch';
  constructor() {
    super('id_mismatch', 'id is not the hash of the envelope');
  }
}
export class BodyMismatch extends EventRejected {
  override name = 'BodyMismatch';
  constructor() {
    super('body_mismatch', 'body does not match the commitment in the envelope');
  }
}
export class UnknownKey extends EventRejected {
  override name = 'UnknownKey';
  constructor(message: string) {
    super('unknown_key', message);
  }
}
export class BadSignature extends EventRejected {
  override name = 'BadSignature';
  constructor(message = 'signature does not verify') {
    super('bad_signature', message);
  }
}
export class NonMonotonicSeq extends EventRejected {
  override name = 'NonMonotonicSeq';
  constructor(seq: number, headSeq: number) {
    super(
      'non_monotonic_seq',
      `seq ${seq} is not after the gateway's last seq ${headSeq} (replay or reorder)`,
    );
  }
}
export class SeqGap extends EventRejected {
  override name = 'SeqGap';
  constructor(seq: number, headSeq: number) {
    super('seq_gap', `seq ${seq} skips ${seq - headSeq - 1} event(s) after ${headSeq}`);
  }
}
export class BrokenPrevLink extends EventRejected {
  override name = 'BrokenPrevLink';
  constructor(seq: number) {
    super('broken_prev', `prev of seq ${seq} is not the id of the gateway's previous event`);
  }
}

/** A gateway signing key registered with the alliance. */
export interface GatewayKey {
  keyId: string;
  alg: KeyAlgorithm;
  publicKey: Uint8Array;
  enterprise: string;
  gateway: string;
}

export interface KeyRegistry {
  get(keyId: string): GatewayKey | undefined;
}

export function keyRegistry(keys: Iterable<GatewayKey>): KeyRegistry {
  const map = new Map<string, GatewayKey>();
  for (const k of keys) map.set(k.keyId, k);
  return { get: (keyId) => map.get(keyId) };
}

const verifiedRootsMax = 4096;

export interface EventVerifierOptions {
  verifier?: SignatureVerifier;
}

export class EventVerifier {
  readonly #keys: KeyRegistry;
  readonly #sig: SignatureVerifier;
  /** Batch roots whose signature already verified: key → true. Bounded, oldest evicted first. */
  readonly #roots = new Map<string, true>();

  constructor(keys: KeyRegistry, options: EventVerifierOptions = {}) {
    this.#keys = keys;
    this.#sig = options.verifier ?? nodeVerifier;
  }

  /**
   * Parses untrusted input (decoded JSON) into a SignedEvent, checking its size, structure, id,
   * body commitment, key and signature. Throws an EventRejected subclass.
   */
  verify(input: unknown, encodedBytes?: number): SignedEvent {
    const bytes = encodedBytes ?? safeLength(input);
    if (bytes > eventBytesMax) throw new OversizeEvent(bytes);
    const parsed = signedEventSchema.safeParse(input);
    if (!parsed.success) {
      const first = parsed.error.issues[0]!;
      throw new MalformedEvent(`${first.path.join('.') || 'event'}: ${first.message}`);
    }
    const event = parsed.data;
    let computedId: string;
    let commitment: string | undefined;
    try {
      computedId = eventId(event.env);
      commitment = event.body && bodyCommitment(event.body);
    } catch (err) {
      // Valid JSON that has no canonical form (a lone surrogate in a string, say): peer input, not a bug.
      if (err instanceof CanonicalEncodingError)
        throw new MalformedEvent(`not canonical JSON: ${err.message}`);
      throw err;
    }
    if (computedId !== event.id) throw new IdMismatch();
    if (commitment !== undefined && commitment !== event.env.body) throw new BodyMismatch();
    if (event.body?.gap && event.env.kind !== 'gap')
      throw new MalformedEvent('only gap events carry gap details');
    const key = this.#keys.get(event.env.keyId);
    if (!key) throw new UnknownKey(`key ${event.env.keyId} is not registered`);
    if (key.enterprise !== event.env.enterprise || key.gateway !== event.env.gateway) {
      throw new UnknownKey(
        `key ${event.env.keyId} belongs to ${key.enterprise}/${key.gateway}, not ${event.env.enterprise}/${event.env.gateway}`,
      );
    }
    const id = fromHex(event.id);
    const s = event.sig;
    if (s.t === 'event') {
      if (!this.#sig.verify(key.alg, key.publicKey, eventSignedBytes(id), fromBase64Url(s.sig)))
        throw new BadSignature();
      return event;
    }
    if (s.index >= s.size) throw new MalformedEvent(`sig.index ${s.index} outside a batch of ${s.size}`);
    const root = rootFromPath(id, s.index, s.size, s.path.map(fromBase64Url));
    if (!root) throw new BadSignature('audit path does not fit the batch size and index');
    const cacheKey = `${key.keyId}:${toHex(root)}:${s.size}:${s.sig}`;
    if (this.#roots.has(cacheKey)) return event;
    if (!this.#sig.verify(key.alg, key.publicKey, batchSignedBytes(root, s.size), fromBase64Url(s.sig))) {
      throw new BadSignature('batch signature does not verify for this event');
    }
    if (this.#roots.size >= verifiedRootsMax) this.#roots.delete(this.#roots.keys().next().value!);
    this.#roots.set(cacheKey, true);
    return event;
  }

  /** Checks that `event` directly follows `head` in its gateway's chain. */
  checkLink(head: ChainHead, event: SignedEvent): void {
    const { seq, prev } = event.env;
    if (seq <= head.seq) throw new NonMonotonicSeq(seq, head.seq);
    if (seq > head.seq + 1) throw new SeqGap(seq, head.seq);
    if (prev !== head.id) throw new BrokenPrevLink(seq);
  }
}

function safeLength(input: unknown): number {
  try {
    return encodeCanonical(input).byteLength;
  } catch (err) {
    if (err instanceof CanonicalEncodingError) throw new MalformedEvent(`not canonical JSON: ${err.message}`);
    throw err;
  }
}
