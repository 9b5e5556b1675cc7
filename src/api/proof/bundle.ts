/**
 * The proof bundle (docs/trace.md): everything a reader needs to check, with the genesis alone and no
 * network, that each event it is shown was signed by a registered gateway of the member and
 * committed by a quorum of the alliance's validators, and, for a closed order, that no event of the
 * order was left out.
 *
 * JSON, byte fields as the rest of the code base writes them: event ids, batch roots and the genesis
 * hash in lower-case hex (as envelopes and batch headers carry them), block headers and certificates
 * in their canonical JSON form (src/consensus/core/forms.ts, base64url), Merkle path nodes and the
 * batch signature in unpadded base64url. Blocks and batches are listed once and referenced by the
 * events that sit in them (a block's certificate is the bulk of a proof):
 *
 *   { format: "masbc-edge/proof-bundle/v1", chainId, genesisHash, member,
 *     scope: {order} | {lot} | {product}, asOf: {height, blockHash},
 *     blocks:  [{ header, certificate }],                                  // distinct heights
 *     batches: [{ header, signature, height, index, path }],               // tx id → block txRoot
 *     events:  [{ id, envelope, body, batch, path }],                      // event id → batch root
 *     lifecycle: [ same as events ],                                      // order_* events (order scope)
 *     registrations: [{ tx, height, index, path }] }                      // configuration transactions
 *
 * `registrations` carries, for each batch key that is not in the genesis, the configuration
 * transaction that registered it on the chain (signed by the member's identity root) and, when it was
 * revoked, the one that revoked it, each proven like a batch (its id's path to the block's txRoot).
 *
 * An event's position in its batch is `envelope.seq − header.firstSeq` (a batch's seqs run without a
 * gap, which every validator checked before committing it).
 *
 * This module is pure (zod and type imports only): it is bundled into the customer's trace page.
 */
import { z } from 'zod';
import { envelopeSchema } from '../../event/event.ts';

export const proofBundleFormat = 'masbc-edge/proof-bundle/v1';

/**
 * Bounds of one bundle, checked when it is produced and when it is read. A scope with more events
 * is refused (`too_many_events`) rather than cut short: a truncated trace could not prove completeness.
 */
export const proofBundleLimits = Object.freeze({
  /** Events (plus life-cycle events) in one bundle. */
  eventsMax: 10_000,
  /** Nodes of one Merkle path: trees of up to 2^40 leaves. */
  pathNodesMax: 40,
  /** Characters of a scope value (an order, lot or product id). */
  scopeCharsMax: 256,
  /** Bytes of a bundle read from a file (`masbc-edge verify`). */
  fileBytesMax: 256 * 1024 * 1024,
});

const hex64 = z.string().regex(/^[0-9a-f]{64}$/, 'expected 64 lower-case hex digits');
const b64u = z.string().regex(/^[A-Za-z0-9_-]*$/, 'expected unpadded base64url');
const count = z.number().int().min(0).max(Number.MAX_SAFE_INTEGER);
const path = z.array(b64u).max(proofBundleLimits.pathNodesMax);
const scopeValue = z.string().min(1).max(proofBundleLimits.scopeCharsMax);

export const bundleScopeSchema = z.union([
  z.strictObject({ order: scopeValue }),
  z.strictObject({ lot: scopeValue }),
  z.strictObject({ product: scopeValue }),
]);
export type BundleScope = z.output<typeof bundleScopeSchema>;

/** The batch header exactly as signed (src/event/batch.ts `BatchHeader`); checked by its signature. */
const batchHeaderSchema = z.strictObject({
  v: z.literal(2),
  enterprise: z.string().min(1).max(64),
  gateway: z.string().min(1).max(64),
  keyId: z.string().regex(/^[0-9a-f]{32}$/),
  firstSeq: z.number().int().min(1).max(Number.MAX_SAFE_INTEGER),
  count: z.number().int().min(1).max(Number.MAX_SAFE_INTEGER),
  prev: hex64,
  root: hex64,
  envelopeBytes: count,
});

const bundleEventSchema = z.strictObject({
  id: hex64,
  /** Checked against `id` by hashing it: its shape is checked loosely here (kinds grow over time). */
  envelope: envelopeSchema.extend({ kind: z.string().min(1).max(64) }),
  /** Checked against the envelope's commitment; its shape is the body schema's (src/event/event.ts). */
  body: z.record(z.string(), z.unknown()),
  /** Index into `batches`. */
  batch: count,
  path,
});

export const proofBundleSchema = z.strictObject({
  format: z.literal(proofBundleFormat),
  chainId: z.string().min(1).max(63),
  genesisHash: hex64,
  /** The member whose body store the bodies come from. */
  member: z.string().min(1).max(63),
  scope: bundleScopeSchema,
  /** The chain's tip when the bundle was made: no block in it is higher. */
  asOf: z.strictObject({ height: count, blockHash: b64u }),
  /** Block headers and certificates in their JSON form (wire/json.ts reads them strictly). */
  blocks: z
    .array(z.strictObject({ header: z.unknown(), certificate: z.unknown() }))
    .max(2 * proofBundleLimits.eventsMax),
  batches: z
    .array(
      z.strictObject({
        header: batchHeaderSchema,
        signature: b64u,
        /** Height of the block holding the batch (its transaction), and its index there. */
        height: count,
        index: count,
        /** Audit path from the transaction id to the block's txRoot. */
        path,
      }),
    )
    .max(proofBundleLimits.eventsMax),
  events: z.array(bundleEventSchema).max(proofBundleLimits.eventsMax),
  /** The order's life-cycle events (order_accepted, order_in_production, order_closed). */
  lifecycle: z.array(bundleEventSchema).max(proofBundleLimits.eventsMax),
  /** Configuration transactions registering (or revoking) the batches' keys not in the genesis. */
  registrations: z
    .array(
      z.strictObject({
        /** The transaction's bytes (src/consensus/app/config-tx.ts). */
        tx: b64u.max(4096),
        height: count,
        index: count,
        path,
      }),
    )
    .max(proofBundleLimits.eventsMax),
});

export type ProofBundle = z.output<typeof proofBundleSchema>;
export type BundleEvent = ProofBundle['events'][number];
export type BundleBatch = ProofBundle['batches'][number];
export type BundleRegistration = ProofBundle['registrations'][number];

/** Life-cycle kinds of an order (contract of issue 11, §3): proven like events, listed apart. */
export const orderLifecycleKinds: readonly string[] = [
  'order_accepted',
  'order_in_production',
  'order_closed',
];
export const isLifecycleKind = (kind: string): boolean => orderLifecycleKinds.includes(kind);
