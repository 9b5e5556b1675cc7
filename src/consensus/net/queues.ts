/**
 * The two queues every transport has: a bounded outbound queue per peer, and the inbound
 * dispatcher that hands messages to the consumer one at a time, fairly across peers.
 */
import { messageOverheadBytes } from './limits.ts';
import type { MemberId, MessageHandler } from './types.ts';

/** Queue and credit cost of a message: its payload plus {@link messageOverheadBytes}. */
export function messageCost(payload: Uint8Array): number {
  return payload.byteLength + messageOverheadBytes;
}

/** A FIFO of byte arrays with O(1) push and shift. */
class Fifo<T> {
  #items: (T | undefined)[] = [];
  #head = 0;

  get length(): number {
    return this.#items.length - this.#head;
  }

  push(item: T): void {
    this.#items.push(item);
  }

  peek(): T | undefined {
    return this.#items[this.#head];
  }

  shift(): T | undefined {
    if (this.#head >= this.#items.length) return undefined;
    const item = this.#items[this.#head];
    this.#items[this.#head++] = undefined;
    // Compact once the consumed prefix dominates, so the array never grows without bound.
    if (this.#head > 1024 && this.#head * 2 > this.#items.length) {
      this.#items = this.#items.slice(this.#head);
      this.#head = 0;
    }
    return item;
  }

  clear(): void {
    this.#items = [];
    this.#head = 0;
  }
}

/**
 * Messages waiting to be written to one peer, bounded by count and by cost (bytes + overhead).
 *
 * Overflow policy: drop the OLDEST. Consensus moves forward, so the newest messages (the current
 * view and height) are the ones that let a slow or returning peer take part again; what it missed
 * it recovers by block sync and retransmission. The caller counts what `push` reports dropped.
 *
 * Each message keeps the time it was queued, so that a transport can drop what went stale while
 * its peer was away ({@link dropQueuedBefore}).
 */
export class OutboundQueue {
  readonly messagesMax: number;
  readonly costMax: number;
  readonly #fifo = new Fifo<Uint8Array>();
  /** When each message in #fifo was queued (ms), in the same order. */
  readonly #queuedAt = new Fifo<number>();
  #cost = 0;
  readonly #waiters = new Set<{ cost: number; resolve(): void; reject(err: unknown): void }>();

  constructor(messagesMax: number, costMax: number) {
    this.messagesMax = messagesMax;
    this.costMax = costMax;
  }

  get length(): number {
    return this.#fifo.length;
  }

  /** Total cost of the queued messages (payload bytes + per-message overhead). */
  get cost(): number {
    return this.#cost;
  }

  /** Whether a message of this cost fits without evicting anything. */
  fits(cost: number): boolean {
    return this.#fifo.length < this.messagesMax && this.#cost + cost <= this.costMax;
  }

  /** Appends `payload`, evicting the oldest messages until it fits; returns how many were evicted. */
  push(payload: Uint8Array, nowMs = Date.now()): number {
    const cost = messageCost(payload);
    if (cost > this.costMax) throw new RangeError(`message cost ${cost} exceeds the queue (${this.costMax})`);
    let evicted = 0;
    while (!this.fits(cost)) {
      this.shift();
      evicted++;
    }
    this.#fifo.push(payload);
    this.#queuedAt.push(nowMs);
    this.#cost += cost;
    return evicted;
  }

  peek(): Uint8Array | undefined {
    return this.#fifo.peek();
  }

  shift(): Uint8Array | undefined {
    const p = this.#fifo.shift();
    if (!p) return undefined;
    this.#queuedAt.shift();
    this.#cost -= messageCost(p);
    for (const w of this.#waiters) if (this.fits(w.cost)) w.resolve();
    return p;
  }

  /** Drops the messages queued before `cutoffMs` (they are the oldest); returns how many. */
  dropQueuedBefore(cutoffMs: number): number {
    let dropped = 0;
    for (let at = this.#queuedAt.peek(); at !== undefined && at < cutoffMs; at = this.#queuedAt.peek()) {
      this.shift();
      dropped++;
    }
    return dropped;
  }

  /** Resolves once a payload of `bytes` fits without evicting anything (see Transport.waitForCapacity). */
  waitForRoom(bytes: number, signal?: AbortSignal): Promise<void> {
    const cost = bytes + messageOverheadBytes;
    if (cost > this.costMax) return Promise.reject(new RangeError(`${bytes} bytes can never fit the queue`));
    if (this.fits(cost)) return Promise.resolve();
    if (signal?.aborted) return Promise.reject(signal.reason);
    return new Promise((resolve, reject) => {
      const onAbort = () => waiter.reject(signal!.reason);
      const settle = () => {
        this.#waiters.delete(waiter);
        signal?.removeEventListener('abort', onAbort);
      };
      const waiter = {
        cost,
        resolve: () => {
          settle();
          resolve();
        },
        reject: (err: unknown) => {
          settle();
          reject(err);
        },
      };
      signal?.addEventListener('abort', onAbort, { once: true });
      this.#waiters.add(waiter);
    });
  }

  /** Empties the queue and fails every {@link waitForRoom} with `reason`. */
  close(reason: Error): void {
    this.#fifo.clear();
    this.#queuedAt.clear();
    this.#cost = 0;
    for (const w of this.#waiters) w.reject(reason);
  }
}

interface Inbound {
  payload: Uint8Array;
  cost: number;
}

export interface DispatcherHooks {
  /** The handler is done with a message of this cost from `from`: return its credit. */
  released(from: MemberId, cost: number): void;
  handlerError(from: MemberId, error: unknown): void;
  /** Messages delivered to synchronous handlers before yielding to the event loop. */
  deliveryBatchMax: number;
}

/**
 * Inbound messages, one FIFO per peer, delivered to the handler one at a time. Peers are served
 * round-robin, one message each per turn, so a flooding peer delays the others by at most one
 * message each. The dispatcher itself does not bound anything: each peer's queue is bounded by
 * the credit the transport granted it, and the transport checks that before `enqueue`.
 */
export class Dispatcher {
  readonly #hooks: DispatcherHooks;
  readonly #queues = new Map<MemberId, { fifo: Fifo<Inbound>; cost: number }>();
  /** Peers with queued messages, in service order. Each appears at most once. */
  readonly #ready = new Fifo<MemberId>();
  #handler: MessageHandler | undefined;
  #pumping = false;
  #scheduled = false;
  #stopped = false;
  #idle: PromiseWithResolvers<void> | undefined;

  constructor(hooks: DispatcherHooks) {
    this.#hooks = hooks;
  }

  setHandler(handler: MessageHandler): void {
    this.#handler = handler;
    this.#schedule();
  }

  /** Cost of what `from` has queued. */
  queued(from: MemberId): number {
    return this.#queues.get(from)?.cost ?? 0;
  }

  enqueue(from: MemberId, payload: Uint8Array, cost: number): void {
    if (this.#stopped) return;
    let q = this.#queues.get(from);
    if (!q) {
      q = { fifo: new Fifo(), cost: 0 };
      this.#queues.set(from, q);
    }
    if (q.fifo.length === 0) this.#ready.push(from);
    q.fifo.push({ payload, cost });
    q.cost += cost;
    this.#schedule();
  }

  /** Resolves when nothing is queued and no handler call is running. */
  idle(): Promise<void> {
    if (!this.#pumping && !this.#scheduled && (this.#ready.length === 0 || !this.#handler)) {
      return Promise.resolve();
    }
    this.#idle ??= Promise.withResolvers();
    return this.#idle.promise;
  }

  /** Discards everything queued; nothing is delivered afterwards. */
  stop(): void {
    this.#stopped = true;
    this.#queues.clear();
    this.#ready.clear();
    this.#settleIdle();
  }

  // Delivery starts from a microtask, never inside enqueue: a handler that sends (and, in the
  // in-memory network, receives) must not recurse into the dispatcher that called it.
  #schedule(): void {
    if (this.#pumping || this.#scheduled || !this.#handler || this.#stopped) return;
    this.#scheduled = true;
    queueMicrotask(() => {
      this.#scheduled = false;
      void this.#pump();
    });
  }

  async #pump(): Promise<void> {
    if (this.#pumping) return;
    this.#pumping = true;
    try {
      let sinceYield = 0;
      for (;;) {
        const handler = this.#handler;
        if (!handler || this.#stopped) break;
        const from = this.#ready.shift();
        if (from === undefined) break;
        const q = this.#queues.get(from)!;
        const m = q.fifo.shift()!;
        if (q.fifo.length > 0) this.#ready.push(from);
        try {
          const result: unknown = handler(from, m.payload);
          if (result instanceof Promise) {
            await result;
            sinceYield = 0;
          }
        } catch (err) {
          this.#hooks.handlerError(from, err);
        }
        if (this.#stopped) break;
        q.cost -= m.cost;
        this.#hooks.released(from, m.cost);
        if (++sinceYield >= this.#hooks.deliveryBatchMax) {
          sinceYield = 0;
          await new Promise((resolve) => setImmediate(resolve));
        }
      }
    } finally {
      this.#pumping = false;
    }
    this.#settleIdle();
  }

  #settleIdle(): void {
    if (this.#pumping || this.#scheduled) return;
    const idle = this.#idle;
    this.#idle = undefined;
    idle?.resolve();
  }
}
