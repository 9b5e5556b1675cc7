/**
 * An in-memory network of transports with the same interface and the same bounds as the libp2p
 * one, for tests of everything above the transport. No sockets and no timers (except a request's
 * own timeout): delivery happens from microtasks ('auto') or only when the test says so
 * ('manual', with {@link MemoryNetwork.deliverOne} and {@link MemoryNetwork.flush}), and is
 * deterministic either way: directed links are served round-robin in a fixed order.
 *
 * Same semantics as libp2p: per-link FIFO, a bounded outbound queue per link that drops its oldest
 * message when full, and credit: a link delivers only while the receiver holds less than
 * `windowBytes` of that sender's messages unconsumed, so a slow consumer backs messages up into
 * the sender's queue exactly as it does over TCP. Payloads are copied on delivery, as a wire would.
 *
 * Misbehaviour has no timer here: `reportMisbehaviour` takes the pair's link down until the test
 * calls `setLink(a, b, 'up')`.
 *
 * @example
 *   const net = new MemoryNetwork(genesis, { delivery: 'manual' });
 *   const [a, b] = ['member-1', 'member-2'].map((m) => net.transport(m));
 *   b.onMessage((from, bytes) => seen.push([from, bytes]));
 *   await Promise.all([a.start(), b.start()]);
 *   a.send('member-2', bytes);
 *   await net.flush();
 */
import type { Genesis } from '../genesis/genesis.ts';
import { noAdmission } from './admission.ts';
import { MessageTooLargeError, NotAPeerError, RequestError, TransportStoppedError } from './errors.ts';
import { type TransportLimits, transportLimits } from './limits.ts';
import { Dispatcher, messageCost, OutboundQueue } from './queues.ts';
import { deadline, raceAbort } from './signals.ts';
import {
  type MemberId,
  type MessageHandler,
  newPeerMetrics,
  type PeerMetrics,
  type PeerState,
  type PeerStateListener,
  type PeerStatus,
  type RequestHandler,
  type RequestOptions,
  type Transport,
  type TransportMetrics,
} from './types.ts';

export interface MemoryNetworkOptions {
  /** 'auto' (default): messages move on their own, from microtasks. 'manual': only when told. */
  delivery?: 'auto' | 'manual';
  limits?: Partial<TransportLimits>;
}

interface DirectedLink {
  from: MemberId;
  to: MemberId;
  queue: OutboundQueue;
}

export class MemoryNetwork {
  readonly genesis: Genesis;
  readonly limits: TransportLimits;
  readonly #delivery: 'auto' | 'manual';
  readonly #transports = new Map<MemberId, MemoryTransport>();
  /** All directed links, in a fixed order; `#cursor` is where the round-robin resumes. */
  readonly #links: DirectedLink[] = [];
  readonly #linkIndex = new Map<string, DirectedLink>();
  /** Unordered pairs whose link is down, keyed `a\0b` with a < b. */
  readonly #down = new Set<string>();
  #cursor = 0;
  #pumpScheduled = false;

  constructor(genesis: Genesis, options: MemoryNetworkOptions = {}) {
    this.genesis = genesis;
    this.limits = transportLimits(genesis, options.limits);
    this.#delivery = options.delivery ?? 'auto';
    for (const a of genesis.validators) {
      for (const b of genesis.validators) {
        if (a === b) continue;
        const link = {
          from: a.memberId,
          to: b.memberId,
          queue: new OutboundQueue(this.limits.outboundQueueMessagesMax, this.limits.outboundQueueBytesMax),
        };
        this.#links.push(link);
        this.#linkIndex.set(`${a.memberId}\0${b.memberId}`, link);
      }
    }
  }

  /** The transport of `memberId` (one per member; repeated calls return the same one until it stops). */
  transport(memberId: MemberId): MemoryTransport {
    let t = this.#transports.get(memberId);
    if (!t || t.phase === 'stopped') {
      if (!this.genesis.byMemberId(memberId)) throw new NotAPeerError(`"${memberId}" is not a validator`);
      t = new MemoryTransport(this, memberId);
      this.#transports.set(memberId, t);
    }
    return t;
  }

  /** Takes the link between `a` and `b` down (both directions) or back up. Queued messages wait. */
  setLink(a: MemberId, b: MemberId, state: 'up' | 'down'): void {
    const key = pairKey(a, b);
    if (state === 'down') this.#down.add(key);
    else this.#down.delete(key);
    this.topologyChanged();
  }

  linkUp(a: MemberId, b: MemberId): boolean {
    return !this.#down.has(pairKey(a, b));
  }

  /** Moves one message to its receiver (round-robin over links); false when none can move. */
  deliverOne(): boolean {
    const count = this.#links.length;
    for (let i = 0; i < count; i++) {
      const link = this.#links[(this.#cursor + i) % count]!;
      if (!this.#deliverable(link)) continue;
      this.#cursor = (this.#cursor + i + 1) % count;
      const payload = link.queue.shift()!;
      const copy = payload.slice();
      const sender = this.#transports.get(link.from)!;
      const receiver = this.#transports.get(link.to)!;
      sender.countOut(link.to, copy.byteLength);
      receiver.receive(link.from, copy);
      return true;
    }
    return false;
  }

  /** Delivers until no message can move and every handler has finished. */
  async flush(): Promise<void> {
    for (;;) {
      while (this.deliverOne());
      await Promise.all([...this.#transports.values()].map((t) => t.idle()));
      if (!this.#links.some((l) => this.#deliverable(l))) return;
    }
  }

  // --- used by MemoryTransport ---------------------------------------------------------------

  queue(from: MemberId, to: MemberId): OutboundQueue {
    return this.#linkIndex.get(`${from}\0${to}`)!.queue;
  }

  running(memberId: MemberId): MemoryTransport | undefined {
    const t = this.#transports.get(memberId);
    return t?.phase === 'running' ? t : undefined;
  }

  /** Something may have become deliverable. */
  kick(): void {
    if (this.#delivery === 'manual' || this.#pumpScheduled) return;
    this.#pumpScheduled = true;
    queueMicrotask(() => {
      this.#pumpScheduled = false;
      while (this.deliverOne());
    });
  }

  /** A link or a transport went up or down: peer states may have changed, messages may move. */
  topologyChanged(): void {
    for (const t of this.#transports.values()) t.refreshStates();
    this.kick();
  }

  #deliverable(link: DirectedLink): boolean {
    const head = link.queue.peek();
    if (!head || !this.linkUp(link.from, link.to)) return false;
    const receiver = this.running(link.to);
    if (!this.running(link.from) || !receiver) return false;
    // The credit rule of the libp2p transport: at most windowBytes unconsumed per sender.
    return receiver.queuedFrom(link.from) + messageCost(head) <= this.limits.windowBytes;
  }
}

function pairKey(a: MemberId, b: MemberId): string {
  return a < b ? `${a}\0${b}` : `${b}\0${a}`;
}

export class MemoryTransport implements Transport {
  readonly self: MemberId;
  readonly #net: MemoryNetwork;
  readonly #others: MemberId[];
  readonly #metrics = new Map<MemberId, PeerMetrics>();
  readonly #states = new Map<MemberId, PeerState>();
  readonly #peaks = new Map<MemberId, number>();
  readonly #reported = new Map<MemberId, NonNullable<PeerStatus['lastDrop']>>();
  readonly #stateListeners: PeerStateListener[] = [];
  readonly #dispatcher: Dispatcher;
  readonly #stop = new AbortController();
  #requestHandler: RequestHandler | undefined;
  #handlerErrors = 0;
  phase: 'new' | 'running' | 'stopped' = 'new';

  constructor(network: MemoryNetwork, self: MemberId) {
    this.#net = network;
    this.self = self;
    this.#others = network.genesis.others(self).map((v) => v.memberId);
    for (const m of this.#others) {
      this.#metrics.set(m, newPeerMetrics());
      this.#states.set(m, 'stopped');
    }
    this.#dispatcher = new Dispatcher({
      deliveryBatchMax: network.limits.deliveryBatchMax,
      released: () => network.kick(),
      handlerError: () => {
        this.#handlerErrors++;
      },
    });
  }

  async start(): Promise<void> {
    if (this.phase !== 'new') throw new TransportStoppedError('a transport starts once; create a new one');
    this.phase = 'running';
    this.#net.topologyChanged();
  }

  async stop(): Promise<void> {
    if (this.phase === 'stopped') return;
    this.phase = 'stopped';
    this.#stop.abort(new TransportStoppedError('transport stopped'));
    this.#dispatcher.stop();
    for (const m of this.#others)
      this.#net.queue(this.self, m).close(new TransportStoppedError('transport stopped'));
    this.#net.topologyChanged();
  }

  send(to: MemberId, payload: Uint8Array): void {
    this.#peer(to);
    if (payload.byteLength > this.#net.limits.messageBytesMax) {
      throw new MessageTooLargeError(
        `message of ${payload.byteLength} bytes exceeds ${this.#net.limits.messageBytesMax}`,
      );
    }
    if (this.phase === 'stopped') return;
    this.#metrics.get(to)!.messagesDropped += this.#net.queue(this.self, to).push(payload);
    this.#net.kick();
  }

  broadcast(payload: Uint8Array): void {
    for (const m of this.#others) this.send(m, payload);
  }

  onMessage(handler: MessageHandler): void {
    this.#dispatcher.setHandler(handler);
  }

  onPeerState(listener: PeerStateListener): void {
    this.#stateListeners.push(listener);
  }

  waitForCapacity(to: MemberId, bytes: number, options: { signal?: AbortSignal } = {}): Promise<void> {
    this.#peer(to);
    if (this.phase === 'stopped') return Promise.reject(new TransportStoppedError('transport stopped'));
    return this.#net.queue(this.self, to).waitForRoom(bytes, options.signal);
  }

  onRequest(handler: RequestHandler): void {
    this.#requestHandler = handler;
  }

  async request(to: MemberId, request: Uint8Array, options: RequestOptions = {}): Promise<Uint8Array> {
    this.#peer(to);
    const limits = this.#net.limits;
    if (request.byteLength > limits.requestBytesMax) {
      throw new MessageTooLargeError(
        `request of ${request.byteLength} bytes exceeds ${limits.requestBytesMax}`,
      );
    }
    if (this.phase !== 'running') throw new RequestError('stopped', 'the transport is not running');
    const metrics = this.#metrics.get(to)!;
    metrics.requestsOut++;
    try {
      const remote = this.#net.running(to);
      if (!remote || !this.#net.linkUp(this.self, to))
        throw new RequestError('unavailable', `${to} is not reachable`);
      const maxResponseBytes = Math.min(
        options.maxResponseBytes ?? limits.responseBytesMax,
        limits.responseBytesMax,
      );
      const timeout = deadline(
        options.timeoutMs ?? limits.requestTimeoutMs,
        this.#stop.signal,
        options.signal,
      );
      try {
        const answer = await raceAbort(
          remote.answer(this.self, request.slice(), maxResponseBytes, timeout.signal),
          timeout.signal,
        );
        if (typeof answer === 'string') throw new RequestError(answer, `${to} answered ${answer}`);
        return answer;
      } catch (err) {
        if (err instanceof RequestError) throw err;
        if (this.#stop.signal.aborted)
          throw new RequestError('stopped', 'the transport stopped', { cause: err });
        if (timeout.expired()) throw new RequestError('timeout', 'no answer in time', { cause: err });
        throw new RequestError('aborted', 'the caller aborted', { cause: err });
      } finally {
        timeout.clear();
      }
    } catch (err) {
      metrics.requestsOutFailed++;
      throw err;
    }
  }

  reportMisbehaviour(memberId: MemberId, reason: string): void {
    this.#peer(memberId);
    this.#metrics.get(memberId)!.drops.reported++;
    this.#reported.set(memberId, { reason: 'reported', detail: reason, atMs: Date.now() });
    this.#net.setLink(this.self, memberId, 'down');
  }

  peers(): PeerStatus[] {
    return this.#others.map((m) => this.#status(m));
  }

  metrics(): TransportMetrics {
    return {
      refusedConnections: 0,
      handlerErrors: this.#handlerErrors,
      admission: noAdmission(),
      peers: Object.fromEntries(this.#others.map((m) => [m, structuredClone(this.#metrics.get(m)!)])),
    };
  }

  // --- used by MemoryNetwork -----------------------------------------------------------------

  queuedFrom(from: MemberId): number {
    return this.#dispatcher.queued(from);
  }

  idle(): Promise<void> {
    return this.#dispatcher.idle();
  }

  countOut(to: MemberId, bytes: number): void {
    const m = this.#metrics.get(to)!;
    m.messagesOut++;
    m.bytesOut += bytes;
  }

  receive(from: MemberId, payload: Uint8Array): void {
    const m = this.#metrics.get(from)!;
    m.messagesIn++;
    m.bytesIn += payload.byteLength;
    this.#dispatcher.enqueue(from, payload, messageCost(payload));
    this.#peaks.set(from, Math.max(this.#peaks.get(from) ?? 0, this.#dispatcher.queued(from)));
  }

  async answer(
    from: MemberId,
    request: Uint8Array,
    maxResponseBytes: number,
    signal: AbortSignal,
  ): Promise<Uint8Array | 'no-handler' | 'handler-failed' | 'response-too-large'> {
    this.#metrics.get(from)!.requestsIn++;
    const handler = this.#requestHandler;
    if (!handler) return 'no-handler';
    // Run the handler from a microtask, as a network would: never inside the requester's call.
    await Promise.resolve();
    try {
      const answer = await handler(request, { from, maxResponseBytes, signal });
      return answer.byteLength > maxResponseBytes ? 'response-too-large' : answer.slice();
    } catch {
      return 'handler-failed';
    }
  }

  refreshStates(): void {
    for (const m of this.#others) {
      const state = this.#stateOf(m);
      if (this.#states.get(m) === state) continue;
      this.#states.set(m, state);
      const status = this.#status(m);
      for (const listener of this.#stateListeners) listener(status);
    }
  }

  #stateOf(m: MemberId): PeerState {
    if (this.phase !== 'running') return 'stopped';
    if (!this.#net.linkUp(this.self, m)) return this.#reported.has(m) ? 'quarantined' : 'connecting';
    return this.#net.running(m) ? 'connected' : 'connecting';
  }

  #status(m: MemberId): PeerStatus {
    const queue = this.#net.queue(this.self, m);
    const status: PeerStatus = {
      memberId: m,
      peerId: this.#net.genesis.byMemberId(m)!.peerId,
      state: this.#stateOf(m),
      inboundOpen: this.#stateOf(m) === 'connected',
      outboundQueuedMessages: queue.length,
      outboundQueuedBytes: queue.cost,
      inboundQueuedBytes: this.#dispatcher.queued(m),
      inboundQueuedBytesPeak: this.#peaks.get(m) ?? 0,
      metrics: structuredClone(this.#metrics.get(m)!),
    };
    const drop = this.#reported.get(m);
    if (drop !== undefined) status.lastDrop = { ...drop };
    return status;
  }

  #peer(memberId: MemberId): void {
    if (!this.#metrics.has(memberId)) {
      throw new NotAPeerError(
        memberId === this.self ? 'cannot send to oneself' : `"${memberId}" is not a validator in the genesis`,
      );
    }
  }
}
