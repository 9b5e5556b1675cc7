/**
 * Configuration of a replica: the chain it belongs to, its key, the application hooks, timing and
 * local bounds. All bounds live here, with their defaults and the relations between them asserted
 * once at construction (TigerBeetle's "a limit on everything, kept together").
 */
import type { SignatureVerifier, Signer } from '../../crypto/keys.ts';
import { assertChainLimits, checkValidators, defaultChainLimits } from './limits.ts';
import type { Block, ChainLimits, Validator } from './types.ts';

/**
 * What the application decides about transactions. Both functions must be deterministic and pure
 * functions of their argument (and, for `isCommitted`, of the committed chain): every honest replica
 * must reach the same verdict on the same block, or an honest primary could be voted out.
 */
export interface TxHooks {
  /** The transaction's 32-byte id (for events: SHA-256 of the canonical envelope). Cheap. */
  txId(tx: Uint8Array): Uint8Array;
  /**
   * `null` if the transaction is acceptable in a block, else a short reason. Production: the event's
   * signature, size and schema. Called on admission to the mempool and for every transaction of
   * every fresh proposal; memoise in the hook if it is expensive.
   */
  checkTx(tx: Uint8Array): string | null;
  /**
   * Whether a transaction with this id is in a block at or below the replica's committed height.
   * The runtime answers from its block store, which must hold every block the core has emitted in
   * `Ready.committed` before the next input is given to the core.
   */
  isCommitted(id: Uint8Array): boolean;
  /**
   * Optional state-dependent rules over whole blocks and the mempool policy that goes with them
   * (the ledger's per-gateway ordering, docs/ledger.md). Without it the core behaves as before:
   * any set of individually valid, new transactions makes a valid block, proposed in arrival order.
   */
  order?: OrderHooks;
}

/**
 * The chain below a block, from where the application's committed state stands. The runtime applies
 * `Ready.committed` to the application before the next input, but inside one input the core may
 * commit blocks and then check or build the next: those committed-but-not-yet-applied blocks come
 * first in `ancestors`, then the uncommitted proposals the block extends.
 */
export interface ChainContext {
  /** Height of the last committed block the runtime has applied (the application's state is as of it). */
  appliedHeight: number;
  /** Blocks appliedHeight+1 … h−1 in height order, for a block at height h. */
  ancestors: readonly Block[];
}

/** What one block may hold (the chain limits `blockTxsMax` and `blockBytesMax`). */
export interface BlockBudget {
  txsMax: number;
  bytesMax: number;
}

/**
 * Block-level validity plus a mempool that knows which pending transactions can be proposed now.
 *
 * Only `checkBlock` decides validity: it must be a deterministic function of the block's
 * transactions and of the committed chain up to the block's parent (the state as of
 * `chain.appliedHeight` plus `chain.ancestors`), or honest replicas could disagree about a block.
 * Everything else is local policy and affects liveness only. The core keeps the pending
 * transactions themselves (Mempool); these hooks mirror them: every transaction the core pools
 * went through `admit` (returning null), and every one it drops is reported by `removed`.
 */
export interface OrderHooks {
  /**
   * Rules a fresh proposal's transactions must satisfy together, given the chain below it; `null` if
   * valid, else a short reason. Called after each transaction passed `checkTx` and the duplicate
   * checks, so the transactions are individually valid and new.
   */
  checkBlock(txs: readonly Uint8Array[], chain: ChainContext): string | null;
  /**
   * A transaction that passed `checkTx` is about to enter the mempool (which has room): `null` to
   * pool it, or a reason to refuse it (SubmitResult 'refused'), e.g. it can never become valid
   * again, or its submitter already holds too much of the mempool.
   */
  admit(id: Uint8Array, tx: Uint8Array, nowMs: number): string | null;
  /** A pooled transaction left the mempool (committed, or dropped because `refresh` said so). */
  removed(id: Uint8Array): void;
  /**
   * Called at the start of every input, once the runtime has applied the committed blocks up to
   * `appliedHeight`: returns the ids of pooled transactions that can no longer become valid, which
   * the core drops (each then reported through `removed`).
   */
  refresh(appliedHeight: number, nowMs: number): Uint8Array[];
  /**
   * Pooled transactions an honest primary could propose now (the others wait for a predecessor):
   * how many, and since when the longest-waiting of them has been proposable (null if none). The
   * view-change and censorship timers watch these instead of the whole mempool, so a transaction
   * that waits for a predecessor that may never come cannot make replicas suspect every primary.
   */
  readiness(): { count: number; oldestMs: number | null };
  /** Whether a pooled transaction is proposable now (only those are re-forwarded on the heartbeat). */
  isReady(id: Uint8Array): boolean;
  /**
   * The primary's choice for a fresh block at the height after `chain`: ids of pooled transactions,
   * in block order, within `budget`, that pass `checkBlock` for that chain. May be empty.
   */
  select(chain: ChainContext, budget: BlockBudget): Uint8Array[];
}

export interface Timing {
  /** T: how long a replica waits for progress (a commit) on pending work before asking for a view change. */
  viewChangeTimeoutMs: number;
  /** T doubles after each view change that brings no commit, up to this. */
  viewChangeTimeoutMaxMs: number;
  /** A primary waits up to this for more transactions before proposing a block that is not full. */
  proposeDelayMs: number;
  /**
   * A block that is not full is proposed only while fewer than this many proposals are uncommitted
   * (≥ 1). With 1, the pipeline (`windowHeights`) carries full blocks only and a partial block waits
   * for the previous one to commit, so its size follows the load. Liveness policy, not validity.
   */
  partialProposalsInFlightMax: number;
  /** Heartbeat: STATUS broadcast, retransmission of own votes and VIEW-CHANGE, sync and fetch retries. */
  statusIntervalMs: number;
  /** A fresh block's timestamp may run ahead of this replica's clock by at most this much (else it waits). */
  clockDriftMs: number;
  /** In-memory logs of committed heights are dropped once the newest committed block is this much younger. */
  retentionMs: number;
  /** A pending transaction older than this makes the replica suspect the primary of censoring it. */
  txCensorshipTimeoutMs: number;
}

/** Bounds on this replica's memory; local choices, need not match other replicas. */
export interface LocalLimits {
  /** Mempool: transactions. When full, new transactions are refused with reason 'mempool-full'. */
  mempoolTxsMax: number;
  /** Mempool: sum of transaction bytes. Same policy. */
  mempoolBytesMax: number;
  /** Messages buffered per peer for a later view or height; when full, the oldest is dropped. */
  futureMessagesPerPeerMax: number;
  /** Committed heights kept in memory (bodies, for late peers) besides the retention time bound. */
  retainedHeightsMax: number;
  /** Fetched block bodies kept per height (one per distinct hash). */
  bodiesPerHeightMax: number;
}

export const defaultTiming: Readonly<Timing> = Object.freeze({
  viewChangeTimeoutMs: 2_000,
  viewChangeTimeoutMaxMs: 64_000,
  proposeDelayMs: 10,
  partialProposalsInFlightMax: 1,
  statusIntervalMs: 1_000,
  clockDriftMs: 5_000,
  retentionMs: 60_000,
  txCensorshipTimeoutMs: 30_000,
});

export const defaultLocalLimits: Readonly<LocalLimits> = Object.freeze({
  mempoolTxsMax: 4_096,
  mempoolBytesMax: 64 * 1024 * 1024,
  futureMessagesPerPeerMax: 64,
  retainedHeightsMax: 32,
  bodiesPerHeightMax: 4,
});

export interface CoreConfig {
  chainId: string;
  /** The genesis validator set, in genesis order (index = replica number). */
  validators: readonly Validator[];
  /** This replica's index in `validators`. */
  self: number;
  /** Must hold the key of validators[self]. */
  signer: Signer;
  verifier: SignatureVerifier;
  /** Hash block 1 points to (genesis.ts: the genesis hash). */
  genesisHash: Uint8Array;
  /** Timestamp of the genesis: block timestamps start from it. */
  genesisTimestampMs: number;
  tx: TxHooks;
  limits?: Partial<ChainLimits>;
  timing?: Partial<Timing>;
  local?: Partial<LocalLimits>;
}

export interface ResolvedConfig extends Required<Omit<CoreConfig, 'limits' | 'timing' | 'local'>> {
  limits: ChainLimits;
  timing: Timing;
  local: LocalLimits;
}

/** Fills defaults and asserts every relation; throws RangeError on a configuration bug. */
export function resolveConfig(c: CoreConfig): ResolvedConfig {
  const limits = { ...defaultChainLimits, ...c.limits };
  const timing = { ...defaultTiming, ...c.timing };
  const local = { ...defaultLocalLimits, ...c.local };
  assertChainLimits(limits);
  const bad = checkValidators(c.validators, limits);
  if (bad) throw new RangeError(`validators: ${bad}`);
  if (!Number.isInteger(c.self) || c.self < 0 || c.self >= c.validators.length) {
    throw new RangeError(`self ${c.self} is not a validator index`);
  }
  const me = c.validators[c.self]!;
  if (me.alg !== c.signer.alg || Buffer.compare(me.publicKey, c.signer.publicKey) !== 0) {
    throw new RangeError(`signer does not hold the key of validator ${c.self}`);
  }
  if (c.genesisHash.byteLength !== 32) throw new RangeError('genesisHash must be 32 bytes');
  for (const [k, v] of Object.entries({ ...timing, ...local })) {
    if (!Number.isSafeInteger(v) || v < 0) throw new RangeError(`${k} must be a non-negative integer`);
  }
  if (timing.viewChangeTimeoutMs < 1) throw new RangeError('viewChangeTimeoutMs must be ≥ 1');
  if (timing.viewChangeTimeoutMaxMs < timing.viewChangeTimeoutMs) {
    throw new RangeError('viewChangeTimeoutMaxMs must be ≥ viewChangeTimeoutMs');
  }
  if (timing.statusIntervalMs < 1) throw new RangeError('statusIntervalMs must be ≥ 1');
  if (timing.partialProposalsInFlightMax < 1) throw new RangeError('partialProposalsInFlightMax must be ≥ 1');
  if (local.mempoolTxsMax < limits.blockTxsMax) throw new RangeError('mempoolTxsMax must be ≥ blockTxsMax');
  if (local.mempoolBytesMax < limits.txBytesMax) throw new RangeError('mempoolBytesMax must be ≥ txBytesMax');
  // A pre-prepare for every in-flight height plus votes for them must fit in the per-peer buffer.
  if (local.futureMessagesPerPeerMax < 4 * limits.windowHeights) {
    throw new RangeError('futureMessagesPerPeerMax must be ≥ 4 × windowHeights');
  }
  if (local.bodiesPerHeightMax < 1) throw new RangeError('bodiesPerHeightMax must be ≥ 1');
  return { ...c, limits, timing, local };
}
