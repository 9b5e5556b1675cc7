/**
 * DraftBatcher.flushed(), behind the gateway's DriverContext.durable(): one shared promise per outbox
 * write, the write brought forward when someone waits, nothing resolved before the write succeeded,
 * and stop() settling every waiter.
 */
import { describe, expect, it } from 'vitest';
import type { EventDraft } from '../../src/event/draft.ts';
import { DraftBatcher } from '../../src/normaliser/batcher.ts';

const draft = (i: number): EventDraft => ({
  kind: 'measurement',
  dataClass: 'process',
  station: 'ST',
  device: 'd',
  sourceTimeMs: i,
  values: {},
});

function batcher(flush: (d: EventDraft[]) => void) {
  const overflow: EventDraft[] = [];
  const b = new DraftBatcher({
    batchEventsMax: 100,
    batchWindowMs: 60_000, // never the reason a flush happens here
    queueMax: 1_000,
    retryMs: 20,
    flush,
    onOverflow: (d) => overflow.push(...d),
  });
  return { b, overflow };
}

describe('DraftBatcher.flushed', () => {
  it('is null with nothing queued; otherwise one shared promise, resolved by a write brought forward', async () => {
    const writes: number[] = [];
    const { b } = batcher((d) => writes.push(d.length));
    expect(b.flushed()).toBeNull();
    b.push(draft(1));
    const p1 = b.flushed();
    b.push(draft(2));
    const p2 = b.flushed();
    expect(p1).toBe(p2);
    await p1;
    // One write of both drafts, long before the 60 s batch window.
    expect(writes).toEqual([2]);
    expect(b.flushed()).toBeNull();
    b.stop();
  });

  it('stays pending while the outbox refuses writes, resolves after the retry that succeeds', async () => {
    let failing = true;
    let attempts = 0;
    const retried = Promise.withResolvers<void>();
    const { b } = batcher(() => {
      attempts++;
      if (attempts === 2) retried.resolve();
      if (failing) throw new Error('disk I/O error');
    });
    b.push(draft(1));
    let done = false;
    const p = b.flushed()!.then(() => {
      done = true;
    });
    await retried.promise; // the first attempt failed, and so did the retry
    expect(done).toBe(false);
    failing = false;
    await p;
    expect(b.stats()).toMatchObject({ queued: 0, flushed: 1 });
    b.stop();
  });

  it('stop() settles waiters even when the last write fails (the drafts go to the gap record)', async () => {
    const { b, overflow } = batcher(() => {
      throw new Error('disk full');
    });
    b.push(draft(1));
    const p = b.flushed()!;
    b.stop();
    await p;
    expect(overflow).toHaveLength(1);
  });
});
