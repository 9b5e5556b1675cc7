/**
 * The producer of proof bundles (bundle.ts, docs/trace.md): a scope's events from the member's body
 * store, each with its batch (header, signature, the path from its id to the batch's root) and the
 * batch's place on the chain (the path from the transaction id to the block's txRoot, the block's
 * header and commit certificate), as of the chain's tip.
 *
 * Only final events go in: an event is final when the block store's transaction index holds its
 * batch at or below the tip read when the bundle is started (the chain store is the authority on
 * heights, not the body store's mark). Each batch and block is read and proven once however many of
 * the scope's events it holds. Bounded: at most `proofBundleLimits.eventsMax` events, else
 * {@link ScopeTooLarge} (`too_many_events`).
 *
 * @example
 *   const bundle = buildProofBundle(
 *     { chain: node.store, bodies, chainId: genesis.chainId, genesisHash: genesis.hash },
 *     { scope: { order: 'ORD-7' } },
 *   );
 *   verifyProofBundle(bundle, genesis.document).ok === true
 */

import { configTxId, decodeConfigTx, isConfigTx } from '../../consensus/app/config-tx.ts';
import { registryKeyRowPrefix } from '../../consensus/app/registry.ts';
import { certificateToJson, headerToJson } from '../../consensus/core/forms.ts';
import type { CertifiedBlock } from '../../consensus/core/types.ts';
import type { InclusionProof } from '../../consensus/runtime/block-store.ts';
import { fromHex, toBase64Url, toHex } from '../../crypto/hash.ts';
import { merklePaths } from '../../crypto/merkle.ts';
import { decodeBatchTx } from '../../event/batch.ts';
import type { DataClass } from '../../event/kinds.ts';
import type { KeptEvent } from '../../store/bodies.ts';
import {
  type BundleEvent,
  type BundleScope,
  bundleScopeSchema,
  type ProofBundle,
  proofBundleFormat,
  proofBundleLimits,
} from './bundle.ts';
import { type ScopeReader, ScopeTooLarge, selectScope } from './order-events.ts';

/** What the producer reads: the validator's block store and its member's body store. */
export interface ProofSource {
  chain: {
    readonly tip: { height: number; hash: Uint8Array };
    txLocation(id: Uint8Array): { height: number; index: number } | undefined;
    inclusionProof(id: Uint8Array): InclusionProof | undefined;
    blockAt(height: number): CertifiedBlock | undefined;
    /** The ledger's state rows: the gateway registry's `#key:<keyId>` rows say where a key was registered. */
    loadAppState(): { rows: ReadonlyMap<string, Uint8Array> };
  };
  /** Keys the genesis registers (`gateways[].publicKey.keyId`): they need no registration proof. */
  genesisKeyIds: ReadonlySet<string>;
  bodies: ScopeReader & { readonly member: string };
  chainId: string;
  /** The genesis hash, lower-case hex. */
  genesisHash: string;
}

export interface ProofRequest {
  scope: BundleScope;
  /** Data classes to include for a lot or product scope (default process only; an order's are process). */
  classes?: readonly DataClass[];
}

/** A request the producer cannot answer; `code` is stable. */
export class ProofRequestError extends Error {
  override name = 'ProofRequestError';
  readonly code: 'bad_scope' | 'too_many_events' | 'store_inconsistent';
  constructor(code: ProofRequestError['code'], message: string) {
    super(message);
    this.code = code;
  }
}

interface ProvenBatch {
  position: number;
  paths: Map<string, Uint8Array[]>;
}

/** Builds the proof bundle of a scope as of the chain's tip. Throws {@link ProofRequestError}. */
export function buildProofBundle(source: ProofSource, request: ProofRequest): ProofBundle {
  const scope = bundleScopeSchema.safeParse(request.scope);
  if (!scope.success) throw new ProofRequestError('bad_scope', 'expected one of {order}, {lot}, {product}');
  let selection: ReturnType<typeof selectScope>;
  try {
    selection = selectScope(
      source.bodies,
      scope.data,
      request.classes ?? ['process'],
      proofBundleLimits.eventsMax,
    );
  } catch (err) {
    if (err instanceof ScopeTooLarge) throw new ProofRequestError('too_many_events', err.message);
    throw err;
  }
  return buildProofBundleOf(source, scope.data, selection);
}

/**
 * Builds the bundle of events already selected (and filtered by what the reader may see, as the
 * trace API does): those of them final as of the chain's tip, each with its proofs. For an order
 * scope, `events` must be the order's whole selection (order-events.ts) for completeness to hold.
 */
export function buildProofBundleOf(
  source: ProofSource,
  scope: BundleScope,
  kept: { events: readonly KeptEvent[]; lifecycle: readonly KeptEvent[] },
): ProofBundle {
  if (kept.events.length + kept.lifecycle.length > proofBundleLimits.eventsMax) {
    throw new ProofRequestError('too_many_events', `more than ${proofBundleLimits.eventsMax} events`);
  }
  const tip = source.chain.tip;
  const blocks = new Map<number, ProofBundle['blocks'][number]>();
  const batches: ProofBundle['batches'] = [];
  const proven = new Map<string, ProvenBatch | null>();

  /** The batch of a transaction, proven once; null when it is not final as of `tip`. */
  const batchOf = (txId: string): ProvenBatch | null => {
    const known = proven.get(txId);
    if (known !== undefined) return known;
    const id = fromHex(txId);
    const at = source.chain.txLocation(id);
    if (!at || at.height > tip.height) {
      proven.set(txId, null);
      return null;
    }
    const proof = source.chain.inclusionProof(id);
    const decoded = proof && decodeBatchTx(proof.tx);
    if (!proof || !decoded?.ok) {
      throw new ProofRequestError('store_inconsistent', `transaction ${txId} is indexed but is not a batch`);
    }
    const b = decoded.batch;
    const { paths } = merklePaths(b.ids);
    if (!blocks.has(proof.height)) {
      blocks.set(proof.height, {
        header: headerToJson(proof.header),
        certificate: certificateToJson(proof.certificate),
      });
    }
    batches.push({
      header: b.header,
      signature: toBase64Url(b.signature),
      height: proof.height,
      index: proof.index,
      path: proof.path.map(toBase64Url),
    });
    const entry: ProvenBatch = {
      position: batches.length - 1,
      paths: new Map(b.ids.map((eventId, i) => [toHex(eventId), paths[i]!])),
    };
    proven.set(txId, entry);
    return entry;
  };

  const prove = (list: readonly KeptEvent[]): BundleEvent[] => {
    const out: { event: BundleEvent; height: number; index: number; seq: number }[] = [];
    for (const e of list) {
      const batch = batchOf(e.txId);
      if (!batch) continue;
      const path = batch.paths.get(e.id);
      if (!path) {
        throw new ProofRequestError('store_inconsistent', `event ${e.id} is not in its batch ${e.txId}`);
      }
      const b = batches[batch.position]!;
      out.push({
        event: {
          id: e.id,
          envelope: e.env,
          body: e.body as Record<string, unknown>,
          batch: batch.position,
          path: path.map(toBase64Url),
        },
        height: b.height,
        index: b.index,
        seq: e.env.seq,
      });
    }
    // Chain order: block, transaction, then seq.
    out.sort((x, y) => x.height - y.height || x.index - y.index || x.seq - y.seq);
    return out.map((o) => o.event);
  };

  const events = prove(kept.events);
  const lifecycle = prove(kept.lifecycle);
  const registrations = proveRegistrations(source, batches, tip.height, (height, proof) => {
    if (!blocks.has(height)) {
      blocks.set(height, {
        header: headerToJson(proof.header),
        certificate: certificateToJson(proof.certificate),
      });
    }
  });
  return {
    format: proofBundleFormat,
    chainId: source.chainId,
    genesisHash: source.genesisHash,
    member: source.bodies.member,
    scope,
    asOf: { height: tip.height, blockHash: toBase64Url(tip.hash) },
    blocks: [...blocks.entries()].sort(([a], [b]) => a - b).map(([, block]) => block),
    batches,
    events,
    lifecycle,
    registrations,
  };
}

/**
 * The configuration transactions that registered (and revoked) the batches' keys that are not in the
 * genesis, each with its inclusion proof; `addBlock` adds the block it sits in to the bundle.
 */
function proveRegistrations(
  source: ProofSource,
  batches: ProofBundle['batches'],
  tipHeight: number,
  addBlock: (height: number, proof: InclusionProof) => void,
): ProofBundle['registrations'] {
  const keyIds = [...new Set(batches.map((b) => b.header.keyId))].filter((k) => !source.genesisKeyIds.has(k));
  if (keyIds.length === 0) return [];
  const rows = source.chain.loadAppState().rows;
  const out: ProofBundle['registrations'] = [];
  for (const keyId of keyIds) {
    const row = rows.get(`${registryKeyRowPrefix}${keyId}`);
    if (!row)
      throw new ProofRequestError(
        'store_inconsistent',
        `key ${keyId} signed a final batch but is not registered`,
      );
    const { since, revokedAt } = JSON.parse(new TextDecoder().decode(row)) as {
      since: number;
      revokedAt: number | null;
    };
    for (const [height, op] of [
      [since, 'register'],
      [revokedAt, 'revoke'],
    ] as const) {
      if (height === null || height > tipHeight) continue;
      const tx = source.chain.blockAt(height)?.block.txs.find((t) => {
        if (!isConfigTx(t)) return false;
        const d = decodeConfigTx(t);
        if (!d.ok || d.config.payload.op !== op) return false;
        const p = d.config.payload;
        return (p.op === 'register' ? p.key.keyId : p.keyId) === keyId;
      });
      const proof = tx && source.chain.inclusionProof(configTxId(tx));
      if (!tx || !proof) {
        throw new ProofRequestError(
          'store_inconsistent',
          `the ${op} of key ${keyId} is not in block ${height}`,
        );
      }
      addBlock(height, proof);
      out.push({ tx: toBase64Url(tx), height, index: proof.index, path: proof.path.map(toBase64Url) });
    }
  }
  return out;
}
