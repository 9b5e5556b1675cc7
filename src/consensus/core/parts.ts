/**
 * What each part of a replica offers the others (replica.ts lists the parts), and the data those
 * offers carry. A part's `Components` interface names what it uses of the other parts by these
 * interfaces, never by their classes, so no part's file imports another part's file: each class
 * `implements` its interface here, and only the coordinator, replica.ts, imports the classes to
 * build them. This file imports no part either (the import rule: no cycle between files).
 */
import type { ChainContext } from './config.ts';
import type { VoteKind } from './io.ts';
import type {
  Block,
  Commit,
  CommitCertificate,
  Message,
  NewView,
  PrePrepare,
  Prepare,
  PreparedCertificate,
} from './types.ts';

// -------------------------------------------------------------------------------------------
// normal-case.ts

export interface NormalCasePart {
  /** Takes a proposal as the slot's (a backup then votes PREPARE for it). */
  accept(slot: Slot, accepted: Omit<Proposal, 'txBytes'>): void;
  /** Tries to become prepared at h and above (a new prepared height may anchor the next one). */
  checkPrepared(from: number): void;
  /**
   * Takes note of a valid commit certificate however it arrived (our COMMITs, a VIEW-CHANGE's or
   * NEW-VIEW's checkpoint): in the window it lets the block be delivered once its body is at hand,
   * even if we never saw its COMMITs; above it, it names peers to sync from.
   */
  learnCertificate(cert: CommitCertificate): void;
}

// -------------------------------------------------------------------------------------------
// proposer.ts

export interface ProposerPart {
  /** When the primary wants to be woken to propose a partial block (null: not waiting for one). */
  readonly wakeAtMs: number | null;
  /** We left the view: nothing to propose in it. */
  cancel(): void;
  /** Signs and sends a pre-prepare in the current view and accepts it as our own proposal. */
  prePrepare(block: Block, txKeys: Set<string>): void;
  /**
   * Retransmits our PRE-PREPARE to the peers that have not shown they hold it (no PREPARE or COMMIT
   * for it from them in this view, and not committed that height), with an interval that doubles up
   * to 8 heartbeats. Votes are small and go to everyone every heartbeat; a block is not. A peer that
   * acknowledged and then lost it (a restart) gets the body by a proposal request once the block is
   * certified, or the block is re-proposed after a view change.
   */
  resendProposal(s: Slot, pp: PrePrepare): void;
  /** Notes that `from` holds the proposal it voted for, if it is our current one at that height. */
  ackProposal(slot: Slot, from: number, view: number, key: string): void;
}

// -------------------------------------------------------------------------------------------
// view-changer.ts

export type ViewChangeCause =
  | 'progress-timeout'
  | 'censorship-timeout'
  | 'view-change-timeout'
  | 'invalid-proposal'
  | 'equivocation'
  | 'joined'
  | 'restart';

/** Checkpoint and re-proposals the current view started from (NEW-VIEW), or the genesis for view 0. */
export interface ViewBase {
  height: number;
  key: string;
  reproposals: Map<number, string>;
  newView: NewView | null;
}

export interface ViewChangerPart {
  readonly view: number;
  readonly viewChanging: boolean;
  /** When we entered the current view (or started). */
  readonly viewEnteredMs: number;
  readonly base: Readonly<ViewBase>;
  readonly isPrimary: boolean;
  /** Leaves the current view for `target` (> view): persist the view, then send VIEW-CHANGE. */
  startViewChange(target: number, cause: ViewChangeCause): void;
  /** Other replicas whose latest VIEW-CHANGE or STATUS puts them at `view` or above. */
  othersAtOrAbove(view: number): number;
  /** Hands our current view's NEW-VIEW to a peer that is behind (rate-limited). */
  helpPeer(from: number): void;
  maybeSendNewView(): void;
}

// -------------------------------------------------------------------------------------------
// chain.ts

export interface CommittedBlock {
  height: number;
  hash: Uint8Array;
  key: string;
  certificate: CommitCertificate | null;
  timestampMs: number;
  block: Block | null;
}

/** Parent of a fresh proposal: its key, hash and timestamp, the transactions in flight below it, the chain. */
export interface ProposalParent {
  key: string;
  hash: Uint8Array;
  timestampMs: number;
  inFlight: Set<string>;
  chain: ChainContext;
}

export interface ChainPart {
  /** The highest committed block (the genesis at first). */
  readonly tip: Readonly<CommittedBlock>;
  retainedAt(h: number): CommittedBlock | undefined;
  /** Height of the last committed block the runtime has applied: blocks in the outbox are not yet. */
  appliedHeight(): number;
  certifiedKeyAt(h: number): string | undefined;
  /**
   * Parent of a fresh proposal at h: the tip, or an accepted proposal of this view; with in-flight tx
   * ids and, for the order hooks, the chain from the runtime's last applied block up to the parent.
   */
  parentOf(h: number): ProposalParent | undefined;
  /** Delivers certified blocks in height order while bodies are at hand. */
  deliver(): void;
  /** The tip moved: the next heights may become prepared, and buffered messages may now apply. */
  afterCommit(): void;
  /** Appends a certified block to the chain. The caller has checked the certificate. */
  commitBlock(block: Block, certificate: CommitCertificate): boolean;
}

// -------------------------------------------------------------------------------------------
// slots.ts

export interface Proposal {
  view: number;
  block: Block;
  hash: Uint8Array;
  key: string;
  signature: Uint8Array;
  txKeys: Set<string>;
  /** Sum of the transactions' bytes. */
  txBytes: number;
}

export interface Slot {
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

export interface SlotsPart {
  get(h: number): Slot | undefined;
  /** In insertion order. */
  values(): MapIterator<Slot>;
  /** Heights a replica works on: the window of `windowHeights` above its committed tip. */
  inWindow(h: number): boolean;
  /** The slot at h, created if h is in the window (or `force`); undefined outside the window. */
  at(h: number, force?: boolean): Slot | undefined;
  vote(kind: VoteKind, h: number): { view: number; key: string } | undefined;
  /** Records a vote (persisted before the message leaves, see io.ts). */
  castVote(kind: VoteKind, view: number, h: number, hash: Uint8Array, key: string): void;
  /** Did we vote anything else than `key` at (view, h)? (After a restart the proposal itself is gone.) */
  votedOther(view: number, h: number, key: string): boolean;
  /** Is the transaction in a proposal accepted in this view (uncommitted)? */
  inFlight(key: string): boolean;
  bodyFor(h: number, key: string): Block | undefined;
  keepBody(key: string, block: Block): void;
  /** Forgets the current view's proposals and prepares; keeps bodies, prepared certificates, commits. */
  leaveView(): void;
  /** Height h is committed: its slot and our votes up to it are no longer needed. */
  committed(h: number): void;
}

// -------------------------------------------------------------------------------------------
// catch-up.ts

export interface CatchUpPart {
  /** Asks every peer for the body of the block at h with this hash (bounded; retried on the heartbeat). */
  requestBody(h: number, hash: Uint8Array): void;
  /** Asks one peer that claims more committed blocks; rotates through them on every retry. */
  maybeSync(): void;
}

// -------------------------------------------------------------------------------------------
// transactions.ts

/** Transactions chosen for a fresh block. */
export interface BlockSelection {
  txs: Uint8Array[];
  keys: Set<string>;
  /** Sum of the transactions' bytes. */
  bytes: number;
  /** Arrival of the oldest of them (Infinity if none). */
  oldestMs: number;
}

export interface TransactionsPart {
  txId(tx: Uint8Array): Uint8Array;
  /** The transactions of a block just committed (the runtime applies it after this input). */
  committed(keys: Iterable<string>): void;
  /** Application rules over a fresh block's transactions; a reason string if invalid. Deterministic. */
  checkTxs(
    txs: readonly Uint8Array[],
    inFlight: ReadonlySet<string>,
    chain: ChainContext,
  ): Set<string> | string;
  /**
   * Pending work for the liveness timers: how many transactions an honest primary could propose now
   * (with order hooks, a transaction waiting for a predecessor does not count).
   */
  proposableCount(): number;
  /** Since when the longest-waiting proposable transaction has waited (null if none). */
  oldestProposableMs(): number | null;
  /**
   * Could the pending transactions that are not in flight (`inFlightTxs` of `inFlightBytes` are)
   * fill a block? A cheap test before selecting.
   */
  couldFillBlock(inFlightTxs: number, inFlightBytes: number): boolean;
  /** Arrival of the oldest pending transaction, or undefined if none. */
  oldestArrivalMs(): number | undefined;
  /**
   * Transactions for a fresh block on `parent`, within the block limits: the order hooks' choice, or
   * else pending ones in arrival order, skipping those in flight below it.
   */
  selectForBlock(parent: ProposalParent): BlockSelection;
}

// -------------------------------------------------------------------------------------------
// timers.ts

export interface TimersPart {
  /** We left our view for a higher one: one more failed view, and T for its NEW-VIEW to come. */
  viewChangeStarted(): void;
  /** Restarted while changing view: T again for the NEW-VIEW. */
  viewChangeResumed(): void;
  /** A NEW-VIEW started a view. */
  viewEntered(): void;
  /** A block was committed: T starts again from its base. */
  committed(): void;
  /** Replay buffered messages at `atMs` (a proposal waits for our clock). */
  deferUntil(atMs: number): void;
}

// -------------------------------------------------------------------------------------------
// future.ts

export interface FutureMessagesPart {
  /** Keeps a message for later; a full buffer drops the peer's oldest. */
  add(from: number, m: Message): void;
  /** Re-dispatches buffered messages after the state moved (view entered, block accepted or committed). */
  replay(): void;
  /** Drops buffered messages of views below `view` (we left them). */
  dropBelowView(view: number): void;
}

// -------------------------------------------------------------------------------------------
// peers.ts

export interface PeerInfo {
  view: number;
  viewChanging: boolean;
  committedHeight: number;
  newViewSentMs: number;
  proposalAnswers: number;
}

export interface PeersPart {
  /** Peer `r`'s record, created on first use. */
  get(r: number): PeerInfo;
  /** Peer `r`'s record if we have heard of it (never creates one). */
  known(r: number): PeerInfo | undefined;
  entries(): MapIterator<[number, PeerInfo]>;
}
