/**
 * Framing of the message protocol: `u32 length ‖ u8 type ‖ body`, length counting type and body.
 *
 *   DATA   0x01  body = one message            dialler → listener
 *   CREDIT 0x02  body = u32 bytes of credit    listener → dialler (also the answer to a PING)
 *   PING   0x03  empty                         dialler → listener, when it has sent nothing lately
 *
 * Why not `lpStream` from @libp2p/utils here: its reader takes one promise per byte of the varint
 * and buffers up to its own 4 MiB limit; this decoder runs synchronously on each chunk the stream
 * emits, buffers at most one frame, and rejects an oversize frame from its 5-byte header before
 * any of the body arrives. (Block-sync requests, one frame each way, do use lpStream.)
 */
import { type RemoteRequestFailure, remoteRequestFailures } from './errors.ts';

export const frameHeaderBytes = 5;
export const creditBodyBytes = 4;

export type Frame =
  | { type: 'data'; payload: Uint8Array }
  | { type: 'credit'; bytes: number }
  | { type: 'ping' };

const typeCode = { data: 1, credit: 2, ping: 3 } as const;

/** A frame that breaks the protocol. `oversize` is told apart because it is counted apart. */
export class FrameError extends Error {
  override name = 'FrameError';
  readonly kind: 'oversize' | 'malformed';
  constructor(kind: 'oversize' | 'malformed', message: string) {
    super(message);
    this.kind = kind;
  }
}

function header(type: number, bodyBytes: number): Uint8Array {
  const h = new Uint8Array(frameHeaderBytes);
  new DataView(h.buffer).setUint32(0, bodyBytes + 1);
  h[4] = type;
  return h;
}

/** Header of a DATA frame; the payload follows it unchanged (no copy). */
export function dataHeader(payloadBytes: number): Uint8Array {
  return header(typeCode.data, payloadBytes);
}

export function encodeCredit(bytes: number): Uint8Array {
  const f = header(typeCode.credit, creditBodyBytes);
  const full = new Uint8Array(frameHeaderBytes + creditBodyBytes);
  full.set(f);
  new DataView(full.buffer).setUint32(frameHeaderBytes, bytes);
  return full;
}

export function encodePing(): Uint8Array {
  return header(typeCode.ping, 0);
}

/** Which end of the message stream the frames come from, hence which types are allowed. */
export type FrameSource = 'dialler' | 'listener';
const allowed: Record<FrameSource, readonly number[]> = {
  dialler: [typeCode.data, typeCode.ping],
  listener: [typeCode.credit],
};

/**
 * Incremental decoder. Holds at most one partial frame: `push` a chunk, then call `next` until it
 * returns undefined. Throws {@link FrameError}; after that the stream must be dropped.
 */
export class FrameDecoder {
  readonly #payloadBytesMax: number;
  readonly #allowed: readonly number[];
  #chunks: Uint8Array[] = [];
  #buffered = 0;

  constructor(source: FrameSource, payloadBytesMax: number) {
    this.#allowed = allowed[source];
    this.#payloadBytesMax = payloadBytesMax;
  }

  get bufferedBytes(): number {
    return this.#buffered;
  }

  push(chunk: Uint8Array): void {
    if (chunk.byteLength === 0) return;
    this.#chunks.push(chunk);
    this.#buffered += chunk.byteLength;
  }

  next(): Frame | undefined {
    if (this.#buffered < frameHeaderBytes) return undefined;
    const h = this.#peek(frameHeaderBytes);
    const length = new DataView(h.buffer, h.byteOffset, h.byteLength).getUint32(0);
    const type = h[4];
    if (length === 0) throw new FrameError('malformed', 'frame of length 0');
    if (!this.#allowed.includes(type!))
      throw new FrameError('malformed', `frame type ${type} not allowed here`);
    const bodyBytes = length - 1;
    if (type === typeCode.data && bodyBytes > this.#payloadBytesMax) {
      throw new FrameError('oversize', `message of ${bodyBytes} bytes exceeds ${this.#payloadBytesMax}`);
    }
    if (type === typeCode.credit && bodyBytes !== creditBodyBytes) {
      throw new FrameError('malformed', `credit frame body of ${bodyBytes} bytes`);
    }
    if (type === typeCode.ping && bodyBytes !== 0)
      throw new FrameError('malformed', 'ping frame with a body');
    if (this.#buffered < frameHeaderBytes + bodyBytes) return undefined;
    this.#skip(frameHeaderBytes);
    // A copy, so a queued message pins exactly its own bytes and not the chunk it arrived in.
    const body = this.#take(bodyBytes);
    if (type === typeCode.data) return { type: 'data', payload: body };
    if (type === typeCode.ping) return { type: 'ping' };
    return { type: 'credit', bytes: new DataView(body.buffer, body.byteOffset, 4).getUint32(0) };
  }

  /** The first `n` buffered bytes, without consuming them (a view when they lie in one chunk). */
  #peek(n: number): Uint8Array {
    const first = this.#chunks[0]!;
    if (first.byteLength >= n) return first.subarray(0, n);
    const out = new Uint8Array(n);
    let filled = 0;
    for (const c of this.#chunks) {
      const part = c.subarray(0, n - filled);
      out.set(part, filled);
      filled += part.byteLength;
      if (filled === n) break;
    }
    return out;
  }

  #take(n: number): Uint8Array {
    const out = new Uint8Array(n);
    let filled = 0;
    while (filled < n) {
      const c = this.#chunks[0]!;
      const part = c.subarray(0, n - filled);
      out.set(part, filled);
      filled += part.byteLength;
      this.#consumeFirst(part.byteLength);
    }
    return out;
  }

  #skip(n: number): void {
    while (n > 0) {
      const step = Math.min(n, this.#chunks[0]!.byteLength);
      this.#consumeFirst(step);
      n -= step;
    }
  }

  #consumeFirst(n: number): void {
    const c = this.#chunks[0]!;
    if (n === c.byteLength) this.#chunks.shift();
    else this.#chunks[0] = c.subarray(n);
    this.#buffered -= n;
  }
}

/*
 * Block-sync protocol: one stream per request, one length-prefixed frame each way (lpStream).
 *   request  = u32 maxResponseBytes ‖ request bytes
 *   response = u8 0 ‖ answer bytes | u8 1 ‖ UTF-8 failure reason (one of remoteRequestFailures)
 */

const requestHeaderBytes = 4;

export function encodeRequest(maxResponseBytes: number, request: Uint8Array): Uint8Array {
  const out = new Uint8Array(requestHeaderBytes + request.byteLength);
  new DataView(out.buffer).setUint32(0, maxResponseBytes);
  out.set(request, requestHeaderBytes);
  return out;
}

export function decodeRequest(frame: Uint8Array): { maxResponseBytes: number; request: Uint8Array } {
  if (frame.byteLength < requestHeaderBytes)
    throw new FrameError('malformed', 'request shorter than its header');
  const maxResponseBytes = new DataView(frame.buffer, frame.byteOffset, requestHeaderBytes).getUint32(0);
  if (maxResponseBytes === 0) throw new FrameError('malformed', 'request allows a 0-byte answer');
  return { maxResponseBytes, request: frame.subarray(requestHeaderBytes) };
}

export function encodeResponse(answer: Uint8Array | RemoteRequestFailure): Uint8Array {
  const body = typeof answer === 'string' ? new TextEncoder().encode(answer) : answer;
  const out = new Uint8Array(1 + body.byteLength);
  out[0] = typeof answer === 'string' ? 1 : 0;
  out.set(body, 1);
  return out;
}

export function decodeResponse(frame: Uint8Array): Uint8Array | RemoteRequestFailure {
  if (frame[0] === 0) return frame.subarray(1);
  const reason = frame[0] === 1 ? new TextDecoder().decode(frame.subarray(1)) : undefined;
  if (!(remoteRequestFailures as readonly (string | undefined)[]).includes(reason)) {
    throw new FrameError('malformed', 'response is neither an answer nor a known failure');
  }
  return reason as RemoteRequestFailure;
}
