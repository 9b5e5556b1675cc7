/**
 * The consensus transport: opaque byte messages between validators named by member id. It knows
 * nothing of consensus message types; the decoder above it validates payloads and calls
 * {@link Transport.reportMisbehaviour} to have a peer dropped.
 *
 * Delivery is best effort, per-peer FIFO, at most once: a message can be lost (a full queue, a
 * connection that breaks with messages in flight, a peer that is down) but never duplicated or
 * reordered by the transport. PBFT tolerates loss by retransmitting; every loss the transport
 * itself decides on is counted.
 */

import type { AdmissionMetrics } from './admission.ts';

export type MemberId = string;

/**
 * Receives one message at a time. If it returns a promise, the next message (from any peer) waits
 * for it, and the sender's flow-control credit is only returned once it settles: a slow consumer
 * slows the senders down instead of growing a buffer. A handler that throws is counted and skipped.
 */
export type MessageHandler = (from: MemberId, payload: Uint8Array) => void | Promise<void>;

export interface RequestContext {
  readonly from: MemberId;
  /** The requester reads no more than this many bytes; a larger answer is refused. */
  readonly maxResponseBytes: number;
  /** Aborted when the requester gives up, the request times out, or the transport stops. */
  readonly signal: AbortSignal;
}

/** Answers a block-sync (or any other) request. Throwing answers with a 'handler-failed' error. */
export type RequestHandler = (
  request: Uint8Array,
  context: RequestContext,
) => Uint8Array | Promise<Uint8Array>;

export interface RequestOptions {
  /** Default: the transport's `requestTimeoutMs`. Covers connecting, sending and the whole answer. */
  timeoutMs?: number;
  /** Default and ceiling: the transport's `responseBytesMax`. */
  maxResponseBytes?: number;
  signal?: AbortSignal;
}

/**
 * 'connected': messages to the peer are being written. 'connecting': dialling or waiting to redial.
 * 'quarantined': dropped for misbehaving; no connection either way until `quarantinedUntilMs`.
 * 'stopped': the transport is not running.
 */
export type PeerState = 'connecting' | 'connected' | 'quarantined' | 'stopped';

/** Why the transport disconnected a peer. Every reason but 'silent' also quarantines it. */
export const peerDropReasons = ['oversize', 'malformed', 'flow-control', 'reported', 'silent'] as const;
export type PeerDropReason = (typeof peerDropReasons)[number];

export interface PeerMetrics {
  messagesOut: number;
  bytesOut: number;
  messagesIn: number;
  bytesIn: number;
  /** Messages evicted, oldest first, from the full outbound queue to this peer, or dropped as stale. */
  messagesDropped: number;
  /** Of those, the ones dropped on (re)connection for having waited longer than `staleQueuedMs`. */
  staleDropped: number;
  /** Times this peer was disconnected by us, by reason. */
  drops: Record<PeerDropReason, number>;
  /** Outbound message streams established (1 per (re)connection). */
  connects: number;
  /** Dial or stream-open attempts that failed. */
  dialFailures: number;
  requestsOut: number;
  requestsOutFailed: number;
  requestsIn: number;
  /** Requests refused because this peer already had `requestsInFlightPerPeerMax` in flight. */
  requestsInRefused: number;
}

export function newPeerMetrics(): PeerMetrics {
  return {
    messagesOut: 0,
    bytesOut: 0,
    messagesIn: 0,
    bytesIn: 0,
    messagesDropped: 0,
    staleDropped: 0,
    drops: Object.fromEntries(peerDropReasons.map((r) => [r, 0])) as Record<PeerDropReason, number>,
    connects: 0,
    dialFailures: 0,
    requestsOut: 0,
    requestsOutFailed: 0,
    requestsIn: 0,
    requestsInRefused: 0,
  };
}

export interface PeerStatus {
  memberId: MemberId;
  peerId: string;
  state: PeerState;
  /** We have an open stream from the peer (it is sending to us). */
  inboundOpen: boolean;
  outboundQueuedMessages: number;
  outboundQueuedBytes: number;
  /** Bytes received from the peer and not yet taken by the message handler. */
  inboundQueuedBytes: number;
  /** Highest {@link inboundQueuedBytes} seen; never above the flow-control window. */
  inboundQueuedBytesPeak: number;
  quarantinedUntilMs?: number;
  /** The most recent connection or stream failure. */
  lastError?: string;
  /** The most recent time we dropped this peer, and why. */
  lastDrop?: { reason: PeerDropReason; detail: string; atMs: number };
  metrics: PeerMetrics;
}

export interface TransportMetrics {
  /** Connections refused because the remote peer id is not a validator (or is quarantined). */
  refusedConnections: number;
  /** Messages whose handler threw or rejected. */
  handlerErrors: number;
  /** Inbound connections before their handshake: strangers, refusals, pending (admission.ts). */
  admission: AdmissionMetrics;
  peers: Record<MemberId, PeerMetrics>;
}

export type PeerStateListener = (status: PeerStatus) => void;

export interface Transport {
  readonly self: MemberId;
  /** Binds, then connects to every other validator in the background; resolves once listening. */
  start(): Promise<void>;
  /** Closes every connection, timer and queue. Nothing is delivered after it resolves. */
  stop(): Promise<void>;
  /**
   * Queues `payload` for `to` and returns at once. The transport keeps the array until it is
   * written: do not modify it afterwards. A full queue evicts its oldest message (counted in
   * `messagesDropped`). Throws {@link NotAPeerError} for self or a non-validator and
   * {@link MessageTooLargeError} above `messageBytesMax`; after stop() it does nothing.
   */
  send(to: MemberId, payload: Uint8Array): void;
  /** {@link send} to every other validator (the same array, not copied). */
  broadcast(payload: Uint8Array): void;
  /** Sets the one message handler (replacing any earlier one). Messages wait in bounded queues until set. */
  onMessage(handler: MessageHandler): void;
  /** Called whenever a peer's {@link PeerState} changes. */
  onPeerState(listener: PeerStateListener): void;
  /**
   * Resolves when the outbound queue to `to` can take `bytes` more without evicting anything: the
   * way for a producer that must not lose messages (a benchmark, a bulk transfer) to pace itself.
   */
  waitForCapacity(to: MemberId, bytes: number, options?: { signal?: AbortSignal }): Promise<void>;
  /** Sends one request to `to` on its own stream and resolves with the answer; see {@link RequestError}. */
  request(to: MemberId, request: Uint8Array, options?: RequestOptions): Promise<Uint8Array>;
  /** Sets the one request handler. Without one, requests are answered with 'no-handler'. */
  onRequest(handler: RequestHandler): void;
  /**
   * Drops the peer (disconnects and quarantines it) because a message it sent did not decode or
   * verify. The drop is counted as 'reported', with `reason` as its detail in `lastDrop`.
   */
  reportMisbehaviour(memberId: MemberId, reason: string): void;
  peers(): PeerStatus[];
  metrics(): TransportMetrics;
}
