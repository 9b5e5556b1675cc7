/**
 * What every driver shares: the start/stop lifecycle, the reconnect loop with bounded exponential
 * backoff, the emission gate that guarantees nothing is emitted after stop(), health counters, and
 * rate-limited logging. A protocol implements one method, {@link DriverBase.session}: connect, acquire
 * until the connection is lost or the signal aborts, and release everything it opened.
 */
import {
  connectionStableMs,
  logIntervalMs,
  logKeysMax,
  readLatencyBucketsMs,
  reconnectInitialDelayMs,
  stopTimeoutMs,
} from '../bounds.ts';
import type {
  Driver,
  DriverContext,
  DriverHealth,
  DriverState,
  OnceOptions,
  OnceResult,
  Reading,
  ReadLatency,
} from '../types.ts';

/** Exponential backoff with equal jitter: each delay is in [d/2, d], d doubling up to maxMs. */
export class Backoff {
  readonly #initialMs: number;
  readonly #maxMs: number;
  readonly #random: () => number;
  #attempt = 0;

  constructor(maxMs: number, initialMs = reconnectInitialDelayMs, random: () => number = Math.random) {
    this.#initialMs = Math.min(initialMs, maxMs);
    this.#maxMs = maxMs;
    this.#random = random;
  }

  next(): number {
    const d = Math.min(this.#maxMs, this.#initialMs * 2 ** Math.min(this.#attempt, 30));
    this.#attempt++;
    return Math.round(d / 2 + (this.#random() * d) / 2);
  }

  reset(): void {
    this.#attempt = 0;
  }

  get attempts(): number {
    return this.#attempt;
  }
}

/** Resolves after `ms`, or early (with false) when the signal aborts. Never rejects. */
export function sleep(ms: number, signal: AbortSignal): Promise<boolean> {
  if (signal.aborted) return Promise.resolve(false);
  return new Promise((resolve) => {
    const onAbort = () => {
      clearTimeout(timer);
      resolve(false);
    };
    const timer = setTimeout(() => {
      signal.removeEventListener('abort', onAbort);
      resolve(true);
    }, ms);
    signal.addEventListener('abort', onAbort, { once: true });
  });
}

/** A promise that resolves when the signal aborts (for racing against I/O that ignores signals). */
export function aborted(signal: AbortSignal): Promise<void> {
  if (signal.aborted) return Promise.resolve();
  return new Promise((resolve) => signal.addEventListener('abort', () => resolve(), { once: true }));
}

/** Allows one log line per key per interval; counts what it suppressed. Bounded in keys. */
export class LogLimiter {
  readonly #intervalMs: number;
  readonly #keysMax: number;
  readonly #last = new Map<string, { atMs: number; suppressed: number }>();

  constructor(intervalMs = logIntervalMs, keysMax = logKeysMax) {
    this.#intervalMs = intervalMs;
    this.#keysMax = keysMax;
  }

  /** Returns null to stay quiet, or how many lines were suppressed since the last one let through. */
  allow(key: string, nowMs: number): number | null {
    const entry = this.#last.get(key);
    if (entry && nowMs - entry.atMs < this.#intervalMs) {
      entry.suppressed++;
      return null;
    }
    if (!entry && this.#last.size >= this.#keysMax) this.#last.clear();
    const suppressed = entry?.suppressed ?? 0;
    this.#last.set(key, { atMs: nowMs, suppressed: 0 });
    return suppressed;
  }
}

/**
 * The text of anything thrown or rejected. Protocol libraries do not always reject with an Error:
 * modbus-serial rejects a timeout with a plain `{ name, message, errno }` object, which String()
 * would turn into "[object Object]".
 */
export function errorMessage(err: unknown): string {
  if (err instanceof Error) return err.message || err.name;
  if (err !== null && typeof err === 'object') {
    const { message, name, errno } = err as { message?: unknown; name?: unknown; errno?: unknown };
    const text = [message, name, errno].find((x): x is string => typeof x === 'string' && x !== '');
    if (text !== undefined) return text;
    try {
      return JSON.stringify(err).slice(0, 200);
    } catch {
      return Object.prototype.toString.call(err);
    }
  }
  return String(err);
}

/** What a protocol's {@link DriverBase.acquireOnce} found; the base adds timing and bad-tag problems. */
export interface OnceAcquired {
  batches: Reading[][];
  /** Failures that are not a bad reading: could not connect, a subscription refused … */
  problems: string[];
  notes?: string[];
  /** MQTT topic filters that delivered no message (not a failure: see OnceResult.silent). */
  silent?: string[];
}

/** Tag names listed per problem line before "+N more". */
const problemTagsListed = 8;

/** One line per reason of the bad readings: `timeout (unit 2): lotId, partsTotal, +3 more`. */
export function badReadingProblems(batches: readonly (readonly Reading[])[]): string[] {
  const byReason = new Map<string, string[]>();
  for (const batch of batches) {
    for (const r of batch) {
      if (r.quality !== 'bad') continue;
      const reason = r.reason ?? 'bad quality';
      const tags = byReason.get(reason) ?? [];
      tags.push(r.tag);
      byReason.set(reason, tags);
    }
  }
  return [...byReason].map(([reason, tags]) => {
    const listed = tags.slice(0, problemTagsListed).join(', ');
    const more = tags.length > problemTagsListed ? `, +${tags.length - problemTagsListed} more` : '';
    return `${reason}: ${listed}${more}`;
  });
}

/**
 * Base of every driver. Subclasses implement {@link session}; the base runs it in a loop:
 * connecting → (session runs while connected) → backoff → connecting …, until stop().
 */
export abstract class DriverBase implements Driver {
  readonly device: string;
  readonly protocol: string;
  protected readonly ctx: DriverContext;
  protected readonly now: () => number;
  protected readonly logLimiter = new LogLimiter();
  readonly #backoff: Backoff;
  #state: DriverState = 'stopped';
  #abort: AbortController | null = null;
  #loop: Promise<void> | null = null;
  /** The emission gate: false from the first instant of stop(), so nothing leaks out afterwards. */
  #emitting = false;
  #readings = 0;
  #lastGoodReadMs: number | null = null;
  #errors: Record<string, number> = {};
  #reconnects = 0;
  #connectedOnce = false;
  #connectedAtMs = 0;
  #lastError: string | undefined;
  /** Read round trips by bucket (readLatencyBucketsMs): constant memory. */
  readonly #readLatency = {
    counts: new Array<number>(readLatencyBucketsMs.length + 1).fill(0),
    count: 0,
    sumMs: 0,
  };

  constructor(device: string, protocol: string, ctx: DriverContext, reconnectMaxDelayMs: number) {
    this.device = device;
    this.protocol = protocol;
    this.ctx = ctx;
    this.now = ctx.nowMs ?? Date.now;
    this.#backoff = new Backoff(reconnectMaxDelayMs);
  }

  /**
   * One connection's life: connect, call {@link markConnected}, acquire until the connection is lost
   * (reject or resolve) or `signal` aborts (resolve promptly), and close everything opened — in every
   * case, including an abort in the middle of connecting.
   */
  protected abstract session(signal: AbortSignal): Promise<void>;

  /**
   * One acquisition on a connection of its own (see {@link Driver.readOnce}): connect, read every tag
   * once, close everything, in every case. `signal` aborts at the deadline: return promptly with what
   * was read and say what is missing. Must not call emit() or anything in the context.
   */
  protected abstract acquireOnce(signal: AbortSignal, options: OnceOptions): Promise<OnceAcquired>;

  /** Protocol detail for health() (per-unit state, dead letters …). */
  protected detail(): Record<string, unknown> | undefined {
    return undefined;
  }

  async start(): Promise<void> {
    if (this.#loop) return;
    const abort = new AbortController();
    this.#abort = abort;
    this.#emitting = true;
    this.#state = 'connecting';
    this.#loop = this.#run(abort.signal);
  }

  async stop(): Promise<void> {
    const loop = this.#loop;
    if (!loop) return;
    this.#emitting = false;
    this.#abort?.abort();
    let timer: NodeJS.Timeout | undefined;
    const timedOut = await Promise.race([
      loop.then(() => false),
      new Promise<boolean>((resolve) => {
        timer = setTimeout(() => resolve(true), stopTimeoutMs);
      }),
    ]);
    clearTimeout(timer);
    if (timedOut) {
      this.ctx.log.warn('driver did not wind down in time; stopped anyway', {
        device: this.device,
        timeoutMs: stopTimeoutMs,
      });
    }
    this.#loop = null;
    this.#abort = null;
    this.#state = 'stopped';
  }

  async readOnce(options: OnceOptions): Promise<OnceResult> {
    if (this.#loop) throw new Error(`device ${this.device}: readOnce needs a driver that is not running`);
    const startedMs = performance.now();
    const abort = new AbortController();
    const deadline = setTimeout(() => abort.abort(), options.timeoutMs);
    let hardStop: NodeJS.Timeout | undefined;
    let got: OnceAcquired;
    try {
      // A protocol library that ignores the abort must not hang the caller: give it stopTimeoutMs more.
      got = await Promise.race([
        this.acquireOnce(abort.signal, options),
        new Promise<OnceAcquired>((resolve) => {
          hardStop = setTimeout(
            () =>
              resolve({
                batches: [],
                problems: [`did not finish within ${options.timeoutMs + stopTimeoutMs} ms`],
              }),
            options.timeoutMs + stopTimeoutMs,
          );
        }),
      ]);
    } catch (err) {
      got = { batches: [], problems: [errorMessage(err)] };
    } finally {
      clearTimeout(deadline);
      clearTimeout(hardStop);
    }
    const batches = got.batches.filter((b) => b.length > 0);
    // One line each: protocol libraries put line breaks in their messages.
    const problems = [...got.problems, ...badReadingProblems(batches)].map((p) =>
      p.replace(/\s+/g, ' ').trim(),
    );
    const silent = got.silent ?? [];
    if (problems.length === 0 && batches.length === 0 && silent.length === 0) problems.push('no readings');
    return {
      device: this.device,
      protocol: this.protocol,
      batches,
      complete: problems.length === 0,
      problems,
      silent,
      notes: got.notes ?? [],
      elapsedMs: Math.round(performance.now() - startedMs),
    };
  }

  health(): DriverHealth {
    const h: DriverHealth = {
      device: this.device,
      protocol: this.protocol,
      state: this.#state,
      lastGoodReadMs: this.#lastGoodReadMs,
      readings: this.#readings,
      errors: { ...this.#errors },
      reconnects: this.#reconnects,
    };
    if (this.#lastError !== undefined) h.lastError = this.#lastError;
    if (this.#readLatency.count > 0) h.readLatency = this.#readLatencyView();
    const detail = this.detail();
    if (detail) h.detail = detail;
    return h;
  }

  /**
   * Starts timing one request/response read; call the returned function when its answer arrived (not
   * on failure: failures are counted as errors). Feeds health().readLatency.
   */
  protected timeRead(): () => void {
    const started = performance.now();
    return () => {
      const ms = performance.now() - started;
      const l = this.#readLatency;
      let i = 0;
      while (i < readLatencyBucketsMs.length && ms > readLatencyBucketsMs[i]!) i++;
      l.counts[i]!++;
      l.count++;
      l.sumMs += ms;
    };
  }

  #readLatencyView(): ReadLatency {
    const l = this.#readLatency;
    return { bucketsMs: readLatencyBucketsMs, counts: [...l.counts], count: l.count, sumMs: l.sumMs };
  }

  /** True between start() and stop(): the driver may emit. */
  protected get running(): boolean {
    return this.#emitting;
  }

  protected markConnected(): void {
    this.#state = 'connected';
    this.#connectedAtMs = this.now();
    if (this.#connectedOnce) this.#reconnects++;
    this.#connectedOnce = true;
    this.ctx.log.info('connected', { device: this.device, protocol: this.protocol });
  }

  /** Hands a batch to the consumer, unless stopped. */
  protected emit(batch: Reading[]): void {
    if (!this.#emitting || batch.length === 0) return;
    this.#readings += batch.length;
    for (let i = batch.length - 1; i >= 0; i--) {
      if (batch[i]!.quality === 'good') {
        this.#lastGoodReadMs = this.now();
        break;
      }
    }
    try {
      this.ctx.onReadings(batch);
    } catch (err) {
      this.countError('consumer', err);
    }
  }

  /** Counts an operating error under `reason` and logs it, at most once per interval per reason. */
  protected countError(reason: string, err?: unknown, fields?: Record<string, unknown>): void {
    this.#errors[reason] = (this.#errors[reason] ?? 0) + 1;
    const message = err === undefined ? reason : errorMessage(err);
    this.#lastError = message;
    const suppressed = this.logLimiter.allow(`${reason}:${fields?.key ?? ''}`, this.now());
    if (suppressed === null) return;
    this.ctx.log.warn(message, {
      device: this.device,
      reason,
      ...fields,
      ...(suppressed > 0 ? { suppressed } : {}),
    });
  }

  async #run(signal: AbortSignal): Promise<void> {
    while (!signal.aborted) {
      this.#state = 'connecting';
      try {
        await this.session(signal);
        if (!signal.aborted) this.countError('disconnected', new Error('connection closed'));
      } catch (err) {
        if (!signal.aborted) this.countError(failureReason(err), err);
      }
      if (signal.aborted) break;
      if (
        (this.#state as DriverState) === 'connected' &&
        this.now() - this.#connectedAtMs >= connectionStableMs
      ) {
        this.#backoff.reset();
      }
      this.#state = 'backoff';
      await sleep(this.#backoff.next(), signal);
    }
  }
}

/** A driver error with a stable reason key for the error counters. */
export class DriverError extends Error {
  readonly reason: string;
  constructor(reason: string, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'DriverError';
    this.reason = reason;
  }
}

function failureReason(err: unknown): string {
  if (err instanceof DriverError) return err.reason;
  return 'connect';
}
