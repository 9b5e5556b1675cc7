/**
 * One IPBFT replica as a pure, deterministic state machine (no I/O, clock, timers or randomness).
 * Inputs: `start` (persisted state), `tick`, `receive`, `submit`. Outputs: `ready()` (io.ts).
 * The protocol and its safety argument are in docs/consensus.md; the parts' comments refer to it.
 *
 * The replica coordinates parts of one concern each; every part owns its state and uses only the
 * other parts its `Components` interface lists (as js-libp2p's components do), by the interfaces in
 * parts.ts that the part classes implement (no part imports another; only this file builds them):
 * - normal-case.ts: PRE-PREPARE, PREPARE and COMMIT of the backups' side, certificates;
 * - proposer.ts: the primary's proposals and their retransmission;
 * - view-changer.ts: the view, VIEW-CHANGE and NEW-VIEW;
 * - chain.ts: the committed tip, delivery in height order, retention;
 * - slots.ts: per-height votes, certificates and bodies, and our own votes;
 * - catch-up.ts: STATUS, sync and body fetches;
 * - transactions.ts: the mempool, forwarding and the transaction rules of a block;
 * - timers.ts: the liveness timers; future.ts: messages that came too early; peers.ts: what we
 *   know of the others; outbox.ts and context.ts: the outputs and what all parts share.
 * The replica itself takes the inputs, routes each message to its part, runs the heartbeat and
 * drains the outputs.
 */
import { CatchUp } from './catch-up.ts';
import { Chain } from './chain.ts';
import type { CoreConfig } from './config.ts';
import { createContext, type ReplicaContext } from './context.ts';
import { FutureMessages } from './future.ts';
import type { PersistedState, Ready, SubmitResult } from './io.ts';
import { NormalCase } from './normal-case.ts';
import type { ViewChangeCause } from './parts.ts';
import { Peers } from './peers.ts';
import { Proposer } from './proposer.ts';
import { Slots } from './slots.ts';
import { Timers } from './timers.ts';
import { Transactions } from './transactions.ts';
import type { Message } from './types.ts';
import { ViewChanger } from './view-changer.ts';

export type { ViewChangeCause } from './parts.ts';

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

/** Every part of a replica, and the two things the coordinator does for them. */
interface ReplicaComponents {
  context: ReplicaContext;
  peers: Peers;
  slots: Slots;
  chain: Chain;
  transactions: Transactions;
  future: FutureMessages;
  timers: Timers;
  viewChanger: ViewChanger;
  normalCase: NormalCase;
  proposer: Proposer;
  catchUp: CatchUp;
  dispatch(from: number, m: Message): void;
  heartbeat(): void;
}

export class Replica {
  readonly #ctx: ReplicaContext;
  readonly #c: ReplicaComponents;
  #started = false;
  #now = 0;

  constructor(config: CoreConfig) {
    this.#ctx = createContext(config, () => this.#now);
    // Filled in below: the parts keep this object and look up one another only when they handle
    // an input, by which time every part is in place.
    const c = { context: this.#ctx } as ReplicaComponents;
    c.dispatch = (from, m) => this.#dispatch(from, m);
    c.heartbeat = () => this.#heartbeat();
    c.peers = new Peers();
    c.slots = new Slots(c);
    c.chain = new Chain(c);
    c.transactions = new Transactions(c);
    c.future = new FutureMessages(c);
    c.timers = new Timers(c);
    c.viewChanger = new ViewChanger(c);
    c.normalCase = new NormalCase(c);
    c.proposer = new Proposer(c);
    c.catchUp = new CatchUp(c);
    this.#c = c;
  }

  // -------------------------------------------------------------------------------------------
  // Public interface

  get view(): number {
    return this.#c.viewChanger.view;
  }
  get viewChanging(): boolean {
    return this.#c.viewChanger.viewChanging;
  }
  get committedHeight(): number {
    return this.#c.chain.tip.height;
  }
  get committedHash(): Uint8Array {
    return this.#c.chain.tip.hash;
  }
  get isPrimary(): boolean {
    return this.#c.viewChanger.isPrimary;
  }

  /**
   * Loads the persisted state after a (re)start. Must be called once, before any other input.
   * Throws if the state is inconsistent with the configuration (our own storage is corrupt).
   */
  start(state: PersistedState, nowMs: number): void {
    if (this.#started) throw new Error('Replica.start called twice');
    this.#started = true;
    this.#now = nowMs;
    const c = this.#c;
    c.chain.restore(state.tip);
    c.transactions.refreshOrder();
    c.slots.restore(state);
    c.viewChanger.restore(state);
    c.timers.heartbeatNow();
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
    if (!Number.isInteger(from) || from < 0 || from >= this.#ctx.n || from === this.#ctx.self) {
      throw new RangeError(`receive: ${from} is not another validator`);
    }
    this.#dispatch(from, message);
    this.#afterInput(false);
  }

  /** A client transaction. Accepted ones are forwarded to the other replicas and proposed in time. */
  submit(tx: Uint8Array, nowMs: number): SubmitResult {
    this.#enter(nowMs);
    const r = this.#c.transactions.admit(tx, true);
    this.#afterInput(false);
    return r;
  }

  /** Drains the outputs accumulated since the last call (io.ts says how to process them). */
  ready(): Ready {
    this.#c.transactions.flushForward();
    this.#c.transactions.applied();
    return this.#ctx.out.drain(this.#c.timers.wakeAtMs());
  }

  metrics(): ReplicaMetrics {
    const { viewChanger, transactions } = this.#c;
    return {
      view: viewChanger.view,
      viewChanging: viewChanger.viewChanging,
      committedHeight: this.#c.chain.tip.height,
      mempoolTxs: transactions.size,
      mempoolBytes: transactions.bytes,
      viewChangesStarted: viewChanger.viewChangesStarted,
      viewChangeCauses: viewChanger.viewChangeCauses(),
      messagesSent: this.#ctx.out.messagesSent(),
      futureDropped: this.#c.future.dropped,
      faults: this.#ctx.out.faults(),
    };
  }

  // -------------------------------------------------------------------------------------------
  // Plumbing

  #enter(nowMs: number): void {
    if (!this.#started) throw new Error('Replica.start must be called first');
    if (nowMs > this.#now) this.#now = nowMs;
    this.#c.transactions.refreshOrder();
  }

  #afterInput(fire: boolean): void {
    if (fire) this.#c.timers.fire();
    else this.#c.timers.armProgressDeadline();
    this.#c.proposer.maybePropose();
  }

  #dispatch(from: number, m: Message): void {
    const c = this.#c;
    switch (m.type) {
      case 'pre-prepare':
      case 'prepare':
      case 'commit':
      case 'view-change':
        if (m.replica !== from) {
          this.#ctx.out.fault(from, 'sender-mismatch', `${m.type} signed by ${m.replica}`);
          return;
        }
        if (m.type === 'pre-prepare') c.normalCase.onPrePrepare(from, m);
        else if (m.type === 'prepare') c.normalCase.onPrepare(from, m);
        else if (m.type === 'commit') c.normalCase.onCommit(from, m);
        else c.viewChanger.onViewChange(from, m);
        return;
      case 'new-view':
        c.viewChanger.onNewView(from, m);
        return;
      case 'status':
        c.catchUp.onStatus(from, m);
        return;
      case 'sync-response':
        c.catchUp.onSyncResponse(from, m);
        return;
      case 'proposal-request':
        c.catchUp.onProposalRequest(from, m);
        return;
      case 'proposal-response':
        c.catchUp.onProposalResponse(from, m);
        return;
      case 'txs':
        for (const tx of m.txs) {
          const r = c.transactions.admit(tx, false);
          if (!r.accepted && r.reason === 'invalid') this.#ctx.out.fault(from, 'invalid-tx', r.detail);
        }
        return;
      case 'sync-request':
        // Answered by the runtime from its block store (io.ts); nothing for the core to do.
        return;
    }
  }

  /** Every statusIntervalMs: status, retransmissions, retries. Makes the protocol live over lossy links. */
  #heartbeat(): void {
    const { viewChanger, catchUp } = this.#c;
    this.#ctx.out.broadcast({
      type: 'status',
      view: viewChanger.view,
      viewChanging: viewChanger.viewChanging,
      committedHeight: this.#c.chain.tip.height,
    });
    this.#c.peers.newHeartbeat();
    if (viewChanger.viewChanging) viewChanger.resendViewChange();
    else this.#c.normalCase.retransmit();
    this.#c.transactions.reforward();
    catchUp.retryFetches();
    catchUp.maybeSync();
    viewChanger.maybeSendNewView();
  }
}
