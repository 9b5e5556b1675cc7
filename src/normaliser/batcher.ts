/**
 * Collects the normaliser's drafts into batches for the outbox: one signature and one SQLite
 * transaction per batch instead of per event (per-event autocommits cost an fsync each).
 *
 * The queue is flushed, whole, when it reaches `batchEventsMax` or when its oldest draft has waited
 * `batchWindowMs`: whole, so that the caller can save the producer's state (the normaliser's
 * counters) in the same transaction as every draft that state has produced. The queue is bounded at
 * `queueMax` drafts. It only grows past one batch while the
 * outbox refuses writes (a disk error); when full, the oldest drafts are handed to `onOverflow`,
 * which records them in the outbox's gap record, so the loss is counted and later provable.
 *
 * A producer that must not confirm its input before the drafts are stored (an MQTT driver holding back
 * its PUBACK) asks `flushed()`: one promise, shared by every caller until the next successful flush,
 * which that call brings forward to the next turn of the event loop. Nothing else is kept per caller,
 * so waiting is bounded by the number of callers, not by the number of drafts.
 *
 * @example
 *   const batcher = new DraftBatcher({ batchEventsMax: 256, batchWindowMs: 20, queueMax: 10_000, flush, onOverflow });
 *   batcher.push(draft);
 *   await batcher.flushed(); // every draft pushed so far is stored (or its loss recorded)
 *   batcher.stop(); // flushes what is left
 */
import type { EventDraft } from '../event/draft.ts';

export interface DraftBatcherOptions {
  batchEventsMax: number;
  batchWindowMs: number;
  queueMax: number;
  /** Writes all queued drafts durably. Throwing keeps them queued for the next attempt. */
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
  /** Set while the last flush failed: retries keep their own pace. */
  #failing = false;
  /** Resolved by the next successful flush; shared by every flushed() caller until then. */
  #waiting: PromiseWithResolvers<void> | undefined;
  #soon: NodeJS.Immediate | undefined;

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

  /**
   * Resolves after the next successful flush, which writes every draft pushed so far (flushes take
   * the whole queue); null when nothing is queued. The flush is brought forward to the next turn of
   * the event loop (not while the outbox is failing: then the retry timer decides). Never rejects:
   * stop() resolves it too, once every draft is either stored or handed to onOverflow.
   */
  flushed(): Promise<void> | null {
    if (this.#queue.length === 0) return null;
    this.#waiting ??= Promise.withResolvers<void>();
    if (!this.#failing && !this.#stopped) {
      this.#soon ??= setImmediate(() => {
        this.#soon = undefined;
        this.flushNow();
      });
    }
    return this.#waiting.promise;
  }

  /** Writes everything queued. */
  flushNow(): void {
    clearTimeout(this.#timer);
    this.#timer = undefined;
    clearImmediate(this.#soon);
    this.#soon = undefined;
    if (this.#queue.length === 0) {
      this.#settle();
      return;
    }
    const all = this.#queue;
    try {
      this.#opts.flush(all);
    } catch (err) {
      this.#failures += 1;
      this.#failing = true;
      this.#opts.onError?.(err as Error);
      if (!this.#stopped) this.#timer = setTimeout(() => this.flushNow(), this.#opts.retryMs ?? 1_000);
      return;
    }
    this.#failing = false;
    this.#queue = [];
    this.#flushed += all.length;
    this.#settle();
  }

  #settle(): void {
    const waiting = this.#waiting;
    this.#waiting = undefined;
    waiting?.resolve();
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
    this.#settle();
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
