/**
 * A replica's pending transactions: admission to the mempool (from clients and from peers),
 * forwarding client transactions to the other replicas and re-forwarding them while they wait, the
 * application rules a fresh proposal's transactions must pass, and the choice of transactions for
 * the primary's next block. Also what was committed during the current input, which the runtime's
 * `isCommitted` cannot see yet.
 */
import { bytesEqual } from '../../crypto/hash.ts';
import type { ChainContext } from './config.ts';
import type { ReplicaContext } from './context.ts';
import { keyOf, type SubmitResult } from './io.ts';
import { Mempool } from './mempool.ts';
import type {
  BlockSelection,
  ChainPart,
  ProposalParent,
  SlotsPart,
  TransactionsPart,
  ViewChangerPart,
} from './parts.ts';
import { primaryOf } from './quorum.ts';

export interface TransactionsComponents {
  context: ReplicaContext;
  slots: Pick<SlotsPart, 'inFlight'>;
  chain: Pick<ChainPart, 'appliedHeight'>;
  viewChanger: Pick<ViewChangerPart, 'view' | 'viewChanging'>;
}

export class Transactions implements TransactionsPart {
  readonly #ctx: ReplicaContext;
  readonly #c: TransactionsComponents;
  readonly #mempool: Mempool;
  /**
   * Transactions of blocks committed during the current input, before the runtime has applied them
   * (cleared by `ready()`): `isCommitted` cannot see them yet, so proposals are checked against this.
   */
  readonly #committedUnapplied = new Set<string>();
  #forward: Uint8Array[] = [];

  constructor(components: TransactionsComponents) {
    this.#ctx = components.context;
    this.#c = components;
    this.#mempool = new Mempool(this.#ctx.config.local.mempoolTxsMax, this.#ctx.config.local.mempoolBytesMax);
  }

  /** Pending transactions. */
  get size(): number {
    return this.#mempool.size;
  }

  /** Sum of the pending transactions' bytes. */
  get bytes(): number {
    return this.#mempool.bytes;
  }

  txId(tx: Uint8Array): Uint8Array {
    const id = this.#ctx.config.tx.txId(tx);
    if (id.byteLength !== 32) throw new Error('TxHooks.txId must return 32 bytes');
    return id;
  }

  admit(tx: Uint8Array, fromClient: boolean): SubmitResult {
    const c = this.#ctx.config;
    if (tx.byteLength === 0 || tx.byteLength > c.limits.txBytesMax) {
      return {
        accepted: false,
        reason: 'too-large',
        detail: `${tx.byteLength} bytes, 1..${c.limits.txBytesMax} allowed`,
      };
    }
    const id = this.txId(tx);
    const key = keyOf(id);
    if (this.#mempool.has(key) || this.#c.slots.inFlight(key)) {
      return { accepted: false, reason: 'duplicate', detail: 'already pending' };
    }
    if (this.#committedUnapplied.has(key) || c.tx.isCommitted(id))
      return { accepted: false, reason: 'committed', detail: 'already committed' };
    const bad = c.tx.checkTx(tx);
    if (bad !== null) return { accepted: false, reason: 'invalid', detail: bad };
    if (!this.#mempool.fits(tx.byteLength)) {
      return {
        accepted: false,
        reason: 'mempool-full',
        detail: `mempool holds ${this.#mempool.size} transactions, ${this.#mempool.bytes} bytes`,
      };
    }
    const now = this.#ctx.nowMs();
    const refused = c.tx.order?.admit(id, tx, now) ?? null;
    if (refused !== null) return { accepted: false, reason: 'refused', detail: refused };
    if (!this.#mempool.add(id, tx, now, fromClient, this.#c.viewChanger.view))
      throw new Error('bug: mempool refused a transaction that fits');
    if (fromClient) this.#forward.push(tx);
    return { accepted: true, id };
  }

  /** Lets the order hooks see the newly applied blocks, and drops what they say can never be valid. */
  refreshOrder(): void {
    const order = this.#ctx.config.tx.order;
    if (!order) return;
    for (const id of order.refresh(this.#c.chain.appliedHeight(), this.#ctx.nowMs())) this.#unpool(keyOf(id));
  }

  /** Removes a transaction from the mempool and tells the order hooks. */
  #unpool(key: string): void {
    const t = this.#mempool.get(key);
    if (!t) return;
    this.#mempool.remove(key);
    this.#ctx.config.tx.order?.removed(t.id);
  }

  /** The transactions of a block just committed (the runtime applies it after this input). */
  committed(keys: Iterable<string>): void {
    for (const k of keys) {
      this.#committedUnapplied.add(k);
      this.#unpool(k);
    }
  }

  /** The runtime takes the committed blocks with this `Ready`: from now on `isCommitted` sees them. */
  applied(): void {
    this.#committedUnapplied.clear();
  }

  /** Sends the client transactions admitted since the last call to every other replica, in batches. */
  flushForward(): void {
    const limits = this.#ctx.config.limits;
    let batch: Uint8Array[] = [];
    let bytes = 0;
    for (const tx of this.#forward) {
      if (batch.length >= limits.forwardTxsMax || bytes + tx.byteLength > limits.blockBytesMax) {
        this.#ctx.out.broadcast({ type: 'txs', txs: batch });
        batch = [];
        bytes = 0;
      }
      batch.push(tx);
      bytes += tx.byteLength;
    }
    if (batch.length > 0) this.#ctx.out.broadcast({ type: 'txs', txs: batch });
    this.#forward = [];
  }

  /**
   * Re-forwards pending transactions that a client gave to this replica, to the current primary
   * only (to every other replica while we change view), in case the first forward was lost: the primary is the one that must have a transaction to
   * propose it (a backup that lacks one checks it in the proposal), and the replica a client chose
   * is the one that answers for it (forwarded copies are not re-forwarded by the others: that made
   * every pending transaction cross the network n·(n−1) times per T under a backlog). Due T after
   * the last forward, then 2T, 4T, 8T; in a new view, T again (its primary may never have had it).
   * Only proposable ones (with order hooks): transactions waiting for a predecessor that never
   * comes would otherwise use up the budget on every heartbeat. At most forwardTxsMax per heartbeat.
   */
  reforward(): void {
    const { view, viewChanging } = this.#c.viewChanger;
    const primary = primaryOf(view, this.#ctx.n);
    if (!viewChanging && primary === this.#ctx.self) return;
    const c = this.#ctx.config;
    const now = this.#ctx.nowMs();
    const forwardAfter = c.timing.viewChangeTimeoutMs;
    const order = c.tx.order;
    const txs: Uint8Array[] = [];
    let bytes = 0;
    for (const t of this.#mempool.values()) {
      if (txs.length >= c.limits.forwardTxsMax) break;
      if (!t.origin) continue;
      if (t.forwardView !== view) {
        t.forwardView = view;
        t.reforwards = 0;
      }
      if (now - t.forwardedMs < forwardAfter * 2 ** Math.min(t.reforwards, 3)) continue;
      if (this.#c.slots.inFlight(t.key) || (order && !order.isReady(t.id))) continue;
      if (bytes + t.tx.byteLength > c.limits.blockBytesMax) break;
      t.forwardedMs = now;
      t.reforwards++;
      txs.push(t.tx);
      bytes += t.tx.byteLength;
    }
    if (txs.length === 0) return;
    // While changing view we do not know who will propose next (we may even have left alone, with
    // the others still in the view we left): everyone gets them.
    if (viewChanging) this.#ctx.out.broadcast({ type: 'txs', txs });
    else this.#ctx.out.send(primary, { type: 'txs', txs });
  }

  /** Application rules over a fresh block's transactions; a reason string if invalid. Deterministic. */
  checkTxs(
    txs: readonly Uint8Array[],
    inFlight: ReadonlySet<string>,
    chain: ChainContext,
  ): Set<string> | string {
    const hooks = this.#ctx.config.tx;
    const keys = new Set<string>();
    for (const [i, tx] of txs.entries()) {
      const id = this.txId(tx);
      const key = keyOf(id);
      if (keys.has(key)) return `transaction ${i} repeats one of this block`;
      if (inFlight.has(key)) return `transaction ${i} is in an uncommitted ancestor`;
      // Committed during this input: the runtime's store (isCommitted) does not have it yet.
      if (this.#committedUnapplied.has(key) || hooks.isCommitted(id))
        return `transaction ${i} is already committed`;
      // A transaction admitted to our mempool with the same bytes was checked then (checkTx is pure).
      const pending = this.#mempool.get(key);
      if (!pending || !bytesEqual(pending.tx, tx)) {
        const bad = hooks.checkTx(tx);
        if (bad !== null) return `transaction ${i}: ${bad}`;
      }
      keys.add(key);
    }
    const bad = hooks.order?.checkBlock(txs, chain) ?? null;
    if (bad !== null) return bad;
    return keys;
  }

  /**
   * Pending work for the liveness timers: how many transactions an honest primary could propose now
   * (with order hooks, a transaction waiting for a predecessor does not count).
   */
  proposableCount(): number {
    const order = this.#ctx.config.tx.order;
    return order ? order.readiness().count : this.#mempool.size;
  }

  /** Since when the longest-waiting proposable transaction has waited (null if none). */
  oldestProposableMs(): number | null {
    const order = this.#ctx.config.tx.order;
    return order ? order.readiness().oldestMs : (this.#mempool.oldest()?.arrivalMs ?? null);
  }

  /**
   * Could the pending transactions that are not in flight (`inFlightTxs` of `inFlightBytes` are)
   * fill a block? A cheap test before selecting.
   */
  couldFillBlock(inFlightTxs: number, inFlightBytes: number): boolean {
    const limits = this.#ctx.config.limits;
    return (
      this.#mempool.size - inFlightTxs >= limits.blockTxsMax ||
      this.#mempool.bytes - inFlightBytes + limits.txBytesMax > limits.blockBytesMax
    );
  }

  /** Arrival of the oldest pending transaction, or undefined if none. */
  oldestArrivalMs(): number | undefined {
    return this.#mempool.oldest()?.arrivalMs;
  }

  /**
   * Transactions for a fresh block on `parent`, within the block limits: the order hooks' choice, or
   * else pending ones in arrival order, skipping those in flight below it.
   */
  selectForBlock(parent: ProposalParent): BlockSelection {
    const limits = this.#ctx.config.limits;
    const txs: Uint8Array[] = [];
    const keys = new Set<string>();
    let bytes = 0;
    let oldestMs = Infinity;
    const order = this.#ctx.config.tx.order;
    if (order) {
      const budget = { txsMax: limits.blockTxsMax, bytesMax: limits.blockBytesMax };
      for (const id of order.select(parent.chain, budget)) {
        const key = keyOf(id);
        const t = this.#mempool.get(key);
        if (!t || parent.inFlight.has(key) || keys.has(key))
          throw new Error('bug: OrderHooks.select chose a transaction that is not pending, or twice');
        txs.push(t.tx);
        keys.add(key);
        bytes += t.tx.byteLength;
        oldestMs = Math.min(oldestMs, t.arrivalMs);
      }
      if (txs.length > budget.txsMax || bytes > budget.bytesMax)
        throw new Error('bug: OrderHooks.select went over the block budget');
    } else {
      for (const t of this.#mempool.values()) {
        if (txs.length >= limits.blockTxsMax) break;
        if (parent.inFlight.has(t.key) || bytes + t.tx.byteLength > limits.blockBytesMax) continue;
        txs.push(t.tx);
        keys.add(t.key);
        bytes += t.tx.byteLength;
        oldestMs = Math.min(oldestMs, t.arrivalMs);
      }
    }
    return { txs, keys, bytes, oldestMs };
  }
}
