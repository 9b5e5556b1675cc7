/**
 * The submitter moves signed events from the outbox to the alliance chain. It marks an event
 * committed only when it sees the event's id in a final block: an acknowledgement is finality, not a
 * socket write.
 *
 * Exactly once:
 * - Events are submitted oldest first, in seq order, because validators accept a gateway's events only
 *   in seq order (docs/ledger.md).
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
 * Bounds: at most `windowEvents` events are in flight. Submission is rate-limited to
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
  submitted: number;
  resubmitted: number;
  committed: number;
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
  /** id → (seq, first submission time, source and gateway time). Insertion order = seq order. */
  readonly #inFlight = new Map<
    string,
    { seq: number; sentMs: number; sourceTimeMs: number; gatewayTimeMs: number }
  >();
  #lastSubmittedSeq = 0;
  /** When one of our events last became final (ms, the submitter's clock). */
  #lastProgressMs = -Infinity;
  /** When we last submitted everything again, and how many times in a row without progress. */
  #lastResubmitMs = -Infinity;
  #resubmitsWithoutProgress = 0;
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
  readonly #stats = { submitted: 0, resubmitted: 0, committed: 0, errors: 0 };
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
    } catch (err) {
      this.#stats.errors += 1;
      this.#log.warn('submission failed; will retry', { err: (err as Error).message });
    }
  }

  /**
   * If nothing of ours became final for `resubmitAfterMs` since the oldest in-flight event was sent,
   * start again from the oldest pending event.
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
    this.#stats.resubmitted += this.#inFlight.size;
    this.#log.info('no event final in time; submitting again from the oldest', {
      fromSeq: oldest.seq,
      inFlight: this.#inFlight.size,
    });
    this.#inFlight.clear();
    this.#lastSubmittedSeq = 0;
  }

  async #fill(): Promise<void> {
    for (;;) {
      const room = Math.min(
        this.#window - this.#inFlight.size,
        this.#batchMax,
        Math.floor(this.#takeTokens()),
      );
      if (room <= 0) return;
      const batch = this.#o.pending({ afterSeq: this.#lastSubmittedSeq, limit: room });
      if (batch.length === 0) return;
      this.#tokens -= batch.length;
      const sentMs = this.#now();
      const verdicts = await this.#chain.submit(batch.map((e) => e.json));
      if (!this.#running) return;
      let stop = false;
      batch.forEach((e, i) => {
        const v = verdicts[i];
        if (v && !v.accepted && v.reason !== 'duplicate' && v.reason !== 'committed') {
          // Refused for a reason a retry may cure (mempool full, validator catching up) or not
          // (our key unknown to the alliance): count, log, and come back to it from here later.
          this.#refused[v.reason] = (this.#refused[v.reason] ?? 0) + 1;
          if (!stop)
            this.#log.warn('event refused by the validator', {
              seq: e.seq,
              reason: v.reason,
              detail: v.detail,
            });
          stop = true;
          return;
        }
        if (stop) return;
        if (v && !v.accepted) this.#refused[v.reason] = (this.#refused[v.reason] ?? 0) + 1;
        this.#inFlight.set(e.event.id, {
          seq: e.seq,
          sentMs,
          sourceTimeMs: e.event.env.sourceTimeMs,
          gatewayTimeMs: e.event.env.gatewayTimeMs,
        });
        this.#lastSubmittedSeq = e.seq;
        this.#stats.submitted += 1;
      });
      await this.#settleCommitted(
        batch.filter((_, i) => verdicts[i]?.accepted === false && verdicts[i].reason === 'committed'),
      );
      if (stop) return;
    }
  }

  /** Events the chain says are already final (a resubmission after a restart): fetch where, mark them. */
  async #settleCommitted(events: readonly { seq: number; event: { id: string } }[]): Promise<void> {
    if (events.length === 0) return;
    const found = await this.#chain.receipts(events.map((e) => e.event.id));
    const receipts = [];
    for (let i = 0; i < events.length; i++) {
      const r = found[i];
      if (!r) continue;
      const id = events[i]!.event.id;
      this.#inFlight.delete(id);
      receipts.push({ id, height: r.height, blockHash: r.blockHash, proof: { index: r.index } });
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
    const receipts = [];
    const now = this.#now();
    let ours = false;
    for (let i = 0; i < b.txIds.length; i++) {
      const id = b.txIds[i]!;
      const mine = this.#inFlight.get(id);
      if (mine) {
        this.#inFlight.delete(id);
        ours = true;
        this.#recordLatency(now - mine.sourceTimeMs, now - mine.gatewayTimeMs);
      } else if (!this.#o.isOwnPending(id)) {
        continue;
      }
      receipts.push({
        id,
        height: b.height,
        blockHash: b.blockHash,
        proof: { index: i, txCount: b.txIds.length },
      });
    }
    if (ours) this.#progress();
    try {
      const n = this.#o.markCommitted(receipts, now, { [lastHeightKey]: b.height });
      this.#stats.committed += n;
      this.#lastHeight = b.height;
    } catch (err) {
      this.#stats.errors += 1;
      this.#log.error('cannot record final events; they will be marked on replay', {
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
      inFlight: this.#inFlight.size,
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
