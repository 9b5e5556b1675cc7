/**
 * The submitter moves signed batches, with their events' bodies, from the outbox to the member's
 * validator, which keeps the bodies in the member's body store and submits the batch to the alliance
 * chain. It marks a batch committed only when it sees the batch's transaction id in a final block: an
 * acknowledgement is finality, not a socket write. It tells the outbox when the member's body store
 * has a batch's bodies (`bodiesKept` in the verdict): only then may the outbox prune the batch once
 * final, since the bodies live nowhere else.
 *
 * Exactly once:
 * - Batches are submitted oldest first, in seq order, because validators accept a gateway's events
 *   only in seq order (docs/ledger.md).
 * - When none of its events has become final for `resubmitAfterMs` while some are in flight, it
 *   submits again from the oldest pending event: the validator may have lost them (a restart, a view
 *   change whose primary never had them). While nothing becomes final (an outage) it backs off, to
 *   2 × and then 4 × `resubmitAfterMs` between rounds. While its events keep becoming final it does
 *   not: the chain takes a gateway's events in seq order, so progress means the oldest in flight is
 *   simply next in line behind a backlog (resubmitting a whole window of them every
 *   `resubmitAfterMs` under load only cost both sides work, all answered "duplicate"). A duplicate is
 *   harmless: the chain refuses an id it already holds and any seq at or below the gateway's head.
 * - The height of the last block seen is saved in the outbox. After a restart the submitter replays
 *   blocks from there, so events that became final while the gateway was down are marked too.
 *
 * Bounds: at most `windowEvents` events are in flight (one batch more at worst: batches are not
 * split). Submission is rate-limited to
 * `drainEventsPerSecond` by a token bucket, so a backlog after an outage drains at a bounded rate. Live
 * events queue behind the backlog, because the chain needs each gateway's events in order.
 *
 * @example
 *   const s = new Submitter({ outbox, chain, log });
 *   s.start();
 *   s.kick();       // after an append, to submit without waiting for the next tick
 *   await s.stop();
 */
import type { ChainClient, CommittedBlockInfo } from '../consensus/runtime/client.ts';
import type { CommitReceipt, StoredBatch } from '../store/outbox.ts';
import { submitter } from './bounds.ts';
import type { OutboxLike, SubmitterLogger } from './submitter-types.ts';

export interface SubmitterOptions {
  outbox: OutboxLike;
  chain: ChainClient;
  log: SubmitterLogger;
  /** Events submitted but not yet final, at most. */
  windowEvents?: number;
  /** Events per submit call, at most. */
  submitBatchMax?: number;
  /** Submission rate limit (events/s): the drain rate of a backlog. */
  drainEventsPerSecond?: number;
  /** In-flight events are submitted again when none of them became final for this long. */
  resubmitAfterMs?: number;
  /** How often the loop runs when not kicked. */
  tickMs?: number;
  nowMs?: () => number;
  /** Sees each event submitted by this process as it becomes final: ms from its source time and from signing. */
  onFinal?: (sourceToFinalMs: number, signedToFinalMs: number) => void;
}

export interface SubmitterStats {
  /** Events submitted (each once per round; resubmissions are counted apart). */
  submitted: number;
  resubmitted: number;
  committed: number;
  /** Batches whose bodies the member's body store confirmed it keeps. */
  bodiesKept: number;
  /** Events in flight. */
  inFlight: number;
  /** Refusals by reason (duplicates of events already on chain are normal after a restart). */
  refused: Record<string, number>;
  lastHeight: number;
  /** Source-to-finality latency of recent events, ms (p50, p99 of the last ≤ 4096). */
  latencyMs: { p50: number; p99: number; samples: number };
  /**
   * The chain's part of it: from the gateway's timestamp (when the event was signed) to the final
   * block, for the same events. The rest is the device's side: polling, sampling, rule windows.
   */
  chainLatencyMs: { p50: number; p99: number };
  errors: number;
}

const lastHeightKey = 'submitter.lastHeight';
const { latencySamplesMax } = submitter;

interface InFlight {
  firstSeq: number;
  count: number;
  sentMs: number;
  events: readonly { sourceTimeMs: number; gatewayTimeMs: number }[];
}

export class Submitter {
  readonly #o: OutboxLike;
  readonly #chain: ChainClient;
  readonly #log: SubmitterLogger;
  readonly #window: number;
  readonly #batchMax: number;
  readonly #rate: number;
  readonly #resubmitMs: number;
  readonly #tickMs: number;
  readonly #now: () => number;
  readonly #onFinal: SubmitterOptions['onFinal'];
  /** Transaction id → the batch in flight. Insertion order = seq order. */
  readonly #inFlight = new Map<string, InFlight>();
  #inFlightEvents = 0;
  #lastSubmittedSeq = 0;
  /** When one of our batches last became final (ms, the submitter's clock). */
  #lastProgressMs = -Infinity;
  /** When we last submitted everything again, and how many times in a row without progress. */
  #lastResubmitMs = -Infinity;
  #resubmitsWithoutProgress = 0;
  /** When final batches whose bodies were not confirmed were last sent again. */
  #lastConfirmMs = -Infinity;
  #lastHeight: number;
  #tokens: number;
  #tokensAtMs: number;
  #timer: NodeJS.Timeout | undefined;
  #running = false;
  #busy: Promise<void> | null = null;
  #again = false;
  #unsubscribe: (() => void) | null = null;
  readonly #latencies: number[] = [];
  readonly #chainLatencies: number[] = [];
  #latencyNext = 0;
  readonly #stats = { submitted: 0, resubmitted: 0, committed: 0, bodiesKept: 0, errors: 0 };
  readonly #refused: Record<string, number> = {};

  constructor(options: SubmitterOptions) {
    this.#o = options.outbox;
    this.#chain = options.chain;
    this.#log = options.log;
    this.#window = options.windowEvents ?? submitter.windowEvents.default;
    this.#batchMax = options.submitBatchMax ?? submitter.batchMax;
    this.#rate = options.drainEventsPerSecond ?? submitter.drainEventsPerSecond.default;
    this.#resubmitMs = options.resubmitAfterMs ?? submitter.resubmitAfterMs.default;
    this.#tickMs = options.tickMs ?? submitter.tickMs;
    this.#now = options.nowMs ?? Date.now;
    this.#onFinal = options.onFinal;
    if (this.#window < this.#batchMax) throw new RangeError('windowEvents must be ≥ submitBatchMax');
    this.#lastHeight = Number(this.#o.loadMeta(lastHeightKey) ?? 0);
    this.#tokens = Math.min(this.#rate, this.#batchMax);
    this.#tokensAtMs = this.#now();
  }

  start(): void {
    if (this.#running) return;
    this.#running = true;
    // Replays final blocks after the last one seen (a restart), then follows new ones.
    this.#unsubscribe = this.#chain.subscribe(this.#lastHeight, (b) => this.#onBlock(b));
    this.#schedule();
  }

  /** Runs the loop now (e.g. right after an append) instead of at the next tick. */
  kick(): void {
    if (!this.#running) return;
    if (this.#busy) {
      this.#again = true;
      return;
    }
    clearTimeout(this.#timer);
    this.#timer = undefined;
    this.#busy = this.#pass().finally(() => {
      this.#busy = null;
      if (this.#again) {
        this.#again = false;
        this.kick();
      } else {
        this.#schedule();
      }
    });
  }

  #schedule(): void {
    if (!this.#running || this.#timer) return;
    this.#timer = setTimeout(() => {
      this.#timer = undefined;
      this.kick();
    }, this.#tickMs);
    this.#timer.unref?.();
  }

  async #pass(): Promise<void> {
    try {
      this.#resubmitStale();
      await this.#fill();
      await this.#confirmBodies();
    } catch (err) {
      this.#stats.errors += 1;
      this.#log.warn('submission failed; will retry', { err: (err as Error).message });
    }
  }

  /**
   * If nothing of ours became final for `resubmitAfterMs` since the oldest in-flight batch was sent,
   * start again from the oldest pending batch.
   */
  #resubmitStale(): void {
    const oldest = this.#inFlight.values().next().value;
    if (!oldest) return;
    const waitingSinceMs = Math.max(oldest.sentMs, this.#lastProgressMs, this.#lastResubmitMs);
    // Backs off while the chain stays stuck (an outage): 1 ×, 2 ×, then every 4 × resubmitAfterMs.
    const waitMs = this.#resubmitMs * 2 ** Math.min(this.#resubmitsWithoutProgress, 2);
    if (this.#now() - waitingSinceMs < waitMs) return;
    this.#lastResubmitMs = this.#now();
    this.#resubmitsWithoutProgress++;
    this.#stats.resubmitted += this.#inFlightEvents;
    this.#log.info('no batch final in time; submitting again from the oldest', {
      fromSeq: oldest.firstSeq,
      inFlight: this.#inFlightEvents,
    });
    this.#inFlight.clear();
    this.#inFlightEvents = 0;
    this.#lastSubmittedSeq = 0;
  }

  async #fill(): Promise<void> {
    for (;;) {
      const room = Math.min(
        this.#window - this.#inFlightEvents,
        this.#batchMax,
        Math.floor(this.#takeTokens()),
      );
      if (room <= 0) return;
      const batches = this.#o.pending({ afterSeq: this.#lastSubmittedSeq, eventsMax: room });
      if (batches.length === 0) return;
      for (const b of batches) this.#tokens -= b.count;
      const sentMs = this.#now();
      const verdicts = await this.#chain.submit(batches.map((b) => ({ tx: b.tx, bodies: b.bodies })));
      if (!this.#running) return;
      let stop = false;
      const kept: string[] = [];
      const committed: StoredBatch[] = [];
      batches.forEach((b, i) => {
        const v = verdicts[i];
        if (v?.bodiesKept && !b.bodiesKept) kept.push(b.txId);
        if (stop) return;
        if (v && !v.accepted && v.reason !== 'duplicate' && v.reason !== 'committed') {
          // Refused for a reason a retry may cure (mempool full, body store full, validator catching
          // up) or not (our key unknown to the alliance): count, log, and come back to it from here.
          this.#refused[v.reason] = (this.#refused[v.reason] ?? 0) + 1;
          this.#log.warn('batch refused by the validator', {
            seq: b.firstSeq,
            reason: v.reason,
            detail: v.detail,
          });
          stop = true;
          return;
        }
        if (v && !v.accepted) this.#refused[v.reason] = (this.#refused[v.reason] ?? 0) + 1;
        this.#lastSubmittedSeq = b.firstSeq;
        this.#stats.submitted += b.count;
        if (v && !v.accepted && v.reason === 'committed') {
          committed.push(b);
          return;
        }
        this.#inFlight.set(b.txId, { firstSeq: b.firstSeq, count: b.count, sentMs, events: b.events });
        this.#inFlightEvents += b.count;
      });
      if (kept.length > 0) this.#stats.bodiesKept += this.#o.markBodiesKept(kept);
      await this.#settleCommitted(committed);
      if (stop) return;
    }
  }

  /**
   * Final batches whose bodies the member did not confirm keeping (its body store was full, or lost
   * them): sent again, at most once per `resubmitAfterMs`, until it does. They may not leave the
   * outbox before: the bodies live nowhere else.
   */
  async #confirmBodies(): Promise<void> {
    if (this.#now() - this.#lastConfirmMs < this.#resubmitMs) return;
    this.#lastConfirmMs = this.#now();
    const batches = this.#o.unconfirmed({ eventsMax: this.#batchMax });
    if (batches.length === 0) return;
    const verdicts = await this.#chain.submit(batches.map((b) => ({ tx: b.tx, bodies: b.bodies })));
    const kept = batches.filter((_, i) => verdicts[i]?.bodiesKept).map((b) => b.txId);
    if (kept.length > 0) this.#stats.bodiesKept += this.#o.markBodiesKept(kept);
    else
      this.#log.warn('the member has not confirmed the bodies of final batches; they stay in the outbox', {
        batches: batches.length,
        reason: verdicts.flatMap((v) => (v.accepted ? [] : [v.reason]))[0],
      });
  }

  /** Batches the chain says are already final (a resubmission after a restart): fetch where, mark them. */
  async #settleCommitted(batches: readonly StoredBatch[]): Promise<void> {
    if (batches.length === 0) return;
    const found = await this.#chain.receipts(batches.map((b) => b.txId));
    const receipts: CommitReceipt[] = [];
    for (let i = 0; i < batches.length; i++) {
      const r = found[i];
      if (!r) continue;
      receipts.push({ txId: batches[i]!.txId, height: r.height, blockHash: r.blockHash, txIndex: r.index });
    }
    if (receipts.length > 0) {
      this.#stats.committed += this.#o.markCommitted(receipts, this.#now());
      this.#progress();
    }
  }

  #progress(): void {
    this.#lastProgressMs = this.#now();
    this.#resubmitsWithoutProgress = 0;
  }

  #takeTokens(): number {
    const now = this.#now();
    this.#tokens = Math.min(this.#rate, this.#tokens + ((now - this.#tokensAtMs) * this.#rate) / 1000);
    this.#tokensAtMs = now;
    return this.#tokens;
  }

  #onBlock(b: CommittedBlockInfo): void {
    const receipts: CommitReceipt[] = [];
    const now = this.#now();
    let ours = false;
    for (let i = 0; i < b.txIds.length; i++) {
      const txId = b.txIds[i]!;
      const mine = this.#inFlight.get(txId);
      if (mine) {
        this.#inFlight.delete(txId);
        this.#inFlightEvents -= mine.count;
        ours = true;
        for (const e of mine.events) this.#recordLatency(now - e.sourceTimeMs, now - e.gatewayTimeMs);
      } else if (!this.#o.isOwnPending(txId)) {
        continue;
      }
      receipts.push({ txId, height: b.height, blockHash: b.blockHash, txIndex: i });
    }
    if (ours) this.#progress();
    try {
      const n = this.#o.markCommitted(receipts, now, { [lastHeightKey]: b.height });
      this.#stats.committed += n;
      this.#lastHeight = b.height;
    } catch (err) {
      this.#stats.errors += 1;
      this.#log.error('cannot record final batches; they will be marked on replay', {
        err: (err as Error).message,
      });
    }
    if (receipts.length > 0) this.kick();
  }

  #recordLatency(ms: number, chainMs: number): void {
    this.#onFinal?.(ms, chainMs);
    if (this.#latencies.length < latencySamplesMax) {
      this.#latencies.push(ms);
      this.#chainLatencies.push(chainMs);
    } else {
      const i = this.#latencyNext++ % latencySamplesMax;
      this.#latencies[i] = ms;
      this.#chainLatencies[i] = chainMs;
    }
  }

  stats(): SubmitterStats {
    const quantiles = (samples: number[]) => {
      const sorted = [...samples].sort((a, b) => a - b);
      const at = (q: number) =>
        sorted.length ? sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))]! : 0;
      return { p50: at(0.5), p99: at(0.99) };
    };
    return {
      ...this.#stats,
      inFlight: this.#inFlightEvents,
      refused: { ...this.#refused },
      lastHeight: this.#lastHeight,
      latencyMs: { ...quantiles(this.#latencies), samples: this.#latencies.length },
      chainLatencyMs: quantiles(this.#chainLatencies),
    };
  }

  async stop(): Promise<void> {
    this.#running = false;
    clearTimeout(this.#timer);
    this.#timer = undefined;
    this.#unsubscribe?.();
    await this.#busy;
  }
}
