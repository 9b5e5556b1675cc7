/** Pure parts of the transport: framing, the outbound queue, the inbound dispatcher. */
import { describe, expect, it } from 'vitest';
import {
  dataHeader,
  decodeRequest,
  decodeResponse,
  encodeCredit,
  encodePing,
  encodeRequest,
  encodeResponse,
  type Frame,
  FrameDecoder,
  FrameError,
} from '../../../src/consensus/net/frames.ts';
import { messageOverheadBytes } from '../../../src/consensus/net/limits.ts';
import { Dispatcher, OutboundQueue } from '../../../src/consensus/net/queues.ts';

const bytes = (...xs: number[]) => Uint8Array.from(xs);

function decodeAll(decoder: FrameDecoder, wire: Uint8Array, chunkBytes: number): Frame[] {
  const out: Frame[] = [];
  for (let i = 0; i < wire.byteLength; i += chunkBytes) {
    decoder.push(wire.subarray(i, i + chunkBytes));
    for (let f = decoder.next(); f; f = decoder.next()) out.push(f);
  }
  return out;
}

describe('frames', () => {
  it('decode the same whatever the chunking, and copy payloads out of the chunks', () => {
    const wire = Buffer.concat([
      dataHeader(3),
      bytes(1, 2, 3),
      encodePing(),
      dataHeader(0),
      dataHeader(1),
      bytes(9),
    ]);
    for (const chunk of [1, 2, 5, 7, wire.byteLength]) {
      const frames = decodeAll(new FrameDecoder('dialler', 16), wire, chunk);
      expect(frames).toEqual([
        { type: 'data', payload: bytes(1, 2, 3) },
        { type: 'ping' },
        { type: 'data', payload: bytes() },
        { type: 'data', payload: bytes(9) },
      ]);
      expect((frames[0] as { payload: Uint8Array }).payload.buffer).not.toBe(wire.buffer);
    }
    const credit = decodeAll(new FrameDecoder('listener', 0), encodeCredit(123_456), 3);
    expect(credit).toEqual([{ type: 'credit', bytes: 123_456 }]);
  });

  it('reject an oversize message from its header, before the body arrives', () => {
    const d = new FrameDecoder('dialler', 1000);
    d.push(dataHeader(1001));
    expect(() => d.next()).toThrow(expect.objectContaining({ kind: 'oversize' }));
    expect(d.bufferedBytes).toBe(5);
  });

  it('reject frames that are malformed or not allowed from that end of the stream', () => {
    const cases: [FrameDecoder, Uint8Array][] = [
      [new FrameDecoder('dialler', 100), bytes(0, 0, 0, 0, 1)], // length 0
      [new FrameDecoder('dialler', 100), bytes(0, 0, 0, 1, 7)], // unknown type
      [new FrameDecoder('dialler', 100), encodeCredit(1)], // credit comes from the listener
      [new FrameDecoder('listener', 100), Buffer.concat([dataHeader(1), bytes(1)])], // data from the listener
      [new FrameDecoder('listener', 100), bytes(0, 0, 0, 3, 2, 0, 0)], // short credit
      [new FrameDecoder('dialler', 100), bytes(0, 0, 0, 2, 3, 0)], // ping with a body
    ];
    for (const [d, wire] of cases) {
      d.push(wire);
      expect(() => d.next()).toThrow(FrameError);
      expect(() => d.next()).toThrow(expect.objectContaining({ kind: 'malformed' }));
    }
  });

  it('request and response round trip; an unknown failure is malformed', () => {
    expect(decodeRequest(encodeRequest(4096, bytes(7, 8)))).toEqual({
      maxResponseBytes: 4096,
      request: bytes(7, 8),
    });
    expect(() => decodeRequest(bytes(0, 0))).toThrow(FrameError);
    expect(() => decodeRequest(encodeRequest(0, bytes()))).toThrow(FrameError);
    expect(decodeResponse(encodeResponse(bytes(1, 2)))).toEqual(bytes(1, 2));
    expect(decodeResponse(encodeResponse('busy'))).toBe('busy');
    expect(() => decodeResponse(Buffer.concat([bytes(1), new TextEncoder().encode('nonsense')]))).toThrow(
      FrameError,
    );
    expect(() => decodeResponse(bytes(2))).toThrow(FrameError);
  });
});

describe('OutboundQueue', () => {
  it('drops the oldest messages when full, by count or by bytes, and reports how many', () => {
    const q = new OutboundQueue(3, 3 * (10 + messageOverheadBytes));
    expect([1, 2, 3].map((i) => q.push(new Uint8Array(10).fill(i)))).toEqual([0, 0, 0]);
    expect(q.push(new Uint8Array(10).fill(4))).toBe(1);
    expect(q.peek()![0]).toBe(2);
    // One larger message evicts two.
    expect(q.push(new Uint8Array(20 + messageOverheadBytes).fill(5))).toBe(2);
    expect([q.shift()![0], q.shift()![0], q.shift()]).toEqual([4, 5, undefined]);
    expect([q.length, q.cost]).toEqual([0, 0]);
    expect(() => q.push(new Uint8Array(3 * (10 + messageOverheadBytes)))).toThrow(RangeError);
  });

  it('drops the messages queued before a cutoff, oldest first, and keeps the rest in order', () => {
    const q = new OutboundQueue(10, 10_000);
    q.push(bytes(1), 1_000);
    q.push(bytes(2), 2_000);
    q.push(bytes(3), 3_000);
    expect(q.dropQueuedBefore(1_000)).toBe(0); // strictly before
    expect(q.dropQueuedBefore(2_500)).toBe(2);
    expect([q.length, q.cost]).toEqual([1, 1 + messageOverheadBytes]);
    q.push(bytes(4), 4_000);
    expect(q.shift()![0]).toBe(3);
    expect(q.dropQueuedBefore(3_999)).toBe(0); // timestamps followed the shift
    expect(q.dropQueuedBefore(10_000)).toBe(1);
    expect([q.length, q.cost, q.peek()]).toEqual([0, 0, undefined]);
  });

  it('waitForRoom resolves once a message fits, and fails when the queue closes', async () => {
    const q = new OutboundQueue(2, 1000);
    q.push(bytes(1));
    q.push(bytes(2));
    let ready = false;
    const room = q.waitForRoom(1).then(() => {
      ready = true;
    });
    await Promise.resolve();
    expect(ready).toBe(false);
    q.shift();
    await room;
    expect(ready).toBe(true);
    q.push(bytes(3));
    const closed = q.waitForRoom(1);
    q.close(new Error('stopped'));
    await expect(closed).rejects.toThrow('stopped');
    const controller = new AbortController();
    q.push(bytes(4));
    q.push(bytes(5));
    const aborted = q.waitForRoom(1, controller.signal);
    controller.abort(new Error('gave up'));
    await expect(aborted).rejects.toThrow('gave up');
    await expect(q.waitForRoom(2000)).rejects.toThrow(RangeError);
  });
});

describe('Dispatcher', () => {
  function dispatcher() {
    const released: [string, number][] = [];
    const errors: unknown[] = [];
    const d = new Dispatcher({
      deliveryBatchMax: 2,
      released: (from, cost) => released.push([from, cost]),
      handlerError: (_from, err) => errors.push(err),
    });
    return { d, released, errors };
  }

  it('serves peers round-robin, one message each, and releases credit after the handler', async () => {
    const { d, released } = dispatcher();
    for (const i of [1, 2, 3]) d.enqueue('a', bytes(i), 10);
    d.enqueue('b', bytes(4), 20);
    d.enqueue('c', bytes(5), 30);
    const seen: string[] = [];
    expect(d.queued('a')).toBe(30);
    d.setHandler((from, p) => {
      seen.push(`${from}${p[0]}`);
    });
    expect(seen).toEqual([]); // never inside setHandler or enqueue
    await d.idle();
    expect(seen).toEqual(['a1', 'b4', 'c5', 'a2', 'a3']);
    expect(released).toEqual([
      ['a', 10],
      ['b', 20],
      ['c', 30],
      ['a', 10],
      ['a', 10],
    ]);
    expect(d.queued('a')).toBe(0);
  });

  it('waits for an async handler before the next message, counts failures, and stops', async () => {
    const { d, released, errors } = dispatcher();
    let finish: (() => void) | undefined;
    const seen: number[] = [];
    d.setHandler(async (_from, p) => {
      seen.push(p[0]!);
      if (p[0] === 1) await new Promise<void>((resolve) => (finish = resolve));
      if (p[0] === 2) throw new Error('bad message');
    });
    d.enqueue('a', bytes(1), 1);
    d.enqueue('a', bytes(2), 1);
    d.enqueue('a', bytes(3), 1);
    await Promise.resolve();
    await Promise.resolve();
    expect(seen).toEqual([1]);
    expect(released).toEqual([]);
    finish!();
    await d.idle();
    expect(seen).toEqual([1, 2, 3]);
    expect(errors).toHaveLength(1);
    expect(released).toHaveLength(3);
    d.stop();
    d.enqueue('a', bytes(4), 1);
    await d.idle();
    expect(seen).toEqual([1, 2, 3]);
  });
});
