/**
 * The consensus transport over libp2p 3: TCP, Noise, Yamux, and two protocols of our own whose ids
 * carry the chain id and genesis hash, so only peers with the same genesis ever talk.
 *
 *   /masbc/<chain>/<genesis>/msg/2.0.0   one long-lived stream per ordered pair of validators:
 *                                        the dialler sends DATA and PING, the listener CREDIT
 *   /masbc/<chain>/<genesis>/sync/2.0.0  one short stream per request (block sync)
 *
 * The major version is the message encoding's: 2 is the binary form of wire/codec.ts (1 was
 * canonical JSON), so peers of releases that cannot read each other never open a stream.
 *
 * Membership: a connection gater refuses any peer id that is not a validator in the genesis (or
 * is quarantined), both ways; every stream handler checks again. Before that, admission.ts bounds
 * the connections still in their handshake per address, with a reserve for the validators' own
 * addresses, so strangers cannot hold the slots a validator needs to reconnect. Each node dials every other
 * validator and redials with bounded, jittered exponential backoff, so a restarted peer is
 * reconnected from both sides and whichever connection comes first carries the streams.
 *
 * Flow control: libp2p readers apply no backpressure (4 MiB unread aborts a stream), so the
 * listener grants the dialler byte credit, returned only once the message handler has taken the
 * messages. A slow consumer makes its senders wait, their bounded queues drop their oldest
 * messages (counted), and nothing is ever buffered beyond the window. See docs/network.md.
 *
 * @example
 *   const identity = await loadValidatorIdentity('data/alliance/keys/member-1.key');
 *   const net = new Libp2pTransport({ genesis, self: 'member-1', identity });
 *   net.onMessage((from, bytes) => engine.receive(from, bytes));
 *   await net.start();
 *   net.broadcast(encode(prepare));
 */

import { noise } from '@chainsafe/libp2p-noise';
import { yamux } from '@chainsafe/libp2p-yamux';
import type { Connection, PeerId, Stream, StreamMessageEvent } from '@libp2p/interface';
import { tcp } from '@libp2p/tcp';
import { createLibp2p, type Libp2p } from 'libp2p';
import type { Genesis } from '../genesis/genesis.ts';
import type { ValidatorIdentity } from '../genesis/identity.ts';
import { Admission, type AdmissionMode } from './admission.ts';
import { MessageTooLargeError, NotAPeerError, TransportStoppedError } from './errors.ts';
import {
  dataHeader,
  encodeCredit,
  encodePing,
  FrameDecoder,
  FrameError,
  frameHeaderBytes,
} from './frames.ts';
import { type TransportLimits, transportLimits } from './limits.ts';
import { chunksOf, concat, creditCeiling, type InboundStream, Link, type OutboundStream } from './link.ts';
import { Dispatcher, messageCost } from './queues.ts';
import { deadline } from './signals.ts';
import { errorText, SyncRequests, type TransportLogger } from './sync.ts';
import type {
  MemberId,
  MessageHandler,
  PeerDropReason,
  PeerState,
  PeerStateListener,
  PeerStatus,
  RequestHandler,
  RequestOptions,
  Transport,
  TransportMetrics,
} from './types.ts';

export type { TransportLogger } from './sync.ts';

export interface Libp2pTransportInit {
  genesis: Genesis;
  self: MemberId;
  /** From {@link loadValidatorIdentity}; its peer id must be the one the genesis lists for `self`. */
  identity: Pick<ValidatorIdentity, 'privateKey' | 'peerId'>;
  /** Addresses to bind; default: the validator's `listen`, else its `addrs`. */
  listen?: string[];
  limits?: Partial<TransportLimits>;
  /** Who may start a handshake (admission.ts); default 'open'. */
  admission?: AdmissionMode;
  logger?: TransportLogger;
}

/** Protocol ids for a genesis: different chain or genesis, different protocols. */
export function protocolIds(genesis: Genesis): { msg: string; sync: string } {
  const base = `/masbc/${genesis.chainId}/${genesis.hash.slice(0, 16)}`;
  return { msg: `${base}/msg/2.0.0`, sync: `${base}/sync/2.0.0` };
}

const silentLogger: TransportLogger = { info() {}, warn() {} };

export class Libp2pTransport implements Transport {
  readonly self: MemberId;
  readonly genesis: Genesis;
  readonly limits: TransportLimits;
  readonly protocols: { msg: string; sync: string };
  readonly #identity: Libp2pTransportInit['identity'];
  readonly #listen: string[];
  readonly #log: TransportLogger;
  readonly #links = new Map<MemberId, Link>();
  readonly #linksByPeerId = new Map<string, Link>();
  readonly #dispatcher: Dispatcher;
  readonly #stop = new AbortController();
  readonly #stateListeners: PeerStateListener[] = [];
  readonly #admission: Admission;
  readonly #sync: SyncRequests;
  #node: Libp2p | undefined;
  #phase: 'new' | 'running' | 'stopping' | 'stopped' = 'new';
  #requestHandler: RequestHandler | undefined;
  #maintainers: Promise<void>[] = [];
  #housekeeping: NodeJS.Timeout | undefined;
  #refusedConnections = 0;
  #handlerErrors = 0;

  constructor(init: Libp2pTransportInit) {
    const { genesis, self } = init;
    const me = genesis.byMemberId(self);
    if (!me) throw new NotAPeerError(`"${self}" is not a validator in the genesis`);
    if (init.identity.peerId.toString() !== me.peerId) {
      throw new NotAPeerError(
        `the identity given for "${self}" is peer ${init.identity.peerId}, the genesis lists ${me.peerId}`,
      );
    }
    this.self = self;
    this.genesis = genesis;
    this.limits = transportLimits(genesis, init.limits);
    this.protocols = protocolIds(genesis);
    this.#identity = init.identity;
    this.#listen = init.listen ?? me.listen ?? me.addrs;
    this.#log = init.logger ?? silentLogger;
    this.#admission = new Admission(genesis, self, this.limits, init.admission);
    this.#sync = new SyncRequests({
      limits: this.limits,
      protocol: this.protocols.sync,
      node: () => (this.#phase === 'running' ? this.#node : undefined),
      stopped: this.#stop.signal,
      drop: (link, reason, detail) => this.#drop(link, reason, detail),
      handler: () => this.#requestHandler,
      log: this.#log,
    });
    for (const v of genesis.others(self)) {
      const link = new Link(v, this.limits);
      this.#links.set(v.memberId, link);
      this.#linksByPeerId.set(v.peerId, link);
    }
    this.#dispatcher = new Dispatcher({
      deliveryBatchMax: this.limits.deliveryBatchMax,
      released: (from) => {
        const link = this.#links.get(from);
        if (link) this.#grant(link, 'released');
      },
      handlerError: (from, err) => {
        this.#handlerErrors++;
        this.#log.warn('message handler failed', { from, error: errorText(err) });
      },
    });
  }

  /** The listening addresses (with the actual ports when port 0 was asked for). */
  get multiaddrs(): string[] {
    return this.#node?.getMultiaddrs().map((m) => m.toString()) ?? [];
  }

  async start(): Promise<void> {
    if (this.#phase !== 'new') throw new TransportStoppedError('a transport starts once; create a new one');
    this.#phase = 'running';
    const accepts = (peerId: PeerId) => {
      const link = this.#linksByPeerId.get(peerId.toString());
      return link !== undefined && !link.quarantined();
    };
    try {
      await this.#admission.resolve();
      this.#node = await this.#createNode(accepts);
      await this.#node.start();
    } catch (err) {
      this.#phase = 'stopped';
      this.#admission.stop();
      await this.#node?.stop();
      throw err;
    }
    this.#log.info('transport listening', { self: this.self, addrs: this.multiaddrs });
    const tickMs = Math.max(1, Math.floor(this.limits.keepaliveIntervalMs / 2));
    this.#housekeeping = setInterval(() => this.#tick(), tickMs);
    this.#housekeeping.unref();
    this.#maintainers = [...this.#links.values()].map((link) => this.#maintain(link));
  }

  async #createNode(accepts: (peerId: PeerId) => boolean): Promise<Libp2p> {
    const n = this.genesis.n;
    const node = await createLibp2p({
      privateKey: this.#identity.privateKey,
      addresses: { listen: this.#listen },
      transports: [tcp()],
      connectionEncrypters: [noise()],
      streamMuxers: [yamux()],
      connectionGater: {
        denyDialPeer: (peerId) => !accepts(peerId),
        denyOutboundEncryptedConnection: (peerId) => !accepts(peerId),
        denyInboundConnection: (maConn) => this.#admission.deny(maConn),
        denyInboundEncryptedConnection: (peerId, maConn) => {
          this.#admission.handshakeDone(maConn);
          if (accepts(peerId)) return false;
          this.#refusedConnections++;
          this.#log.warn('refused a connection', { peerId: peerId.toString() });
          return true;
        },
      },
      connectionManager: {
        // Two connections per peer at most in steady state (simultaneous dials), plus headroom.
        maxConnections: 4 * n,
        dialTimeout: this.limits.dialTimeoutMs,
        inboundUpgradeTimeout: this.limits.handshakeTimeoutMs,
        // The validators' addresses bypass libp2p's own pending cap, per-host rate and maxConnections
        // (several validators may share a host and all redial a restarted peer at once); admission.ts
        // bounds them, and strangers, before any handshake. libp2p's pending cap is set to what
        // admission allows in all, so it never refuses first.
        allow: this.#admission.listedPrefixes(),
        inboundConnectionThreshold: this.limits.strangerConnectsPerSecondMax,
        maxIncomingPendingConnections: this.#admission.pendingMax(),
      },
      start: false,
    });
    await node.handle(this.protocols.msg, (stream, connection) => this.#onInboundStream(stream, connection), {
      // One per connection in steady state; one more while a replacement races the old stream.
      maxInboundStreams: 2,
      maxOutboundStreams: 2,
    });
    await node.handle(
      this.protocols.sync,
      (stream, connection) => {
        const link = this.#accept(stream, connection);
        if (link) void this.#sync.serve(link, stream);
      },
      {
        maxInboundStreams: this.limits.requestsInFlightPerPeerMax + 1,
        maxOutboundStreams: this.limits.requestsInFlightPerPeerMax,
      },
    );
    node.addEventListener('connection:open', (evt) => {
      this.#linksByPeerId.get(evt.detail.remotePeer.toString())?.wake?.();
    });
    return node;
  }

  async stop(): Promise<void> {
    if (this.#phase === 'stopping' || this.#phase === 'stopped') return;
    this.#phase = 'stopping';
    this.#stop.abort(new TransportStoppedError('transport stopped'));
    clearInterval(this.#housekeeping);
    this.#admission.stop();
    this.#dispatcher.stop();
    for (const link of this.#links.values()) {
      link.wake?.();
      link.queue.close(new TransportStoppedError('transport stopped'));
    }
    await this.#node?.stop();
    await Promise.all(this.#maintainers);
    for (const link of this.#links.values()) this.#setState(link, 'stopped');
    this.#phase = 'stopped';
  }

  send(to: MemberId, payload: Uint8Array): void {
    const link = this.#link(to);
    if (payload.byteLength > this.limits.messageBytesMax) {
      throw new MessageTooLargeError(
        `message of ${payload.byteLength} bytes exceeds ${this.limits.messageBytesMax}`,
      );
    }
    if (this.#phase === 'stopping' || this.#phase === 'stopped') return;
    link.metrics.messagesDropped += link.queue.push(payload);
    if (link.out) void this.#write(link, link.out);
  }

  broadcast(payload: Uint8Array): void {
    for (const memberId of this.#links.keys()) this.send(memberId, payload);
  }

  onMessage(handler: MessageHandler): void {
    this.#dispatcher.setHandler(handler);
  }

  onPeerState(listener: PeerStateListener): void {
    this.#stateListeners.push(listener);
  }

  waitForCapacity(to: MemberId, bytes: number, options: { signal?: AbortSignal } = {}): Promise<void> {
    const link = this.#link(to);
    if (this.#phase === 'stopping' || this.#phase === 'stopped') {
      return Promise.reject(new TransportStoppedError('transport stopped'));
    }
    return link.queue.waitForRoom(bytes, options.signal);
  }

  onRequest(handler: RequestHandler): void {
    this.#requestHandler = handler;
  }

  reportMisbehaviour(memberId: MemberId, reason: string): void {
    this.#drop(this.#link(memberId), 'reported', reason);
  }

  peers(): PeerStatus[] {
    return [...this.#links.values()].map((link) => this.#status(link));
  }

  metrics(): TransportMetrics {
    return {
      refusedConnections: this.#refusedConnections,
      handlerErrors: this.#handlerErrors,
      admission: this.#admission.metrics(),
      peers: Object.fromEntries([...this.#links].map(([id, link]) => [id, structuredClone(link.metrics)])),
    };
  }

  request(to: MemberId, request: Uint8Array, options: RequestOptions = {}): Promise<Uint8Array> {
    return this.#sync.request(this.#link(to), request, options);
  }

  #link(memberId: MemberId): Link {
    const link = this.#links.get(memberId);
    if (!link) {
      throw new NotAPeerError(
        memberId === this.self ? 'cannot send to oneself' : `"${memberId}" is not a validator in the genesis`,
      );
    }
    return link;
  }

  /** The link of an incoming stream's peer, or undefined after refusing the stream. */
  #accept(stream: Stream, connection: Connection): Link | undefined {
    const link = this.#linksByPeerId.get(connection.remotePeer.toString());
    if (!link || link.quarantined() || this.#phase !== 'running') {
      // The gater already stops strangers; this only catches races with a quarantine or stop.
      if (!link) this.#refusedConnections++;
      stream.abort(new Error('not accepting streams from this peer'));
      return undefined;
    }
    return link;
  }

  // --- message streams -------------------------------------------------------------------------

  /** Dials `link` whenever it has no outbound message stream, with backoff, until stop. */
  async #maintain(link: Link): Promise<void> {
    let backoffMs = this.limits.redialMinMs;
    while (this.#phase === 'running') {
      const quarantineMs = link.quarantinedUntilMs - Date.now();
      if (quarantineMs > 0) {
        this.#setState(link, 'quarantined');
        await this.#sleep(link, quarantineMs);
        continue;
      }
      this.#setState(link, 'connecting');
      const startedMs = Date.now();
      try {
        const closed = await this.#openOutbound(link);
        await closed;
      } catch (err) {
        if (this.#phase !== 'running') break;
        link.metrics.dialFailures++;
        link.lastError = errorText(err);
      }
      if (this.#phase !== 'running') break;
      // A connection that lasted resets the backoff; one that keeps failing or flapping does not.
      if (Date.now() - startedMs >= this.limits.redialMaxMs) backoffMs = this.limits.redialMinMs;
      await this.#sleep(link, backoffMs * (0.8 + 0.4 * Math.random()));
      backoffMs = Math.min(2 * backoffMs, this.limits.redialMaxMs);
    }
  }

  #sleep(link: Link, ms: number): Promise<void> {
    return new Promise((resolve) => {
      const done = () => {
        clearTimeout(timer);
        link.wake = undefined;
        resolve();
      };
      const timer = setTimeout(done, ms);
      link.wake = done;
      if (this.#phase !== 'running') done();
    });
  }

  /** Opens the outbound message stream; resolves with a promise of its closing. */
  async #openOutbound(link: Link): Promise<Promise<void>> {
    const { signal, clear } = deadline(this.limits.dialTimeoutMs, this.#stop.signal);
    let stream: Stream;
    try {
      const connection = await this.#node!.dial(link.dialAddrs, { signal });
      stream = await connection.newStream(this.protocols.msg, { signal });
    } finally {
      clear();
    }
    const out: OutboundStream = {
      stream,
      decoder: new FrameDecoder('listener', 0),
      credit: 0,
      lastSentMs: Date.now(),
      lastReceivedMs: Date.now(),
      pingSentMs: 0,
      pingDue: false,
      writing: false,
    };
    const closed = new Promise<void>((resolve) => {
      stream.addEventListener(
        'close',
        (evt) => {
          if (link.out === out) {
            link.out = undefined;
            if (evt.error && this.#phase === 'running') link.lastError = errorText(evt.error);
            if (this.#phase === 'running') this.#setState(link, 'connecting');
          }
          resolve();
        },
        { once: true },
      );
    });
    if (this.#phase !== 'running' || link.quarantined()) {
      stream.abort(new Error('no longer wanted'));
      return closed;
    }
    stream.addEventListener('message', (evt) => this.#onCredit(link, out, evt.data));
    // What waited too long for this peer is stale: the core retransmits what still matters.
    const stale = link.queue.dropQueuedBefore(Date.now() - this.limits.staleQueuedMs);
    link.metrics.messagesDropped += stale;
    link.metrics.staleDropped += stale;
    link.out = out;
    link.metrics.connects++;
    this.#setState(link, 'connected');
    this.#log.info('connected', { peer: link.memberId });
    return closed;
  }

  #onCredit(link: Link, out: OutboundStream, data: StreamMessageEvent['data']): void {
    if (link.out !== out) return;
    out.lastReceivedMs = Date.now();
    try {
      for (const chunk of chunksOf(data)) out.decoder.push(chunk);
      for (let f = out.decoder.next(); f; f = out.decoder.next()) {
        if (f.type !== 'credit') throw new FrameError('malformed', `unexpected ${f.type} frame`);
        out.credit += f.bytes;
        if (out.credit > creditCeiling) throw new FrameError('malformed', 'credit above 2^32');
      }
    } catch (err) {
      this.#dropForFrame(link, err);
      return;
    }
    void this.#write(link, out);
  }

  /** Writes queued messages while credit lasts, in batches; one writer per stream at a time. */
  async #write(link: Link, out: OutboundStream): Promise<void> {
    if (out.writing) return;
    out.writing = true;
    try {
      while (link.out === out) {
        const parts: Uint8Array[] = [];
        let bytes = 0;
        let messages = 0;
        let payloadBytes = 0;
        for (let p = link.queue.peek(); p; p = link.queue.peek()) {
          const cost = messageCost(p);
          const frameBytes = frameHeaderBytes + p.byteLength;
          if (cost > out.credit || (bytes > 0 && bytes + frameBytes > this.limits.writeBatchBytesMax)) break;
          link.queue.shift();
          out.credit -= cost;
          parts.push(dataHeader(p.byteLength), p);
          bytes += frameBytes;
          messages++;
          payloadBytes += p.byteLength;
        }
        if (out.pingDue) {
          out.pingDue = false;
          out.pingSentMs = Date.now();
          const ping = encodePing();
          parts.push(ping);
          bytes += ping.byteLength;
        }
        if (parts.length === 0) break;
        link.metrics.messagesOut += messages;
        link.metrics.bytesOut += payloadBytes;
        out.lastSentMs = Date.now();
        if (!out.stream.send(concat(parts, bytes))) await out.stream.onDrain({ signal: this.#stop.signal });
      }
    } catch (err) {
      // The stream broke under us: what was handed to it is lost, the close handler redials.
      if (this.#phase === 'running') link.lastError = errorText(err);
      out.stream.abort(err instanceof Error ? err : new Error(String(err)));
    } finally {
      out.writing = false;
    }
  }

  #onInboundStream(stream: Stream, connection: Connection): void {
    const link = this.#accept(stream, connection);
    if (!link) return;
    const inbound: InboundStream = {
      stream,
      decoder: new FrameDecoder('dialler', this.limits.messageBytesMax),
      outstanding: 0,
      lastReceivedMs: Date.now(),
    };
    const previous = link.in;
    link.in = inbound;
    // The peer opened a new stream (it reconnected): the old one is dead or about to be, and its
    // unused credit goes with it. Messages already queued from it are still delivered.
    previous?.stream.abort(new Error('replaced by a newer stream from the same peer'));
    stream.addEventListener('message', (evt) => this.#onData(link, inbound, evt.data));
    stream.addEventListener(
      'close',
      () => {
        if (link.in !== inbound) return;
        link.in = undefined;
        this.#emit(link);
      },
      { once: true },
    );
    this.#grant(link, 'open');
    this.#emit(link);
    link.wake?.();
  }

  #onData(link: Link, inbound: InboundStream, data: StreamMessageEvent['data']): void {
    if (link.in !== inbound) return;
    inbound.lastReceivedMs = Date.now();
    try {
      for (const chunk of chunksOf(data)) inbound.decoder.push(chunk);
      for (let f = inbound.decoder.next(); f; f = inbound.decoder.next()) {
        if (f.type === 'ping') {
          this.#grant(link, 'ping');
          continue;
        }
        if (f.type !== 'data') throw new FrameError('malformed', `unexpected ${f.type} frame`);
        const cost = messageCost(f.payload);
        if (cost > inbound.outstanding) {
          this.#drop(link, 'flow-control', `sent ${cost} bytes with ${inbound.outstanding} of credit`);
          return;
        }
        inbound.outstanding -= cost;
        link.metrics.messagesIn++;
        link.metrics.bytesIn += f.payload.byteLength;
        this.#dispatcher.enqueue(link.memberId, f.payload, cost);
        link.inboundPeak = Math.max(link.inboundPeak, this.#dispatcher.queued(link.memberId));
      }
    } catch (err) {
      this.#dropForFrame(link, err);
    }
  }

  /**
   * Grants the peer what its window allows: W minus what it has queued here minus what it may
   * still send. After consumption ('released') only in steps of at least a quarter window, so a
   * busy stream carries one CREDIT frame per W/4 bytes rather than one per message.
   */
  #grant(link: Link, why: 'open' | 'ping' | 'released'): void {
    const inbound = link.in;
    if (inbound?.stream.status !== 'open') return;
    const window = this.limits.windowBytes;
    const grantable = window - this.#dispatcher.queued(link.memberId) - inbound.outstanding;
    if (why === 'released' && grantable < window / 4) return;
    if (why === 'open' && grantable <= 0) return;
    const bytes = Math.max(0, grantable);
    inbound.outstanding += bytes;
    try {
      inbound.stream.send(encodeCredit(bytes));
    } catch (err) {
      inbound.stream.abort(err instanceof Error ? err : new Error(String(err)));
    }
  }

  #dropForFrame(link: Link, err: unknown): void {
    if (err instanceof FrameError) this.#drop(link, err.kind, err.message);
    else throw err;
  }

  /** Disconnects the peer; for every reason but 'silent' also quarantines it (doubling each time). */
  #drop(link: Link, reason: PeerDropReason, detail: string): void {
    link.metrics.drops[reason]++;
    link.lastDrop = { reason, detail, atMs: Date.now() };
    if (reason !== 'silent') {
      link.offences++;
      const ms = Math.min(
        this.limits.quarantineMinMs * 2 ** (link.offences - 1),
        this.limits.quarantineMaxMs,
      );
      link.quarantinedUntilMs = Date.now() + ms;
      this.#setState(link, 'quarantined');
    } else {
      this.#setState(link, 'connecting');
    }
    this.#log.warn('dropped peer', { peer: link.memberId, reason, detail });
    // Forget the streams before aborting them, so their close handlers see a deliberate drop.
    const streams = [link.in?.stream, link.out?.stream];
    link.in = undefined;
    link.out = undefined;
    const err = new Error(`dropped: ${reason}`);
    for (const s of streams) s?.abort(err);
    void this.#node?.hangUp(link.peerId).catch(() => {});
    link.wake?.();
  }

  /**
   * Keepalive and dead-peer detection, for all peers, on one timer (every keepaliveIntervalMs / 2).
   *
   * Each end judges the other by what it receives. The listener sends nothing on its own (credit
   * only as the handler consumes, in steps of W/4), so the dialler pings whenever it has heard
   * nothing for keepaliveIntervalMs, however much it sends itself: every PING is answered with a
   * CREDIT frame (returning whatever credit has been freed), so a live listener is heard from at
   * least that often, idle or busy. The dialler also pings when it has sent nothing for that long,
   * so the listener hears from a live dialler as often. A stream that heard nothing for
   * silenceTimeoutMs is dropped: the peer stopped answering within silenceTimeoutMs +
   * keepaliveIntervalMs / 2 of its last frame.
   */
  #tick(): void {
    const now = Date.now();
    const { keepaliveIntervalMs, silenceTimeoutMs } = this.limits;
    for (const link of this.#links.values()) {
      const out = link.out;
      if (out && now - out.lastReceivedMs > silenceTimeoutMs) {
        this.#drop(link, 'silent', `no answer on the outbound stream for ${now - out.lastReceivedMs} ms`);
        continue;
      }
      if (out) {
        const unheard = now - out.lastReceivedMs >= keepaliveIntervalMs;
        const pingAgain = now - out.pingSentMs >= keepaliveIntervalMs;
        if ((unheard && pingAgain) || now - out.lastSentMs >= keepaliveIntervalMs) {
          out.pingDue = true;
          void this.#write(link, out);
        }
      }
      const inbound = link.in;
      if (inbound && now - inbound.lastReceivedMs > silenceTimeoutMs) {
        this.#drop(link, 'silent', `no frame on the inbound stream for ${now - inbound.lastReceivedMs} ms`);
      }
    }
  }

  #setState(link: Link, state: PeerState): void {
    if (link.state === state) return;
    link.state = state;
    this.#emit(link);
  }

  #emit(link: Link): void {
    if (this.#stateListeners.length === 0) return;
    const status = this.#status(link);
    for (const listener of this.#stateListeners) {
      try {
        listener(status);
      } catch (err) {
        this.#log.warn('peer state listener failed', { error: errorText(err) });
      }
    }
  }

  #status(link: Link): PeerStatus {
    const status: PeerStatus = {
      memberId: link.memberId,
      peerId: link.validator.peerId,
      state: link.state,
      inboundOpen: link.in !== undefined,
      outboundQueuedMessages: link.queue.length,
      outboundQueuedBytes: link.queue.cost,
      inboundQueuedBytes: this.#dispatcher.queued(link.memberId),
      inboundQueuedBytesPeak: link.inboundPeak,
      metrics: structuredClone(link.metrics),
    };
    if (link.quarantined()) status.quarantinedUntilMs = link.quarantinedUntilMs;
    if (link.lastError !== undefined) status.lastError = link.lastError;
    if (link.lastDrop !== undefined) status.lastDrop = { ...link.lastDrop };
    return status;
  }
}
