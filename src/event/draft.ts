/**
 * What the normaliser hands to the signer: an event before the gateway gives it its sequence number,
 * chain link, commitment and signature (see event.ts for the signed form).
 */
import type { GapInfo } from './event.ts';
import type { DataClass, EventKind, Quality } from './kinds.ts';

export interface EventValue {
  v: number | string | boolean | null;
  unit?: string;
  q: Quality;
}

export interface EventDraft {
  kind: EventKind;
  dataClass: DataClass;
  station: string;
  device: string;
  /** Device's time of the triggering reading, ms since the epoch. */
  sourceTimeMs: number;
  lot?: string;
  product?: string;
  order?: string;
  step?: string;
  /** Name of the rule that produced the event. */
  rule?: string;
  values: Record<string, EventValue>;
  /** Only for kind 'gap': what was lost (see outbox disk budget). */
  gap?: GapInfo;
}
