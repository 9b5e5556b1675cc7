/**
 * Request/response over libp2p (block sync): one stream per request on the `/sync/` protocol, one
 * length-prefixed frame each way (`lpStream`, bounded by the request's own limits), a deadline over
 * the whole exchange, and at most `requestsInFlightPerPeerMax` per peer and direction. A peer that
 * sends a frame above its bound, or garbage, is dropped like any misbehaving peer. See
 * docs/network.md, "Block sync". Used by libp2p.ts, which owns the node and the links.
 */
import type { Connection, Stream } from '@libp2p/interface';
import {
  InvalidDataLengthError,
  InvalidDataLengthLengthError,
  InvalidMessageLengthError,
  lpStream,
} from '@libp2p/utils';
import type { Libp2p } from 'libp2p';
import { MessageTooLargeError, type RemoteRequestFailure, RequestError } from './errors.ts';
import {
  decodeRequest,
  decodeResponse,
  encodeRequest,
  encodeResponse,
  FrameError,
  frameHeaderBytes,
} from './frames.ts';
import type { TransportLimits } from './limits.ts';
import type { Link } from './link.ts';
import { deadline, raceAbort } from './signals.ts';
import type { PeerDropReason, RequestHandler, RequestOptions } from './types.ts';

export interface TransportLogger {
  info(msg: string, fields?: Record<string, unknown>): void;
  warn(msg: string, fields?: Record<string, unknown>): void;
}

export function errorText(err: unknown): string {
  return err instanceof Error ? `${err.name}: ${err.message}` : String(err);
}

/** What the sync side needs of the transport. */
export interface SyncComponents {
  limits: TransportLimits;
  /** The `/sync/` protocol id. */
  protocol: string;
  /** The running node, or undefined when the transport is not running. */
  node(): Libp2p | undefined;
  /** Aborted when the transport stops. */
  stopped: AbortSignal;
  drop(link: Link, reason: PeerDropReason, detail: string): void;
  handler(): RequestHandler | undefined;
  log: TransportLogger;
}

const isFramingError = (err: unknown) =>
  err instanceof FrameError ||
  err instanceof InvalidMessageLengthError ||
  err instanceof InvalidDataLengthLengthError;

export class SyncRequests {
  readonly #c: SyncComponents;

  constructor(components: SyncComponents) {
    this.#c = components;
  }

  /** Sends one request to `link`'s peer on its own stream; see {@link Transport.request}. */
  async request(link: Link, request: Uint8Array, options: RequestOptions = {}): Promise<Uint8Array> {
    const { limits } = this.#c;
    if (request.byteLength > limits.requestBytesMax) {
      throw new MessageTooLargeError(
        `request of ${request.byteLength} bytes exceeds ${limits.requestBytesMax}`,
      );
    }
    const node = this.#c.node();
    if (!node) throw new RequestError('stopped', 'the transport is not running');
    const to = link.memberId;
    if (link.quarantined()) throw new RequestError('unavailable', `${to} is quarantined`);
    if (link.requestsOutInFlight >= limits.requestsInFlightPerPeerMax) {
      throw new RequestError('too-many-requests', `${link.requestsOutInFlight} requests to ${to} in flight`);
    }
    const maxResponseBytes = Math.min(
      options.maxResponseBytes ?? limits.responseBytesMax,
      limits.responseBytesMax,
    );
    const timeoutMs = options.timeoutMs ?? limits.requestTimeoutMs;
    const timeout = deadline(timeoutMs, this.#c.stopped, options.signal);
    const { signal } = timeout;
    link.requestsOutInFlight++;
    link.metrics.requestsOut++;
    let stream: Stream | undefined;
    try {
      let connection: Connection;
      try {
        connection = await node.dial(link.dialAddrs, { signal });
        stream = await connection.newStream(this.#c.protocol, { signal });
      } catch (err) {
        throw signal.aborted ? err : new RequestError('unavailable', errorText(err), { cause: err });
      }
      const lp = lpStream(stream, {
        maxDataLength: maxResponseBytes + 1,
        maxBufferSize: maxResponseBytes + frameHeaderBytes + 16,
      });
      await lp.write(encodeRequest(maxResponseBytes, request), { signal });
      const frame = await lp.read({ signal });
      const answer = decodeResponse(frame.subarray());
      await stream.close({ signal });
      if (typeof answer === 'string') throw new RequestError(answer, `${to} answered ${answer}`);
      return answer;
    } catch (err) {
      link.metrics.requestsOutFailed++;
      stream?.abort(err instanceof Error ? err : new Error(String(err)));
      const interrupted = timeout.expired() ? 'timeout' : options.signal?.aborted ? 'aborted' : undefined;
      throw this.#failure(link, err, interrupted);
    } finally {
      timeout.clear();
      link.requestsOutInFlight--;
    }
  }

  #failure(link: Link, err: unknown, interrupted: 'timeout' | 'aborted' | undefined): RequestError {
    if (err instanceof RequestError) return err;
    if (this.#c.stopped.aborted) return new RequestError('stopped', 'the transport stopped', { cause: err });
    if (interrupted === 'timeout')
      return new RequestError('timeout', 'no complete answer in time', { cause: err });
    if (interrupted === 'aborted') return new RequestError('aborted', 'the caller aborted', { cause: err });
    if (err instanceof InvalidDataLengthError) {
      this.#c.drop(link, 'oversize', 'sent a response larger than it was allowed');
      return new RequestError('protocol', 'the response exceeded maxResponseBytes', { cause: err });
    }
    if (isFramingError(err)) {
      this.#c.drop(link, 'malformed', `bad response: ${(err as Error).message}`);
      return new RequestError('protocol', (err as Error).message, { cause: err });
    }
    return new RequestError('unavailable', errorText(err), { cause: err });
  }

  /** Answers one request stream from `link`'s peer (already accepted by the transport). */
  async serve(link: Link, stream: Stream): Promise<void> {
    const { limits } = this.#c;
    link.metrics.requestsIn++;
    const lp = lpStream(stream, { maxDataLength: limits.requestBytesMax + 4 });
    // Everything below ends at the deadline, at stop, or as soon as the requester hangs up.
    const timeout = deadline(limits.requestTimeoutMs, this.#c.stopped);
    const hangUp = new AbortController();
    const onClose = () => hangUp.abort(new Error('the requester closed the stream'));
    stream.addEventListener('close', onClose, { once: true });
    const signal = AbortSignal.any([timeout.signal, hangUp.signal]);
    const busy = link.requestsInInFlight >= limits.requestsInFlightPerPeerMax;
    if (!busy) link.requestsInInFlight++;
    try {
      if (busy) {
        link.metrics.requestsInRefused++;
        await lp.write(encodeResponse('busy'), { signal });
      } else {
        const frame = await lp.read({ signal });
        const { maxResponseBytes, request } = decodeRequest(frame.subarray());
        const limit = Math.min(maxResponseBytes, limits.responseBytesMax);
        // Raced, so a handler that ignores its signal cannot hold a request slot past the end.
        const answer = await raceAbort(this.#answer(link, request, limit, signal), signal);
        await lp.write(encodeResponse(answer), { signal });
      }
      await stream.close({ signal });
    } catch (err) {
      if (err instanceof InvalidDataLengthError) {
        this.#c.drop(link, 'oversize', 'sent a request above requestBytesMax');
      } else if (isFramingError(err)) {
        this.#c.drop(link, 'malformed', `bad request: ${(err as Error).message}`);
      }
      stream.abort(err instanceof Error ? err : new Error(String(err)));
    } finally {
      if (!busy) link.requestsInInFlight--;
      stream.removeEventListener('close', onClose);
      timeout.clear();
    }
  }

  async #answer(
    link: Link,
    request: Uint8Array,
    maxResponseBytes: number,
    signal: AbortSignal,
  ): Promise<Uint8Array | RemoteRequestFailure> {
    const handler = this.#c.handler();
    if (!handler) return 'no-handler';
    try {
      const answer = await handler(request, { from: link.memberId, maxResponseBytes, signal });
      return answer.byteLength > maxResponseBytes ? 'response-too-large' : answer;
    } catch (err) {
      if (signal.aborted) throw err;
      this.#c.log.warn('request handler failed', { from: link.memberId, error: errorText(err) });
      return 'handler-failed';
    }
  }
}
