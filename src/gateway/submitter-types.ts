/** What the submitter needs of the chain and of the outbox (implemented by node.ts and outbox.ts). */
import type { CommitReceipt, StoredEvent } from '../store/outbox.ts';

/** The validator's verdict on one submitted event. */
export type SubmitVerdict =
  | { accepted: true }
  | {
      accepted: false;
      /**
       * 'duplicate' (already pending there) and 'committed' (already final) are normal after a
       * restart or a resubmission; anything else (mempool full, invalid, unknown key …) is counted.
       */
      reason: string;
      detail?: string;
    };

export interface CommittedBlockInfo {
  height: number;
  blockHash: string;
  /** Hex ids of the block's transactions, in block order. */
  txIds: string[];
  timestampMs: number;
}

export interface ChainReceipt {
  height: number;
  blockHash: string;
  index: number;
}

export interface ChainClient {
  /** Submits events (their canonical JSON bytes as stored); one verdict per event, in order. */
  submit(txs: readonly string[]): Promise<SubmitVerdict[]>;
  /**
   * Calls `onBlock` for every final block above `afterHeight`, in height order: first those already
   * final, then new ones as they become final. Returns an unsubscribe function.
   */
  subscribe(afterHeight: number, onBlock: (block: CommittedBlockInfo) => void): () => void;
  /** Where events already final are (null when not on chain). */
  receipts(ids: readonly string[]): Promise<(ChainReceipt | null)[]>;
}

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
