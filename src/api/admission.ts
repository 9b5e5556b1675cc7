/**
 * Who gets how much of a validator's HTTP API (docs/security.md, "HTTP API"). Clients are told
 * apart by address (an IPv4 address, or an IPv6 /64) until the API has identities; then the same
 * bounds apply per credential. Hand-written because no library installed here does per-address
 * connection caps, concurrency and a CPU budget together; @fastify/rate-limit would cover only the
 * request rate.
 *
 * - connections: at most `connectionsPerAddressMax` open per address (beyond, closed at once), each
 *   bounded by the request, header, idle and keep-alive timeouts;
 * - requests: at most `requestsPerAddressMax` in progress and `requestsPerAddressPerSecond`
 *   (burst `requestsPerAddressBurst`) per address, beyond that 429 before the body is read;
 * - long-polls: `commitWaitersPerAddressMax` per address (429), `commitWaitersMax` in all (503);
 * - submissions: `submitsPerAddressMax` per address (429) and `submitsMax` in all (503) in progress,
 *   counted before the body is read, so bodies in memory stay under `submitsMax × bodyBytesMax`;
 *   and their checks run one at a time within a {@link WorkBudget}: at most `submitWorkShare` of
 *   the event loop, so a flood of forged signatures slows submissions, not consensus.
 *
 * Every refusal is counted by reason (`metrics()`, in /v1/metrics as `api`).
 *
 * @example
 *   const gate = new ClientGate(limits);
 *   gate.attach(app);                                      // connections, timeouts, rate, in progress
 *   app.post('/v1/batches', { onRequest: gate.submitSlot }, async () => gate.budget.run(() => check()));
 */
import type { Socket } from 'node:net';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import {
  type ChainClient,
  decodeSubmission,
  type SubmitBatch,
  type SubmitVerdict,
} from '../consensus/runtime/client.ts';
import { addressKey } from '../consensus/runtime/node.ts';
import type { ValidatorApiLimits } from './limits.ts';

export const apiRefusals = [
  'connections',
  'rate',
  'in-progress',
  'submits-per-address',
  'submits',
  'submit-queue',
  'waiters-per-address',
  'waiters',
] as const;
export type ApiRefusal = (typeof apiRefusals)[number];

export interface ApiAdmissionMetrics {
  refused: Record<ApiRefusal, number>;
  connections: number;
  submitsInProgress: number;
  waiters: number;
  /** Milliseconds submissions waited for the work budget, in all. */
  submitWaitedMs: number;
  /** Milliseconds of submission checks, in all. */
  submitWorkMs: number;
}

/** What per-address bounds count: an IPv4 address, or an IPv6 address's /64 (as the transport's admission). */
export function clientKey(address: string | undefined): string {
  return addressKey(address ?? '');
}

/** A refusal with its HTTP status, thrown from hooks and answered by the API's error handler. */
export class ApiBusyError extends Error {
  override readonly name = 'ApiBusyError';
  readonly statusCode: 429 | 503;
  readonly code: string;
  constructor(statusCode: 429 | 503, code: string, message: string) {
    super(message);
    this.statusCode = statusCode;
    this.code = code;
  }
}

/**
 * A budget of event-loop time: work runs one piece at a time, and only while the budget is
 * positive; each piece's duration is charged afterwards, and the budget refills at `share` ms per
 * ms up to `burstMs`. Over any stretch the work takes at most `share` of the time plus one burst
 * and one piece. Waiting pieces are taken round-robin by client (`key`), in arrival order within
 * one, so a client waits for at most one piece of each other client. At most `queueMax` wait;
 * beyond, refused.
 */
export class WorkBudget {
  readonly #share: number;
  readonly #burstMs: number;
  readonly #queueMax: number;
  #tokensMs: number;
  #lastMs = performance.now();
  #busy = false;
  /** Waiting pieces by client, in round-robin order (a Map iterates in insertion order). */
  readonly #queue = new Map<string, (() => void)[]>();
  #waiting = 0;
  #timer: NodeJS.Timeout | undefined;
  waitedMs = 0;
  workMs = 0;

  constructor(share: number, burstMs: number, queueMax: number) {
    this.#share = share;
    this.#burstMs = burstMs;
    this.#queueMax = queueMax;
    this.#tokensMs = burstMs;
  }

  async run<T>(work: () => Promise<T> | T, key = ''): Promise<T> {
    if (this.#waiting >= this.#queueMax)
      throw new ApiBusyError(503, 'submit_queue_full', `${this.#waiting} submissions waiting`);
    const t0 = performance.now();
    await new Promise<void>((resolve) => {
      const mine = this.#queue.get(key);
      if (mine) mine.push(resolve);
      else this.#queue.set(key, [resolve]);
      this.#waiting++;
      this.#pump();
    });
    const started = performance.now();
    this.waitedMs += started - t0;
    try {
      return await work();
    } finally {
      const spent = performance.now() - started;
      this.workMs += spent;
      this.#refill();
      this.#tokensMs -= spent;
      this.#busy = false;
      this.#pump();
    }
  }

  stop(): void {
    clearTimeout(this.#timer);
    for (const rs of this.#queue.values()) for (const r of rs) r();
    this.#queue.clear();
    this.#waiting = 0;
  }

  #refill(): void {
    const now = performance.now();
    this.#tokensMs = Math.min(this.#burstMs, this.#tokensMs + (now - this.#lastMs) * this.#share);
    this.#lastMs = now;
  }

  #pump(): void {
    if (this.#busy || this.#timer || this.#waiting === 0) return;
    this.#refill();
    if (this.#tokensMs > 0) {
      this.#busy = true;
      // The first client in line goes, then to the back of the line if it has more waiting.
      const [key, rs] = this.#queue.entries().next().value!;
      const next = rs.shift()!;
      this.#queue.delete(key);
      if (rs.length > 0) this.#queue.set(key, rs);
      this.#waiting--;
      next();
      return;
    }
    // Wait until the budget is positive again, leaving the loop to everything else meanwhile.
    this.#timer = setTimeout(
      () => {
        this.#timer = undefined;
        this.#pump();
      },
      Math.ceil(-this.#tokensMs / this.#share) + 1,
    );
  }
}

/** Statuses that answer a request before its body is read (too large, wrong type, over a bound). */
const refusedEarly = new Set([413, 415, 429, 503]);

/** Per-address records kept before idle ones are swept. */
const clientRecordsMax = 4_096;

interface PerAddress {
  connections: number;
  inProgress: number;
  submits: number;
  waiters: number;
  tokens: number;
  lastMs: number;
}

export class ClientGate {
  readonly budget: WorkBudget;
  readonly #l: ValidatorApiLimits;
  readonly #clients = new Map<string, PerAddress>();
  readonly #refused = Object.fromEntries(apiRefusals.map((r) => [r, 0])) as Record<ApiRefusal, number>;
  #connections = 0;
  #submits = 0;
  #waiters = 0;

  constructor(limits: ValidatorApiLimits) {
    this.#l = limits;
    this.budget = new WorkBudget(limits.submitWorkShare, limits.submitWorkBurstMs, limits.submitsMax);
  }

  /** Timeouts and per-address connection caps on the server, and the per-request hook. */
  attach(app: FastifyInstance): void {
    const server = app.server;
    server.headersTimeout = this.#l.headersTimeoutMs;
    server.keepAliveTimeout = this.#l.keepAliveTimeoutMs;
    server.on('connection', (socket: Socket) => {
      const key = clientKey(socket.remoteAddress);
      const c = this.#client(key);
      if (c.connections >= this.#l.connectionsPerAddressMax) {
        this.#refused.connections++;
        socket.destroy();
        return;
      }
      c.connections++;
      this.#connections++;
      socket.once('close', () => {
        c.connections--;
        this.#connections--;
        this.#forget(key, c);
      });
    });
    // A request refused before its body was read closes its connection: otherwise node would read
    // and discard the rest of the body (up to the route's limit) to keep the connection alive,
    // which a flooder could use to keep the event loop busy.
    app.addHook('onSend', async (req, reply) => {
      if (refusedEarly.has(reply.statusCode) && !req.raw.complete) reply.header('connection', 'close');
    });
    app.addHook('onRequest', async (req, reply) => {
      const key = clientKey(req.socket.remoteAddress);
      const c = this.#client(key);
      const now = performance.now();
      c.tokens = Math.min(
        this.#l.requestsPerAddressBurst,
        c.tokens + ((now - c.lastMs) * this.#l.requestsPerAddressPerSecond) / 1000,
      );
      c.lastMs = now;
      if (c.tokens < 1)
        throw this.#refuse('rate', 429, 'rate_limited', 'too many requests from this address');
      c.tokens--;
      if (c.inProgress >= this.#l.requestsPerAddressMax)
        throw this.#refuse('in-progress', 429, 'too_many_requests', `${c.inProgress} requests in progress`);
      c.inProgress++;
      this.#onDone(reply, () => {
        c.inProgress--;
        this.#forget(key, c);
      });
    });
  }

  /** Route hook of POST /v1/batches: a submission slot, taken before its body is read. */
  readonly submitSlot = async (req: FastifyRequest, reply: FastifyReply): Promise<void> => {
    const c = this.#client(clientKey(req.socket.remoteAddress));
    if (c.submits >= this.#l.submitsPerAddressMax)
      throw this.#refuse(
        'submits-per-address',
        429,
        'too_many_submissions',
        `${c.submits} submissions in progress`,
      );
    if (this.#submits >= this.#l.submitsMax)
      throw this.#refuse('submits', 503, 'busy', `${this.#submits} submissions in progress`);
    c.submits++;
    this.#submits++;
    this.#onDone(reply, () => {
      c.submits--;
      this.#submits--;
    });
  };

  /** A long-poll slot for GET /v1/commits; the returned function gives it back. */
  waiter(req: FastifyRequest): () => void {
    const c = this.#client(clientKey(req.socket.remoteAddress));
    if (c.waiters >= this.#l.commitWaitersPerAddressMax)
      throw this.#refuse('waiters-per-address', 429, 'too_many_waiters', `${c.waiters} requests waiting`);
    if (this.#waiters >= this.#l.commitWaitersMax)
      throw this.#refuse('waiters', 503, 'busy', `more than ${this.#l.commitWaitersMax} requests waiting`);
    c.waiters++;
    this.#waiters++;
    let given = false;
    return () => {
      if (given) return;
      given = true;
      c.waiters--;
      this.#waiters--;
    };
  }

  metrics(): ApiAdmissionMetrics {
    return {
      refused: { ...this.#refused },
      connections: this.#connections,
      submitsInProgress: this.#submits,
      waiters: this.#waiters,
      submitWaitedMs: Math.round(this.budget.waitedMs),
      submitWorkMs: Math.round(this.budget.workMs),
    };
  }

  stop(): void {
    this.budget.stop();
  }

  #refuse(reason: ApiRefusal, status: 429 | 503, code: string, message: string): ApiBusyError {
    this.#refused[reason]++;
    return new ApiBusyError(status, code, message);
  }

  #client(key: string): PerAddress {
    let c = this.#clients.get(key);
    if (!c) {
      c = {
        connections: 0,
        inProgress: 0,
        submits: 0,
        waiters: 0,
        tokens: this.#l.requestsPerAddressBurst,
        lastMs: performance.now(),
      };
      this.#clients.set(key, c);
    }
    return c;
  }

  /**
   * Drops an address's record once it holds nothing and its token bucket is full again (a partly
   * spent bucket is kept, or reconnecting would reset the rate limit). Records that linger idle are
   * swept whenever there are more than `clientRecordsMax`.
   */
  #forget(key: string, c: PerAddress): void {
    if (this.#idle(c)) this.#clients.delete(key);
    if (this.#clients.size > clientRecordsMax) {
      for (const [k, x] of this.#clients) if (this.#idle(x)) this.#clients.delete(k);
    }
  }

  #idle(c: PerAddress): boolean {
    if (c.connections > 0 || c.inProgress > 0 || c.submits > 0 || c.waiters > 0) return false;
    const refilled = c.tokens + ((performance.now() - c.lastMs) * this.#l.requestsPerAddressPerSecond) / 1000;
    return refilled >= this.#l.requestsPerAddressBurst;
  }

  /** Calls `done` once, when the response is finished or the connection closed. */
  #onDone(reply: FastifyReply, done: () => void): void {
    let called = false;
    const once = () => {
      if (called) return;
      called = true;
      done();
    };
    reply.raw.once('close', once);
    reply.raw.once('finish', once);
  }
}

/**
 * POST /v1/batches past its slot: decodes the body, then submits its batches in order, in pieces
 * of at most `submitPieceBytesMax` transaction bytes (a gateway's largest call is one piece), each
 * within the work budget, so one request of many large forged batches cannot hold the event loop
 * for longer than one piece.
 */
export async function submitInPieces<R = never>(
  budget: WorkBudget,
  chain: ChainClient,
  body: Uint8Array,
  limits: Pick<ValidatorApiLimits, 'submitBatchesMax' | 'submitPieceBytesMax'>,
  key: string,
  /** The caller's screen (the authorisation policy): a refusal of any batch refuses the request. */
  screen?: (batch: SubmitBatch) => R | null,
): Promise<{ verdicts: SubmitVerdict[] } | { status: 400 | 413; error: string } | { refused: R }> {
  const decoded = decodeSubmission(body);
  if (!decoded.ok) return { status: decoded.error.startsWith('at most') ? 413 : 400, error: decoded.error };
  if (decoded.batches.length > limits.submitBatchesMax)
    return { status: 413, error: `at most ${limits.submitBatchesMax} batches per request` };
  if (screen)
    for (const b of decoded.batches) {
      const refused = screen(b);
      if (refused) return { refused };
    }
  const pieces: SubmitBatch[][] = [];
  let bytes = Infinity;
  for (const b of decoded.batches) {
    if (bytes + b.tx.byteLength > limits.submitPieceBytesMax) {
      pieces.push([]);
      bytes = 0;
    }
    pieces.at(-1)!.push(b);
    bytes += b.tx.byteLength;
  }
  const verdicts: SubmitVerdict[] = [];
  for (const piece of pieces) verdicts.push(...(await budget.run(() => chain.submit(piece), key)));
  return { verdicts };
}
