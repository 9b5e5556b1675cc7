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

import { fromBase64Url, toHex } from '../../crypto/hash.ts';
import type { SignatureVerifier } from '../../crypto/keys.ts';
import { batchTxBytesMax } from '../../event/bounds.ts';
import type { ChainContext, OrderHooks, TxHooks } from '../core/config.ts';
import { blockHash } from '../core/signing.ts';
import type { Block, CertifiedBlock } from '../core/types.ts';
import { ConfigPool } from './config-pool.ts';
import { type ConfigPayload, type ConfigTx, decodeConfigTx, isConfigTx } from './config-tx.ts';
import { OrderedPool, type PoolLimits } from './pool.ts';
import {
  type ConfigProblem,
  configRefusalCodes,
  configSignatureProblem,
  type GatewayEntry,
  type GatewayRegistry,
  gatewayRegistryOf,
  type RegistryGenesis,
  type RegistryRow,
  registryBounds,
} from './registry.ts';
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
import { type BatchTx, chainKeyOf, TxChecker, type TxCheckerStats, txIdOf } from './tx.ts';

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
  /**
   * Gateway keys as of `state` (`gatewayRegistryOf(genesis)`, with the rows saved by the block store
   * loaded over it). The ledger works on a copy; configuration transactions change it.
   */
  registry: GatewayRegistry;
  /**
   * The genesis's chain id and validators (with their identity roots): what configuration
   * transactions are checked against. Without it every configuration transaction is refused.
   */
  genesis?: Pick<RegistryGenesis, 'chainId' | 'validators'>;
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
  /** The committed gateway key registry: keys (revoked included), active ones, configuration txs pending. */
  registry: { keys: number; active: number; configPending: number };
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
  'revoked_key',
  ...configRefusalCodes,
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

/** Bindings learned from configuration transactions not yet committed (registry.ts); oldest forgotten. */
export const candidateKeysMax = 1_024;
/** Configuration transaction verdicts remembered (they are few and small). */
const configVerdictsMax = 1_024;

export class Ledger {
  readonly #checker: TxChecker;
  /** The committed registry (as of `#height`). */
  readonly #registry: GatewayRegistry;
  readonly #genesis: Pick<RegistryGenesis, 'chainId' | 'validators'> | undefined;
  /** keyId → chain → key, from register transactions that passed checkTx (see `checkTx`). */
  readonly #candidates = new Map<
    string,
    Map<
      string,
      { alg: GatewayEntry['publicKey']['alg']; publicKey: Uint8Array; enterprise: string; gateway: string }
    >
  >();
  readonly #configVerdicts = new Map<
    string,
    { ok: true; config: ConfigTx } | ({ ok: false } & ConfigProblem)
  >();
  readonly #configs = new ConfigPool();
  /** Checks configuration signatures as the checker checks batches' (the simulator passes its own). */
  readonly #verifier: SignatureVerifier | undefined;
  /** The registry changed since the last `refresh`: pooled batches of revoked keys are dropped then. */
  #registryMoved = false;
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
    this.#registry = o.registry.clone();
    this.#verifier = o.verifier;
    // Copied field by field: a Genesis keeps chainId in a getter, which a spread would lose.
    this.#genesis = o.genesis && { chainId: o.genesis.chainId, validators: o.genesis.validators };
    this.#checker = new TxChecker({
      registry: { get: (keyId, enterprise, gateway) => this.#keyFor(keyId, enterprise, gateway) },
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
    genesis: RegistryGenesis & {
      readonly hashBytes: Uint8Array;
      readonly chainLimits: { readonly txBytesMax: number };
    },
    options: Omit<LedgerOptions, 'registry' | 'genesisHash' | 'genesis'> & {
      registry?: GatewayRegistry;
    } = {},
  ): Ledger {
    if (genesis.chainLimits.txBytesMax < batchTxBytesMax)
      throw new RangeError(
        `the genesis's txBytesMax (${genesis.chainLimits.txBytesMax}) is below the largest batch a gateway may sign (${batchTxBytesMax} bytes)`,
      );
    return new Ledger({
      ...options,
      registry: options.registry ?? gatewayRegistryOf(genesis, registryBounds),
      genesis,
      genesisHash: genesis.hashBytes,
    });
  }

  /** The committed gateway key registry (read it, do not change it). */
  get registry(): GatewayRegistry {
    return this.#registry;
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
    return this.applyRows(block).heads;
  }

  /**
   * {@link apply}, with the registry rows the block's configuration transactions changed (persist
   * them with the block too; `openLedger` in the runtime does).
   */
  applyRows(block: Block): { heads: HeadUpdate[]; registry: RegistryRow[] } {
    assertFollows({ height: this.#height, blockHash: this.#blockHash, heads: this.#heads }, block);
    const registry: RegistryRow[] = [];
    for (const [i, tx] of block.txs.entries()) {
      if (!isConfigTx(tx)) continue;
      const d = decodeConfigTx(tx);
      const problem = d.ok ? this.#registry.problem(d.config.payload) : { code: d.code, message: d.message };
      if (problem)
        throw new LedgerInvariantError(
          `block ${block.header.height} transaction ${i}: ${problem.code}: ${problem.message}`,
        );
      registry.push(...this.#registry.apply((d as { config: ConfigTx }).config.payload, block.header.height));
      this.#registryMoved = true;
    }
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
    return { heads: updates, registry };
  }

  /**
   * The verdict of `TxHooks.checkTx`: null, or `code: message`. A refusal is counted when it is
   * reached, not again when the same bytes come back (the verdict is cached).
   */
  checkTx(tx: Uint8Array): string | null {
    if (isConfigTx(tx)) {
      const v = this.#checkConfig(tx);
      return v.ok ? null : `${v.code}: ${v.message}`;
    }
    const hits = this.#checker.verdictHits;
    const v = this.#checker.check(tx);
    if (!v.ok) {
      if (this.#checker.verdictHits === hits) this.#count(v.code);
      return `${v.code}: ${v.message}`;
    }
    // Revocation is for good: a key revoked on the committed chain is revoked in every block above it.
    const key = this.#registry.get(v.batch.keyId);
    if (key && key.revokedAt !== null) {
      this.#count('revoked_key');
      return `revoked_key: key ${key.keyId} of ${v.batch.chain} was revoked at height ${key.revokedAt}`;
    }
    return null;
  }

  /**
   * The pure checks of a configuration transaction (decoding, chain id, the member's identity root,
   * its signature), remembered by id. A register that passes teaches `#keyFor` its binding, so a
   * batch signed by the new key is judged on its signature by a validator that has not applied the
   * block registering it yet (the block is then among the ancestors `checkBlock` folds in).
   */
  #checkConfig(tx: Uint8Array): { ok: true; config: ConfigTx } | ({ ok: false } & ConfigProblem) {
    const d = decodeConfigTx(tx);
    if (!d.ok) {
      this.#count(d.code);
      return { ok: false, code: d.code, message: d.message };
    }
    const known = this.#configVerdicts.get(d.config.id);
    if (known) return known;
    const problem = this.#genesis
      ? configSignatureProblem(
          { chainId: this.#genesis.chainId, validators: this.#genesis.validators, gateways: [] },
          d.config,
          this.#verifier,
        )
      : { code: 'config_no_identity_root' as const, message: 'this ledger has no genesis identity roots' };
    const v = problem ? { ok: false as const, ...problem } : { ok: true as const, config: d.config };
    if (this.#configVerdicts.size >= configVerdictsMax)
      this.#configVerdicts.delete(this.#configVerdicts.keys().next().value!);
    this.#configVerdicts.set(d.config.id, v);
    if (!v.ok) this.#count(v.code);
    else if (v.config.payload.op === 'register') this.#learn(v.config.payload);
    return v;
  }

  #learn(p: ConfigPayload & { op: 'register' }): void {
    let byChain = this.#candidates.get(p.key.keyId);
    if (!byChain) {
      if (this.#candidates.size >= candidateKeysMax)
        this.#candidates.delete(this.#candidates.keys().next().value!);
      byChain = new Map();
      this.#candidates.set(p.key.keyId, byChain);
    }
    byChain.set(chainKeyOf(p.member, p.gateway), {
      alg: p.key.alg,
      publicKey: fromBase64Url(p.key.publicKey),
      enterprise: p.member,
      gateway: p.gateway,
    });
  }

  /** The key a batch's signature is checked with: the committed binding, else one a pending registration makes. */
  #keyFor(keyId: string, enterprise?: string, gateway?: string) {
    const committed = this.#registry.get(keyId);
    if (committed || enterprise === undefined || gateway === undefined) return committed;
    return this.#candidates.get(keyId)?.get(chainKeyOf(enterprise, gateway));
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
        if (isConfigTx(tx)) {
          const v = this.#checkConfig(tx);
          if (!v.ok) throw new Error('bug: admit of a configuration transaction checkTx did not accept');
          const problem = this.#configs.admit(
            toHex(id),
            id,
            v.config.payload,
            tx.byteLength,
            this.#registry,
            nowMs,
          );
          if (!problem) return null;
          this.#count(problem.code);
          return `${problem.code}: ${problem.message}`;
        }
        const e = this.#checker.batchOf(tx);
        if (!e) throw new Error('bug: admit of a transaction checkTx did not accept');
        // Only keys registered on the committed chain: a pending registration is not one yet.
        const unauthorized = this.#registry.authorize(e.keyId, e.chain);
        if (unauthorized) {
          this.#count(unauthorized.code);
          return `${unauthorized.code}: ${unauthorized.message}`;
        }
        const refused = this.#pool.admit(id, e, nowMs);
        if (refused !== null) this.#count(refused.slice(0, refused.indexOf(':')));
        return refused;
      },
      removed: (id) => {
        const key = toHex(id);
        if (!this.#configs.removed(key)) this.#pool.removed(key);
      },
      refresh: (appliedHeight, nowMs) => {
        this.#assertApplied(appliedHeight);
        const stale = this.#configs.refresh(this.#registry, nowMs);
        if (this.#registryMoved) {
          this.#registryMoved = false;
          stale.push(
            ...this.#pool.dropWhere((keyId, chain) => this.#registry.authorize(keyId, chain) !== null),
          );
        }
        stale.push(...this.#pool.refresh(nowMs));
        return stale;
      },
      readiness: () => {
        const a = this.#pool.readiness();
        const b = this.#configs.readiness();
        const oldest = [a.oldestMs, b.oldestMs].filter((x): x is number => x !== null);
        return { count: a.count + b.count, oldestMs: oldest.length ? Math.min(...oldest) : null };
      },
      isReady: (id) => {
        const key = toHex(id);
        return this.#configs.isReady(key) || this.#pool.isReady(key);
      },
      select: (chain, budget) => {
        const view = this.#registryAt(chain);
        const height = chain.appliedHeight + chain.ancestors.length + 1;
        const configs = this.#configs.select(view, height, budget);
        const rest = {
          txsMax: budget.txsMax - configs.ids.length,
          bytesMax: budget.bytesMax - configs.bytes,
        };
        // Batches are judged by the registry as of the parent: this block's own changes apply after it.
        const batches = this.#pool.select(
          this.#headsAt(chain),
          rest,
          (keyId, c) => view.authorize(keyId, c) === null,
        );
        return [...configs.ids, ...batches];
      },
    };
  }

  /**
   * The registry as of the end of `chain` (committed, then the ancestors' configuration
   * transactions). The committed one itself when no ancestor changes it (the usual case).
   */
  #registryAt(chain: ChainContext): GatewayRegistry {
    let view: GatewayRegistry | undefined;
    for (const [k, b] of chain.ancestors.entries()) {
      for (const tx of b.txs) {
        if (!isConfigTx(tx)) continue;
        const d = decodeConfigTx(tx);
        if (!d.ok) continue; // an ancestor was checked (or certified): cannot happen
        view ??= this.#registry.clone();
        if (view.problem(d.config.payload) === null)
          view.apply(d.config.payload, chain.appliedHeight + k + 1);
      }
    }
    return view ?? this.#registry;
  }

  /**
   * The ordering rule over a fresh block: each batch continues its gateway's chain as of the block's
   * parent (committed heads plus the ancestors in `chain`). Null, or `code: message`.
   */
  checkBlock(txs: readonly Uint8Array[], chain: ChainContext): string | null {
    const headAt = this.#headsAt(chain);
    const local = new Map<string, GatewayHead>();
    this.#blockBatchesChecked += txs.length;
    const view = this.#registryAt(chain);
    const height = chain.appliedHeight + chain.ancestors.length + 1;
    let scratch: GatewayRegistry | undefined;
    for (const [i, tx] of txs.entries()) {
      if (isConfigTx(tx)) {
        // Signature and genesis checks passed in checkTx; here the sequence and the registry's
        // rules, in block order, against the parent's registry and the block's earlier changes.
        const d = decodeConfigTx(tx);
        if (!d.ok) return this.#refuseBlock(d.code, `transaction ${i}: ${d.message}`);
        scratch ??= view.clone();
        const problem = scratch.problem(d.config.payload);
        if (problem) return this.#refuseBlock(problem.code, `transaction ${i}: ${problem.message}`);
        scratch.apply(d.config.payload, height);
        continue;
      }
      const b = this.#checker.batchOf(tx);
      if (!b) return this.#refuseBlock('malformed', `transaction ${i} is not a batch`);
      const unauthorized = view.authorize(b.keyId, b.chain);
      if (unauthorized)
        return this.#refuseBlock(unauthorized.code, `transaction ${i}: ${unauthorized.message}`);
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
      registry: {
        keys: this.#registry.size,
        active: this.#registry.activeCount,
        configPending: this.#configs.size,
      },
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
        const b = isConfigTx(tx) ? undefined : this.#checker.batchOf(tx);
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
