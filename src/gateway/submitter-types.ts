/** What the submitter needs of the outbox (implemented by outbox.ts) and of its own logger. */
import type { CommitReceipt, StoredBatch } from '../store/outbox.ts';

export interface SubmitterLogger {
  info(msg: string, fields?: Record<string, unknown>): void;
  warn(msg: string, fields?: Record<string, unknown>): void;
  error(msg: string, fields?: Record<string, unknown>): void;
}

/** The outbox operations the submitter uses. */
export interface OutboxLike {
  /** Batches not final yet, oldest first, up to `eventsMax` events. */
  pending(options: { afterSeq?: number; eventsMax: number }): StoredBatch[];
  /** Final batches whose bodies the member has not confirmed keeping, oldest first. */
  unconfirmed(options: { afterSeq?: number; eventsMax: number }): StoredBatch[];
  /** Marks batches final and saves `meta` in the same transaction; returns the events newly marked. */
  markCommitted(receipts: readonly CommitReceipt[], nowMs?: number, meta?: Record<string, unknown>): number;
  /** Records that the member's body store keeps these batches' bodies; returns the batches marked. */
  markBodiesKept(txIds: readonly string[]): number;
  /** True when the transaction id is one of this gateway's batches not yet final (an index lookup). */
  isOwnPending(txId: string): boolean;
  loadMeta(key: string): unknown;
}
