/** What the submitter needs of the outbox (implemented by outbox.ts) and of its own logger. */
import type { CommitReceipt, StoredEvent } from '../store/outbox.ts';

export interface SubmitterLogger {
  info(msg: string, fields?: Record<string, unknown>): void;
  warn(msg: string, fields?: Record<string, unknown>): void;
  error(msg: string, fields?: Record<string, unknown>): void;
}

/** The outbox operations the submitter uses. */
export interface OutboxLike {
  pending(options: { afterSeq?: number; limit: number }): StoredEvent[];
  /** Marks events final and saves `meta` in the same transaction. */
  markCommitted(receipts: readonly CommitReceipt[], nowMs?: number, meta?: Record<string, unknown>): number;
  /** True when the id is one of this gateway's events not yet final (cheap: an index lookup). */
  isOwnPending(id: string): boolean;
  loadMeta(key: string): unknown;
}
