/**
 * The ledger application: makes the IPBFT chain a ledger of gateway-signed batches of event
 * envelopes (bodies stay with their member: docs/events.md). It gives the
 * consensus core its `TxHooks` (txId, checkTx and the optional `order` hooks) and keeps the
 * committed per-gateway heads the ordering rule needs. docs/ledger.md has the rules and the
 * argument for why they are safe and live.
 *
 * Wiring (src/consensus/runtime/ledger.ts `openLedger`, which the runtime uses):
 *
 *   const ledger = Ledger.forGenesis(genesis, { state });   // state: loaded from the block store
 *   const replica = new Replica({ …, tx: ledger.txHooks((id) => store.hasTx(id)) });
 *   // after each input: for (const cb of replica.ready().committed) updates = ledger.apply(cb.block)
 *   // and the updates are saved in the same SQLite transaction as the blocks
 *
 * `apply` must see every committed block, in order, before the next input to the replica (the
 * same contract as `isCommitted`); it returns the heads the block changed, which the store persists
 * with the block so the state can be loaded back (`state` option) without replaying the chain.
 */

import { toHex } from '../../crypto/hash.ts';
import type { SignatureVerifier } from '../../crypto/keys.ts';
import { batchTxBytesMax } from '../../event/bounds.ts';
import type { ChainContext, OrderHooks, TxHooks } from '../core/config.ts';
import { blockHash } from '../core/signing.ts';
import type { Block, CertifiedBlock } from '../core/types.ts';
import { OrderedPool, type PoolLimits } from './pool.ts';
import { type GatewayEntry, gatewayRegistryOf } from './registry.ts';
import {
  assertFollows,
  emptyGatewayHead,
  type GatewayHead,
  genesisLedgerState,
  type HeadUpdate,
  headUpdates,
  LedgerInvariantError,
  type LedgerState,
  linkProblem,
} from './state.ts';
import { type BatchTx, type GatewayKeyLookup, TxChecker, type TxCheckerStats, txIdOf } from './tx.ts';

export interface LedgerLimits extends PoolLimits {
  /** Transaction verdicts remembered; ≥ 2 × the core's mempoolTxsMax keeps every pending one. */
  verdictsMax: number;
}

export const defaultLedgerLimits: Readonly<LedgerLimits> = Object.freeze({
  pendingPerGatewayMax: 1024,
  heldPerGatewayMax: 256,
  verdictsMax: 16_384,
});

export interface LedgerOptions {
  /** Gateway keys (`gatewayRegistryOf(genesis)`). Must be the same at every validator: it is in the genesis. */
  registry: GatewayKeyLookup;
  /** What block 1 points to; the state at height 0. */
  genesisHash: Uint8Array;
  /** The committed state as of the block store's tip (default: the genesis state, for an empty store). */
  state?: LedgerState;
  /** Signature checks (default node:crypto). */
  verifier?: SignatureVerifier;
  limits?: Partial<LedgerLimits>;
}

export interface LedgerMetrics {
  height: number;
  /** Gateway chains with at least one event on the ledger. */
  gateways: number;
  pending: number;
  ready: number;
  /** Refusals by code (EventRejected codes, pending_full, held_full), from checkTx, admission and proposals. */
  refusals: Record<string, number>;
  /** Batches in fresh proposals checked by checkBlock, and proposals it refused. */
  blockBatchesChecked: number;
  blocksRefused: number;
  checker: TxCheckerStats;
}

/** Stable refusal codes: EventRejected's (src/event/verify.ts) and the pool's. */
export const ledgerRefusalCodes = [
  'malformed',
  'oversize',
  'id_mismatch',
  'body_mismatch',
  'unknown_key',
  'bad_signature',
  'non_monotonic_seq',
  'seq_gap',
  'broken_prev',
  'root_mismatch',
  'body_on_chain',
  'pending_full',
  'held_full',
] as const;
export type LedgerRefusalCode = (typeof ledgerRefusalCodes)[number];

/**
 * The stable code of a refused submission (core `SubmitResult`), for counting forged, replayed and
 * unknown-key events; null when accepted. 'committed' (an event already on the ledger: a replay) is
 * `non_monotonic_seq`; 'duplicate' (pending already: a resubmission) and 'mempool-full' are
 * `duplicate` and `mempool_full`; 'too-large' is `oversize`.
 */
export function refusalCode(
  r: { accepted: true } | { accepted: false; reason: string; detail: string },
): LedgerRefusalCode | 'duplicate' | 'mempool_full' | null {
  if (r.accepted) return null;
  switch (r.reason) {
    case 'committed':
      return 'non_monotonic_seq';
    case 'duplicate':
      return 'duplicate';
    case 'mempool-full':
      return 'mempool_full';
    case 'too-large':
      return 'oversize';
    default: {
      const code = r.detail.slice(0, r.detail.indexOf(':'));
      return (ledgerRefusalCodes as readonly string[]).includes(code)
        ? (code as LedgerRefusalCode)
        : 'malformed';
    }
  }
}

/**
 * What the runtime carries (src/consensus/runtime/application.ts `Application`): the core's hooks but
 * `isCommitted`, and `onCommitted`, called for each committed block before the next input.
 */
export interface LedgerApplication extends Omit<TxHooks, 'isCommitted'> {
  onCommitted(block: CertifiedBlock): void;
}

export class Ledger {
  readonly #checker: TxChecker;
  readonly #pool: OrderedPool;
  readonly #heads: Map<string, GatewayHead>;
  #height: number;
  #blockHash: string;
  /** Head changes per block object, for ancestors (blocks are immutable values, so identity is a safe key). */
  readonly #deltas = new WeakMap<Block, Map<string, GatewayHead>>();
  readonly #refusals = new Map<string, number>();
  #blockBatchesChecked = 0;
  #blocksRefused = 0;
  readonly #verdictsMax: number;

  constructor(o: LedgerOptions) {
    const limits = { ...defaultLedgerLimits, ...o.limits };
    for (const [k, v] of Object.entries(limits)) {
      if (!Number.isSafeInteger(v) || v < 1) throw new RangeError(`${k} must be an integer ≥ 1`);
    }
    // Room for ready batches must remain: held ones alone must never fill a gateway's share, or the
    // batch that would make them ready could be refused forever.
    if (limits.heldPerGatewayMax >= limits.pendingPerGatewayMax)
      throw new RangeError('heldPerGatewayMax must be < pendingPerGatewayMax');
    this.#verdictsMax = limits.verdictsMax;
    this.#checker = new TxChecker({
      registry: o.registry,
      verifier: o.verifier,
      verdictsMax: limits.verdictsMax,
    });
    const state = o.state ?? genesisLedgerState(o.genesisHash);
    this.#heads = new Map(state.heads);
    this.#height = state.height;
    this.#blockHash = state.blockHash;
    this.#pool = new OrderedPool(limits, (chain) => this.head(chain));
  }

  /**
   * A ledger for a genesis: its gateway registry and genesis hash. Throws RangeError if the chain's
   * transactions cannot hold the largest batch a gateway may sign (`txBytesMax` below
   * `batchTxBytesMax`): such a chain would refuse full batches forever.
   */
  static forGenesis(
    genesis: {
      readonly gateways: readonly GatewayEntry[];
      readonly hashBytes: Uint8Array;
      readonly chainLimits: { readonly txBytesMax: number };
    },
    options: Omit<LedgerOptions, 'registry' | 'genesisHash'> = {},
  ): Ledger {
    if (genesis.chainLimits.txBytesMax < batchTxBytesMax)
      throw new RangeError(
        `the genesis's txBytesMax (${genesis.chainLimits.txBytesMax}) is below the largest batch a gateway may sign (${batchTxBytesMax} bytes)`,
      );
    return new Ledger({ ...options, registry: gatewayRegistryOf(genesis), genesisHash: genesis.hashBytes });
  }

  /** The committed state as of the last applied block (a copy). */
  get state(): LedgerState {
    return { height: this.#height, blockHash: this.#blockHash, heads: new Map(this.#heads) };
  }

  get height(): number {
    return this.#height;
  }

  /** A gateway chain's last event on the ledger (`emptyGatewayHead` before its first). */
  head(chain: string): GatewayHead {
    return this.#heads.get(chain) ?? emptyGatewayHead;
  }

  /**
   * Folds a committed block into the state; returns the heads it changed (persist them with the
   * block). Throws LedgerInvariantError if the block does not follow the state or breaks the rule.
   */
  apply(block: Block): HeadUpdate[] {
    assertFollows({ height: this.#height, blockHash: this.#blockHash, heads: this.#heads }, block);
    const changes = headUpdates(
      (c) => this.head(c),
      block,
      (tx) => this.#checker.batchOf(tx),
    );
    const updates: HeadUpdate[] = [];
    for (const [chain, head] of changes) {
      this.#heads.set(chain, head);
      this.#pool.headMoved(chain);
      updates.push({ chain, seq: head.seq, id: head.id });
    }
    this.#height = block.header.height;
    this.#blockHash = toHex(blockHash(block.header));
    return updates;
  }

  /**
   * The verdict of `TxHooks.checkTx`: null, or `code: message`. A refusal is counted when it is
   * reached, not again when the same bytes come back (the verdict is cached).
   */
  checkTx(tx: Uint8Array): string | null {
    const hits = this.#checker.verdictHits;
    const v = this.#checker.check(tx);
    if (v.ok) return null;
    if (this.#checker.verdictHits === hits) this.#count(v.code);
    return `${v.code}: ${v.message}`;
  }

  /** The core's hooks. `isCommitted` answers from the block store (its index of event ids). */
  txHooks(isCommitted: (id: Uint8Array) => boolean): TxHooks {
    return { txId: txIdOf, checkTx: (tx) => this.checkTx(tx), isCommitted, order: this.orderHooks() };
  }

  /** Transaction verdicts remembered (`LedgerLimits.verdictsMax`). */
  get verdictsMax(): number {
    return this.#verdictsMax;
  }

  /** The hooks in the runtime's `Application` shape; committed blocks are applied through `onCommitted`. */
  application(): LedgerApplication {
    return {
      txId: txIdOf,
      checkTx: (tx) => this.checkTx(tx),
      order: this.orderHooks(),
      onCommitted: (cb) => {
        this.apply(cb.block);
      },
    };
  }

  orderHooks(): OrderHooks {
    return {
      checkBlock: (txs, chain) => this.checkBlock(txs, chain),
      admit: (id, tx, nowMs) => {
        const e = this.#checker.batchOf(tx);
        if (!e) throw new Error('bug: admit of a transaction checkTx did not accept');
        const refused = this.#pool.admit(id, e, nowMs);
        if (refused !== null) this.#count(refused.slice(0, refused.indexOf(':')));
        return refused;
      },
      removed: (id) => this.#pool.removed(toHex(id)),
      refresh: (appliedHeight, nowMs) => {
        this.#assertApplied(appliedHeight);
        return this.#pool.refresh(nowMs);
      },
      readiness: () => this.#pool.readiness(),
      isReady: (id) => this.#pool.isReady(toHex(id)),
      select: (chain, budget) => this.#pool.select(this.#headsAt(chain), budget),
    };
  }

  /**
   * The ordering rule over a fresh block: each batch continues its gateway's chain as of the block's
   * parent (committed heads plus the ancestors in `chain`). Null, or `code: message`.
   */
  checkBlock(txs: readonly Uint8Array[], chain: ChainContext): string | null {
    const headAt = this.#headsAt(chain);
    const local = new Map<string, GatewayHead>();
    this.#blockBatchesChecked += txs.length;
    for (const [i, tx] of txs.entries()) {
      const b = this.#checker.batchOf(tx);
      if (!b) return this.#refuseBlock('malformed', `transaction ${i} is not a batch`);
      const problem = linkProblem(local.get(b.chain) ?? headAt(b.chain), b);
      if (problem)
        return this.#refuseBlock(problem.code, `transaction ${i} (${b.chain}): ${problem.message}`);
      local.set(b.chain, { seq: b.lastSeq, id: b.lastId });
    }
    return null;
  }

  metrics(): LedgerMetrics {
    const r = this.#pool.readiness();
    return {
      height: this.#height,
      gateways: this.#heads.size,
      pending: this.#pool.size,
      ready: r.count,
      refusals: Object.fromEntries([...this.#refusals].sort(([a], [b]) => (a < b ? -1 : 1))),
      blockBatchesChecked: this.#blockBatchesChecked,
      blocksRefused: this.#blocksRefused,
      checker: this.#checker.stats(),
    };
  }

  /** The ordering fields of a transaction (structure only). */
  batchOf(tx: Uint8Array): BatchTx | undefined {
    return this.#checker.batchOf(tx);
  }

  #assertApplied(appliedHeight: number): void {
    if (appliedHeight !== this.#height) {
      throw new LedgerInvariantError(
        `the ledger state is at height ${this.#height} but the core has committed up to ${appliedHeight}: apply every committed block (Ready.committed) before the next input`,
      );
    }
  }

  /** Heads as of the end of `chain`: the committed ones, then each ancestor's changes. */
  #headsAt(chain: ChainContext): (key: string) => GatewayHead {
    this.#assertApplied(chain.appliedHeight);
    if (chain.ancestors.length === 0) return (k) => this.head(k);
    const overlay = new Map<string, GatewayHead>();
    for (const b of chain.ancestors) for (const [k, h] of this.#deltaOf(b)) overlay.set(k, h);
    return (k) => overlay.get(k) ?? this.head(k);
  }

  /** Last event per chain in a block (already checked or certified, so not checked again). */
  #deltaOf(block: Block): Map<string, GatewayHead> {
    let d = this.#deltas.get(block);
    if (!d) {
      d = new Map();
      for (const tx of block.txs) {
        const b = this.#checker.batchOf(tx);
        if (b) d.set(b.chain, { seq: b.lastSeq, id: b.lastId });
      }
      this.#deltas.set(block, d);
    }
    return d;
  }

  #refuseBlock(code: string, message: string): string {
    this.#blocksRefused++;
    this.#count(code);
    return `${code}: ${message}`;
  }

  #count(code: string): void {
    this.#refusals.set(code, (this.#refusals.get(code) ?? 0) + 1);
  }
}
