/**
 * The core's inputs and outputs, in etcd raft's `Ready` style.
 *
 * A runtime drives one `Replica` from a single thread:
 *
 *   replica.start(await loadPersistedState(), nowMs)
 *   loop:
 *     feed one input:  replica.tick(nowMs) | replica.receive(from, message, nowMs) | replica.submit(tx, nowMs)
 *     const rd = replica.ready()
 *     1. durably write rd.persist (in order) and rd.committed (block + certificate, in height order,
 *        to the block store), e.g. in one SQLite transaction — BEFORE any message of rd leaves
 *     2. send rd.messages
 *     3. schedule a tick at rd.wakeAtMs (if not null)
 *     4. report rd.faults to the transport (it may drop the peer)
 *
 * Finish 1–2 before feeding the next input: `TxHooks.isCommitted` must see rd.committed, and a
 * restart must never find a message sent whose vote was not persisted (that is how a replica would
 * vote twice). Committed blocks are durable before sending too: the committed tip is the replica's
 * stable checkpoint and must never move back across a restart (a VIEW-CHANGE reports prepared
 * certificates only in the window above it).
 *
 * Sync requests (`sync-request` messages) are answered by the runtime from its block store (see
 * `syncResponseFor`), not by the core; the answer is fed back with `receive`.
 */
import { toBase64Url } from '../../crypto/hash.ts';
import type { Block, CertifiedBlock, Message, NewView, PreparedCertificate } from './types.ts';

/** Votes a replica must never cast twice with different digests. */
export type VoteKind = 'pre-prepare' | 'prepare' | 'commit';

export interface VoteRecord {
  kind: 'vote';
  vote: VoteKind;
  view: number;
  height: number;
  blockHash: Uint8Array;
}

/**
 * What the runtime persists. Later records replace earlier ones with the same key:
 * - `view`: single slot.
 * - `vote`: key (vote, height); only the latest view matters, a replica never votes in an older view.
 * - `prepared`: key height; the prepared certificate of the highest view with the block body, so
 *   a restarted replica still reports it in VIEW-CHANGE (forgetting it breaks the view-change proof).
 * - `new-view`: single slot; the NEW-VIEW that started the current view (needed to validate
 *   re-proposals after a restart, and to hand to peers that missed it).
 * - `prune`: delete `vote` and `prepared` records with height ≤ heightMax (all committed).
 */
export type PersistRecord =
  | { kind: 'view'; view: number; viewChanging: boolean }
  | VoteRecord
  | { kind: 'prepared'; certificate: PreparedCertificate; block: Block }
  | { kind: 'new-view'; message: NewView }
  | { kind: 'prune'; heightMax: number };

/** Everything `Replica.start` needs after a restart. */
export interface PersistedState {
  view: number;
  viewChanging: boolean;
  newView: NewView | null;
  votes: VoteRecord[];
  prepared: { certificate: PreparedCertificate; block: Block }[];
  /** The highest committed block in the block store, or null when only the genesis exists. */
  tip: CertifiedBlock | null;
}

export function emptyPersistedState(): PersistedState {
  return {
    view: 0,
    viewChanging: false,
    newView: null,
    votes: [],
    prepared: [],
    tip: null,
  };
}

/**
 * Applies one record to a persisted state (mutates and returns it). A runtime that keeps records in
 * SQLite implements the same keys as upserts; the simulator uses this directly.
 */
export function applyRecord(state: PersistedState, r: PersistRecord): PersistedState {
  switch (r.kind) {
    case 'view':
      state.view = r.view;
      state.viewChanging = r.viewChanging;
      break;
    case 'vote': {
      const i = state.votes.findIndex((v) => v.vote === r.vote && v.height === r.height);
      if (i >= 0) state.votes[i] = r;
      else state.votes.push(r);
      break;
    }
    case 'prepared': {
      const h = r.certificate.header.height;
      const i = state.prepared.findIndex((p) => p.certificate.header.height === h);
      if (i >= 0) state.prepared[i] = { certificate: r.certificate, block: r.block };
      else state.prepared.push({ certificate: r.certificate, block: r.block });
      break;
    }
    case 'new-view':
      state.newView = r.message;
      break;
    case 'prune':
      state.votes = state.votes.filter((v) => v.height > r.heightMax);
      state.prepared = state.prepared.filter((p) => p.certificate.header.height > r.heightMax);
      break;
  }
  return state;
}

/** A message to send: to one peer, or to every other validator. */
export interface Outbound {
  to: number | 'all';
  message: Message;
}

/** Misbehaviour of a peer, with a stable code (errors.ts `ErrorCode` or a core code below). */
export interface PeerFault {
  peer: number;
  code: string;
  detail: string;
}

/** Core-level fault codes, in addition to errors.ts `errorCodes`. */
export const coreFaultCodes = [
  /** Two different votes (or pre-prepares) from one replica for the same (view, height). */
  'equivocation',
  /** A primary's proposal that every honest replica finds invalid. */
  'invalid-proposal',
  /** A signed message relayed by someone other than its signer, where only direct sending makes sense. */
  'sender-mismatch',
  /** A sync response whose blocks do not extend our chain although their certificates verify. */
  'sync-mismatch',
  /** A forwarded transaction that `TxHooks.checkTx` refuses (an honest replica checks before forwarding). */
  'invalid-tx',
  /**
   * Reported against ourselves: a certified block conflicts with our certified chain. Only possible
   * with more than f faulty replicas; the replica stops extending its chain.
   */
  'safety-violation',
] as const;

export interface Ready {
  /** Write durably, in order, before sending `messages`. */
  persist: PersistRecord[];
  /** Newly committed blocks in height order, each with its commit certificate. */
  committed: CertifiedBlock[];
  messages: Outbound[];
  /** Call `tick` at (or after) this time, ms on the clock given to the core; null = no timer. */
  wakeAtMs: number | null;
  faults: PeerFault[];
}

export function emptyReady(): Ready {
  return { persist: [], committed: [], messages: [], wakeAtMs: null, faults: [] };
}

/** What became of a submitted transaction. */
export type SubmitResult =
  | { accepted: true; id: Uint8Array }
  | {
      accepted: false;
      /**
       * 'invalid' (checkTx refused), 'duplicate' (pending already), 'committed', 'mempool-full',
       * 'too-large', 'refused' (TxHooks.order.admit refused it; only with order hooks).
       */
      reason: 'invalid' | 'duplicate' | 'committed' | 'mempool-full' | 'too-large' | 'refused';
      detail: string;
    };

/** Map key for byte strings. */
export const keyOf = toBase64Url;

/**
 * Answers a peer's sync request from a block store. `blockAt` returns the certified block at a
 * height, or undefined past the store's tip. Packs consecutive blocks up to `count`,
 * `limits.syncBlocksMax` and roughly `bytesTarget` encoded bytes (always at least one block).
 */
export function syncResponseFor(
  request: { fromHeight: number; count: number },
  blockAt: (height: number) => CertifiedBlock | undefined,
  countMax: number,
  bytesTarget: number,
  sizeOf: (cb: CertifiedBlock) => number,
): Message {
  const blocks: CertifiedBlock[] = [];
  let bytes = 0;
  const count = Math.min(request.count, countMax);
  for (let h = request.fromHeight; h < request.fromHeight + count; h++) {
    const cb = blockAt(h);
    if (!cb) break;
    const size = sizeOf(cb);
    if (blocks.length > 0 && bytes + size > bytesTarget) break;
    blocks.push(cb);
    bytes += size;
  }
  return { type: 'sync-response', blocks };
}
