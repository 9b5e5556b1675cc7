/**
 * The last reading of every tag, for the status page: value, quality (with its reason) and source
 * time, plus when the gateway received it. Fed with every batch of readings (the gateway's
 * `onReadings` hook), so it costs a map update per reading and nothing else.
 *
 * Bounded at `tagsMax` device/tag pairs: the configured tags fit many times over; a pair seen
 * when full (an MQTT wildcard mapping new tag names, say) is counted in `dropped`, not kept, and
 * the pairs already kept stay current.
 *
 * @example
 *   const tags = new TagCache(4096);
 *   tags.record(batch, Date.now());
 *   tags.list(1000); // sorted by device, then tag
 */
import type { Quality, Reading, ReadingValue } from '../drivers/types.ts';

export interface TagView {
  device: string;
  tag: string;
  value: ReadingValue;
  quality: Quality;
  reason?: string;
  sourceTimeMs: number;
  receivedMs: number;
  /** Readings of this tag since the gateway started. */
  readings: number;
}

export class TagCache {
  readonly #max: number;
  readonly #tags = new Map<string, TagView>();
  #dropped = 0;

  constructor(max: number) {
    if (!Number.isSafeInteger(max) || max < 1) throw new RangeError('max must be a positive integer');
    this.#max = max;
  }

  record(batch: readonly Reading[], receivedMs: number): void {
    for (const r of batch) {
      const key = `${r.device}\u0000${r.tag}`;
      const t = this.#tags.get(key);
      if (t) {
        t.value = r.value;
        t.quality = r.quality;
        t.sourceTimeMs = r.sourceTimeMs;
        t.receivedMs = receivedMs;
        t.readings++;
        if (r.reason === undefined) delete t.reason;
        else t.reason = r.reason;
        continue;
      }
      if (this.#tags.size >= this.#max) {
        this.#dropped++;
        continue;
      }
      this.#tags.set(key, {
        device: r.device,
        tag: r.tag,
        value: r.value,
        quality: r.quality,
        ...(r.reason === undefined ? {} : { reason: r.reason }),
        sourceTimeMs: r.sourceTimeMs,
        receivedMs,
        readings: 1,
      });
    }
  }

  get size(): number {
    return this.#tags.size;
  }

  /** Readings of device/tag pairs not kept because the cache was full. */
  get dropped(): number {
    return this.#dropped;
  }

  /** Copies of the first `limit` tags, sorted by device, then tag. */
  list(limit: number): TagView[] {
    return [...this.#tags.values()]
      .sort((a, b) => (a.device === b.device ? cmp(a.tag, b.tag) : cmp(a.device, b.device)))
      .slice(0, limit)
      .map((t) => ({ ...t }));
  }
}

function cmp(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}
