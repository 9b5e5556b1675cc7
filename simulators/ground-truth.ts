/**
 * Ground truth: what physically happened on the simulated shop floor, in the order it happened.
 *
 * The scenario engine appends one record per happening; tests compare it with what the gateway
 * collected (every part, lot, state change, alarm and material scan must reach the chain exactly once;
 * every malformed message must have been counted). Records carry a gap-free `seq` so a reader can tell
 * whether it saw everything.
 *
 * Bound and overflow policy: the in-memory log keeps the newest `capacity` records (default 100 000).
 * When full, appending drops the OLDEST record and increments `dropped`; queries then start at
 * `firstSeq`. A test that needs the complete history asserts `dropped === 0` or reads the optional
 * JSONL file, which receives every record and is never truncated by the simulator.
 *
 * @example
 *   const parts = log.query({ kind: 'part_completed', machine: 'CNC1' });
 *   expect(log.dropped).toBe(0);
 */

import { closeSync, openSync, writeSync } from 'node:fs';

export type MachineState = 'Idle' | 'Running' | 'Down';

/** Why a message was malformed; the MQTT simulator renders one payload shape per reason. */
export type MalformedReason = 'invalid_json' | 'wrong_type' | 'missing_field';

interface Base {
  /** 1-based, gap-free, in emission order. */
  seq: number;
  /** Simulated time of the happening, ms since the epoch. */
  atMs: number;
  /** The machine or device it happened on (e.g. `CNC1`, `OVEN1`, `SCANNER1`). */
  machine: string;
}

export interface StateChanged extends Base {
  kind: 'state_changed';
  /** null for the initial state at scenario start. */
  from: MachineState | null;
  to: MachineState;
}

export interface LotStarted extends Base {
  kind: 'lot_started';
  lot: string;
  order: string;
  product: string;
  /** Parts in the lot (planned for CNC and press lots; loaded into the oven for oven batches). */
  plannedParts: number;
}

export interface LotFinished extends Base {
  kind: 'lot_finished';
  lot: string;
  order: string;
  product: string;
  parts: number;
  /** Parts measured out of tolerance in this lot on this machine (0 on the oven, which has no gauge). */
  outOfTolerance: number;
}

export interface StepStarted extends Base {
  kind: 'step_started';
  lot: string;
  order: string;
  serial: string;
  /** Process step, e.g. `OP10-ROUGH`, `OP20-FINISH`. */
  step: string;
}

export interface PartCompleted extends Base {
  kind: 'part_completed';
  lot: string;
  order: string;
  /** Product serial (CNC parts); null for parts that carry none (pressed brackets). */
  serial: string | null;
  /** 1-based count of this part within its lot. */
  partCount: number;
  /** Machine lifetime counter after this part. */
  totalCount: number;
  /** Measured values, names carry units last: CNC `diameterMm`, press `peakForceKn`. */
  values: Record<string, number>;
  inTolerance: boolean;
}

export interface AlarmRecord extends Base {
  kind: 'alarm';
  code: number;
  text: string;
  /** true when raised, false when cleared. */
  active: boolean;
}

export interface MaterialConsumed extends Base {
  kind: 'material_consumed';
  lot: string;
  order: string;
  material: string;
  qty: number;
  unit: string;
  /** The device that reported the consumption (the barcode scanner). */
  scanner: string;
}

export interface SensorSample extends Base {
  kind: 'sensor_sample';
  /** Lot inside the machine when sampled, null when empty. */
  lot: string | null;
  zone: number;
  value: number;
  unit: string;
}

/** A device sent a message that a gateway must reject and count (sent in addition to the valid ones). */
export interface MalformedMessage extends Base {
  kind: 'malformed_message';
  channel: 'telemetry' | 'scan';
  reason: MalformedReason;
}

export type GroundTruthRecord =
  | StateChanged
  | LotStarted
  | LotFinished
  | StepStarted
  | PartCompleted
  | AlarmRecord
  | MaterialConsumed
  | SensorSample
  | MalformedMessage;

export type RecordKind = GroundTruthRecord['kind'];

export const RECORD_KINDS: readonly RecordKind[] = [
  'state_changed',
  'lot_started',
  'lot_finished',
  'step_started',
  'part_completed',
  'alarm',
  'material_consumed',
  'sensor_sample',
  'malformed_message',
];

export const MALFORMED_REASONS: readonly MalformedReason[] = ['invalid_json', 'wrong_type', 'missing_field'];

/** A record as the engine creates it, before the log numbers it. */
export type NewRecord = GroundTruthRecord extends infer R ? (R extends Base ? Omit<R, 'seq'> : never) : never;

export interface GroundTruthQuery {
  kind?: RecordKind;
  machine?: string;
  lot?: string;
  /** Only records with seq >= fromSeq. */
  fromSeq?: number;
  /** At most this many records (oldest first). */
  limit?: number;
}

export const GROUND_TRUTH_CAPACITY_DEFAULT = 100_000;

export class GroundTruthLog {
  readonly capacity: number;
  /** Records dropped from memory because the log was full (they are still in the JSONL file, if any). */
  dropped = 0;
  private readonly ring: GroundTruthRecord[] = [];
  private head = 0; // index of the oldest record once the ring is full
  private nextSeq = 1;
  private fd: number | null;
  private pendingLines: string[] = [];

  constructor(options: { capacity?: number; file?: string } = {}) {
    this.capacity = options.capacity ?? GROUND_TRUTH_CAPACITY_DEFAULT;
    if (!Number.isInteger(this.capacity) || this.capacity < 1) {
      throw new RangeError(`ground truth capacity must be a positive integer, got ${this.capacity}`);
    }
    // Append mode: a file given twice keeps both runs, each recognisable by its seq restarting at 1.
    this.fd = options.file ? openSync(options.file, 'a') : null;
  }

  /** Number of records held in memory. */
  get size(): number {
    return this.ring.length;
  }

  /** seq of the newest record, 0 when none was appended yet. */
  get lastSeq(): number {
    return this.nextSeq - 1;
  }

  /** seq of the oldest record still in memory. */
  get firstSeq(): number {
    return this.nextSeq - this.ring.length;
  }

  /** Numbers and stores a record; the engine is the only writer. */
  append(record: NewRecord): GroundTruthRecord {
    const full = { seq: this.nextSeq++, ...record } as GroundTruthRecord;
    if (this.ring.length < this.capacity) {
      this.ring.push(full);
    } else {
      this.ring[this.head] = full;
      this.head = (this.head + 1) % this.capacity;
      this.dropped++;
    }
    if (this.fd !== null) this.pendingLines.push(JSON.stringify(full));
    return full;
  }

  /**
   * Writes the records appended since the last flush to the JSONL file. The engine calls it once per
   * `step()`, so the file costs one synchronous write per step and holds at most one step unwritten.
   */
  flush(): void {
    if (this.fd === null || this.pendingLines.length === 0) return;
    writeSync(this.fd, `${this.pendingLines.join('\n')}\n`);
    this.pendingLines = [];
  }

  /** Records in seq order, filtered. */
  query(q: GroundTruthQuery = {}): GroundTruthRecord[] {
    const out: GroundTruthRecord[] = [];
    const limit = q.limit ?? Number.POSITIVE_INFINITY;
    const n = this.ring.length;
    for (let i = 0; i < n && out.length < limit; i++) {
      const r = this.ring[(this.head + i) % n]!;
      if (q.fromSeq !== undefined && r.seq < q.fromSeq) continue;
      if (q.kind !== undefined && r.kind !== q.kind) continue;
      if (q.machine !== undefined && r.machine !== q.machine) continue;
      if (q.lot !== undefined && !('lot' in r && r.lot === q.lot)) continue;
      out.push(r);
    }
    return out;
  }

  /** Flushes and closes the file sink; the in-memory log stays queryable. */
  close(): void {
    this.flush();
    if (this.fd !== null) closeSync(this.fd);
    this.fd = null;
  }
}
