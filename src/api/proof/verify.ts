/**
 * The verifier of proof bundles (bundle.ts, docs/trace.md): pure, no I/O and no node: imports of its
 * own, so it runs in node (`masbc-edge verify`) and in the customer's browser (the trace page bundles
 * it with esbuild, src/api/proof/browser.ts). Given the genesis document alone it checks, for every
 * event, the chain of links from the alliance's validators down to the body, top first:
 *
 *   block      the commit certificate is signed by a quorum of the genesis validators (`certificate`),
 *              names this header's hash and height (`block_hash`), the header is of this chain, version
 *              and view's proposer (`block_header`), and is not above the bundle's `asOf` (`above_as_of`)
 *   batch      its key is one the genesis assigns to that member's gateway (`gateway_key`), the
 *              signature over its header verifies (`batch_signature`), and its transaction id (header
 *              and signature) leads by its audit path to the block's txRoot (`tx_path`)
 *   event      its id leads by its audit path to the batch's root at position seq − firstSeq
 *              (`event_path`), the envelope hashes to the id (`envelope_id`) and is of the batch's
 *              gateway and key (`envelope_batch`), the body matches the envelope's commitment
 *              (`body_mismatch`), the event is the bundle member's and in the scope asked for
 *              (`out_of_scope`), and is listed once (`duplicate_event`)
 *   complete   for a closed order, the events are exactly those its proven order_closed event counts:
 *              their number (`completeness_count`) and the Merkle root of their sorted ids
 *              (`completeness_root`)
 *
 * Before all that: the bundle's shape (`malformed`) and that it is of this genesis (`wrong_genesis`).
 * The answer names the first broken link (in the order above, events in bundle order) with a stable
 * code, and carries a verdict per event so a page can mark each one. Block certificates and batch
 * signatures are checked once per bundle (and once per {@link VerifyCache} across bundles).
 *
 * @example
 *   const r = verifyProofBundle(JSON.parse(text), genesis.document, { verifier: nodeVerifier });
 *   if (!r.ok) console.error(`${r.first.code}: ${r.first.detail}`);
 */

import { configSigningBytes, configTxId, decodeConfigTx } from '../../consensus/app/config-tx.ts';
import { blockHash } from '../../consensus/core/signing.ts';
import type { BlockHeader, ChainLimits, CommitCertificate } from '../../consensus/core/types.ts';
import { type VerifyContext, verifyCommitCertificate, verifyHeader } from '../../consensus/core/verify.ts';
import { certificateFromJson, headerFromJson } from '../../consensus/wire/json.ts';
import { encodeCanonical } from '../../crypto/canonical.ts';
import { bytesEqual, fromBase64Url, fromHex, sha256, toBase64Url, toHex } from '../../crypto/hash.ts';
import type { KeyAlgorithm, PublicKeyRecord, SignatureVerifier } from '../../crypto/keys.ts';
import { rootFromPath } from '../../crypto/merkle.ts';
import { nobleVerifier } from '../../crypto/noble.ts';
import { batchHeaderBytes, batchSigningBytesOf, batchTxIdOf } from './batch-id.ts';
import {
  type BundleBatch,
  type BundleEvent,
  isLifecycleKind,
  type ProofBundle,
  proofBundleSchema,
} from './bundle.ts';
import { lotBoundKind, orderSummary } from './order-events.ts';

export const verifyErrorCodes = [
  'malformed',
  'wrong_genesis',
  'certificate',
  'block_hash',
  'block_header',
  'above_as_of',
  'registration',
  'gateway_key',
  'batch_signature',
  'tx_path',
  'event_path',
  'envelope_id',
  'envelope_batch',
  'body_mismatch',
  'out_of_scope',
  'duplicate_event',
  'completeness_count',
  'completeness_root',
] as const;
export type VerifyErrorCode = (typeof verifyErrorCodes)[number];

/** A broken link: what, where (the event, batch and block concerned when known) and why. */
export interface BrokenLink {
  code: VerifyErrorCode;
  detail: string;
  eventId?: string;
  height?: number;
}

/** What the verifier needs of the genesis: its document as loaded (defaults applied), hashed whole. */
export interface GenesisDocumentLike {
  chainId: string;
  params: { limits: ChainLimits };
  validators: readonly { memberId: string; publicKey: PublicKeyRecord; identityRoot?: PublicKeyRecord }[];
  gateways?: readonly { memberId: string; gateway: string; publicKey: PublicKeyRecord }[];
}

export interface VerifyOptions {
  /** Signature checks: @noble/curves by default (pure JS); node callers may pass node:crypto's. */
  verifier?: SignatureVerifier;
  /** Remembers verified certificates and batches across bundles (a page that polls). */
  cache?: VerifyCache;
}

export interface EventVerdict {
  id: string;
  ok: boolean;
  /** Set when not ok: the first broken link of this event. */
  code?: VerifyErrorCode;
  detail?: string;
}

export interface BundleSummary {
  chainId: string;
  genesisHash: string;
  member: string;
  scope: ProofBundle['scope'];
  asOfHeight: number;
  events: number;
  lifecycle: number;
  batches: number;
  blocks: number;
  /** `<member>/<gateway>` of every batch, sorted. */
  gateways: string[];
  /** Lowest and highest block of an event, or null when there is none. */
  heights: [number, number] | null;
  /** The order is closed (a proven order_closed event is in the bundle). */
  closed: boolean;
  /** Completeness was proven (a closed order whose events are exactly those it counts). */
  complete: boolean;
}

export type BundleVerification =
  | { ok: true; summary: BundleSummary; events: EventVerdict[]; lifecycle: EventVerdict[] }
  | {
      ok: false;
      first: BrokenLink;
      /** Per event, when the bundle could be read at all (not for `malformed`, `wrong_genesis`). */
      events: EventVerdict[];
      lifecycle: EventVerdict[];
      summary?: BundleSummary;
    };

const cacheEntriesMax = 4096;

/**
 * Verified block certificates (by genesis, block hash and certificate) and batch signatures (by
 * genesis, transaction id and key); bounded, oldest forgotten first. Only signature checks are skipped for
 * what it holds: every other link of every bundle is checked each time.
 */
export class VerifyCache {
  readonly #seen = new Set<string>();
  has(key: string): boolean {
    return this.#seen.has(key);
  }
  add(key: string): void {
    if (this.#seen.size >= cacheEntriesMax) this.#seen.delete(this.#seen.values().next().value!);
    this.#seen.add(key);
  }
}

/** Hex SHA-256 of the canonical document: what a bundle's `genesisHash` must be. */
export function genesisHashOf(genesis: GenesisDocumentLike): string {
  return toHex(sha256(encodeCanonical(genesis)));
}

class Broken {
  readonly link: BrokenLink;
  constructor(code: VerifyErrorCode, detail: string, height?: number) {
    this.link = { code, detail, ...(height !== undefined ? { height } : {}) };
  }
}

interface Block {
  header: BlockHeader;
  certificate: CommitCertificate;
}

interface GatewayKey {
  alg: KeyAlgorithm;
  publicKey: Uint8Array;
  memberId: string;
  gateway: string;
  /** Height of the block that registered it (0: the genesis); valid from the next block. */
  since: number;
  /** Height of the block that revoked it: batches in later blocks are not its. */
  revokedAt: number | null;
}

/** Checks a proof bundle against a genesis document. Never throws on bad input. */
export function verifyProofBundle(
  input: unknown,
  genesis: GenesisDocumentLike,
  options: VerifyOptions = {},
): BundleVerification {
  const none = { events: [] as EventVerdict[], lifecycle: [] as EventVerdict[] };
  const parsed = proofBundleSchema.safeParse(input);
  if (!parsed.success) {
    const issue = parsed.error.issues[0]!;
    return {
      ok: false,
      first: { code: 'malformed', detail: `${issue.path.join('.') || 'bundle'}: ${issue.message}` },
      ...none,
    };
  }
  const bundle = parsed.data;
  const expected = genesisHashOf(genesis);
  if (bundle.genesisHash !== expected || bundle.chainId !== genesis.chainId) {
    return {
      ok: false,
      first: {
        code: 'wrong_genesis',
        detail: `the bundle is of chain ${bundle.chainId} with genesis ${bundle.genesisHash.slice(0, 16)}…; this genesis is ${genesis.chainId} ${expected.slice(0, 16)}…`,
      },
      ...none,
    };
  }
  try {
    return new BundleVerifier(bundle, genesis, options).run();
  } catch (err) {
    // Every check returns its verdict; this is for input no check foresaw, never a crash.
    return {
      ok: false,
      first: { code: 'malformed', detail: `unreadable bundle: ${(err as Error).message}` },
      ...none,
    };
  }
}

class BundleVerifier {
  readonly #bundle: ProofBundle;
  readonly #genesis: GenesisDocumentLike;
  readonly #ctx: VerifyContext;
  readonly #cache: VerifyCache;
  readonly #keys = new Map<string, GatewayKey>();
  readonly #blocks = new Map<number, { header: unknown; certificate: unknown }>();
  readonly #blockVerdicts = new Map<number, Block | Broken>();
  readonly #batchVerdicts = new Map<number, Broken | null>();

  constructor(bundle: ProofBundle, genesis: GenesisDocumentLike, options: VerifyOptions) {
    this.#bundle = bundle;
    this.#genesis = genesis;
    this.#cache = options.cache ?? new VerifyCache();
    this.#ctx = {
      chainId: genesis.chainId,
      validators: genesis.validators.map((v) => ({
        keyId: v.publicKey.keyId,
        alg: v.publicKey.alg,
        publicKey: fromBase64Url(v.publicKey.publicKey),
      })),
      verifier: options.verifier ?? nobleVerifier,
      txId: () => {
        throw new Error('the bundle verifier never hashes transactions');
      },
    };
    for (const g of genesis.gateways ?? []) {
      this.#keys.set(g.publicKey.keyId, {
        alg: g.publicKey.alg,
        publicKey: fromBase64Url(g.publicKey.publicKey),
        memberId: g.memberId,
        gateway: g.gateway,
        since: 0,
        revokedAt: null,
      });
    }
    for (const b of bundle.blocks) {
      const h = (b.header as { height?: unknown } | null)?.height;
      if (typeof h === 'number' && !this.#blocks.has(h)) this.#blocks.set(h, b);
    }
  }

  run(): BundleVerification {
    const b = this.#bundle;
    const registrationBad = this.#applyRegistrations();
    const seen = new Set<string>();
    const boundLots = this.#boundLots();
    const check = (e: BundleEvent, lifecycle: boolean): EventVerdict => {
      const broken = this.#checkEvent(e, lifecycle, boundLots, seen);
      seen.add(e.id);
      return broken
        ? { id: e.id, ok: false, code: broken.link.code, detail: broken.link.detail }
        : { id: e.id, ok: true };
    };
    const events = b.events.map((e) => check(e, false));
    const lifecycle = b.lifecycle.map((e) => check(e, true));
    const firstBad = [
      ...events.map((v, i) => [v, b.events[i]!] as const),
      ...lifecycle.map((v, i) => [v, b.lifecycle[i]!] as const),
    ].find(([v]) => !v.ok);
    const closedAt = b.lifecycle.findIndex((e, i) => e.envelope.kind === 'order_closed' && lifecycle[i]!.ok);
    const summary = this.#summary(closedAt >= 0);
    if (registrationBad) return { ok: false, first: registrationBad.link, events, lifecycle, summary };
    if (firstBad) {
      const [v, e] = firstBad;
      return {
        ok: false,
        first: { code: v.code!, detail: v.detail!, eventId: e.id, height: b.batches[e.batch]?.height },
        events,
        lifecycle,
        summary,
      };
    }
    if (closedAt >= 0) {
      const broken = this.#checkCompleteness(b.lifecycle[closedAt]!);
      if (broken) return { ok: false, first: broken.link, events, lifecycle, summary };
      summary.complete = true;
    }
    return { ok: true, summary, events, lifecycle };
  }

  /**
   * Learns the gateway keys the bundle's configuration transactions register (and revoke): each must
   * be in a certified block of the bundle and signed by the identity root the genesis gives its
   * member. Returns the first that is not.
   */
  #applyRegistrations(): Broken | null {
    for (const r of this.#bundle.registrations) {
      const bytes = fromBase64Url(r.tx);
      const d = decodeConfigTx(bytes);
      if (!d.ok) return new Broken('registration', `configuration transaction: ${d.message}`, r.height);
      const p = d.config.payload;
      const what = `the ${p.op} of a key of ${p.member}/${p.gateway} (block ${r.height})`;
      const root = this.#genesis.validators.find((v) => v.memberId === p.member)?.identityRoot;
      if (p.chainId !== this.#genesis.chainId)
        return new Broken('registration', `${what} is for chain ${p.chainId}`, r.height);
      if (
        !root ||
        !this.#ctx.verifier.verify(
          root.alg,
          fromBase64Url(root.publicKey),
          configSigningBytes(d.config.payloadBytes),
          d.config.signature,
        )
      ) {
        return new Broken(
          'registration',
          `${what} is not signed by the identity root the genesis gives ${p.member}`,
          r.height,
        );
      }
      const block = this.#block(r.height);
      if (block instanceof Broken) return block;
      const root2 = this.#root(configTxId(bytes), r.index, block.header.txCount, r.path);
      if (!root2 || !bytesEqual(root2, block.header.txRoot)) {
        return new Broken(
          'tx_path',
          `${what} is not in block ${r.height} (its path does not lead to txRoot)`,
          r.height,
        );
      }
      if (p.op === 'register') {
        if (!this.#keys.has(p.key.keyId)) {
          this.#keys.set(p.key.keyId, {
            alg: p.key.alg,
            publicKey: fromBase64Url(p.key.publicKey),
            memberId: p.member,
            gateway: p.gateway,
            since: r.height,
            revokedAt: null,
          });
        }
      } else {
        const key = this.#keys.get(p.keyId);
        if (key && key.memberId === p.member) key.revokedAt = Math.min(key.revokedAt ?? r.height, r.height);
      }
    }
    return null;
  }

  /** Lots the bundle's (order scope) lot_bound events bind to the order. */
  #boundLots(): Set<string> {
    const lots = new Set<string>();
    const scope = this.#bundle.scope;
    if (!('order' in scope)) return lots;
    for (const e of this.#bundle.events) {
      if (
        e.envelope.kind === lotBoundKind &&
        e.body.order === scope.order &&
        typeof e.body.lot === 'string'
      ) {
        lots.add(e.body.lot);
      }
    }
    return lots;
  }

  #checkEvent(e: BundleEvent, lifecycle: boolean, boundLots: Set<string>, seen: Set<string>): Broken | null {
    const batch = this.#bundle.batches[e.batch];
    if (!batch) return new Broken('malformed', `event ${e.id} names batch ${e.batch}, not in the bundle`);
    const block = this.#block(batch.height);
    if (block instanceof Broken) return block;
    const batchBad = this.#batch(e.batch, batch, block);
    if (batchBad) return batchBad;
    const h = batch.header;
    const position = e.envelope.seq - h.firstSeq;
    let id: Uint8Array;
    try {
      id = fromHex(e.id);
    } catch {
      return new Broken('malformed', `event id ${e.id} is not hex`);
    }
    const root = position >= 0 && position < h.count ? this.#root(id, position, h.count, e.path) : undefined;
    if (!root || toHex(root) !== h.root) {
      return new Broken(
        'event_path',
        `event ${e.id} does not lead to the root of its batch (seq ${e.envelope.seq})`,
      );
    }
    if (toHex(sha256(encodeCanonical(e.envelope))) !== e.id) {
      return new Broken('envelope_id', `the envelope of event ${e.id} does not hash to its id`);
    }
    const env = e.envelope;
    if (env.enterprise !== h.enterprise || env.gateway !== h.gateway || env.keyId !== h.keyId) {
      return new Broken('envelope_batch', `event ${e.id} is not of its batch's gateway and key`);
    }
    let commitment: string | undefined;
    try {
      commitment = toHex(sha256(encodeCanonical(e.body)));
    } catch {
      commitment = undefined;
    }
    if (commitment !== env.body) {
      return new Broken(
        'body_mismatch',
        `the body of event ${e.id} does not match its envelope's commitment`,
      );
    }
    const scopeProblem = this.#scopeProblem(e, lifecycle, boundLots);
    if (scopeProblem) return new Broken('out_of_scope', `event ${e.id}: ${scopeProblem}`);
    if (seen.has(e.id)) return new Broken('duplicate_event', `event ${e.id} is listed twice`);
    return null;
  }

  #root(leaf: Uint8Array, index: number, size: number, path: readonly string[]): Uint8Array | undefined {
    const nodes = path.map(fromBase64Url);
    if (nodes.some((n) => n.byteLength !== 32)) return undefined;
    return rootFromPath(leaf, index, size, nodes);
  }

  #scopeProblem(e: BundleEvent, lifecycle: boolean, boundLots: Set<string>): string | null {
    const b = this.#bundle;
    if (e.envelope.enterprise !== b.member) return `an event of ${e.envelope.enterprise}, not of ${b.member}`;
    const scope = b.scope;
    if ('order' in scope) {
      if (isLifecycleKind(e.envelope.kind) !== lifecycle)
        return lifecycle ? 'not a life-cycle event of the order' : 'a life-cycle event among the events';
      if (e.envelope.dataClass !== 'process') return 'not process data';
      if (e.body.order === scope.order) return null;
      if (!lifecycle && typeof e.body.lot === 'string' && boundLots.has(e.body.lot)) return null;
      return `not of order ${scope.order} nor of a lot bound to it`;
    }
    if (lifecycle) return 'life-cycle events belong to an order scope';
    if ('lot' in scope) return e.body.lot === scope.lot ? null : `not of lot ${scope.lot}`;
    return e.body.product === scope.product ? null : `not of product ${scope.product}`;
  }

  /** The block at `height`, its certificate and header checked (once). */
  #block(height: number): Block | Broken {
    const known = this.#blockVerdicts.get(height);
    if (known) return known;
    const verdict = this.#checkBlock(height);
    this.#blockVerdicts.set(height, verdict);
    return verdict;
  }

  #checkBlock(height: number): Block | Broken {
    const raw = this.#blocks.get(height);
    if (!raw) return new Broken('malformed', `block ${height} is not in the bundle`, height);
    const limits = this.#genesis.params.limits;
    const header = headerFromJson(raw.header, limits);
    if (!header.ok) return new Broken('block_header', `block ${height}: ${header.error.detail}`, height);
    const certificate = certificateFromJson(raw.certificate, limits);
    if (!certificate.ok)
      return new Broken('certificate', `block ${height}: ${certificate.error.detail}`, height);
    const cert = certificate.value;
    const hash = blockHash(header.value);
    // The same certificate of the same block, already checked against this genesis.
    const cacheKey = `${this.#bundle.genesisHash}:block:${toBase64Url(hash)}:${toBase64Url(sha256(encodeCanonical(raw.certificate)))}`;
    if (!this.#cache.has(cacheKey)) {
      const bad = verifyCommitCertificate(this.#ctx, cert);
      if (bad) return new Broken('certificate', `block ${height}: ${bad.detail}`, height);
    }
    if (cert.height !== height || !bytesEqual(cert.blockHash, hash)) {
      return new Broken('block_hash', `the certificate of block ${height} names another block`, height);
    }
    const headerBad = verifyHeader(this.#ctx, header.value);
    if (headerBad) return new Broken('block_header', `block ${height}: ${headerBad.detail}`, height);
    this.#cache.add(cacheKey);
    if (height > this.#bundle.asOf.height) {
      return new Broken(
        'above_as_of',
        `block ${height} is above the bundle's height ${this.#bundle.asOf.height}`,
        height,
      );
    }
    return { header: header.value, certificate: cert };
  }

  /** The batch's key, signature and place in its block, checked once. */
  #batch(position: number, batch: BundleBatch, block: Block): Broken | null {
    const known = this.#batchVerdicts.get(position);
    if (known !== undefined) return known;
    const verdict = this.#checkBatch(batch, block);
    this.#batchVerdicts.set(position, verdict);
    return verdict;
  }

  #checkBatch(batch: BundleBatch, block: Block): Broken | null {
    const h = batch.header;
    const where = `batch ${h.enterprise}/${h.gateway} #${h.firstSeq}`;
    const headerBytes = batchHeaderBytes(h);
    const signature = fromBase64Url(batch.signature);
    const txId = batchTxIdOf(headerBytes, signature);
    const key = this.#keys.get(h.keyId);
    if (!key || key.memberId !== h.enterprise || key.gateway !== h.gateway) {
      return new Broken(
        'gateway_key',
        `${where}: key ${h.keyId} is not one the genesis, or a registration in the bundle, gives gateway ${h.gateway} of ${h.enterprise}`,
        batch.height,
      );
    }
    if (batch.height <= key.since || (key.revokedAt !== null && batch.height > key.revokedAt)) {
      return new Broken(
        'gateway_key',
        `${where}: key ${h.keyId} was not registered at block ${batch.height} (registered at ${key.since}, revoked at ${key.revokedAt ?? 'never'})`,
        batch.height,
      );
    }
    // The transaction id covers the header and the signature: with the key, all a signature check reads.
    const cacheKey = `${this.#bundle.genesisHash}:batch:${toHex(txId)}:${toBase64Url(key.publicKey)}`;
    if (
      !this.#cache.has(cacheKey) &&
      !this.#ctx.verifier.verify(key.alg, key.publicKey, batchSigningBytesOf(headerBytes), signature)
    ) {
      return new Broken('batch_signature', `${where}: the signature does not verify`, batch.height);
    }
    const root = this.#root(txId, batch.index, block.header.txCount, batch.path);
    if (!root || !bytesEqual(root, block.header.txRoot)) {
      return new Broken(
        'tx_path',
        `${where} is not in block ${batch.height} (its path does not lead to txRoot)`,
        batch.height,
      );
    }
    this.#cache.add(cacheKey);
    return null;
  }

  #checkCompleteness(closed: BundleEvent): Broken | null {
    const values = closed.body.values as Record<string, { v?: unknown }> | undefined;
    const count = values?.eventCount?.v;
    const root = values?.eventsRoot?.v;
    const events = this.#bundle.events;
    if (typeof count !== 'number' || typeof root !== 'string') {
      return new Broken(
        'completeness_count',
        `order_closed event ${closed.id} carries no eventCount and eventsRoot`,
      );
    }
    const summary = orderSummary(events.map((e) => e.id));
    if (summary.eventCount !== count) {
      return new Broken(
        'completeness_count',
        `the order was closed with ${count} events; the bundle proves ${summary.eventCount}`,
      );
    }
    if (summary.eventsRoot !== root) {
      return new Broken(
        'completeness_root',
        "the bundle's events are not the ones the order was closed with",
      );
    }
    return null;
  }

  #summary(closed: boolean): BundleSummary {
    const b = this.#bundle;
    const heights = [...b.events, ...b.lifecycle].map((e) => b.batches[e.batch]?.height ?? 0);
    return {
      chainId: b.chainId,
      genesisHash: b.genesisHash,
      member: b.member,
      scope: b.scope,
      asOfHeight: b.asOf.height,
      events: b.events.length,
      lifecycle: b.lifecycle.length,
      batches: b.batches.length,
      blocks: b.blocks.length,
      gateways: [...new Set(b.batches.map((x) => `${x.header.enterprise}/${x.header.gateway}`))].sort(),
      heights: heights.length ? [Math.min(...heights), Math.max(...heights)] : null,
      closed,
      complete: false,
    };
  }
}
