/**
 * What the libp2p transport keeps about one other validator (a Link): its dial addresses, its
 * bounded outbound queue, the two message streams (ours to it, and its to us) with their credit and
 * liveness clocks, quarantine after misbehaviour, and its metrics. Plain state; libp2p.ts drives it.
 */
import type { PeerId, Stream, StreamMessageEvent } from '@libp2p/interface';
import { peerIdFromString } from '@libp2p/peer-id';
import { type Multiaddr, multiaddr } from '@multiformats/multiaddr';
import type { Validator } from '../genesis/genesis.ts';
import type { FrameDecoder } from './frames.ts';
import type { TransportLimits } from './limits.ts';
import { OutboundQueue } from './queues.ts';
import { type MemberId, newPeerMetrics, type PeerMetrics, type PeerState, type PeerStatus } from './types.ts';

export const creditCeiling = 2 ** 32 - 1;

export interface OutboundStream {
  stream: Stream;
  decoder: FrameDecoder;
  /** Bytes (message cost) the listener still lets us send. */
  credit: number;
  lastSentMs: number;
  /** When the listener last sent us anything (a CREDIT frame: granted credit or a PING's answer). */
  lastReceivedMs: number;
  /** When we last sent a PING (0: never). */
  pingSentMs: number;
  pingDue: boolean;
  writing: boolean;
}

export interface InboundStream {
  stream: Stream;
  decoder: FrameDecoder;
  /** Credit granted on this stream and not yet used by the dialler. */
  outstanding: number;
  lastReceivedMs: number;
}

/** Everything we keep about one other validator. */
export class Link {
  readonly validator: Validator;
  readonly peerId: PeerId;
  readonly dialAddrs: Multiaddr[];
  readonly queue: OutboundQueue;
  readonly metrics: PeerMetrics = newPeerMetrics();
  state: PeerState = 'stopped';
  out: OutboundStream | undefined;
  in: InboundStream | undefined;
  inboundPeak = 0;
  quarantinedUntilMs = 0;
  offences = 0;
  lastError: string | undefined;
  lastDrop: PeerStatus['lastDrop'];
  requestsOutInFlight = 0;
  requestsInInFlight = 0;
  /** Ends the maintenance loop's current wait early (a connection from the peer appeared). */
  wake: (() => void) | undefined;

  constructor(validator: Validator, limits: TransportLimits) {
    this.validator = validator;
    this.peerId = peerIdFromString(validator.peerId);
    this.dialAddrs = validator.addrs.map((a) =>
      a.includes('/p2p/') ? multiaddr(a) : multiaddr(a).encapsulate(`/p2p/${validator.peerId}`),
    );
    this.queue = new OutboundQueue(limits.outboundQueueMessagesMax, limits.outboundQueueBytesMax);
  }

  get memberId(): MemberId {
    return this.validator.memberId;
  }

  quarantined(now = Date.now()): boolean {
    return this.quarantinedUntilMs > now;
  }
}

export function chunksOf(data: StreamMessageEvent['data']): Iterable<Uint8Array> {
  return data instanceof Uint8Array ? [data] : data;
}

export function concat(parts: Uint8Array[], bytes: number): Uint8Array {
  if (parts.length === 1) return parts[0]!;
  const out = new Uint8Array(bytes);
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.byteLength;
  }
  return out;
}
