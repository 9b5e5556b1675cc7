/**
 * Verification of signed batches and of bodies against their commitments. Every refusal is a typed
 * error (errors.ts) with a stable `code`, so peers can count refusals by reason.
 *
 * @example
 *   const verifier = new BatchVerifier(keys);
 *   const batch = verifier.verify(tx);          // framing, shapes, ids, root, key, signature
 *   verifier.checkBodies(batch, bodies);         // each body against its envelope's commitment
 *   checkLink(head, batch.header);               // firstSeq and prev against the gateway's head
 */
import { hash as nodeHash } from 'node:crypto';
import { type KeyAlgorithm, nodeVerifier, type SignatureVerifier } from '../crypto/keys.ts';
import { type BatchHeader, batchSigningBytes, type DecodedBatch, decodeBatchTx } from './batch.ts';
import { bodyBytesMax } from './bounds.ts';
import {
  BadSignature,
  BodyMismatch,
  BrokenPrevLink,
  EventRejected,
  MalformedEvent,
  NonMonotonicSeq,
  OversizeEvent,
  SeqGap,
  UnknownKey,
} from './errors.ts';
import type { EventBody } from './event.ts';
import { bodyShapeProblem } from './shape.ts';
import type { ChainHead } from './signer.ts';

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

/** Batch signatures already verified, by transaction id; bounded, oldest forgotten first. */
const verifiedBatchesMax = 4096;

export interface BatchVerifierOptions {
  verifier?: SignatureVerifier;
}

export class BatchVerifier {
  readonly #keys: KeyRegistry;
  readonly #sig: SignatureVerifier;
  readonly #verified = new Map<string, true>();

  constructor(keys: KeyRegistry, options: BatchVerifierOptions = {}) {
    this.#keys = keys;
    this.#sig = options.verifier ?? nodeVerifier;
  }

  /** Decodes and verifies a batch transaction. Throws an EventRejected subclass. */
  verify(tx: Uint8Array): DecodedBatch {
    const d = decodeBatchTx(tx);
    if (!d.ok) throw new EventRejected(d.code, d.message);
    const b = d.batch;
    const key = this.#keys.get(b.header.keyId);
    if (!key) throw new UnknownKey(`key ${b.header.keyId} is not registered`);
    if (key.enterprise !== b.header.enterprise || key.gateway !== b.header.gateway) {
      throw new UnknownKey(
        `key ${b.header.keyId} belongs to ${key.enterprise}/${key.gateway}, not ${b.header.enterprise}/${b.header.gateway}`,
      );
    }
    const cacheKey = Buffer.from(b.txId).toString('hex');
    if (this.#verified.has(cacheKey)) return b;
    if (!this.#sig.verify(key.alg, key.publicKey, batchSigningBytes(b.headerBytes), b.signature))
      throw new BadSignature('batch signature does not verify');
    if (this.#verified.size >= verifiedBatchesMax) this.#verified.delete(this.#verified.keys().next().value!);
    this.#verified.set(cacheKey, true);
    return b;
  }

  /** Checks bodies (canonical JSON texts, in the batch's order) against their envelopes. Throws. */
  checkBodies(batch: DecodedBatch, bodies: readonly string[]): EventBody[] {
    if (bodies.length !== batch.envelopes.length)
      throw new MalformedEvent(`${bodies.length} bodies for ${batch.envelopes.length} events`);
    return bodies.map((text, i) => checkBody(text, batch.envelopes[i]!.body, batch.envelopes[i]!.kind, i));
  }
}

/**
 * Parses a body's canonical JSON text and checks it against `commitment` (the envelope's `body`):
 * size, shape, canonical form, hash. `kind` is the envelope's: only a gap event carries gap details.
 */
export function checkBody(text: string, commitment: string, kind: string, index = 0): EventBody {
  const bytes = Buffer.byteLength(text);
  if (bytes > bodyBytesMax) throw new OversizeEvent(`body ${index}`, bytes);
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    throw new MalformedEvent(`body ${index}: not JSON`);
  }
  const problem = bodyShapeProblem(value);
  if (problem) throw new MalformedEvent(`body ${index}: ${problem}`);
  const body = value as EventBody;
  if (body.gap && kind !== 'gap')
    throw new MalformedEvent(`body ${index}: only gap events carry gap details`);
  const hash = nodeHash('sha256', text, 'hex');
  if (hash !== commitment) throw new BodyMismatch();
  // The commitment was made over canonical bytes, so a text that is not canonical could match it only
  // through a SHA-256 collision: no separate canonical check is needed.
  return body;
}

/** Checks that a batch directly follows `head` in its gateway's chain. Throws. */
export function checkLink(head: ChainHead, header: Pick<BatchHeader, 'firstSeq' | 'prev'>): void {
  if (header.firstSeq <= head.seq) throw new NonMonotonicSeq(header.firstSeq, head.seq);
  if (header.firstSeq > head.seq + 1) throw new SeqGap(header.firstSeq, head.seq);
  if (header.prev !== head.id) throw new BrokenPrevLink(header.firstSeq);
}
