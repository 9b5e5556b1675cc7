/**
 * The production event, as two parts (docs/events.md):
 *
 * - The **envelope**, public to the alliance and on the chain: who (enterprise, gateway, key), what
 *   class and kind, when (source and gateway time), where in the gateway's chain (`seq`, `prev`),
 *   and `body`, a salted SHA-256 commitment to the body. Nothing in it names a lot, order, product or
 *   measurement. `id` = SHA-256 of the envelope's canonical bytes (RFC 8785, src/crypto/canonical.ts):
 *   the idempotency key everywhere.
 * - The **body**, private: site/line/station/device, lot, product, order, step and values. It never
 *   goes on the chain: it stays in the gateway's outbox and its own member's body store, and goes only
 *   to readers allowed to see it, who check it against the commitment. Its random `salt` stops anyone
 *   from confirming a guessed body (a lot id, say) against the public commitment.
 *
 * Envelopes are signed in batches, one signature per batch (batch.ts): a batch is one transaction of
 * the chain.
 *
 * @example
 *   const { batch, events } = signer.sign(drafts, head);   // src/event/signer.ts
 *   eventId(events[0].env) === events[0].id
 */
import { z } from 'zod';
import { canonicalJson, encodeCanonical } from '../crypto/canonical.ts';
import { sha256, toHex } from '../crypto/hash.ts';
import {
  contextCharsMax,
  gapReasonCharsMax,
  identifierPattern,
  nameCharsMax,
  textValueCharsMax,
  timeMsMax,
  unitCharsMax,
} from './bounds.ts';
import { dataClasses, eventKinds, qualities } from './kinds.ts';

/** Version 2: envelopes on the chain in signed batches, bodies off it (version 1 carried bodies). */
export const eventVersion = 2;

const hex32 = z.string().regex(/^[0-9a-f]{64}$/, 'expected 64 lower-case hex digits');
const b64u = (bytes: number) =>
  z
    .string()
    .regex(new RegExp(`^[A-Za-z0-9_-]{${Math.ceil((bytes * 4) / 3)}}$`), `expected ${bytes} bytes base64url`);
const name = z.string().min(1).max(nameCharsMax);
const id = z
  .string()
  .regex(identifierPattern, 'expected 1-64 of A-Z a-z 0-9 . _ -, starting with a letter or digit');
const timeMs = z.number().int().min(0).max(timeMsMax);

export const envelopeSchema = z.strictObject({
  v: z.literal(eventVersion),
  enterprise: id,
  gateway: id,
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

/** An event with its body, as its gateway and its member keep it. */
export const eventRecordSchema = z.strictObject({
  id: hex32,
  env: envelopeSchema,
  body: bodySchema.optional(),
});

export type EventEnvelope = z.output<typeof envelopeSchema>;
export type EventBody = z.output<typeof bodySchema>;
export type GapInfo = z.output<typeof gapSchema>;
/** An event: its id, envelope and (where the holder may see it) body. */
export type EventRecord = z.output<typeof eventRecordSchema>;

/** Hex SHA-256 of the canonical envelope: the event id. */
export function eventId(envelope: EventEnvelope): string {
  return toHex(sha256(encodeCanonical(envelope)));
}

/** Hex SHA-256 of the canonical body: the envelope's commitment. */
export function bodyCommitment(body: EventBody): string {
  return toHex(sha256(encodeCanonical(body)));
}

/** Canonical bytes of an envelope: what its id hashes, and what a batch transaction carries. */
export function encodeEnvelope(envelope: EventEnvelope): Uint8Array {
  return encodeCanonical(envelope);
}

/** Canonical JSON text of a body: what its commitment hashes. */
export function encodeBody(body: EventBody): string {
  return canonicalJson(body);
}
