/**
 * One IPBFT replica as a pure, deterministic state machine (no I/O, clock, timers or randomness).
 * Inputs: `start` (persisted state), `tick`, `receive`, `submit`. Outputs: `ready()` (io.ts).
 * The protocol and its safety argument are in docs/consensus.md; the rules below refer to it.
 *
 * Normal case (Castro & Liskov §4.2): the primary of view v sends PRE-PREPARE for height h; a backup
 * that accepts it sends PREPARE; a replica is *prepared* at (v, h, X) when it holds the pre-prepare
 * (the primary's vote) plus quorum−1 matching PREPAREs from distinct backups AND X's parent is
 * anchored: certified, or prepared by this replica in view v too (docs: "Chained heights"). It then
 * sends COMMIT; a quorum of COMMITs for (v, h, X) is X's commit certificate. Blocks are delivered
 * in height order, each with its certificate.
 */
import { bytesEqual } from '../../crypto/hash.ts';
import { type ChainContext, type CoreConfig, type ResolvedConfig, resolveConfig } from './config.ts';
import {
  emptyReady,
  keyOf,
  type PersistedState,
  type PersistRecord,
  type Ready,
  type SubmitResult,
  type VoteKind,
} from './io.ts';
import { Mempool } from './mempool.ts';
import { faultsTolerated, primaryOf, quorumSize } from './quorum.ts';
import { blockHash, blockTxBytes, signMessage, txRootOf } from './signing.ts';
import {
  type Block,
  blockVersion,
  type Commit,
  type CommitCertificate,
  type Message,
  type NewView,
  type PrePrepare,
  type Prepare,
  type PreparedCertificate,
  type ProposalRequest,
  type ProposalResponse,
  type Status,
  type SyncResponse,
  type ViewChange,
  type Vote,
} from './types.ts';
import { type VerifyContext, verifyBlockBody, verifyCertifiedBlock, verifySignedMessage } from './verify.ts';
import {
  checkNewView,
  checkViewChange,
  type Selection,
  selectReproposals,
  viewChangeKey,
} from './viewchange.ts';

/** Byte equality by memcmp: the bytes of a whole transaction are compared for every one in a block. */
function sameBytes(a: Uint8Array, b: Uint8Array): boolean {
  return (
    a.byteLength === b.byteLength &&
    Buffer.from(a.buffer, a.byteOffset, a.byteLength).equals(
      Buffer.from(b.buffer, b.byteOffset, b.byteLength),
    )
  );
}

interface Proposal {
  view: number;
  block: Block;
  hash: Uint8Array;
  key: string;
  signature: Uint8Array;
  txKeys: Set<string>;
  /** Sum of the transactions' bytes. */
  txBytes: number;
}

interface Slot {
  height: number;
  /** Pre-prepare accepted in the current view (cleared when the view changes). */
  proposal: Proposal | null;
  /** PREPAREs of the current view by replica. */
  prepares: Map<number, { key: string; signature: Uint8Array }>;
  /** Latest-view COMMIT by replica (any view: certificates are per view, not per current view). */
  commits: Map<number, { view: number; key: string; hash: Uint8Array; signature: Uint8Array }>;
  /** Prepared certificate of the highest view, with the body. */
  prepared: { certificate: PreparedCertificate; block: Block; key: string } | null;
  certificate: CommitCertificate | null;
  /** Own signed messages of the current view, for retransmission. */
  sent: { 'pre-prepare'?: PrePrepare; prepare?: Prepare; commit?: Commit };
  /**
   * Primary only: peers known to hold our current PRE-PREPARE (they voted PREPARE or COMMIT for it
   * in this view), which the heartbeat does not send the whole block again, and when it may next
   * send it to the others (backing off: a block can be megabytes, and a peer that has not answered
   * yet is more often busy than missing it).
   */
  proposalAcks: Set<number>;
  proposalResendAtMs: number;
  proposalResends: number;
}

interface CommittedBlock {
  height: number;
  hash: Uint8Array;
  key: string;
  certificate: CommitCertificate | null;
  timestampMs: number;
  block: Block | null;
}

interface PeerInfo {
  view: number;
  viewChanging: boolean;
  committedHeight: number;
  newViewSentMs: number;
  proposalAnswers: number;
}

export type ViewChangeCause =
  | 'progress-timeout'
  | 'censorship-timeout'
  | 'view-change-timeout'
  | 'invalid-proposal'
  | 'equivocation'
  | 'joined'
  | 'restart';

export interface ReplicaMetrics {
  view: number;
  viewChanging: boolean;
  committedHeight: number;
  mempoolTxs: number;
  mempoolBytes: number;
  viewChangesStarted: number;
  /** Why this replica left its views: its own timers, a bad proposal, or joining f+1 others. */
  viewChangeCauses: Partial<Record<ViewChangeCause, number>>;
  messagesSent: Record<string, number>;
  futureDropped: number;
  faults: Record<number, Record<string, number>>;
}

export class Replica {
  readonly #c: ResolvedConfig;
  readonly #ctx: VerifyContext;
  readonly #n: number;
  readonly #f: number;
  readonly #q: number;
  readonly #self: number;
  readonly #w: number;
  #started = false;
  #now = 0;

  #view = 0;
  #viewChanging = false;
  #viewEnteredMs = 0;
  #failedViews = 0;
  /** Checkpoint and re-proposals the current view started from (NEW-VIEW), or the genesis for view 0. */
  #base: { height: number; key: string; reproposals: Map<number, string>; newView: NewView | null };
  #tip: CommittedBlock;
  readonly #retained = new Map<number, CommittedBlock>();
  readonly #slots = new Map<number, Slot>();
  /** Own votes above the tip: never vote twice in one view at one height with different digests. */
  readonly #votes = new Map<string, { view: number; key: string }>();
  readonly #bodies = new Map<string, Block>();
  readonly #fetching = new Map<string, { height: number; hash: Uint8Array; askedMs: number }>();

  readonly #latestVc = new Map<number, ViewChange>();
  readonly #verifiedVcs = new Set<string>();
  /** `${peer}:${view}` that sent an invalid NEW-VIEW: checking one costs up to q·(1+W)·q signatures. */
  readonly #badNewViews = new Set<string>();
  #vcDeadlineMs: number | null = null;
  #progressDeadlineMs: number | null = null;
  #nextStatusMs = 0;
  #proposeAtMs: number | null = null;
  #deferAtMs: number | null = null;

  readonly #future = new Map<number, Message[]>();
  #futureDropped = 0;
  #replaying = false;
  #replayAgain = false;
  readonly #peers = new Map<number, PeerInfo>();
  #sync: { peer: number; untilMs: number } | null = null;
  #syncAttempts = 0;

  readonly #mempool: Mempool;
  /**
   * Transactions of blocks committed during the current input, before the runtime has applied them
   * (cleared by `ready()`): `isCommitted` cannot see them yet, so proposals are checked against this.
   */
  readonly #committedUnapplied = new Set<string>();
  #forward: Uint8Array[] = [];
  #out: Ready = emptyReady();
  readonly #faultCounts = new Map<number, Map<string, number>>();
  readonly #sentCounts = new Map<string, number>();
  #viewChangesStarted = 0;
  readonly #viewChangeCauses = new Map<ViewChangeCause, number>();

  constructor(config: CoreConfig) {
    this.#c = resolveConfig(config);
    this.#ctx = {
      chainId: config.chainId,
      validators: config.validators,
      verifier: config.verifier,
      txId: config.tx.txId,
    };
    this.#n = config.validators.length;
    this.#f = faultsTolerated(this.#n);
    this.#q = quorumSize(this.#n);
    this.#self = config.self;
    this.#w = this.#c.limits.windowHeights;
    this.#mempool = new Mempool(this.#c.local.mempoolTxsMax, this.#c.local.mempoolBytesMax);
    const genesisKey = keyOf(config.genesisHash);
    this.#tip = {
      height: 0,
      hash: config.genesisHash,
      key: genesisKey,
      certificate: null,
      timestampMs: config.genesisTimestampMs,
      block: null,
    };
    this.#base = { height: 0, key: genesisKey, reproposals: new Map(), newView: null };
  }

  // -------------------------------------------------------------------------------------------
  // Public interface

  get view(): number {
    return this.#view;
  }
  get viewChanging(): boolean {
    return this.#viewChanging;
  }
  get committedHeight(): number {
    return this.#tip.height;
  }
  get committedHash(): Uint8Array {
    return this.#tip.hash;
  }
  get isPrimary(): boolean {
    return primaryOf(this.#view, this.#n) === this.#self;
  }

  /**
   * Loads the persisted state after a (re)start. Must be called once, before any other input.
   * Throws if the state is inconsistent with the configuration (our own storage is corrupt).
   */
  start(state: PersistedState, nowMs: number): void {
    if (this.#started) throw new Error('Replica.start called twice');
    this.#started = true;
    this.#now = nowMs;
    this.#viewEnteredMs = nowMs;
    if (state.tip) {
      const { block, certificate } = state.tip;
      const e = verifyCertifiedBlock(this.#ctx, this.#c.limits, state.tip);
      if (e) throw new Error(`persisted tip does not verify: ${e.detail}`);
      const hash = blockHash(block.header);
      this.#tip = {
        height: block.header.height,
        hash,
        key: keyOf(hash),
        certificate,
        timestampMs: block.header.timestampMs,
        block,
      };
      this.#retained.set(this.#tip.height, this.#tip);
    }
    this.#refreshOrder();
    this.#view = state.view;
    this.#viewChanging = state.viewChanging;
    for (const v of state.votes) {
      if (v.height > this.#tip.height)
        this.#votes.set(`${v.vote}:${v.height}`, { view: v.view, key: keyOf(v.blockHash) });
    }
    for (const p of state.prepared) {
      const h = p.certificate.header.height;
      if (h <= this.#tip.height) continue;
      const key = keyOf(blockHash(p.certificate.header));
      const slot = this.#slotAt(h, true)!;
      slot.prepared = { certificate: p.certificate, block: p.block, key };
    }
    if (!this.#viewChanging && this.#view > 0) {
      const nv = state.newView;
      if (!nv || nv.view !== this.#view) {
        // We cannot validate re-proposals of this view without its NEW-VIEW: leave the view.
        this.#startViewChange(this.#view + 1, 'restart');
      } else {
        const r = checkNewView(this.#ctx, this.#c.limits, this.#c.genesisHash, nv, new Set());
        if (!r.ok) throw new Error(`persisted new-view does not verify: ${r.error.detail}`);
        this.#installView(nv, r.selection, false);
      }
    } else if (this.#viewChanging) {
      // Re-send our VIEW-CHANGE: the one sent before the crash may be lost.
      const vc = this.#buildViewChange();
      this.#latestVc.set(this.#self, vc);
      this.#broadcast(vc);
      this.#vcDeadlineMs = this.#now + this.#timeoutMs();
    }
    this.#nextStatusMs = this.#now;
    this.#afterInput(true);
  }

  /**
   * Advances the clock (ms, never decreasing; a smaller value is ignored) and fires due timers.
   * Only a tick fires them: messages and submissions arm deadlines but never fire one, so a runtime
   * that feeds what it has received before the tick (node.ts) judges progress on everything that had
   * arrived, not on the first message of a backlog built up while it was busy.
   */
  tick(nowMs: number): void {
    this.#enter(nowMs);
    this.#afterInput(true);
  }

  /**
   * A message from validator `from`, as authenticated by the transport. Decode it with
   * `decodeMessage` first; everything else (signatures, roles, state) is checked here.
   */
  receive(from: number, message: Message, nowMs: number): void {
    this.#enter(nowMs);
    if (!Number.isInteger(from) || from < 0 || from >= this.#n || from === this.#self) {
      throw new RangeError(`receive: ${from} is not another validator`);
    }
    this.#dispatch(from, message);
    this.#afterInput(false);
  }

  /** A client transaction. Accepted ones are forwarded to the other replicas and proposed in time. */
  submit(tx: Uint8Array, nowMs: number): SubmitResult {
    this.#enter(nowMs);
    const r = this.#admit(tx, true);
    this.#afterInput(false);
    return r;
  }

  /** Drains the outputs accumulated since the last call (io.ts says how to process them). */
  ready(): Ready {
    this.#flushForward();
    this.#committedUnapplied.clear();
    const rd = this.#out;
    rd.wakeAtMs = this.#wakeAt();
    this.#out = emptyReady();
    return rd;
  }

  metrics(): ReplicaMetrics {
    const faults: Record<number, Record<string, number>> = {};
    for (const [p, m] of this.#faultCounts) faults[p] = Object.fromEntries(m);
    return {
      view: this.#view,
      viewChanging: this.#viewChanging,
      committedHeight: this.#tip.height,
      mempoolTxs: this.#mempool.size,
      mempoolBytes: this.#mempool.bytes,
      viewChangesStarted: this.#viewChangesStarted,
      viewChangeCauses: Object.fromEntries(this.#viewChangeCauses),
      messagesSent: Object.fromEntries(this.#sentCounts),
      futureDropped: this.#futureDropped,
      faults,
    };
  }

  // -------------------------------------------------------------------------------------------
  // Plumbing

  #enter(nowMs: number): void {
    if (!this.#started) throw new Error('Replica.start must be called first');
    if (nowMs > this.#now) this.#now = nowMs;
    this.#refreshOrder();
  }

  /** Height of the last committed block the runtime has applied: blocks in `#out.committed` are not yet. */
  #appliedHeight(): number {
    return this.#tip.height - this.#out.committed.length;
  }

  /** Lets the order hooks see the newly applied blocks, and drops what they say can never be valid. */
  #refreshOrder(): void {
    const order = this.#c.tx.order;
    if (!order) return;
    for (const id of order.refresh(this.#appliedHeight(), this.#now)) this.#unpool(keyOf(id));
  }

  /** Removes a transaction from the mempool and tells the order hooks. */
  #unpool(key: string): void {
    const t = this.#mempool.get(key);
    if (!t) return;
    this.#mempool.remove(key);
    this.#c.tx.order?.removed(t.id);
  }

  #afterInput(fire: boolean): void {
    if (fire) this.#timers();
    else this.#armProgressDeadline();
    this.#maybePropose();
  }

  #persist(r: PersistRecord): void {
    this.#out.persist.push(r);
  }

  #send(to: number | 'all', message: Message): void {
    this.#out.messages.push({ to, message });
    this.#sentCounts.set(
      message.type,
      (this.#sentCounts.get(message.type) ?? 0) + (to === 'all' ? this.#n - 1 : 1),
    );
  }

  #broadcast(message: Message): void {
    if (this.#n > 1) this.#send('all', message);
  }

  #fault(peer: number, code: string, detail: string): void {
    this.#out.faults.push({ peer, code, detail });
    let m = this.#faultCounts.get(peer);
    if (!m) {
      m = new Map();
      this.#faultCounts.set(peer, m);
    }
    m.set(code, (m.get(code) ?? 0) + 1);
  }

  #sign<T extends Prepare | Commit | PrePrepare | ViewChange | NewView>(msg: T): T {
    return signMessage(this.#c.signer, this.#c.chainId, msg);
  }

  #primary(view = this.#view): number {
    return primaryOf(view, this.#n);
  }

  #timeoutMs(): number {
    const t = this.#c.timing;
    return Math.min(t.viewChangeTimeoutMs * 2 ** Math.min(this.#failedViews, 30), t.viewChangeTimeoutMaxMs);
  }

  #peer(r: number): PeerInfo {
    let p = this.#peers.get(r);
    if (!p) {
      p = { view: 0, viewChanging: false, committedHeight: 0, newViewSentMs: -Infinity, proposalAnswers: 0 };
      this.#peers.set(r, p);
    }
    return p;
  }

  /** Heights a replica works on: the window of `windowHeights` above its committed tip. */
  #inWindow(h: number): boolean {
    return h > this.#tip.height && h <= this.#tip.height + this.#w;
  }

  #slotAt(h: number, force = false): Slot | undefined {
    let s = this.#slots.get(h);
    if (s) return s;
    if (!force && !this.#inWindow(h)) return undefined;
    s = {
      height: h,
      proposal: null,
      prepares: new Map(),
      commits: new Map(),
      prepared: null,
      certificate: null,
      sent: {},
      proposalAcks: new Set(),
      proposalResendAtMs: 0,
      proposalResends: 0,
    };
    this.#slots.set(h, s);
    return s;
  }

  #buffer(from: number, m: Message): void {
    let list = this.#future.get(from);
    if (!list) {
      list = [];
      this.#future.set(from, list);
    }
    if (list.length >= this.#c.local.futureMessagesPerPeerMax) {
      list.shift();
      this.#futureDropped++;
    }
    list.push(m);
  }

  /** Re-dispatches buffered messages after the state moved (view entered, block accepted or committed). */
  #replay(): void {
    if (this.#replaying) {
      this.#replayAgain = true;
      return;
    }
    this.#replaying = true;
    try {
      do {
        this.#replayAgain = false;
        const pending = [...this.#future];
        this.#future.clear();
        for (const [from, list] of pending) for (const m of list) this.#dispatch(from, m);
      } while (this.#replayAgain);
    } finally {
      this.#replaying = false;
    }
  }

  #dispatch(from: number, m: Message): void {
    switch (m.type) {
      case 'pre-prepare':
      case 'prepare':
      case 'commit':
      case 'view-change':
        if (m.replica !== from) {
          this.#fault(from, 'sender-mismatch', `${m.type} signed by ${m.replica}`);
          return;
        }
        if (m.type === 'pre-prepare') this.#onPrePrepare(from, m);
        else if (m.type === 'prepare') this.#onPrepare(from, m);
        else if (m.type === 'commit') this.#onCommit(from, m);
        else this.#onViewChange(from, m);
        return;
      case 'new-view':
        this.#onNewView(from, m);
        return;
      case 'status':
        this.#onStatus(from, m);
        return;
      case 'sync-response':
        this.#onSyncResponse(from, m);
        return;
      case 'proposal-request':
        this.#onProposalRequest(from, m);
        return;
      case 'proposal-response':
        this.#onProposalResponse(from, m);
        return;
      case 'txs':
        for (const tx of m.txs) {
          const r = this.#admit(tx, false);
          if (!r.accepted && r.reason === 'invalid') this.#fault(from, 'invalid-tx', r.detail);
        }
        return;
      case 'sync-request':
        // Answered by the runtime from its block store (io.ts); nothing for the core to do.
        return;
    }
  }

  // -------------------------------------------------------------------------------------------
  // Timers

  #timers(): void {
    const now = this.#now;
    if (this.#viewChanging) {
      if (this.#vcDeadlineMs !== null && now >= this.#vcDeadlineMs) {
        // Move on only with company: if fewer than f others are known to be at our target view or
        // above, we may be ahead of the honest replicas, and with timeouts capped at
        // viewChangeTimeoutMaxMs they would never catch up. Waiting lets them (docs: "Liveness").
        if (this.#othersAtOrAbove(this.#view) >= this.#f)
          this.#startViewChange(this.#view + 1, 'view-change-timeout');
        else this.#vcDeadlineMs = now + this.#timeoutMs();
      }
    } else {
      this.#armProgressDeadline();
      if (this.#progressDeadlineMs !== null && now >= this.#progressDeadlineMs) {
        this.#startViewChange(this.#view + 1, 'progress-timeout');
      } else {
        const c = this.#censorshipDeadline();
        if (c !== null && now >= c) this.#startViewChange(this.#view + 1, 'censorship-timeout');
      }
    }
    if (now >= this.#nextStatusMs) {
      this.#nextStatusMs = now + this.#c.timing.statusIntervalMs;
      this.#heartbeat();
    }
    if (this.#deferAtMs !== null && now >= this.#deferAtMs) {
      this.#deferAtMs = null;
      this.#replay();
    }
  }

  /** No commit within T while there is work: the deadline runs from when the work appeared. */
  #armProgressDeadline(): void {
    if (this.#viewChanging) return;
    if (!this.#waiting()) this.#progressDeadlineMs = null;
    else if (this.#progressDeadlineMs === null) this.#progressDeadlineMs = this.#now + this.#timeoutMs();
  }

  /** Other replicas whose latest VIEW-CHANGE or STATUS puts them at `view` or above. */
  #othersAtOrAbove(view: number): number {
    let count = 0;
    for (let r = 0; r < this.#n; r++) {
      if (r === this.#self) continue;
      const known = Math.max(this.#latestVc.get(r)?.view ?? -1, this.#peers.get(r)?.view ?? -1);
      if (known >= view) count++;
    }
    return count;
  }

  #censorshipDeadline(): number | null {
    if (this.#viewChanging || this.isPrimary) return null;
    const order = this.#c.tx.order;
    const oldestMs = order ? order.readiness().oldestMs : (this.#mempool.oldest()?.arrivalMs ?? null);
    if (oldestMs === null) return null;
    return Math.max(oldestMs, this.#viewEnteredMs) + this.#c.timing.txCensorshipTimeoutMs;
  }

  /**
   * Is there work that should lead to a commit: proposable pending transactions or uncommitted
   * proposals? (With order hooks, a transaction waiting for a predecessor is not work yet.)
   */
  #waiting(): boolean {
    const order = this.#c.tx.order;
    if ((order ? order.readiness().count : this.#mempool.size) > 0) return true;
    for (const s of this.#slots.values()) if (s.proposal || s.certificate) return true;
    for (const h of this.#base.reproposals.keys()) if (h > this.#tip.height) return true;
    return false;
  }

  #wakeAt(): number | null {
    let t: number | null = this.#nextStatusMs;
    const take = (x: number | null) => {
      if (x !== null && (t === null || x < t)) t = x;
    };
    take(this.#viewChanging ? this.#vcDeadlineMs : this.#progressDeadlineMs);
    take(this.#proposeAtMs);
    take(this.#deferAtMs);
    take(this.#censorshipDeadline());
    return t;
  }

  /** Every statusIntervalMs: status, retransmissions, retries. Makes the protocol live over lossy links. */
  #heartbeat(): void {
    const now = this.#now;
    this.#broadcast({
      type: 'status',
      view: this.#view,
      viewChanging: this.#viewChanging,
      committedHeight: this.#tip.height,
    });
    for (const p of this.#peers.values()) p.proposalAnswers = 0;
    if (this.#viewChanging) {
      const vc = this.#latestVc.get(this.#self);
      if (vc) this.#broadcast(vc);
    } else {
      for (const s of [...this.#slots.values()].sort((a, b) => a.height - b.height)) {
        if (s.height <= this.#tip.height) continue;
        const pp = s.sent['pre-prepare'];
        if (pp) this.#resendProposal(s, pp);
        for (const m of [s.sent.prepare, s.sent.commit]) if (m) this.#broadcast(m);
      }
    }
    this.#reforward();
    for (const [key, f] of this.#fetching) {
      if (f.height <= this.#tip.height) this.#fetching.delete(key);
      else if (now - f.askedMs >= this.#c.timing.statusIntervalMs) {
        f.askedMs = now;
        this.#broadcast({ type: 'proposal-request', height: f.height, blockHash: f.hash });
      }
    }
    this.#maybeSync();
    this.#maybeSendNewView();
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
  #reforward(): void {
    const primary = this.#primary();
    if (!this.#viewChanging && primary === this.#self) return;
    const forwardAfter = this.#c.timing.viewChangeTimeoutMs;
    const order = this.#c.tx.order;
    const txs: Uint8Array[] = [];
    let bytes = 0;
    for (const t of this.#mempool.values()) {
      if (txs.length >= this.#c.limits.forwardTxsMax) break;
      if (!t.origin) continue;
      if (t.forwardView !== this.#view) {
        t.forwardView = this.#view;
        t.reforwards = 0;
      }
      if (this.#now - t.forwardedMs < forwardAfter * 2 ** Math.min(t.reforwards, 3)) continue;
      if (this.#inFlight(t.key) || (order && !order.isReady(t.id))) continue;
      if (bytes + t.tx.byteLength > this.#c.limits.blockBytesMax) break;
      t.forwardedMs = this.#now;
      t.reforwards++;
      txs.push(t.tx);
      bytes += t.tx.byteLength;
    }
    if (txs.length === 0) return;
    // While changing view we do not know who will propose next (we may even have left alone, with
    // the others still in the view we left): everyone gets them.
    if (this.#viewChanging) this.#broadcast({ type: 'txs', txs });
    else this.#send(primary, { type: 'txs', txs });
  }

  /**
   * Retransmits our PRE-PREPARE to the peers that have not shown they hold it (no PREPARE or COMMIT
   * for it from them in this view, and not committed that height), with an interval that doubles up
   * to 8 heartbeats. Votes are small and go to everyone every heartbeat; a block is not. A peer that
   * acknowledged and then lost it (a restart) gets the body by a proposal request once the block is
   * certified, or the block is re-proposed after a view change.
   */
  #resendProposal(s: Slot, pp: PrePrepare): void {
    if (this.#now < s.proposalResendAtMs) return;
    s.proposalResends++;
    s.proposalResendAtMs = this.#now + this.#c.timing.statusIntervalMs * 2 ** Math.min(s.proposalResends, 3);
    for (let r = 0; r < this.#n; r++) {
      if (r === this.#self || s.proposalAcks.has(r)) continue;
      if ((this.#peers.get(r)?.committedHeight ?? 0) >= s.height) continue;
      this.#send(r, pp);
    }
  }

  /** Notes that `from` holds the proposal it voted for, if it is our current one at that height. */
  #ackProposal(slot: Slot, from: number, view: number, key: string): void {
    const p = slot.proposal;
    if (p && p.view === view && p.key === key && slot.sent['pre-prepare']) slot.proposalAcks.add(from);
  }

  // -------------------------------------------------------------------------------------------
  // Transactions

  #admit(tx: Uint8Array, fromClient: boolean): SubmitResult {
    if (tx.byteLength === 0 || tx.byteLength > this.#c.limits.txBytesMax) {
      return {
        accepted: false,
        reason: 'too-large',
        detail: `${tx.byteLength} bytes, 1..${this.#c.limits.txBytesMax} allowed`,
      };
    }
    const id = this.#txId(tx);
    const key = keyOf(id);
    if (this.#mempool.has(key) || this.#inFlight(key)) {
      return { accepted: false, reason: 'duplicate', detail: 'already pending' };
    }
    if (this.#committedUnapplied.has(key) || this.#c.tx.isCommitted(id))
      return { accepted: false, reason: 'committed', detail: 'already committed' };
    const bad = this.#c.tx.checkTx(tx);
    if (bad !== null) return { accepted: false, reason: 'invalid', detail: bad };
    if (!this.#mempool.fits(tx.byteLength)) {
      return {
        accepted: false,
        reason: 'mempool-full',
        detail: `mempool holds ${this.#mempool.size} transactions, ${this.#mempool.bytes} bytes`,
      };
    }
    const refused = this.#c.tx.order?.admit(id, tx, this.#now) ?? null;
    if (refused !== null) return { accepted: false, reason: 'refused', detail: refused };
    if (!this.#mempool.add(id, tx, this.#now, fromClient, this.#view))
      throw new Error('bug: mempool refused a transaction that fits');
    if (fromClient) this.#forward.push(tx);
    return { accepted: true, id };
  }

  #txId(tx: Uint8Array): Uint8Array {
    const id = this.#c.tx.txId(tx);
    if (id.byteLength !== 32) throw new Error('TxHooks.txId must return 32 bytes');
    return id;
  }

  #inFlight(key: string): boolean {
    for (const s of this.#slots.values()) if (s.proposal?.txKeys.has(key)) return true;
    return false;
  }

  #flushForward(): void {
    let batch: Uint8Array[] = [];
    let bytes = 0;
    for (const tx of this.#forward) {
      if (
        batch.length >= this.#c.limits.forwardTxsMax ||
        bytes + tx.byteLength > this.#c.limits.blockBytesMax
      ) {
        this.#broadcast({ type: 'txs', txs: batch });
        batch = [];
        bytes = 0;
      }
      batch.push(tx);
      bytes += tx.byteLength;
    }
    if (batch.length > 0) this.#broadcast({ type: 'txs', txs: batch });
    this.#forward = [];
  }

  // -------------------------------------------------------------------------------------------
  // Normal case

  #vote(kind: VoteKind, h: number): { view: number; key: string } | undefined {
    return this.#votes.get(`${kind}:${h}`);
  }

  /** Records a vote (persisted before the message leaves, see io.ts). */
  #castVote(kind: VoteKind, view: number, h: number, hash: Uint8Array, key: string): void {
    const prev = this.#vote(kind, h);
    if (prev && prev.view === view) {
      if (prev.key !== key) throw new Error(`bug: second ${kind} vote at view ${view} height ${h}`);
      return;
    }
    this.#votes.set(`${kind}:${h}`, { view, key });
    this.#persist({ kind: 'vote', vote: kind, view, height: h, blockHash: hash });
  }

  /** Did we vote anything else than `key` at (view, h)? (After a restart the proposal itself is gone.) */
  #votedOther(view: number, h: number, key: string): boolean {
    for (const kind of ['pre-prepare', 'prepare', 'commit'] as const) {
      const v = this.#vote(kind, h);
      if (v && v.view === view && v.key !== key) return true;
    }
    return false;
  }

  #onPrePrepare(from: number, m: PrePrepare): void {
    const header = m.block.header;
    const h = header.height;
    if (m.view < this.#view || h <= this.#tip.height) return;
    if (m.view > this.#view || this.#viewChanging) {
      this.#buffer(from, m);
      return;
    }
    if (!this.#inWindow(h)) {
      this.#buffer(from, m);
      return;
    }
    const sigErr = verifySignedMessage(this.#ctx, m);
    if (sigErr) {
      this.#fault(from, sigErr.code, sigErr.detail);
      return;
    }
    const hash = blockHash(header);
    const key = keyOf(hash);
    const slot = this.#slotAt(h)!;
    if (slot.proposal) {
      if (slot.proposal.key === key) return;
      // Two signed pre-prepares for one (view, height): proof that the primary equivocates.
      this.#invalidProposal(from, 'equivocation', `two pre-prepares for view ${m.view} height ${h}`);
      return;
    }
    if (this.#votedOther(m.view, h, key)) {
      this.#invalidProposal(
        from,
        'equivocation',
        `pre-prepare for view ${m.view} height ${h} differs from our vote`,
      );
      return;
    }
    const bodyErr = verifyBlockBody(this.#ctx, this.#c.limits, m.block);
    if (bodyErr) {
      // A body that does not match the signed header may have been garbled for us alone: count it,
      // but only a header that every replica sees alike justifies an immediate view change.
      if (bodyErr.code === 'tx-root' || bodyErr.code === 'tx-count') {
        this.#fault(from, bodyErr.code, bodyErr.detail);
        return;
      }
      this.#invalidProposal(from, 'invalid-proposal', bodyErr.detail);
      return;
    }
    let txKeys: Set<string>;
    const selected = this.#base.reproposals.get(h);
    if (selected !== undefined) {
      if (selected !== key) {
        this.#invalidProposal(from, 'invalid-proposal', `height ${h} must re-propose the selected block`);
        return;
      }
      txKeys = new Set(m.block.txs.map((tx) => keyOf(this.#txId(tx))));
    } else {
      if (h <= this.#base.height) {
        this.#invalidProposal(from, 'invalid-proposal', `height ${h} is at or below the view's checkpoint`);
        return;
      }
      if (header.view !== m.view) {
        this.#invalidProposal(
          from,
          'invalid-proposal',
          `fresh block of view ${header.view} in view ${m.view}`,
        );
        return;
      }
      const parent = this.#parentOf(h);
      if (!parent) {
        // Missing ancestors: wait for their pre-prepares or for sync.
        this.#buffer(from, m);
        if (this.#base.height > this.#tip.height) this.#maybeSync();
        return;
      }
      if (parent.key !== keyOf(header.prevHash)) {
        this.#invalidProposal(from, 'invalid-proposal', `height ${h} does not extend height ${h - 1}`);
        return;
      }
      if (header.timestampMs < parent.timestampMs) {
        this.#invalidProposal(from, 'invalid-proposal', `timestamp goes backwards at height ${h}`);
        return;
      }
      if (header.timestampMs > this.#now + this.#c.timing.clockDriftMs) {
        // Ahead of our clock: not provably invalid (clocks differ), so wait instead of complaining.
        // If most replicas see it so, the proposal times out and the view changes.
        const at = header.timestampMs - this.#c.timing.clockDriftMs;
        this.#deferAtMs = this.#deferAtMs === null ? at : Math.min(this.#deferAtMs, at);
        this.#buffer(from, m);
        return;
      }
      const checked = this.#checkTxs(m.block.txs, parent.inFlight, parent.chain);
      if (typeof checked === 'string') {
        this.#invalidProposal(from, 'invalid-proposal', `height ${h}: ${checked}`);
        return;
      }
      txKeys = checked;
    }
    this.#accept(slot, { view: m.view, block: m.block, hash, key, signature: m.signature, txKeys });
  }

  #invalidProposal(from: number, code: 'equivocation' | 'invalid-proposal', detail: string): void {
    this.#fault(from, code, detail);
    this.#startViewChange(this.#view + 1, code);
  }

  /**
   * Parent of a fresh proposal at h: the tip, or an accepted proposal of this view; with in-flight tx
   * ids and, for the order hooks, the chain from the runtime's last applied block up to the parent.
   */
  #parentOf(
    h: number,
  ):
    | { key: string; hash: Uint8Array; timestampMs: number; inFlight: Set<string>; chain: ChainContext }
    | undefined {
    const inFlight = new Set<string>();
    const ancestors: Block[] = this.#out.committed.map((cb) => cb.block);
    let parent: { key: string; hash: Uint8Array; timestampMs: number } = this.#tip;
    for (let g = this.#tip.height + 1; g < h; g++) {
      const p = this.#slots.get(g)?.proposal;
      if (!p || keyOf(p.block.header.prevHash) !== parent.key) return undefined;
      for (const k of p.txKeys) inFlight.add(k);
      ancestors.push(p.block);
      parent = { key: p.key, hash: p.hash, timestampMs: p.block.header.timestampMs };
    }
    return { ...parent, inFlight, chain: { appliedHeight: this.#appliedHeight(), ancestors } };
  }

  /** Application rules over a fresh block's transactions; a reason string if invalid. Deterministic. */
  #checkTxs(
    txs: readonly Uint8Array[],
    inFlight: ReadonlySet<string>,
    chain: ChainContext,
  ): Set<string> | string {
    const keys = new Set<string>();
    for (const [i, tx] of txs.entries()) {
      const id = this.#txId(tx);
      const key = keyOf(id);
      if (keys.has(key)) return `transaction ${i} repeats one of this block`;
      if (inFlight.has(key)) return `transaction ${i} is in an uncommitted ancestor`;
      // Committed during this input: the runtime's store (isCommitted) does not have it yet.
      if (this.#committedUnapplied.has(key) || this.#c.tx.isCommitted(id))
        return `transaction ${i} is already committed`;
      // A transaction admitted to our mempool with the same bytes was checked then (checkTx is pure).
      const pending = this.#mempool.get(key);
      if (!pending || !sameBytes(pending.tx, tx)) {
        const bad = this.#c.tx.checkTx(tx);
        if (bad !== null) return `transaction ${i}: ${bad}`;
      }
      keys.add(key);
    }
    const bad = this.#c.tx.order?.checkBlock(txs, chain) ?? null;
    if (bad !== null) return bad;
    return keys;
  }

  #accept(slot: Slot, accepted: Omit<Proposal, 'txBytes'>): void {
    const p: Proposal = { ...accepted, txBytes: blockTxBytes(accepted.block.txs) };
    slot.proposal = p;
    const h = slot.height;
    if (this.#primary(p.view) !== this.#self) {
      this.#castVote('prepare', p.view, h, p.hash, p.key);
      const prepare = this.#sign<Prepare>({
        type: 'prepare',
        view: p.view,
        height: h,
        blockHash: p.hash,
        replica: this.#self,
        signature: new Uint8Array(64),
      });
      slot.sent.prepare = prepare;
      slot.prepares.set(this.#self, { key: p.key, signature: prepare.signature });
      this.#broadcast(prepare);
    }
    this.#checkPrepared(h);
    this.#replay();
  }

  #onPrepare(from: number, m: Prepare): void {
    if (m.view < this.#view || m.height <= this.#tip.height) return;
    if (m.view > this.#view || this.#viewChanging) {
      this.#buffer(from, m);
      return;
    }
    const slot = this.#slotAt(m.height);
    if (!slot) return; // beyond the window: the sender retransmits
    const sigErr = verifySignedMessage(this.#ctx, m);
    if (sigErr) {
      this.#fault(from, sigErr.code, sigErr.detail);
      return;
    }
    const key = keyOf(m.blockHash);
    const prev = slot.prepares.get(m.replica);
    if (prev) {
      if (prev.key !== key) {
        this.#fault(from, 'equivocation', `two prepares for view ${m.view} height ${m.height}`);
      }
      return;
    }
    slot.prepares.set(m.replica, { key, signature: m.signature });
    this.#ackProposal(slot, from, m.view, key);
    this.#checkPrepared(m.height);
  }

  /** Tries to become prepared at h and above (a new prepared height may anchor the next one). */
  #checkPrepared(from: number): void {
    for (let h = Math.max(from, this.#tip.height + 1); h <= this.#tip.height + this.#w; h++)
      this.#tryPrepare(h);
  }

  #tryPrepare(h: number): void {
    const slot = this.#slots.get(h);
    const p = slot?.proposal;
    if (!slot || !p || p.view !== this.#view || this.#viewChanging) return;
    if (slot.prepared && slot.prepared.certificate.view === p.view && slot.prepared.key === p.key) return;
    const primary = this.#primary(p.view);
    const votes: Vote[] = [];
    for (const [r, v] of slot.prepares)
      if (v.key === p.key && r !== primary) votes.push({ replica: r, signature: v.signature });
    if (votes.length < this.#q - 1) return;
    if (!this.#anchored(h, p)) return;
    votes.sort((a, b) => a.replica - b.replica);
    const certificate: PreparedCertificate = {
      view: p.view,
      header: p.block.header,
      prePrepareSignature: p.signature,
      prepares: votes.slice(0, this.#q - 1),
    };
    slot.prepared = { certificate, block: p.block, key: p.key };
    this.#persist({ kind: 'prepared', certificate, block: p.block });
    this.#castVote('commit', p.view, h, p.hash, p.key);
    const commit = this.#sign<Commit>({
      type: 'commit',
      view: p.view,
      height: h,
      blockHash: p.hash,
      replica: this.#self,
      signature: new Uint8Array(64),
    });
    slot.sent.commit = commit;
    this.#broadcast(commit);
    this.#addCommit(slot, this.#self, commit);
  }

  /**
   * The block's parent is certified, or prepared by us in the same view. Without this rule a replica
   * could be prepared at h+1 on a parent it never prepared, and the view-change selection (which
   * follows prevHash) could miss a committed block. docs/consensus.md, "Chained heights".
   */
  #anchored(h: number, p: Proposal): boolean {
    const parentKey = keyOf(p.block.header.prevHash);
    const g = h - 1;
    const certified = this.#certifiedKeyAt(g);
    if (certified !== undefined) return certified === parentKey;
    const s = this.#slots.get(g);
    return !!s?.prepared && s.prepared.certificate.view === p.view && s.prepared.key === parentKey;
  }

  #certifiedKeyAt(h: number): string | undefined {
    if (h === this.#tip.height) return this.#tip.key;
    if (h === this.#base.height) return this.#base.key;
    const r = this.#retained.get(h);
    if (r) return r.key;
    const c = this.#slots.get(h)?.certificate;
    return c ? keyOf(c.blockHash) : undefined;
  }

  #onCommit(from: number, m: Commit): void {
    if (m.height <= this.#tip.height) return;
    const slot = this.#slotAt(m.height);
    if (!slot) return;
    const prev = slot.commits.get(m.replica);
    const key = keyOf(m.blockHash);
    if (prev && prev.view > m.view) return;
    if (prev && prev.view === m.view) {
      if (prev.key !== key) {
        this.#fault(from, 'equivocation', `two commits for view ${m.view} height ${m.height}`);
      }
      return;
    }
    const sigErr = verifySignedMessage(this.#ctx, m);
    if (sigErr) {
      this.#fault(from, sigErr.code, sigErr.detail);
      return;
    }
    this.#ackProposal(slot, from, m.view, key);
    this.#addCommit(slot, m.replica, m);
  }

  #addCommit(slot: Slot, replica: number, m: Commit): void {
    slot.commits.set(replica, {
      view: m.view,
      key: keyOf(m.blockHash),
      hash: m.blockHash,
      signature: m.signature,
    });
    if (slot.certificate) return;
    const groups = new Map<string, Vote[]>();
    for (const [r, c] of slot.commits) {
      const g = `${c.view}:${c.key}`;
      let list = groups.get(g);
      if (!list) {
        list = [];
        groups.set(g, list);
      }
      list.push({ replica: r, signature: c.signature });
    }
    for (const list of groups.values()) {
      if (list.length < this.#q) continue;
      const any = slot.commits.get(list[0]!.replica)!;
      list.sort((a, b) => a.replica - b.replica);
      slot.certificate = {
        height: slot.height,
        view: any.view,
        blockHash: any.hash,
        commits: list.slice(0, this.#q),
      };
      this.#learnCertificate(slot.certificate);
      return;
    }
  }

  /**
   * Takes note of a valid commit certificate however it arrived (our COMMITs, a VIEW-CHANGE's or
   * NEW-VIEW's checkpoint): in the window it lets the block be delivered once its body is at hand,
   * even if we never saw its COMMITs; above it, it names peers to sync from.
   */
  #learnCertificate(cert: CommitCertificate): void {
    const h = cert.height;
    if (h <= this.#tip.height) return;
    // Its signers have the block, or will soon: candidates to sync the heights below from.
    for (const v of cert.commits) {
      if (v.replica === this.#self) continue;
      const p = this.#peer(v.replica);
      p.committedHeight = Math.max(p.committedHeight, h - 1);
    }
    const slot = this.#slotAt(h);
    if (!slot) return;
    if (!slot.certificate) slot.certificate = cert;
    this.#deliver();
  }

  /** Delivers certified blocks in height order while bodies are at hand. */
  #deliver(): void {
    let progressed = false;
    for (;;) {
      const h = this.#tip.height + 1;
      const cert = this.#slots.get(h)?.certificate;
      if (!cert) break;
      const body = this.#bodyFor(h, keyOf(cert.blockHash));
      if (!body) {
        this.#requestBody(h, cert.blockHash);
        break;
      }
      if (!this.#commitBlock(body, cert)) break;
      progressed = true;
    }
    if (progressed) this.#afterCommit();
  }

  #afterCommit(): void {
    this.#checkPrepared(this.#tip.height + 1);
    this.#maybeSync();
    this.#replay();
  }

  #bodyFor(h: number, key: string): Block | undefined {
    const s = this.#slots.get(h);
    if (s?.proposal?.key === key) return s.proposal.block;
    if (s?.prepared?.key === key) return s.prepared.block;
    const r = this.#retained.get(h);
    if (r?.key === key && r.block) return r.block;
    const b = this.#bodies.get(key);
    return b && b.header.height === h ? b : undefined;
  }

  #keepBody(key: string, block: Block): void {
    if (this.#bodies.has(key)) return;
    const max = this.#c.local.bodiesPerHeightMax * 2 * this.#w;
    while (this.#bodies.size >= max) this.#bodies.delete(this.#bodies.keys().next().value!);
    this.#bodies.set(key, block);
  }

  #requestBody(h: number, hash: Uint8Array): void {
    const key = keyOf(hash);
    if (this.#fetching.has(key)) return;
    if (this.#fetching.size >= 4 * this.#w) return; // retried from the heartbeat once others finish
    this.#fetching.set(key, { height: h, hash, askedMs: this.#now });
    this.#broadcast({ type: 'proposal-request', height: h, blockHash: hash });
  }

  /** Appends a certified block to the chain. The caller has checked the certificate. */
  #commitBlock(block: Block, certificate: CommitCertificate): boolean {
    const h = block.header.height;
    if (h !== this.#tip.height + 1) throw new Error(`bug: commit of height ${h} on tip ${this.#tip.height}`);
    if (!bytesEqual(block.header.prevHash, this.#tip.hash)) {
      // A certified block that does not extend our certified chain: more than f replicas are faulty.
      this.#fault(this.#self, 'safety-violation', `certified block ${h} does not extend our block ${h - 1}`);
      return false;
    }
    const hash = blockHash(block.header);
    const slot = this.#slots.get(h);
    const txKeys =
      slot?.proposal?.key === keyOf(hash)
        ? slot.proposal.txKeys
        : block.txs.map((tx) => keyOf(this.#txId(tx)));
    this.#tip = {
      height: h,
      hash,
      key: keyOf(hash),
      certificate,
      timestampMs: block.header.timestampMs,
      block,
    };
    this.#retained.set(h, this.#tip);
    this.#slots.delete(h);
    for (const k of [...this.#votes.keys()])
      if (Number(k.slice(k.indexOf(':') + 1)) <= h) this.#votes.delete(k);
    this.#out.committed.push({ block, certificate });
    for (const k of txKeys) {
      this.#committedUnapplied.add(k);
      this.#unpool(k);
    }
    this.#failedViews = 0;
    this.#progressDeadlineMs = null; // re-armed by #timers if work remains
    this.#gcRetained();
    return true;
  }

  /**
   * Drops in-memory logs of committed heights once the newest committed block is `retentionMs`
   * younger than them (or more than `retainedHeightsMax` are kept), and tells the runtime to prune
   * its vote records up to there. Only ever below the committed height.
   */
  #gcRetained(): void {
    const newest = this.#tip.timestampMs;
    let pruned = -1;
    for (const [h, e] of this.#retained) {
      if (h >= this.#tip.height) break;
      const old = newest - e.timestampMs > this.#c.timing.retentionMs;
      if (!old && this.#retained.size <= this.#c.local.retainedHeightsMax) break;
      this.#retained.delete(h);
      pruned = h;
    }
    if (pruned > 0) this.#persist({ kind: 'prune', heightMax: pruned });
  }

  // -------------------------------------------------------------------------------------------
  // Proposing (primary)

  #maybePropose(): void {
    this.#proposeAtMs = null;
    if (this.#viewChanging || !this.isPrimary) return;
    if (this.#tip.height < this.#base.height) return;
    const limits = this.#c.limits;
    const delayMs = this.#c.timing.proposeDelayMs;
    const partialDepthMax = this.#c.timing.partialProposalsInFlightMax;
    for (;;) {
      let h = this.#tip.height + 1;
      let inFlightTxs = 0;
      let inFlightBytes = 0;
      for (let p = this.#slots.get(h)?.proposal; p; p = this.#slots.get(h)?.proposal) {
        inFlightTxs += p.block.txs.length;
        inFlightBytes += p.txBytes;
        h++;
      }
      if (h > this.#tip.height + this.#w) return;
      if (this.#base.reproposals.has(h)) return; // a re-proposal still lacks its body: wait for the timeout
      if (this.#vote('pre-prepare', h)?.view === this.#view) return; // proposed before a restart
      // Cheap test before selecting: could the pending transactions that are not in flight fill a
      // block? If not, a partial block waits (see below); no need to build one on every input.
      const inFlight = h - this.#tip.height - 1;
      const canFill =
        this.#mempool.size - inFlightTxs >= limits.blockTxsMax ||
        this.#mempool.bytes - inFlightBytes + limits.txBytesMax > limits.blockBytesMax;
      if (!canFill) {
        if (inFlight >= partialDepthMax) return; // re-evaluated when a block commits
        const oldest = this.#mempool.oldest();
        if (!oldest) return;
        if (this.#now < oldest.arrivalMs + delayMs) {
          this.#proposeAtMs = oldest.arrivalMs + delayMs;
          return;
        }
      }
      const parent = this.#parentOf(h);
      if (!parent) return;
      const txs: Uint8Array[] = [];
      const keys = new Set<string>();
      let bytes = 0;
      let oldestMs = Infinity;
      const order = this.#c.tx.order;
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
      if (txs.length === 0) return;
      // Batching policy (liveness only): a full block goes at once, pipelined up to the window. A
      // partial one waits proposeDelayMs after its oldest transaction arrived, and only while fewer
      // than partialProposalsInFlightMax proposals are uncommitted; otherwise it waits for a commit,
      // collecting what arrives meanwhile. Block size then follows the load (self-clocking, like
      // Nagle's algorithm): tiny blocks no longer fill the window ahead of full ones, and each
      // block's fixed cost (votes, signatures, fsyncs) is shared by more transactions.
      const full = txs.length >= limits.blockTxsMax || bytes + limits.txBytesMax > limits.blockBytesMax;
      const dueMs = oldestMs + delayMs;
      if (!full && inFlight >= partialDepthMax) return;
      if (!full && this.#now < dueMs) {
        this.#proposeAtMs = dueMs;
        return;
      }
      const block: Block = {
        header: {
          version: blockVersion,
          chainId: this.#c.chainId,
          height: h,
          view: this.#view,
          prevHash: parent.hash,
          timestampMs: Math.max(Math.floor(this.#now), parent.timestampMs),
          txRoot: txRootOf(txs.map(this.#c.tx.txId)),
          txCount: txs.length,
          proposer: this.#self,
        },
        txs,
      };
      this.#prePrepare(block, keys);
    }
  }

  /** Signs and sends a pre-prepare in the current view and accepts it as our own proposal. */
  #prePrepare(block: Block, txKeys: Set<string>): void {
    const h = block.header.height;
    const hash = blockHash(block.header);
    const key = keyOf(hash);
    if (this.#votedOther(this.#view, h, key)) return;
    this.#castVote('pre-prepare', this.#view, h, hash, key);
    const pp = this.#sign<PrePrepare>({
      type: 'pre-prepare',
      view: this.#view,
      replica: this.#self,
      block,
      signature: new Uint8Array(64),
    });
    const slot = this.#slotAt(h, true)!;
    slot.sent['pre-prepare'] = pp;
    slot.proposalAcks.clear();
    slot.proposalResends = 0;
    slot.proposalResendAtMs = this.#now + this.#c.timing.statusIntervalMs;
    this.#broadcast(pp);
    this.#accept(slot, { view: this.#view, block, hash, key, signature: pp.signature, txKeys });
  }

  // -------------------------------------------------------------------------------------------
  // View change

  /** Leaves the current view for `target` (> view): persist the view, then send VIEW-CHANGE. */
  #startViewChange(target: number, cause: ViewChangeCause): void {
    if (target <= this.#view) return;
    this.#viewChangeCauses.set(cause, (this.#viewChangeCauses.get(cause) ?? 0) + 1);
    this.#view = target;
    this.#viewChanging = true;
    this.#failedViews++;
    this.#viewChangesStarted++;
    this.#leaveViewState();
    this.#persist({ kind: 'view', view: target, viewChanging: true });
    const vc = this.#buildViewChange();
    this.#latestVc.set(this.#self, vc);
    this.#verifiedVcs.add(viewChangeKey(this.#c.chainId, vc));
    this.#broadcast(vc);
    this.#vcDeadlineMs = this.#now + this.#timeoutMs();
    this.#progressDeadlineMs = null;
    this.#proposeAtMs = null;
    this.#maybeSendNewView();
    this.#joinCheck();
  }

  /** Forgets the current view's proposals and prepares; keeps bodies, prepared certificates, commits. */
  #leaveViewState(): void {
    for (const s of this.#slots.values()) {
      if (s.proposal) this.#keepBody(s.proposal.key, s.proposal.block);
      s.proposal = null;
      s.prepares.clear();
      s.sent = {};
      s.proposalAcks.clear();
    }
    for (const [from, list] of this.#future) {
      const keep = list.filter((m) => !('view' in m) || m.view >= this.#view);
      if (keep.length > 0) this.#future.set(from, keep);
      else this.#future.delete(from);
    }
  }

  #buildViewChange(): ViewChange {
    // The stable checkpoint is our tip: that block and all below are in our store with certificates,
    // so a replica that adopts it as a NEW-VIEW's base can sync them. Blocks certified above the tip
    // are reported by their prepared certificates and re-proposed (docs: "Checkpoints").
    const cp = this.#tip;
    const prepared: PreparedCertificate[] = [];
    for (let h = cp.height + 1; h <= cp.height + this.#w; h++) {
      const p = this.#slots.get(h)?.prepared;
      if (p) prepared.push(p.certificate);
    }
    return this.#sign<ViewChange>({
      type: 'view-change',
      view: this.#view,
      replica: this.#self,
      checkpoint: cp.certificate,
      prepared,
      signature: new Uint8Array(64),
    });
  }

  #onViewChange(from: number, vc: ViewChange): void {
    if (vc.view < this.#view || (vc.view === this.#view && !this.#viewChanging)) {
      this.#helpPeer(from);
      return;
    }
    const prev = this.#latestVc.get(vc.replica);
    if (prev && prev.view >= vc.view) return;
    const e = checkViewChange(this.#ctx, this.#c.limits, vc);
    if (e) {
      this.#fault(from, e.code, e.detail);
      return;
    }
    // Re-inserted so that iteration follows arrival: a new primary uses the first quorum to arrive.
    this.#latestVc.delete(vc.replica);
    this.#latestVc.set(vc.replica, vc);
    if (this.#verifiedVcs.size > 4 * this.#n) this.#verifiedVcs.clear();
    this.#verifiedVcs.add(viewChangeKey(this.#c.chainId, vc));
    if (vc.checkpoint) this.#learnCertificate(vc.checkpoint);
    this.#joinCheck();
    this.#maybeSendNewView();
  }

  /**
   * f+1 replicas asking for views above ours include an honest one: join, at the highest view that
   * f+1 of them reached (never on fewer: one faulty replica must not be able to force a view change).
   */
  #joinCheck(): void {
    const views: number[] = [];
    for (const [r, vc] of this.#latestVc) if (r !== this.#self && vc.view > this.#view) views.push(vc.view);
    if (views.length < this.#f + 1) return;
    views.sort((a, b) => b - a);
    this.#startViewChange(views[this.#f]!, 'joined');
  }

  /** Hands our current view's NEW-VIEW to a peer that is behind (rate-limited). */
  #helpPeer(from: number): void {
    const nv = this.#base.newView;
    if (this.#viewChanging || !nv) return;
    const p = this.#peer(from);
    if (this.#now - p.newViewSentMs < this.#c.timing.statusIntervalMs) return;
    p.newViewSentMs = this.#now;
    this.#send(from, nv);
  }

  #maybeSendNewView(): void {
    if (!this.#viewChanging || !this.isPrimary) return;
    // The first quorum to arrive (any quorum is safe), listed by replica as the decoder requires.
    const vcs = [...this.#latestVc.values()].filter((vc) => vc.view === this.#view);
    if (vcs.length < this.#q) return;
    const chosen = vcs.slice(0, this.#q).sort((a, b) => a.replica - b.replica);
    const selection = selectReproposals(chosen, this.#c.genesisHash);
    let missing = false;
    for (const r of selection.reproposals) {
      if (r.height <= this.#tip.height || this.#bodyFor(r.height, keyOf(r.hash))) continue;
      this.#requestBody(r.height, r.hash);
      missing = true;
    }
    if (missing) return; // retried when a body arrives and on every heartbeat
    const nv = this.#sign<NewView>({
      type: 'new-view',
      view: this.#view,
      replica: this.#self,
      viewChanges: chosen,
      signature: new Uint8Array(64),
    });
    this.#broadcast(nv);
    this.#installView(nv, selection, true);
  }

  #onNewView(from: number, nv: NewView): void {
    if (nv.view < this.#view || (nv.view === this.#view && !this.#viewChanging)) return;
    const bad = `${from}:${nv.view}`;
    if (this.#badNewViews.has(bad)) return;
    const r = checkNewView(this.#ctx, this.#c.limits, this.#c.genesisHash, nv, this.#verifiedVcs);
    if (!r.ok) {
      if (this.#badNewViews.size >= 4 * this.#n) this.#badNewViews.clear();
      this.#badNewViews.add(bad);
      this.#fault(from, r.error.code, r.error.detail);
      return;
    }
    this.#installView(nv, r.selection, true);
  }

  /** Enters the view a NEW-VIEW starts; the primary then re-proposes the selection. */
  #installView(nv: NewView, selection: Selection, persist: boolean): void {
    if (persist) {
      this.#persist({ kind: 'view', view: nv.view, viewChanging: false });
      this.#persist({ kind: 'new-view', message: nv });
    }
    if (this.#view !== nv.view || !this.#viewChanging) this.#leaveViewState();
    this.#view = nv.view;
    this.#viewChanging = false;
    this.#viewEnteredMs = this.#now;
    this.#vcDeadlineMs = null;
    this.#progressDeadlineMs = null;
    this.#base = {
      height: selection.base.height,
      key: keyOf(selection.base.hash),
      reproposals: new Map(selection.reproposals.map((r) => [r.height, keyOf(r.hash)])),
      newView: nv,
    };
    for (const r of selection.reproposals) {
      const committed = this.#certifiedKeyAt(r.height);
      if (committed !== undefined && committed !== keyOf(r.hash)) {
        this.#fault(
          this.#self,
          'safety-violation',
          `new view ${nv.view} re-proposes another block at height ${r.height}`,
        );
      }
    }
    if (selection.base.certificate) this.#learnCertificate(selection.base.certificate);
    for (const [r, vc] of [...this.#latestVc])
      if (vc.view <= nv.view && r !== this.#self) this.#latestVc.delete(r);
    this.#latestVc.delete(this.#self);
    this.#verifiedVcs.clear();
    if (this.isPrimary) {
      for (const r of selection.reproposals) {
        if (r.height <= this.#tip.height) continue;
        const body = this.#bodyFor(r.height, keyOf(r.hash));
        if (!body) break; // only after a restart; the view then times out
        this.#prePrepare(body, new Set(body.txs.map((tx) => keyOf(this.#txId(tx)))));
      }
    }
    if (this.#base.height > this.#tip.height) this.#maybeSync();
    this.#replay();
  }

  // -------------------------------------------------------------------------------------------
  // Status, sync and body fetches

  #onStatus(from: number, st: Status): void {
    const p = this.#peer(from);
    p.view = st.view;
    p.viewChanging = st.viewChanging;
    p.committedHeight = st.committedHeight;
    if (st.committedHeight > this.#tip.height) this.#maybeSync();
    if (st.view < this.#view || (st.view === this.#view && st.viewChanging)) this.#helpPeer(from);
  }

  /** Asks one peer that claims more committed blocks; rotates through them on every retry. */
  #maybeSync(): void {
    if (this.#sync && this.#now < this.#sync.untilMs) return;
    this.#sync = null;
    const target = this.#tip.height;
    const candidates = [...this.#peers]
      .filter(([, p]) => p.committedHeight > target)
      .sort((a, b) => a[0] - b[0]);
    if (candidates.length === 0) return;
    const [peer, info] = candidates[this.#syncAttempts++ % candidates.length]!;
    const count = Math.min(this.#c.limits.syncBlocksMax, info.committedHeight - target);
    this.#send(peer, { type: 'sync-request', fromHeight: target + 1, count });
    this.#sync = { peer, untilMs: this.#now + 2 * this.#c.timing.statusIntervalMs };
  }

  #onSyncResponse(from: number, m: SyncResponse): void {
    if (this.#sync?.peer === from) this.#sync = null;
    let progressed = false;
    for (const cb of m.blocks) {
      const h = cb.block.header.height;
      if (h <= this.#tip.height) continue;
      if (h !== this.#tip.height + 1) break;
      const e = verifyCertifiedBlock(this.#ctx, this.#c.limits, cb);
      if (e) {
        this.#fault(from, e.code, e.detail);
        break;
      }
      if (!bytesEqual(cb.block.header.prevHash, this.#tip.hash)) {
        this.#fault(from, 'sync-mismatch', `block ${h} does not extend our block ${h - 1}`);
        break;
      }
      if (!this.#commitBlock(cb.block, cb.certificate)) break;
      progressed = true;
    }
    if (progressed) {
      this.#deliver();
      this.#afterCommit();
      this.#maybeSync();
    }
  }

  #onProposalRequest(from: number, m: ProposalRequest): void {
    const body = this.#bodyFor(m.height, keyOf(m.blockHash));
    if (!body) return;
    const p = this.#peer(from);
    if (p.proposalAnswers >= 2 * this.#w) return; // per heartbeat: bounds what one peer can make us send
    p.proposalAnswers++;
    this.#send(from, { type: 'proposal-response', block: body });
  }

  #onProposalResponse(from: number, m: ProposalResponse): void {
    const hash = blockHash(m.block.header);
    const key = keyOf(hash);
    const f = this.#fetching.get(key);
    if (!f) return; // not asked for, or already here
    const e = verifyBlockBody(this.#ctx, this.#c.limits, m.block);
    if (e) {
      this.#fault(from, e.code, e.detail);
      return;
    }
    this.#fetching.delete(key);
    this.#keepBody(key, m.block);
    this.#deliver();
    this.#maybeSendNewView();
    this.#replay();
  }
}
