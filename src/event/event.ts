/**
 * The production event: what the chain stores, as a public envelope plus a private body.
 *
 * - The **envelope** is what every alliance member sees and verifies: who (enterprise, gateway, key),
 *   what class and kind, when (source and gateway time), where in the gateway's chain (`seq`, `prev`),
 *   and `body`, a salted SHA-256 commitment to the body. `id` = SHA-256 of the envelope's canonical
 *   bytes (RFC 8785, see src/crypto/canonical.ts): the idempotency key everywhere.
 * - The **body** holds what only authorised readers may see: site/line/station/device, lot, product,
 *   order, step and values. Today it travels in clear beside its commitment; a reader without it can
 *   still verify the envelope, and a later release can encrypt it per reader without changing ids or
 *   signatures (Hyperledger Fabric's private data is the model: hash on chain, contents to the
 *   authorised). The body's random `salt` stops anyone from confirming a guessed body (a lot id, say)
 *   against the public commitment.
 * - The **signature** covers the id, hence the envelope, hence the body through the commitment.
 *   Either one signature per event, or one over the Merkle root of a batch of ids with each event
 *   carrying its own audit path, so every event stays verifiable on its own (see signer.ts).
 *
 * @example
 *   const events = signer.sign(drafts, head);           // src/event/signer.ts
 *   verifier.verify(events[0]);                          // throws a typed EventRejected subclass
 */
import { z } from 'zod';
import { canonicalJson, encodeCanonical } from '../crypto/canonical.ts';
import { sha256, toHex } from '../crypto/hash.ts';
import {
  auditPathMax,
  contextCharsMax,
  gapReasonCharsMax,
  nameCharsMax,
  signatureBatchMax,
  textValueCharsMax,
  timeMsMax,
  unitCharsMax,
} from './bounds.ts';
import { dataClasses, eventKinds, qualities } from './kinds.ts';

export const eventVersion = 1;

const hex32 = z.string().regex(/^[0-9a-f]{64}$/, 'expected 64 lower-case hex digits');
const b64u = (bytes: number) =>
  z
    .string()
    .regex(new RegExp(`^[A-Za-z0-9_-]{${Math.ceil((bytes * 4) / 3)}}$`), `expected ${bytes} bytes base64url`);
const name = z.string().min(1).max(nameCharsMax);
const timeMs = z.number().int().min(0).max(timeMsMax);

export const envelopeSchema = z.strictObject({
  v: z.literal(eventVersion),
  enterprise: name,
  gateway: name,
  keyId: z.string().regex(/^[0-9a-f]{32}$/),
  dataClass: z.enum(dataClasses),
  kind: z.enum(eventKinds),
  sourceTimeMs: timeMs,
  gatewayTimeMs: timeMs,
  seq: z.number().int().min(1).max(Number.MAX_SAFE_INTEGER),
  prev: hex32,
  body: hex32,
});

const valueSchema = z.strictObject({
  v: z.union([z.number(), z.string().max(textValueCharsMax), z.boolean(), z.null()]),
  unit: z.string().max(unitCharsMax).optional(),
  q: z.enum(qualities),
});

export const gapSchema = z.strictObject({
  /** Drafts that could not be stored (disk budget reached); they never received a seq. */
  droppedCount: z.number().int().min(1),
  firstSourceTimeMs: timeMs,
  lastSourceTimeMs: timeMs,
  /** seq of the last event stored before the loss (0 if none). */
  afterSeq: z.number().int().min(0),
  byKind: z.partialRecord(z.enum(eventKinds), z.number().int().min(1)),
  reason: z.string().max(gapReasonCharsMax),
});

export const bodySchema = z.strictObject({
  salt: b64u(16),
  site: name,
  line: name,
  station: name,
  device: name,
  rule: name.optional(),
  lot: z.string().max(contextCharsMax).optional(),
  product: z.string().max(contextCharsMax).optional(),
  order: z.string().max(contextCharsMax).optional(),
  step: z.string().max(contextCharsMax).optional(),
  values: z.record(z.string().min(1).max(nameCharsMax), valueSchema),
  gap: gapSchema.optional(),
});

export const signatureSchema = z.discriminatedUnion('t', [
  z.strictObject({ t: z.literal('event'), sig: b64u(64) }),
  z.strictObject({
    t: z.literal('batch'),
    size: z.number().int().min(1).max(signatureBatchMax),
    index: z
      .number()
      .int()
      .min(0)
      .max(signatureBatchMax - 1),
    path: z.array(b64u(32)).max(auditPathMax),
    sig: b64u(64),
  }),
]);

export const signedEventSchema = z.strictObject({
  id: hex32,
  env: envelopeSchema,
  body: bodySchema.optional(),
  sig: signatureSchema,
});

export type EventEnvelope = z.output<typeof envelopeSchema>;
export type EventBody = z.output<typeof bodySchema>;
export type GapInfo = z.output<typeof gapSchema>;
export type EventSignature = z.output<typeof signatureSchema>;
/** An event as stored and transmitted. `body` is absent where the reader is not authorised. */
export type SignedEvent = z.output<typeof signedEventSchema>;

/** Hex SHA-256 of the canonical envelope: the event id. */
export function eventId(envelope: EventEnvelope): string {
  return toHex(sha256(encodeCanonical(envelope)));
}

/** Hex SHA-256 of the canonical body: the envelope's commitment. */
export function bodyCommitment(body: EventBody): string {
  return toHex(sha256(encodeCanonical(body)));
}

/** Canonical JSON text of a signed event: its storage and wire form. */
export function encodeEvent(event: SignedEvent): string {
  return canonicalJson(event);
}

const domain = new TextEncoder();
/** Signed bytes for a single event: domain tag, then the 32-byte id. */
export const eventSignaturePrefix = domain.encode('masbc-edge/event/v1\n');
/** Signed bytes for a batch: domain tag, the Merkle root of the ids, then the size as u32 big-endian. */
export const batchSignaturePrefix = domain.encode('masbc-edge/event-batch/v1\n');

export function batchSignedBytes(root: Uint8Array, size: number): Uint8Array {
  const out = new Uint8Array(batchSignaturePrefix.byteLength + 32 + 4);
  out.set(batchSignaturePrefix, 0);
  out.set(root, batchSignaturePrefix.byteLength);
  new DataView(out.buffer).setUint32(batchSignaturePrefix.byteLength + 32, size);
  return out;
}

export function eventSignedBytes(id: Uint8Array): Uint8Array {
  const out = new Uint8Array(eventSignaturePrefix.byteLength + 32);
  out.set(eventSignaturePrefix, 0);
  out.set(id, eventSignaturePrefix.byteLength);
  return out;
}
