/**
 * Collects the normaliser's drafts into batches for the outbox: one signature and one SQLite
 * transaction per batch instead of per event (per-event autocommits cost an fsync each).
 *
 * A batch is flushed when it reaches `batchEventsMax` or when its oldest draft has waited
 * `batchWindowMs`. The queue is bounded at `queueMax` drafts. It only grows past one batch while the
 * outbox refuses writes (a disk error); when full, the oldest drafts are handed to `onOverflow`,
 * which records them in the outbox's gap record, so the loss is counted and later provable.
 *
 * @example
 *   const batcher = new DraftBatcher({ batchEventsMax: 256, batchWindowMs: 20, queueMax: 10_000, flush, onOverflow });
 *   batcher.push(draft);
 *   await batcher.stop(); // flushes what is left
 */
import type { EventDraft } from './draft.ts';

export interface DraftBatcherOptions {
  batchEventsMax: number;
  batchWindowMs: number;
  queueMax: number;
  /** Writes a batch durably. Throwing keeps the drafts queued for the next attempt. */
  flush: (drafts: EventDraft[]) => void;
  /** Receives drafts pushed out of a full queue, oldest first. */
  onOverflow: (drafts: EventDraft[]) => void;
  /** Receives flush errors (rate-limit logging there). */
  onError?: (err: Error) => void;
  /** Retry delay after a failed flush. */
  retryMs?: number;
}

export class DraftBatcher {
  readonly #opts: DraftBatcherOptions;
  #queue: EventDraft[] = [];
  #timer: NodeJS.Timeout | undefined;
  #stopped = false;
  #flushed = 0;
  #overflowed = 0;
  #failures = 0;

  constructor(options: DraftBatcherOptions) {
    if (options.batchEventsMax < 1 || options.queueMax < options.batchEventsMax) {
      throw new RangeError('queueMax must hold at least one batch');
    }
    this.#opts = options;
  }

  push(draft: EventDraft): void {
    if (this.#stopped) return;
    if (this.#queue.length >= this.#opts.queueMax) {
      const dropped = this.#queue.splice(0, this.#opts.batchEventsMax);
      this.#overflowed += dropped.length;
      this.#opts.onOverflow(dropped);
    }
    this.#queue.push(draft);
    if (this.#queue.length >= this.#opts.batchEventsMax) this.flushNow();
    else this.#timer ??= setTimeout(() => this.flushNow(), this.#opts.batchWindowMs);
  }

  /** Writes all full batches and the partial one. */
  flushNow(): void {
    clearTimeout(this.#timer);
    this.#timer = undefined;
    while (this.#queue.length > 0) {
      const batch = this.#queue.slice(0, this.#opts.batchEventsMax);
      try {
        this.#opts.flush(batch);
      } catch (err) {
        this.#failures += 1;
        this.#opts.onError?.(err as Error);
        if (!this.#stopped) this.#timer = setTimeout(() => this.flushNow(), this.#opts.retryMs ?? 1_000);
        return;
      }
      this.#queue.splice(0, batch.length);
      this.#flushed += batch.length;
    }
  }

  /** Flushes what is queued and refuses further drafts. */
  stop(): void {
    this.#stopped = true;
    this.flushNow();
    clearTimeout(this.#timer);
    if (this.#queue.length > 0) {
      this.#overflowed += this.#queue.length;
      this.#opts.onOverflow(this.#queue.splice(0));
    }
  }

  stats(): { queued: number; flushed: number; overflowed: number; failures: number } {
    return {
      queued: this.#queue.length,
      flushed: this.#flushed,
      overflowed: this.#overflowed,
      failures: this.#failures,
    };
  }
}
