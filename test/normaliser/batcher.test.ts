import { describe, expect, it, vi } from 'vitest';
import type { EventDraft } from '../../src/event/draft.ts';
import { DraftBatcher } from '../../src/normaliser/batcher.ts';

const draft = (i: number): EventDraft => ({
  kind: 'measurement',
  dataClass: 'process',
  station: 'S',
  device: 'd',
  sourceTimeMs: i,
  values: { x: { v: i, q: 'good' } },
});

describe('draft batcher', () => {
  it('flushes full batches at once and partial ones after the window', () => {
    vi.useFakeTimers();
    try {
      const flushed: number[][] = [];
      const b = new DraftBatcher({
        batchEventsMax: 3,
        batchWindowMs: 20,
        queueMax: 9,
        flush: (d) => flushed.push(d.map((x) => x.sourceTimeMs)),
        onOverflow: () => {
          throw new Error('no overflow expected');
        },
      });
      for (let i = 1; i <= 4; i++) b.push(draft(i));
      expect(flushed).toEqual([[1, 2, 3]]);
      vi.advanceTimersByTime(19);
      expect(flushed).toHaveLength(1);
      vi.advanceTimersByTime(1);
      expect(flushed).toEqual([[1, 2, 3], [4]]);
      expect(b.stats()).toMatchObject({ queued: 0, flushed: 4 });
    } finally {
      vi.useRealTimers();
    }
  });

  it('keeps drafts while flushing fails, hands the oldest to onOverflow when full, and retries', () => {
    vi.useFakeTimers();
    try {
      let failing = true;
      const flushed: number[] = [];
      const overflow: number[] = [];
      const errors: string[] = [];
      const b = new DraftBatcher({
        batchEventsMax: 2,
        batchWindowMs: 10,
        queueMax: 4,
        retryMs: 100,
        flush: (d) => {
          if (failing) throw new Error('disk I/O error');
          flushed.push(...d.map((x) => x.sourceTimeMs));
        },
        onOverflow: (d) => overflow.push(...d.map((x) => x.sourceTimeMs)),
        onError: (e) => errors.push(e.message),
      });
      for (let i = 1; i <= 6; i++) b.push(draft(i));
      expect(overflow).toEqual([1, 2]);
      expect(b.stats()).toMatchObject({ queued: 4, overflowed: 2 });
      failing = false;
      vi.advanceTimersByTime(100);
      expect(flushed).toEqual([3, 4, 5, 6]);
      expect(b.stats()).toMatchObject({ queued: 0, flushed: 4 });
      expect(errors.length).toBeGreaterThan(0);
    } finally {
      vi.useRealTimers();
    }
  });

  it('stop flushes what is left and refuses more', () => {
    const flushed: number[] = [];
    const b = new DraftBatcher({
      batchEventsMax: 10,
      batchWindowMs: 1000,
      queueMax: 10,
      flush: (d) => flushed.push(...d.map((x) => x.sourceTimeMs)),
      onOverflow: () => {},
    });
    b.push(draft(1));
    b.stop();
    b.push(draft(2));
    expect(flushed).toEqual([1]);
  });
});
