/**
 * A signed batch of envelopes: the chain's transaction (docs/events.md, "Batches").
 *
 * The **header** is canonical JSON (RFC 8785), what the gateway signs:
 *
 *   { v: 2, enterprise, gateway, keyId, firstSeq, count, prev, root, envelopeBytes }
 *
 * `prev` is the id of the gateway's event before `firstSeq` (64 zeros before seq 1), `root` the
 * RFC 6962 Merkle root over the envelopes' ids (32-byte leaves) in seq order, `envelopeBytes` the
 * sum of their canonical lengths. The signature (Ed25519, or P-256 as r ‖ s) is over
 * `"masbc-edge/batch/v2\n" ‖ header bytes`.
 *
 * **Transaction bytes**: `u8 version (2) ‖ u16be header length ‖ header ‖ 64-byte signature ‖` then
 * per envelope, in seq order, `u16be length ‖ canonical envelope bytes`; nothing after the last.
 * Envelopes stay canonical JSON, so an event id is SHA-256 of bytes the transaction carries as they
 * are, and a browser checks it with the same canonical encoder. Bodies are never in it.
 *
 * The **transaction id** is SHA-256(`"masbc-edge/tx/v2\0" ‖ header ‖ signature`). For a batch that
 * decodes, it commits to every byte of the transaction: the header's root commits to the envelopes.
 * (The ledger gives bytes that are not a well-formed batch an id hashing all of them:
 * src/consensus/app/tx.ts `txIdOf`.)
 *
 * `decodeBatchTx` checks everything a batch says about itself (framing, shapes, canonical bytes,
 * the envelopes' seq/prev chain, the root); the key and the signature are verify.ts's business.
 * It never throws on bad input.
 *
 * @example
 *   const d = decodeBatchTx(tx);
 *   if (d.ok) d.batch.envelopes.map((e) => e.seq);   // firstSeq … firstSeq + count − 1
 */
import { isAscii } from 'node:buffer';
import { hash as nodeHash } from 'node:crypto';
import { canonicalJson } from '../crypto/canonical.ts';
import { toHex } from '../crypto/hash.ts';
import { merkleRoot } from '../crypto/merkle.ts';
import {
  batchEventsMax,
  batchHeaderBytesMax,
  batchSignatureBytes,
  batchTxBytesMax,
  envelopeBytesMax,
} from './bounds.ts';
import type { EventRejectionCode } from './errors.ts';
import type { EventEnvelope } from './event.ts';
import { batchHeaderShapeProblem, bodyKeys, envelopeShapeProblem } from './shape.ts';

export const batchVersion = 2;

export interface BatchHeader {
  v: typeof batchVersion;
  enterprise: string;
  gateway: string;
  keyId: string;
  firstSeq: number;
  count: number;
  /** Id of the gateway's event before `firstSeq`, lower-case hex. */
  prev: string;
  /** Merkle root over the envelopes' ids, lower-case hex. */
  root: string;
  envelopeBytes: number;
}

/** A batch whose bytes decoded and whose envelopes agree with its header (key and signature unchecked). */
export interface DecodedBatch {
  header: BatchHeader;
  headerBytes: Uint8Array;
  signature: Uint8Array;
  envelopes: EventEnvelope[];
  /** Each envelope's canonical bytes, as carried (views into the transaction). */
  envelopeBytes: Uint8Array[];
  /** Each envelope's id (SHA-256 of its bytes). */
  ids: Uint8Array[];
  txId: Uint8Array;
  /** The transaction's length. */
  bytes: number;
}

export type BatchDecoding =
  | { ok: true; batch: DecodedBatch }
  | { ok: false; code: EventRejectionCode; message: string };

const utf8 = new TextEncoder();
export const batchSignaturePrefix = utf8.encode('masbc-edge/batch/v2\n');
const txIdDomain = Buffer.from('masbc-edge/tx/v2\0');

/** Keys of a canonical envelope, in canonical (sorted) order. */
const envelopeKeyOrder = [
  'body',
  'dataClass',
  'enterprise',
  'gateway',
  'gatewayTimeMs',
  'keyId',
  'kind',
  'prev',
  'seq',
  'sourceTimeMs',
  'v',
] as const;
/** Keys of a canonical header, in canonical (sorted) order. */
const headerKeyOrder = [
  'count',
  'enterprise',
  'envelopeBytes',
  'firstSeq',
  'gateway',
  'keyId',
  'prev',
  'root',
  'v',
] as const;

function asBuffer(b: Uint8Array): Buffer {
  return Buffer.isBuffer(b) ? b : Buffer.from(b.buffer, b.byteOffset, b.byteLength);
}

/** Canonical bytes of a header: what is signed and what the transaction carries. */
export function encodeBatchHeader(header: BatchHeader): Uint8Array {
  return utf8.encode(canonicalJson(header));
}

/** Bytes the batch signature covers. */
export function batchSigningBytes(headerBytes: Uint8Array): Uint8Array {
  const out = new Uint8Array(batchSignaturePrefix.byteLength + headerBytes.byteLength);
  out.set(batchSignaturePrefix, 0);
  out.set(headerBytes, batchSignaturePrefix.byteLength);
  return out;
}

/** The id of a well-formed batch: SHA-256 of the domain, its header and its signature. */
export function batchTxId(headerBytes: Uint8Array, signature: Uint8Array): Uint8Array {
  return nodeHash(
    'sha256',
    Buffer.concat([txIdDomain, asBuffer(headerBytes), asBuffer(signature)]),
    'buffer',
  );
}

/** The transaction's bytes (see the module comment). Throws RangeError past the bounds: a bug. */
export function encodeBatchTx(
  headerBytes: Uint8Array,
  signature: Uint8Array,
  envelopes: readonly Uint8Array[],
): Uint8Array {
  if (headerBytes.byteLength > batchHeaderBytesMax) throw new RangeError('batch header too long');
  if (signature.byteLength !== batchSignatureBytes) throw new RangeError('signature is not 64 bytes');
  if (envelopes.length < 1 || envelopes.length > batchEventsMax)
    throw new RangeError(`a batch holds 1 to ${batchEventsMax} envelopes`);
  let size = 1 + 2 + headerBytes.byteLength + batchSignatureBytes;
  for (const e of envelopes) {
    if (e.byteLength > envelopeBytesMax) throw new RangeError('envelope too long');
    size += 2 + e.byteLength;
  }
  // Not pooled, and returned as a plain Uint8Array: a Buffer's slice() would share its memory.
  const out = Buffer.allocUnsafeSlow(size);
  let at = out.writeUInt8(batchVersion, 0);
  at = out.writeUInt16BE(headerBytes.byteLength, at);
  out.set(headerBytes, at);
  at += headerBytes.byteLength;
  out.set(signature, at);
  at += batchSignatureBytes;
  for (const e of envelopes) {
    at = out.writeUInt16BE(e.byteLength, at);
    out.set(e, at);
    at += e.byteLength;
  }
  return new Uint8Array(out.buffer, out.byteOffset, out.byteLength);
}

function refuse(code: EventRejectionCode, message: string): BatchDecoding {
  return { ok: false, code, message };
}

/** `JSON.parse` of ASCII bytes, or undefined. */
function parseAscii(buf: Buffer): unknown {
  if (!isAscii(buf)) return undefined;
  try {
    return JSON.parse(buf.toString('latin1'));
  } catch {
    return undefined;
  }
}

/** True when the object's keys are exactly `order`, in that order. */
function keysInOrder(o: object, order: readonly string[]): boolean {
  const keys = Object.keys(o);
  if (keys.length !== order.length) return false;
  for (let i = 0; i < keys.length; i++) if (keys[i] !== order[i]) return false;
  return true;
}

/**
 * Canonical bytes of an object of known, sorted keys whose values are ASCII strings without escapes
 * or safe integers: exactly JSON.stringify's text (shape checks have pinned the values).
 */
function isCanonicalText(value: object, text: Buffer, order: readonly string[]): boolean {
  return keysInOrder(value, order) && JSON.stringify(value) === text.toString('latin1');
}

/**
 * Decodes a batch transaction and checks everything it says about itself: framing and bounds,
 * header and envelope shapes, canonical bytes, that every envelope belongs to the header's gateway
 * and key, that seqs run from `firstSeq` without a gap and each `prev` is the id before it, and the
 * root. Refusal codes: `oversize`, `malformed`, `body_on_chain`, `seq_gap`, `non_monotonic_seq`,
 * `broken_prev`, `root_mismatch`.
 */
export function decodeBatchTx(tx: Uint8Array): BatchDecoding {
  const buf = asBuffer(tx);
  if (buf.byteLength > batchTxBytesMax)
    return refuse('oversize', `batch is ${buf.byteLength} bytes; the limit is ${batchTxBytesMax}`);
  if (buf.byteLength < 3 + batchSignatureBytes) return refuse('malformed', 'too short for a batch');
  if (buf[0] !== batchVersion)
    return refuse('malformed', `batch version ${buf[0]}, expected ${batchVersion}`);
  const headerLength = buf.readUInt16BE(1);
  if (headerLength > batchHeaderBytesMax) return refuse('malformed', 'header longer than allowed');
  let at = 3;
  if (at + headerLength + batchSignatureBytes > buf.byteLength)
    return refuse('malformed', 'truncated header');
  const headerBytes = buf.subarray(at, at + headerLength);
  at += headerLength;
  const signature = buf.subarray(at, at + batchSignatureBytes);
  at += batchSignatureBytes;
  const header = parseAscii(headerBytes);
  if (header === undefined) return refuse('malformed', 'header: not ASCII JSON');
  const shape = batchHeaderShapeProblem(header);
  if (shape) return refuse('malformed', shape);
  const h = header as BatchHeader;
  if (!isCanonicalText(h, headerBytes, headerKeyOrder))
    return refuse('malformed', 'header: not in canonical form (RFC 8785)');

  const envelopes: EventEnvelope[] = [];
  const envelopeBytes: Uint8Array[] = [];
  const ids: Uint8Array[] = [];
  let total = 0;
  let prev = h.prev;
  for (let i = 0; i < h.count; i++) {
    const where = `envelope ${i}`;
    if (at + 2 > buf.byteLength) return refuse('malformed', `${where}: missing (the header says ${h.count})`);
    const length = buf.readUInt16BE(at);
    at += 2;
    if (length > envelopeBytesMax)
      return refuse('oversize', `${where} is ${length} bytes; the limit is ${envelopeBytesMax}`);
    if (at + length > buf.byteLength) return refuse('malformed', `${where}: truncated`);
    const bytes = buf.subarray(at, at + length);
    at += length;
    const value = parseAscii(bytes);
    if (value === undefined) return refuse('malformed', `${where}: not ASCII JSON`);
    if (typeof value === 'object' && value !== null) {
      for (const k of Object.keys(value)) {
        if (bodyKeys.has(k))
          // a field only a body has: private data on its way onto the chain
          return refuse('body_on_chain', `${where} carries "${k}": bodies never go on the chain`);
      }
    }
    const problem = envelopeShapeProblem(value);
    if (problem) return refuse('malformed', `${where}: ${problem}`);
    const env = value as EventEnvelope;
    if (!isCanonicalText(env, bytes, envelopeKeyOrder))
      return refuse('malformed', `${where}: not in canonical form (RFC 8785)`);
    if (env.enterprise !== h.enterprise || env.gateway !== h.gateway || env.keyId !== h.keyId)
      return refuse('malformed', `${where}: not of the header's gateway and key`);
    const seq = h.firstSeq + i;
    if (env.seq < seq)
      return refuse('non_monotonic_seq', `${where}: seq ${env.seq} repeats (expected ${seq})`);
    if (env.seq > seq) return refuse('seq_gap', `${where}: seq ${env.seq} skips (expected ${seq})`);
    if (env.prev !== prev)
      return refuse('broken_prev', `${where}: prev is not the id of the event before seq ${seq}`);
    const id = nodeHash('sha256', bytes, 'buffer');
    prev = id.toString('hex');
    envelopes.push(env);
    envelopeBytes.push(bytes);
    ids.push(id);
    total += length;
  }
  if (at !== buf.byteLength)
    return refuse('malformed', `${buf.byteLength - at} bytes after the last envelope`);
  if (total !== h.envelopeBytes)
    return refuse('malformed', `header says ${h.envelopeBytes} envelope bytes, the batch holds ${total}`);
  if (toHex(merkleRoot(ids)) !== h.root)
    return refuse('root_mismatch', "the envelopes' ids do not give the root");
  return {
    ok: true,
    batch: {
      header: h,
      headerBytes,
      signature,
      envelopes,
      envelopeBytes,
      ids,
      txId: batchTxId(headerBytes, signature),
      bytes: buf.byteLength,
    },
  };
}
