/**
 * The consensus runtime: drives one pure `Replica` (core/) with a transport (net/), a block store
 * (src/consensus/runtime/block-store.ts) and timers, keeping the core's contract (docs/consensus.md, "The runtime's
 * contract"; docs/runtime.md for this file's design):
 *
 * - One input at a time; after each, `ready()` is collected. Inputs arriving together are fed
 *   one by one and their outputs saved in ONE SQLite transaction (group commit: one fsync for a
 *   batch of inputs, as etcd and CometBFT do), and only then are the batch's messages sent. A crash
 *   before the commit loses the batch's inputs and sends nothing: the same as messages lost on the
 *   wire, which the protocol tolerates. Committed blocks enter an in-memory index at once, so
 *   `isCommitted` sees them before the next input even while their transaction is still open.
 * - Decoding happens at the transport's door: a message that does not decode is dropped, counted
 *   and its sender reported (the transport disconnects and quarantines it). Decoded messages wait in
 *   a bounded queue, consensus messages ahead of forwarded transactions; when it is full the
 *   transport's handler waits, so the transport's credit-based flow control pushes back on the
 *   senders instead of anything being dropped here.
 * - Sync requests the core emits go over the transport's request/response; answers are fed back as
 *   inputs. Requests from peers are answered from the store with `syncResponseFor`.
 * - A timer feeds `tick` at the core's `wakeAtMs`, on a clock that never goes backwards (clock.ts).
 * - The application's state rows (the ledger's gateway heads) are saved in the same transaction as
 *   the blocks that changed them (node/application.ts).
 *
 * @example
 *   const store = ChainStore.open({ path: chainStorePath(dataDir), chain: chainContext(genesis), txId: txIdOf });
 *   const { app } = openLedger(genesis, store);          // the ledger, as of the store's tip
 *   const node = new ConsensusNode({ genesis, self: 'acme', signer, transport, store, app });
 *   node.onCommitted((b) => outbox.markCommitted(b.txIds, b.height));   // finality
 *   await node.start();
 *   const results = node.submit([batchTx]);             // per transaction: accepted or why not
 *   await node.stop();                                   // nothing is sent after it resolves
 */

import { toHex } from '../../crypto/hash.ts';
import { nodeVerifier, type Signer } from '../../crypto/keys.ts';
import { txIdOf } from '../app/tx.ts';
import { defaultLocalLimits, type LocalLimits, type Timing } from '../core/config.ts';
import { type PeerFault, type Ready, type SubmitResult, syncResponseFor } from '../core/io.ts';
import { Replica, type ReplicaMetrics } from '../core/replica.ts';
import { blockHash } from '../core/signing.ts';
import type { Block, CertifiedBlock, CommitCertificate, Message, SyncRequest } from '../core/types.ts';
import type { Genesis } from '../genesis/genesis.ts';
import { RequestError } from '../net/errors.ts';
import type { MemberId, PeerState, Transport, TransportMetrics } from '../net/types.ts';
import { decodeMessage, encodeMessage } from '../wire/codec.ts';
import { syncResponseBytesTarget, syncResponseEnvelopeBytes } from '../wire/limits.ts';
import type { Application } from './application.ts';
import type { ChainContext, ChainStore } from './block-store.ts';
import { type Clock, monotonicWallClock } from './clock.ts';

/** For the API's per-address bounds: the same address grouping as the transport's admission. */
export { addressKey } from '../net/admission.ts';
export type { Application, AppStateRow } from './application.ts';

/** The runtime's own bounds (the core's and the transport's are theirs). */
export interface NodeLimits {
  /**
   * Decoded peer messages waiting for the core. When full, the transport's message handler waits
   * until there is room: the transport stops returning credit and its senders slow down (their own
   * bounded queues drop their oldest messages, docs/network.md). Sync answers are always queued:
   * there is at most one in flight per peer, so they add at most n−1 entries beyond this bound.
   */
  inboundMessagesMax: number;
  /** Inputs fed to the core per group commit. Bounds the batch's memory and a message's wait for its fsync. */
  batchInputsMax: number;
  /** Transactions per `submit` call (callers batch; the mempool bounds what is admitted). */
  submitTxsMax: number;
  /** Distinct `checkTx` refusal codes counted separately; the rest are counted as 'other'. */
  refusalCodesMax: number;
}

export const defaultNodeLimits: Readonly<NodeLimits> = Object.freeze({
  inboundMessagesMax: 4_096,
  batchInputsMax: 256,
  submitTxsMax: 10_000,
  refusalCodesMax: 32,
});

export interface NodeLogger {
  info(msg: string, fields?: Record<string, unknown>): void;
  warn(msg: string, fields?: Record<string, unknown>): void;
  error(msg: string, fields?: Record<string, unknown>): void;
}

const silent: NodeLogger = { info() {}, warn() {}, error() {} };

export interface ConsensusNodeInit {
  genesis: Genesis;
  /** This validator's member id in the genesis. */
  self: MemberId;
  /** The member's signing key (the genesis lists its public key). */
  signer: Signer;
  /** Not started yet: the node starts and stops it. */
  transport: Transport;
  /** Opened with the application's `txId`; the node closes it on stop. */
  store: ChainStore;
  app: Application;
  /** Local timing; T (`viewChangeTimeoutMs`) comes from the genesis unless given here. */
  timing?: Partial<Timing>;
  local?: Partial<LocalLimits>;
  limits?: Partial<NodeLimits>;
  clock?: Clock;
  logger?: NodeLogger;
}

/** A block became final: durable here, with a certificate from a quorum of the genesis validators. */
export interface CommittedBlockEvent {
  height: number;
  blockHash: Uint8Array;
  /** Transaction ids (`Application.txId`) in block order. */
  txIds: Uint8Array[];
  certificate: CommitCertificate;
  block: Block;
}

export type SubmitRefusal = Extract<SubmitResult, { accepted: false }>['reason'];
/** A counter per refusal reason; a `Record`, so a reason the core adds fails to compile here until counted. */
const noRefusals: Readonly<Record<SubmitRefusal, number>> = Object.freeze({
  invalid: 0,
  duplicate: 0,
  committed: 0,
  'mempool-full': 0,
  'too-large': 0,
  refused: 0,
});

export type NodeState = 'new' | 'running' | 'stopping' | 'stopped' | 'failed';

export interface NodeStatus {
  memberId: MemberId;
  replica: number;
  state: NodeState;
  view: number;
  viewChanging: boolean;
  /** Member id of the primary of `view`. */
  primary: MemberId;
  committedHeight: number;
  /** Hex. */
  committedHash: string;
  /** Wall time of the last commit seen by this process, or null. */
  lastCommitAtMs: number | null;
  mempoolTxs: number;
  mempoolBytes: number;
  peers: { memberId: MemberId; state: PeerState }[];
  peersConnected: number;
  inboundQueued: number;
  /** Client transactions refused by `submit`, by reason. */
  refusals: Record<SubmitRefusal, number>;
  /** 'invalid' refusals by the application's code (first word of `checkTx`'s reason). */
  invalidTxs: Record<string, number>;
  /** Why the node stopped on its own ('failed'), or a safety violation it saw. */
  problem: string | null;
}

export interface NodeMetrics {
  status: NodeStatus;
  /** Inputs fed to the core, by kind. */
  inputs: { messages: number; ticks: number; submits: number; syncResponses: number };
  /** Group commits: transactions, their total and largest duration, records and blocks saved. */
  saves: { count: number; totalMs: number; maxMs: number; records: number; blocks: number; txs: number };
  messagesSent: number;
  /** Messages from peers that did not decode, by codec error code. */
  malformed: Record<string, number>;
  /** Faults the core found in peers' messages, by code (each reported to the transport). */
  peerFaults: Record<string, number>;
  sync: {
    requested: number;
    failed: Record<string, number>;
    /** Skipped because one request to that peer was still in flight. */
    skipped: number;
    served: number;
    servedBlocks: number;
    serveFailed: number;
  };
  /** `onCommitted` listeners that threw (counted, not retried). */
  listenerErrors: number;
  core: ReplicaMetrics;
  transport: TransportMetrics;
  /** The application's counters (`Application.metrics`; the ledger's refusals, pool, checker), if any. */
  app?: unknown;
}

/** The node is not running (not started yet, stopped, or failed). */
export class NodeNotRunningError extends Error {
  override name = 'NodeNotRunningError';
}

/**
 * The chain context the store and verification need, from a genesis. `txId` is the application's
 * (the ledger's by default): it gives the leaves of every block's transaction root.
 */
export function chainContext(genesis: Genesis, txId: (tx: Uint8Array) => Uint8Array = txIdOf): ChainContext {
  return {
    chainId: genesis.chainId,
    validators: genesis.consensusValidators(),
    verifier: nodeVerifier,
    txId,
    limits: genesis.chainLimits,
    genesisHash: genesis.hashBytes,
  };
}

interface Inbound {
  from: number;
  message: Message;
}

/** Outputs collected from the `Ready`s of one batch, saved together before anything is sent. */
interface Pending {
  records: Ready['persist'];
  committed: CertifiedBlock[];
  /** Application state rows the committed blocks changed (the last value of a key wins). */
  appState: Map<string, Uint8Array>;
  messages: Ready['messages'];
  syncRequests: { to: number; request: SyncRequest }[];
}

const emptyPending = (): Pending => ({
  records: [],
  committed: [],
  appState: new Map(),
  messages: [],
  syncRequests: [],
});

export class ConsensusNode {
  readonly genesis: Genesis;
  readonly memberId: MemberId;
  readonly replicaIndex: number;
  readonly store: ChainStore;
  readonly #transport: Transport;
  readonly #app: Application;
  readonly #replica: Replica;
  readonly #limits: NodeLimits;
  readonly #clock: Clock;
  readonly #log: NodeLogger;
  readonly #members: readonly MemberId[];
  #state: NodeState = 'new';
  #problem: string | null = null;
  #stopping: Promise<void> | undefined;
  readonly #closed = Promise.withResolvers<void>();

  readonly #inbound = new InboundQueue();
  /** Handlers of the transport waiting for room in `#inbound`. */
  readonly #waitingForRoom: (() => void)[] = [];
  #drainScheduled: NodeJS.Immediate | undefined;
  #tickDue = false;
  #timer: NodeJS.Timeout | undefined;
  #timerAtMs: number | null = null;
  #pending: Pending = emptyPending();
  #wakeAtMs: number | null = null;
  /** Ids of transactions in blocks committed by the core but not yet saved (keyed by hex). */
  readonly #unsavedTxIds = new Set<string>();
  readonly #syncInFlight = new Set<MemberId>();
  readonly #listeners = new Set<(e: CommittedBlockEvent) => void>();
  #lastCommitAtMs: number | null = null;

  readonly #refusals: Record<SubmitRefusal, number> = { ...noRefusals };
  readonly #invalidTxs = new Map<string, number>();
  readonly #malformed = new Map<string, number>();
  readonly #peerFaults = new Map<string, number>();
  readonly #inputs = { messages: 0, ticks: 0, submits: 0, syncResponses: 0 };
  readonly #saves = { count: 0, totalMs: 0, maxMs: 0, records: 0, blocks: 0, txs: 0 };
  readonly #sync = {
    requested: 0,
    failed: {} as Record<string, number>,
    skipped: 0,
    served: 0,
    servedBlocks: 0,
    serveFailed: 0,
  };
  #messagesSent = 0;
  #listenerErrors = 0;

  constructor(init: ConsensusNodeInit) {
    const { genesis } = init;
    this.genesis = genesis;
    this.memberId = init.self;
    this.replicaIndex = genesis.indexOf(init.self);
    if (this.replicaIndex < 0) throw new RangeError(`"${init.self}" is not a validator in the genesis`);
    if (init.transport.self !== init.self) {
      throw new RangeError(`the transport is "${init.transport.self}"'s, not "${init.self}"'s`);
    }
    if (init.store.chain.chainId !== genesis.chainId)
      throw new RangeError('the store belongs to another chain');
    const appHeight = init.app.stateHeight?.();
    if (appHeight !== undefined && appHeight !== init.store.height) {
      throw new RangeError(
        `the application's state is as of height ${appHeight}, the store's tip is ${init.store.height}: build it from the store (openLedger)`,
      );
    }
    this.store = init.store;
    this.#transport = init.transport;
    this.#app = init.app;
    this.#limits = { ...defaultNodeLimits, ...init.limits };
    for (const [k, v] of Object.entries(this.#limits)) {
      if (!Number.isSafeInteger(v) || v < 1) throw new RangeError(`${k} must be a positive integer`);
    }
    this.#clock = init.clock ?? monotonicWallClock();
    this.#log = init.logger ?? silent;
    this.#members = genesis.validators.map((v) => v.memberId);
    const app = init.app;
    const mempoolTxsMax = init.local?.mempoolTxsMax ?? defaultLocalLimits.mempoolTxsMax;
    if (app.verdictsMax !== undefined && app.verdictsMax < 2 * mempoolTxsMax)
      throw new RangeError(
        `the application remembers ${app.verdictsMax} transaction verdicts; the mempool holds ${mempoolTxsMax}, so at least ${2 * mempoolTxsMax} are needed`,
      );
    // Throws RangeError on a configuration bug, before anything starts.
    this.#replica = new Replica({
      ...app.core,
      chainId: genesis.chainId,
      validators: genesis.consensusValidators(),
      self: this.replicaIndex,
      signer: init.signer,
      verifier: nodeVerifier,
      genesisHash: genesis.hashBytes,
      genesisTimestampMs: genesis.genesisTimeMs,
      tx: {
        txId: (tx) => app.txId(tx),
        checkTx: (tx) => app.checkTx(tx),
        order: app.order,
        isCommitted: (id) => this.#unsavedTxIds.has(toHex(id)) || this.store.hasTx(id),
      },
      limits: genesis.chainLimits,
      timing: { viewChangeTimeoutMs: genesis.params.viewChangeTimeoutMs, ...init.timing },
      local: init.local,
    });
  }

  // -------------------------------------------------------------------------------------------
  // Public interface

  get state(): NodeState {
    return this.#state;
  }

  /** The application's id of a transaction (for events, the event id). */
  txId(tx: Uint8Array): Uint8Array {
    return this.#app.txId(tx);
  }

  /**
   * Loads the persisted state, starts the transport and the core. Throws (and leaves the node
   * 'failed') if the store is corrupt or the transport cannot bind.
   */
  async start(): Promise<void> {
    if (this.#state !== 'new') throw new NodeNotRunningError('a node starts once; create a new one');
    this.#state = 'running';
    try {
      const persisted = this.store.loadPersistedState();
      this.#transport.onMessage((from, bytes) => this.#onMessage(from, bytes));
      this.#transport.onRequest((request, ctx) => this.#onRequest(request, ctx.from, ctx.maxResponseBytes));
      await this.#transport.start();
      if (this.#state !== 'running') return; // stopped while starting
      this.#replica.start(persisted, this.#clock.nowMs());
      this.#collect();
      this.#flush();
      this.#log.info('consensus node started', {
        member: this.memberId,
        height: this.store.height,
        view: this.#replica.view,
      });
    } catch (err) {
      this.#fail(err);
      throw err;
    }
  }

  /** Resolves once the node has stopped, by {@link stop} or on its own ('failed': see `status().problem`). */
  get closed(): Promise<void> {
    return this.#closed.promise;
  }

  /** Stops timers, the transport and the store. Nothing is sent once this is called. */
  stop(): Promise<void> {
    this.#stopping ??= this.#shutdown('stopped');
    return this.#stopping;
  }

  /**
   * The application's validity check of one transaction (`null`, or `code: message`), without
   * submitting it: for a caller that must know before it commits to something else (the member's
   * body store keeps a batch's bodies only for a valid batch). Verdicts are cached by the
   * application, so a `submit` of the same bytes afterwards does not check them again.
   */
  check(tx: Uint8Array): string | null {
    if (this.#state !== 'running') throw new NodeNotRunningError(`the node is ${this.#state}`);
    return this.#app.checkTx(tx);
  }

  /**
   * Submits client transactions (e.g. signed batches), in order. Each is accepted into the mempool
   * (then forwarded to the other validators and proposed) or refused with a reason, counted in
   * `status().refusals`. Acceptance is not finality: listen with {@link onCommitted}.
   */
  submit(txs: readonly Uint8Array[]): SubmitResult[] {
    if (this.#state !== 'running') throw new NodeNotRunningError(`the node is ${this.#state}`);
    if (txs.length > this.#limits.submitTxsMax) {
      throw new RangeError(`at most ${this.#limits.submitTxsMax} transactions per submit`);
    }
    const results: SubmitResult[] = [];
    try {
      for (const tx of txs) {
        const r = this.#replica.submit(tx, this.#clock.nowMs());
        this.#inputs.submits++;
        if (!r.accepted) this.#countRefusal(r);
        results.push(r);
        this.#collect();
      }
      this.#flush();
    } catch (err) {
      // The core may now believe in votes that are not durable: it must never send again.
      this.#fail(err);
      throw err;
    }
    return results;
  }

  /** Calls `listener` for every block that became final here, in height order. Returns an unsubscribe. */
  onCommitted(listener: (e: CommittedBlockEvent) => void): () => void {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }

  status(): NodeStatus {
    const peers = this.#transport.peers().map((p) => ({ memberId: p.memberId, state: p.state }));
    const view = this.#replica.view;
    const core = this.#replica.metrics();
    return {
      memberId: this.memberId,
      replica: this.replicaIndex,
      state: this.#state,
      view,
      viewChanging: this.#replica.viewChanging,
      primary: this.#members[view % this.#members.length]!,
      committedHeight: this.store.height,
      committedHash: toHex(this.store.tip.hash),
      lastCommitAtMs: this.#lastCommitAtMs,
      mempoolTxs: core.mempoolTxs,
      mempoolBytes: core.mempoolBytes,
      peers,
      peersConnected: peers.filter((p) => p.state === 'connected').length,
      inboundQueued: this.#inbound.length,
      refusals: { ...this.#refusals },
      invalidTxs: Object.fromEntries(this.#invalidTxs),
      problem: this.#problem,
    };
  }

  metrics(): NodeMetrics {
    return {
      status: this.status(),
      inputs: { ...this.#inputs },
      saves: { ...this.#saves },
      messagesSent: this.#messagesSent,
      malformed: Object.fromEntries(this.#malformed),
      peerFaults: Object.fromEntries(this.#peerFaults),
      sync: { ...this.#sync, failed: { ...this.#sync.failed } },
      listenerErrors: this.#listenerErrors,
      core: this.#replica.metrics(),
      transport: this.#transport.metrics(),
      ...(this.#app.metrics ? { app: this.#app.metrics() } : {}),
    };
  }

  // -------------------------------------------------------------------------------------------
  // Inputs

  #onMessage(from: MemberId, bytes: Uint8Array): void | Promise<void> {
    if (this.#state !== 'running') return;
    const index = this.genesis.indexOf(from);
    const r = decodeMessage(bytes, this.genesis.chainLimits);
    if (!r.ok) {
      bump(this.#malformed, r.error.code);
      this.#log.warn('malformed message', { from, code: r.error.code, detail: r.error.detail });
      this.#transport.reportMisbehaviour(from, r.error.code);
      return;
    }
    this.#inbound.push({ from: index, message: r.value });
    this.#scheduleDrain();
    if (this.#inbound.length < this.#limits.inboundMessagesMax) return;
    return new Promise((resolve) => this.#waitingForRoom.push(resolve));
  }

  #scheduleDrain(): void {
    if (this.#drainScheduled || this.#state !== 'running') return;
    this.#drainScheduled = setImmediate(() => {
      this.#drainScheduled = undefined;
      this.#drain();
    });
  }

  /** Feeds up to `batchInputsMax` inputs, one at a time, then saves and sends their outputs. */
  #drain(): void {
    if (this.#state !== 'running') return;
    try {
      let fed = 0;
      const bulkMin = Math.max(1, this.#limits.batchInputsMax >> 2);
      while (fed < this.#limits.batchInputsMax && this.#inbound.length > 0) {
        const { from, message } = this.#inbound.shift(this.#limits.batchInputsMax - fed <= bulkMin)!;
        this.#replica.receive(from, message, this.#clock.nowMs());
        if (message.type === 'sync-response') this.#inputs.syncResponses++;
        else this.#inputs.messages++;
        this.#collect();
        fed++;
      }
      // The tick after what has arrived: a timer that fell due while this replica was busy must not
      // call a view change for want of COMMITs that are waiting right here (the core fires timers on
      // ticks only). Every drain that is due one ends with it, so ticks are never starved.
      if (this.#tickDue) {
        this.#tickDue = false;
        this.#replica.tick(this.#clock.nowMs());
        this.#inputs.ticks++;
        this.#collect();
      }
      this.#flush();
    } catch (err) {
      this.#fail(err);
      return;
    }
    while (this.#waitingForRoom.length > 0 && this.#inbound.length < this.#limits.inboundMessagesMax) {
      this.#waitingForRoom.shift()!();
    }
    if (this.#inbound.length > 0) this.#scheduleDrain();
  }

  // -------------------------------------------------------------------------------------------
  // Outputs

  /** Takes the core's outputs after one input into the batch. */
  #collect(): void {
    const rd = this.#replica.ready();
    const p = this.#pending;
    for (const r of rd.persist) p.records.push(r);
    for (const cb of rd.committed) {
      p.committed.push(cb);
      for (const tx of cb.block.txs) this.#unsavedTxIds.add(toHex(this.#app.txId(tx)));
      const rows = this.#app.onCommitted?.(cb);
      if (rows) for (const r of rows) p.appState.set(r.key, r.data);
    }
    for (const m of rd.messages) {
      if (m.message.type === 'sync-request' && m.to !== 'all') {
        p.syncRequests.push({ to: m.to, request: m.message });
        continue;
      }
      // Forwarded transactions that follow each other become one message: `ready()` after every
      // input would otherwise send one message per submitted transaction.
      const last = p.messages[p.messages.length - 1];
      if (
        m.message.type === 'txs' &&
        last?.message.type === 'txs' &&
        last.to === m.to &&
        last.message.txs.length + m.message.txs.length <= this.genesis.chainLimits.forwardTxsMax &&
        txBytes(last.message.txs) + txBytes(m.message.txs) <= this.genesis.chainLimits.blockBytesMax
      ) {
        last.message = { type: 'txs', txs: [...last.message.txs, ...m.message.txs] };
        continue;
      }
      p.messages.push({ to: m.to, message: m.message });
    }
    for (const f of rd.faults) this.#onFault(f);
    this.#wakeAtMs = rd.wakeAtMs;
  }

  /** Saves the batch in one transaction, then sends, then tells listeners, then re-arms the timer. */
  #flush(): void {
    const p = this.#pending;
    this.#pending = emptyPending();
    if (p.records.length > 0 || p.committed.length > 0) {
      const t0 = performance.now();
      // With blocks, the application's state (as of the new tip) goes in the same transaction.
      const keepsState = p.committed.length > 0 && this.#app.stateHeight !== undefined;
      this.store.save({
        records: p.records,
        committed: p.committed,
        ...(keepsState ? { appState: p.appState } : {}),
      });
      const ms = performance.now() - t0;
      const s = this.#saves;
      s.count++;
      s.totalMs += ms;
      s.maxMs = Math.max(s.maxMs, ms);
      s.records += p.records.length;
      s.blocks += p.committed.length;
      for (const cb of p.committed) s.txs += cb.block.txs.length;
    }
    this.#unsavedTxIds.clear();
    for (const m of p.messages) {
      const bytes = encodeMessage(m.message);
      if (m.to === 'all') this.#transport.broadcast(bytes);
      else this.#transport.send(this.#members[m.to]!, bytes);
      this.#messagesSent++;
    }
    for (const s of p.syncRequests) this.#requestSync(s.to, s.request);
    if (p.committed.length > 0) {
      this.#lastCommitAtMs = Date.now();
      for (const cb of p.committed) this.#notify(cb);
    }
    this.#armTimer();
  }

  #notify(cb: CertifiedBlock): void {
    if (this.#listeners.size === 0) return;
    const event: CommittedBlockEvent = {
      height: cb.block.header.height,
      blockHash: blockHash(cb.block.header),
      txIds: cb.block.txs.map((tx) => this.#app.txId(tx)),
      certificate: cb.certificate,
      block: cb.block,
    };
    for (const listener of this.#listeners) {
      try {
        listener(event);
      } catch (err) {
        this.#listenerErrors++;
        this.#log.warn('onCommitted listener failed', { error: (err as Error).message });
      }
    }
  }

  #armTimer(): void {
    const at = this.#wakeAtMs;
    if (at === this.#timerAtMs) return;
    clearTimeout(this.#timer);
    this.#timer = undefined;
    this.#timerAtMs = at;
    if (at === null) return;
    // setTimeout takes at most 2^31−1 ms; a later wake-up is re-armed by the tick it causes.
    const delayMs = Math.min(Math.max(0, at - this.#clock.nowMs()), 2 ** 31 - 1);
    this.#timer = setTimeout(() => {
      this.#timer = undefined;
      this.#timerAtMs = null;
      this.#tickDue = true;
      this.#scheduleDrain();
    }, delayMs);
  }

  #onFault(f: PeerFault): void {
    if (f.peer === this.replicaIndex) {
      // Only 'safety-violation': more than f validators are faulty. The core stops extending its
      // chain; an operator must look.
      this.#problem = `${f.code}: ${f.detail}`;
      this.#log.error('safety violation', { code: f.code, detail: f.detail });
      return;
    }
    bump(this.#peerFaults, f.code);
    const member = this.#members[f.peer]!;
    this.#log.warn('peer fault', { peer: member, code: f.code, detail: f.detail });
    this.#transport.reportMisbehaviour(member, f.code);
  }

  #countRefusal(r: Extract<SubmitResult, { accepted: false }>): void {
    this.#refusals[r.reason]++;
    if (r.reason !== 'invalid') return;
    let code = /^[a-z_-]+/.exec(r.detail)?.[0] ?? 'other';
    if (!this.#invalidTxs.has(code) && this.#invalidTxs.size >= this.#limits.refusalCodesMax) code = 'other';
    bump(this.#invalidTxs, code);
  }

  // -------------------------------------------------------------------------------------------
  // Block sync

  /** Sends the core's sync request over request/response; the answer becomes an input. */
  #requestSync(to: number, request: SyncRequest): void {
    const member = this.#members[to]!;
    if (this.#syncInFlight.has(member)) {
      this.#sync.skipped++;
      return;
    }
    this.#syncInFlight.add(member);
    this.#sync.requested++;
    this.#transport
      .request(member, encodeMessage(request))
      .then(
        (bytes) => {
          if (this.#state !== 'running') return;
          const r = decodeMessage(bytes, this.genesis.chainLimits);
          if (!r.ok || r.value.type !== 'sync-response') {
            const code = r.ok ? 'unexpected-type' : r.error.code;
            bump(this.#malformed, code);
            this.#transport.reportMisbehaviour(member, `sync answer: ${code}`);
            return;
          }
          // Bypasses the bound on purpose: one answer per peer at most (see NodeLimits).
          this.#inbound.push({ from: to, message: r.value });
          this.#scheduleDrain();
        },
        (err: unknown) => {
          const reason = err instanceof RequestError ? err.reason : 'error';
          this.#sync.failed[reason] = (this.#sync.failed[reason] ?? 0) + 1;
        },
      )
      .finally(() => this.#syncInFlight.delete(member));
  }

  /** Answers a peer's sync request from the store (the core never sees it). */
  #onRequest(request: Uint8Array, from: MemberId, maxResponseBytes: number): Uint8Array {
    const r = decodeMessage(request, this.genesis.chainLimits);
    if (!r.ok || r.value.type !== 'sync-request') {
      const code = r.ok ? 'unexpected-type' : r.error.code;
      bump(this.#malformed, code);
      this.#transport.reportMisbehaviour(from, `sync request: ${code}`);
      throw new Error('not a sync request');
    }
    const limits = this.genesis.chainLimits;
    try {
      const answer = syncResponseFor(
        r.value,
        (h) => this.store.blockAt(h),
        limits.syncBlocksMax,
        Math.min(syncResponseBytesTarget(limits), maxResponseBytes - syncResponseEnvelopeBytes),
        (cb) => this.store.encodedBytesOf(cb),
      );
      this.#sync.served++;
      if (answer.type === 'sync-response') this.#sync.servedBlocks += answer.blocks.length;
      return encodeMessage(answer);
    } catch (err) {
      this.#sync.serveFailed++;
      this.#log.error('cannot serve blocks', { error: (err as Error).message });
      throw err;
    }
  }

  // -------------------------------------------------------------------------------------------
  // Lifecycle

  /**
   * A broken store (disk full, I/O error, corruption) or a bug: nothing more may be sent, since a
   * vote might not be durable. The node stops itself; `status().problem` says why.
   */
  #fail(err: unknown): void {
    if (this.#state === 'failed' || this.#state === 'stopped') return;
    this.#problem = `${(err as Error)?.name ?? 'Error'}: ${(err as Error)?.message ?? String(err)}`;
    this.#log.error('consensus node failed; stopping', { error: this.#problem });
    this.#stopping ??= this.#shutdown('failed');
  }

  async #shutdown(final: 'stopped' | 'failed'): Promise<void> {
    this.#state = final === 'failed' ? 'failed' : 'stopping';
    clearTimeout(this.#timer);
    this.#timer = undefined;
    if (this.#drainScheduled) clearImmediate(this.#drainScheduled);
    this.#drainScheduled = undefined;
    this.#inbound.clear();
    this.#pending = emptyPending();
    for (const resolve of this.#waitingForRoom.splice(0)) resolve();
    try {
      await this.#transport.stop();
    } finally {
      this.store.close();
      if (final === 'stopped') this.#state = 'stopped';
      this.#closed.resolve();
    }
  }
}

/**
 * The inbound queue: two FIFOs, consensus messages before forwarded transactions (CometBFT gives
 * its consensus channels priority over the mempool's the same way). Under load a backup's queue
 * fills with `txs` messages whose every transaction costs a `checkTx`; a PRE-PREPARE, PREPARE or
 * COMMIT waiting behind them delays every replica's commit, and long enough, a view change. The
 * order between the two kinds never matters for safety: the core accepts messages in any order
 * (the network may reorder them anyway), and a transaction first seen in a proposal is checked there.
 */
class InboundQueue {
  readonly #consensus: Inbound[] = [];
  readonly #bulk: Inbound[] = [];

  get length(): number {
    return this.#consensus.length + this.#bulk.length;
  }

  push(input: Inbound): void {
    (input.message.type === 'txs' ? this.#bulk : this.#consensus).push(input);
  }

  /** The next input: consensus first, unless `bulkTurn` (then forwarded transactions first, so they never starve). */
  shift(bulkTurn: boolean): Inbound | undefined {
    if (bulkTurn && this.#bulk.length > 0) return this.#bulk.shift();
    return this.#consensus.shift() ?? this.#bulk.shift();
  }

  clear(): void {
    this.#consensus.length = 0;
    this.#bulk.length = 0;
  }
}

function bump(m: Map<string, number>, key: string): void {
  m.set(key, (m.get(key) ?? 0) + 1);
}

function txBytes(txs: readonly Uint8Array[]): number {
  let n = 0;
  for (const t of txs) n += t.byteLength;
  return n;
}
