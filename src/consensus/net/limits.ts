/**
 * Every bound of the transport in one place, with the relations between them checked before
 * anything starts. Sizes are bytes, durations milliseconds.
 *
 * Memory, per peer: at most `outboundQueueBytesMax` waiting to be sent to it, at most
 * `windowBytes` received from it and not yet consumed (enforced by credit: see docs/network.md),
 * and `requestsInFlightPerPeerMax` × `responseBytesMax` of block-sync answers. Queue and credit
 * sizes count each message's payload plus {@link messageOverheadBytes}. The largest message comes
 * from the genesis (`messageBytesMax`, by default what the chain limits allow in the codec's binary
 * form, src/consensus/wire/limits.ts); docs/network.md gives the figures for the defaults.
 */
import type { Genesis } from '../genesis/genesis.ts';
import { TransportLimitsError } from './errors.ts';

/**
 * What each queued message costs beyond its payload, in queue and credit accounting. Charging it
 * bounds the message count as well as the bytes: a window of W holds at most W / 64 messages,
 * however small, so the per-message object overhead stays bounded too.
 */
export const messageOverheadBytes = 64;

export interface TransportLimits {
  /** Largest message payload (the genesis's `messageBytesMax`; all validators must agree). */
  messageBytesMax: number;
  /** Credit each peer gets: bytes it may have in flight to us or queued unconsumed. */
  windowBytes: number;
  outboundQueueMessagesMax: number;
  outboundQueueBytesMax: number;
  /**
   * When a peer's connection comes (back) up, the messages that waited longer than this for it
   * are dropped (counted in `messagesDropped` and `staleDropped`) instead of sent. They are votes
   * and statuses for heights and views that have most likely moved on: the core retransmits what
   * still matters on every heartbeat, and certified sync covers committed blocks. So a peer that was
   * away catches up from the current state instead of from a replay of up to
   * `outboundQueueMessagesMax` old messages.
   */
  staleQueuedMs: number;
  /** Largest frame batch handed to the stream in one write. */
  writeBatchBytesMax: number;
  /** Messages handed to synchronous handlers before yielding to the event loop. */
  deliveryBatchMax: number;
  requestBytesMax: number;
  /** Largest request answer (the genesis `syncResponseBytesMax`). */
  responseBytesMax: number;
  requestTimeoutMs: number;
  /** Per peer and per direction. */
  requestsInFlightPerPeerMax: number;
  dialTimeoutMs: number;
  redialMinMs: number;
  redialMaxMs: number;
  /**
   * The dialler of a message stream sends a PING when it has heard nothing from the listener for
   * this long (a PING is always answered), or has sent it nothing for this long.
   */
  keepaliveIntervalMs: number;
  /** A stream that received nothing for this long is dead: it is closed and the peer redialled. */
  silenceTimeoutMs: number;
  /** An inbound connection must complete its handshake (Noise, Yamux) within this (admission.ts). */
  handshakeTimeoutMs: number;
  /** Connections in their handshake per stranger's address (IPv6: per /64). */
  pendingPerAddressMax: number;
  /** Connections in their handshake from all strangers together. */
  pendingStrangersMax: number;
  /** Connections in their handshake per validator the genesis lists at an address (its reserve). */
  pendingPerValidatorMax: number;
  /** New connections per second from one stranger's address (libp2p's inboundConnectionThreshold). */
  strangerConnectsPerSecondMax: number;
  /** First quarantine after a misbehaviour; doubles with each further one, up to the maximum. */
  quarantineMinMs: number;
  quarantineMaxMs: number;
}

/** Defaults for a genesis; `overrides` replace any of them. Throws {@link TransportLimitsError}. */
export function transportLimits(genesis: Genesis, overrides: Partial<TransportLimits> = {}): TransportLimits {
  const messageBytesMax = overrides.messageBytesMax ?? genesis.messageBytesMax;
  const largest = messageBytesMax + messageOverheadBytes;
  const limits: TransportLimits = {
    messageBytesMax,
    windowBytes: 2 * largest,
    outboundQueueMessagesMax: 16_384,
    outboundQueueBytesMax: Math.max(8 * 1024 * 1024, 2 * largest),
    staleQueuedMs: 5_000,
    writeBatchBytesMax: 256 * 1024,
    deliveryBatchMax: 256,
    requestBytesMax: 64 * 1024,
    responseBytesMax: genesis.params.syncResponseBytesMax,
    requestTimeoutMs: 10_000,
    requestsInFlightPerPeerMax: 4,
    dialTimeoutMs: 5_000,
    redialMinMs: 100,
    redialMaxMs: 5_000,
    keepaliveIntervalMs: 5_000,
    silenceTimeoutMs: 15_000,
    quarantineMinMs: 2_000,
    quarantineMaxMs: 60_000,
    handshakeTimeoutMs: 3_000,
    pendingPerAddressMax: 2,
    pendingStrangersMax: 16,
    pendingPerValidatorMax: 4,
    strangerConnectsPerSecondMax: 5,
    ...overrides,
  };
  checkLimits(limits);
  return limits;
}

function checkLimits(l: TransportLimits): void {
  for (const [name, value] of Object.entries(l)) {
    if (!Number.isSafeInteger(value) || value <= 0) {
      throw new TransportLimitsError(`${name} must be a positive integer, got ${value}`);
    }
  }
  const need = (ok: boolean, message: string) => {
    if (!ok) throw new TransportLimitsError(message);
  };
  const largest = l.messageBytesMax + messageOverheadBytes;
  // Credit is returned in steps of at least a quarter window. A sender blocked on credit holds
  // less than one largest message of it, so once the receiver's queue drains the receiver can grant
  // more than W − largest, which is at least W/4 exactly when W >= 4/3 × largest: no deadlock. The
  // default, 2 × largest, also lets one message be consumed while the next is in flight.
  need(
    3 * l.windowBytes >= 4 * largest,
    `windowBytes must be >= 4/3 × (messageBytesMax + ${messageOverheadBytes})`,
  );
  need(l.windowBytes <= 2 ** 31, 'windowBytes must be <= 2 GiB (credit frames carry 32 bits)');
  need(l.outboundQueueBytesMax >= largest, 'outboundQueueBytesMax must hold one largest message');
  need(l.responseBytesMax >= l.messageBytesMax, 'responseBytesMax must hold one largest message');
  need(l.redialMinMs <= l.redialMaxMs, 'redialMinMs must be <= redialMaxMs');
  need(l.staleQueuedMs > 0, 'staleQueuedMs must be > 0');
  need(l.quarantineMinMs <= l.quarantineMaxMs, 'quarantineMinMs must be <= quarantineMaxMs');
  need(
    l.pendingPerAddressMax <= l.pendingStrangersMax,
    'pendingPerAddressMax must be <= pendingStrangersMax',
  );
  // A validator redials a lost peer after at least dialTimeoutMs: a handshake slow enough to be
  // cut must not be the only way back, so the handshake must fit in the dial.
  need(l.handshakeTimeoutMs <= l.dialTimeoutMs, 'handshakeTimeoutMs must be <= dialTimeoutMs');
  // The keepalive timer runs every keepaliveIntervalMs / 2, so a PING leaves at most 1.5 ×
  // keepaliveIntervalMs after the last frame heard; its answer then has at least another
  // 1.5 × keepaliveIntervalMs before the stream counts as silent.
  need(
    l.silenceTimeoutMs >= 3 * l.keepaliveIntervalMs,
    'silenceTimeoutMs must be >= 3 × keepaliveIntervalMs (a ping and its answer must fit)',
  );
}
