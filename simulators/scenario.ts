/**
 * The seeded scenario engine: one shop-floor line whose machines start and finish lots, produce and
 * measure parts, consume material, heat-treat batches, break down and get repaired. Every protocol
 * simulator renders this one engine, so a test drives OPC UA, Modbus and MQTT from the same truth.
 *
 * Determinism: the engine is a discrete-event simulation. Time only moves when the caller invokes
 * `step(nowMs)`, which fires every scheduled happening with a time <= nowMs, in (time, machine order)
 * order. Random draws come from per-machine streams of one seed. The ground truth therefore depends
 * only on the options (seed included), never on how often or how far `step()` is called. Analog
 * values (spindle speed, pressures, temperatures) are pure functions of time, sampled on demand.
 *
 * The line (default machines, each option overridable):
 *   CNC1, CNC2   turning centres: lots of SHAFT-D25, serialised parts, steps OP10-ROUGH / OP20-FINISH,
 *                diameter gauged after each part (25.000 mm nominal, +/-0.020 mm tolerance, tool wear).
 *   PRESS1       hydraulic press: lots of BRACKET-B12 (no serials), peak force measured per stroke.
 *                Finished press lots queue for the oven (the same lot id travels on).
 *   OVEN1        tempering oven: heat-treats press lots as batches, three zones around 180 degC.
 *   SCANNER1     barcode scanner: reports the material each CNC and press lot consumes at lot start.
 *
 * @example
 *   const engine = createScenario({ seed: 7, startMs: Date.UTC(2026, 0, 5, 6), cycleTimeMs: 10 });
 *   engine.onRecord((r) => console.log(r.kind));
 *   engine.step(Date.UTC(2026, 0, 5, 6) + 5_000);
 *   engine.groundTruth.query({ kind: 'part_completed' });
 *   engine.close();
 */

import {
  GroundTruthLog,
  type GroundTruthRecord,
  MALFORMED_REASONS,
  type MachineState,
  type MalformedReason,
  type NewRecord,
  RECORD_KINDS,
  type RecordKind,
} from './ground-truth.ts';
import { Rng, streamId, valueNoise } from './random.ts';

export type { GroundTruthRecord, MachineState, MalformedReason, RecordKind } from './ground-truth.ts';

export type MachineKind = 'cnc' | 'press' | 'oven';

export interface MachineSpec {
  /** Upper-case id used in NodeIds, topics and ground truth, e.g. `CNC1`. */
  id: string;
  kind: MachineKind;
  /** Overrides the scenario's cycle time for this machine. */
  cycleTimeMs?: number;
}

export const DEFAULT_MACHINES: readonly MachineSpec[] = [
  { id: 'CNC1', kind: 'cnc' },
  { id: 'CNC2', kind: 'cnc' },
  { id: 'PRESS1', kind: 'press' },
  { id: 'OVEN1', kind: 'oven' },
];

/** The device reporting material consumption. */
export const SCANNER_ID = 'SCANNER1';

export interface ScenarioOptions {
  /** Any integer; taken modulo 2^32. The same seed and options give the same ground truth. */
  seed: number;
  /** Simulated time at the start, ms since the epoch. Also fixes the year in lot/order/serial ids. */
  startMs: number;
  machines?: readonly MachineSpec[];
  /** Nominal part cycle (CNC, press), >= 10 ms. Default 2000 ms (demo); tests use 10 ms. Each cycle varies +/-2%. */
  cycleTimeMs?: number;
  /** Parts per CNC or press lot. Default 20. */
  partsPerLot?: number;
  /** Consecutive lots of one machine that belong to one order. Default 3. */
  lotsPerOrder?: number;
  /** Idle time between two lots (changeover), in cycles. Default 3. */
  changeoverCycles?: number;
  /** Probability that a machine breaks down after a part (after a batch, for the oven). Default 0.01. */
  downProbability?: number;
  /** Repair time range in cycles [min, max]. Default [5, 15]. */
  repairCycles?: readonly [number, number];
  /** Probability that a part gets a gross measurement error and is out of tolerance. Default 0.03. */
  outlierProbability?: number;
  /** Oven: time a batch soaks at setpoint, in cycles. Default 10. */
  ovenSoakCycles?: number;
  /** Oven: time to load a batch (door open), in cycles. Default 2. */
  ovenLoadCycles?: number;
  /** Press lots waiting for the oven; a press with a full queue stays Idle (blocked). Default 4. */
  ovenQueueMax?: number;
  /** Oven zone sensors publish every this many ms. Default 1000. */
  telemetryPeriodMs?: number;
  /** Probability that a sensor or scanner message is followed by a malformed one. Default 0. */
  malformedProbability?: number;
  /** In-memory ground-truth records (drop-oldest beyond). Default 100 000. */
  groundTruthCapacity?: number;
  /** Optional JSONL file receiving every ground-truth record (appended). */
  groundTruthFile?: string;
  /** Lots kept in the counter view (oldest evicted beyond). Default 10 000. */
  lotsTrackedMax?: number;
}

/** Product and process constants of the simulated line (documented in docs/simulators.md). */
export const CNC_PRODUCT = {
  product: 'SHAFT-D25',
  program: 'O4711 SHAFT-D25',
  material: 'RM-42CRMO4-D30',
  materialKgPerPart: 0.42,
  diameterNominalMm: 25,
  diameterToleranceMm: 0.02,
  diameterSigmaMm: 0.004,
  /** Tool wear grows the turned diameter; the tool is changed at every lot start. */
  toolWearMmPerPart: 0.0003,
  steps: ['OP10-ROUGH', 'OP20-FINISH'] as const,
} as const;

export const PRESS_PRODUCT = {
  product: 'BRACKET-B12',
  material: 'RM-DC04-T1.5',
  materialKgPerPart: 0.85,
  peakForceNominalKn: 250,
  peakForceToleranceKn: 10,
  peakForceSigmaKn: 2,
  /** Hydraulic pressure per kN of force (ram area), and the standby pressure of the running pump. */
  barPerKn: 0.8,
  standbyPressureBar: 25,
} as const;

export const OVEN_PROCESS = {
  setpointC: 180,
  standbyC: 120,
  ambientC: 25,
  zoneOffsetsC: [-0.8, 0, 0.6] as const,
  noiseC: 0.4,
} as const;

const ALARMS: Record<MachineKind, readonly { code: number; text: string }[]> = {
  cnc: [
    { code: 2041, text: 'SPINDLE OVERLOAD' },
    { code: 1012, text: 'COOLANT LEVEL LOW' },
    { code: 3005, text: 'TOOL BREAKAGE DETECTED T05' },
    { code: 1501, text: 'DOOR INTERLOCK OPEN' },
  ],
  press: [
    { code: 7001, text: 'HYDRAULIC OIL OVER TEMPERATURE' },
    { code: 7102, text: 'LIGHT CURTAIN INTERRUPTED' },
    { code: 7210, text: 'DIE PROTECTION FAULT' },
  ],
  oven: [
    { code: 4101, text: 'ZONE 2 HEATER FAULT' },
    { code: 4203, text: 'CIRCULATION FAN FAILURE' },
    { code: 4305, text: 'EXHAUST DAMPER FAULT' },
  ],
};

/** Fractions of a CNC or press cycle: machining ends at 0.9, the rest is unloading/loading. */
const CNC_FINISH_AT = 0.55;
const PART_DONE_AT = 0.9;
const PRESS_STROKE_END = 0.4;
const CYCLE_JITTER = 0.02;

export interface AlarmStatus {
  active: boolean;
  /** Code and text of the most recent alarm (kept after it clears); 0 and '' before the first one. */
  code: number;
  text: string;
}

interface StatusBase {
  id: string;
  state: MachineState;
  lot: string | null;
  order: string | null;
  product: string | null;
  plannedParts: number;
  /** Parts finished in the current lot (reset to 0 at lot start). */
  partCount: number;
  /** Machine lifetime parts (batches for the oven). */
  totalParts: number;
  alarm: AlarmStatus;
}

export interface CncStatus extends StatusBase {
  kind: 'cnc';
  program: string;
  /** Serial of the part in the machine (the last one until the next cycle starts). */
  serial: string | null;
  step: string;
  /** Last gauged diameter, null before the first part. */
  diameterMm: number | null;
  inTolerance: boolean | null;
  spindleSpeedRpm: number;
  spindleLoadPct: number;
}

export interface PressStatus extends StatusBase {
  kind: 'press';
  lastPeakForceKn: number | null;
  inTolerance: boolean | null;
  /** True from a part's completion until the next cycle starts. */
  cycleComplete: boolean;
  ramDown: boolean;
  pumpOn: boolean;
  hydraulicPressureBar: number;
  oilTempC: number;
}

export interface OvenStatus extends StatusBase {
  kind: 'oven';
  setpointC: number;
  zoneTempsC: [number, number, number];
  doorOpen: boolean;
  heatersOn: boolean;
  /** Press lots waiting for this line's ovens. */
  queuedLots: number;
}

export type MachineStatus = CncStatus | PressStatus | OvenStatus;

export interface LotCounters {
  lot: string;
  order: string;
  product: string;
  /** Per machine the lot went through (a press lot then appears under its oven too). */
  machines: Record<
    string,
    { parts: number; outOfTolerance: number; startedAtMs: number; finishedAtMs: number | null }
  >;
}

export interface Counters {
  atMs: number;
  /** Records appended to the ground truth so far (equals its lastSeq). */
  records: number;
  byKind: Record<RecordKind, number>;
  malformedByReason: Record<MalformedReason, number>;
  machines: Record<
    string,
    {
      kind: MachineKind;
      state: MachineState;
      partsTotal: number;
      outOfTolerance: number;
      lotsFinished: number;
    }
  >;
  /** The newest `lotsTrackedMax` lots, oldest first. */
  lots: LotCounters[];
}

export type RecordListener = (record: GroundTruthRecord) => void;
export type StepListener = (nowMs: number) => void;

interface Lot {
  lot: string;
  order: string;
  product: string;
  planned: number;
}

/** Something scheduled: machines and sensors. `nextAtMs` is Infinity while waiting for another actor. */
interface Actor {
  readonly index: number;
  nextAtMs: number;
  fire(atMs: number): void;
}

/** Resolved options with defaults applied and validated. */
interface Config {
  seed: number;
  startMs: number;
  cycleTimeMs: number;
  partsPerLot: number;
  lotsPerOrder: number;
  changeoverCycles: number;
  downProbability: number;
  repairCycles: readonly [number, number];
  outlierProbability: number;
  ovenSoakCycles: number;
  ovenLoadCycles: number;
  ovenQueueMax: number;
  telemetryPeriodMs: number;
  malformedProbability: number;
  lotsTrackedMax: number;
}

/**
 * Happenings are rounded to whole ms; from 10 ms up, the unloading gap at the end of a cycle (10%)
 * keeps at least 1 ms between a part's completion and the next part's serial, so no protocol ever
 * shows both in the same millisecond.
 */
export const CYCLE_TIME_MIN_MS = 10;

function checkCycleTime(name: string, ms: number): void {
  if (!(ms >= CYCLE_TIME_MIN_MS))
    throw new RangeError(`${name} must be >= ${CYCLE_TIME_MIN_MS} ms, got ${ms}`);
}

function resolve(o: ScenarioOptions): Config {
  const c: Config = {
    seed: o.seed >>> 0,
    startMs: o.startMs,
    cycleTimeMs: o.cycleTimeMs ?? 2000,
    partsPerLot: o.partsPerLot ?? 20,
    lotsPerOrder: o.lotsPerOrder ?? 3,
    changeoverCycles: o.changeoverCycles ?? 3,
    downProbability: o.downProbability ?? 0.01,
    repairCycles: o.repairCycles ?? [5, 15],
    outlierProbability: o.outlierProbability ?? 0.03,
    ovenSoakCycles: o.ovenSoakCycles ?? 10,
    ovenLoadCycles: o.ovenLoadCycles ?? 2,
    ovenQueueMax: o.ovenQueueMax ?? 4,
    telemetryPeriodMs: o.telemetryPeriodMs ?? 1000,
    malformedProbability: o.malformedProbability ?? 0,
    lotsTrackedMax: o.lotsTrackedMax ?? 10_000,
  };
  const positive: (keyof Config)[] = ['telemetryPeriodMs', 'ovenSoakCycles', 'ovenLoadCycles'];
  for (const k of positive) if (!((c[k] as number) > 0)) throw new RangeError(`${k} must be > 0`);
  checkCycleTime('cycleTimeMs', c.cycleTimeMs);
  const counts: (keyof Config)[] = ['partsPerLot', 'lotsPerOrder', 'ovenQueueMax', 'lotsTrackedMax'];
  for (const k of counts) {
    const v = c[k] as number;
    if (!Number.isInteger(v) || v < 1) throw new RangeError(`${k} must be a positive integer`);
  }
  for (const k of ['downProbability', 'outlierProbability', 'malformedProbability'] as const) {
    if (!(c[k] >= 0 && c[k] <= 1)) throw new RangeError(`${k} must be in [0, 1]`);
  }
  if (!(c.changeoverCycles >= 0)) throw new RangeError('changeoverCycles must be >= 0');
  const [rMin, rMax] = c.repairCycles;
  if (!(rMin > 0 && rMax >= rMin)) throw new RangeError('repairCycles must be [min > 0, max >= min]');
  if (!Number.isSafeInteger(c.startMs))
    throw new RangeError('startMs must be an integer (ms since the epoch)');
  return c;
}

const round = (x: number, decimals: number): number => {
  const f = 10 ** decimals;
  return Math.round(x * f) / f;
};

export class Scenario {
  readonly groundTruth: GroundTruthLog;
  readonly config: Readonly<Config>;
  private nowMsValue: number;
  private readonly actors: Actor[] = [];
  private readonly machines = new Map<string, ProductionMachine | Oven>();
  private readonly recordListeners = new Set<RecordListener>();
  private readonly stepListeners = new Set<StepListener>();
  private readonly ids: { year: number; lot: number; order: number; serial: number };
  /** Press lots waiting for an oven, bounded by ovenQueueMax (presses block instead of overfilling it). */
  readonly ovenQueue: Lot[] = [];
  private ovenSlotsReserved = 0;
  private readonly ovens: Oven[] = [];
  readonly scannerRng: Rng;
  private readonly byKind = Object.fromEntries(RECORD_KINDS.map((k) => [k, 0])) as Record<RecordKind, number>;
  private readonly malformedByReason = Object.fromEntries(MALFORMED_REASONS.map((r) => [r, 0])) as Record<
    MalformedReason,
    number
  >;
  private readonly lots = new Map<string, LotCounters>();
  private stepping = false;

  constructor(options: ScenarioOptions) {
    this.config = resolve(options);
    const c = this.config;
    this.nowMsValue = c.startMs;
    this.groundTruth = new GroundTruthLog({
      capacity: options.groundTruthCapacity,
      file: options.groundTruthFile,
    });
    // Id counters start at a seed-dependent offset so runs with different seeds do not reuse lot ids
    // in a persistent chain; the widths are minimums (ids grow a digit rather than wrap).
    const idRng = new Rng(c.seed, streamId('ids'));
    this.ids = {
      year: new Date(c.startMs).getUTCFullYear(),
      lot: idRng.int(1, 899_999),
      order: idRng.int(1, 89_999),
      serial: idRng.int(1, 8_999_999),
    };
    this.scannerRng = new Rng(c.seed, streamId(SCANNER_ID));
    const specs = options.machines ?? DEFAULT_MACHINES;
    const seen = new Set<string>();
    for (const spec of specs) {
      if (!/^[A-Z][A-Z0-9_]*$/.test(spec.id))
        throw new RangeError(`machine id must match [A-Z][A-Z0-9_]*: ${spec.id}`);
      if (seen.has(spec.id) || spec.id === SCANNER_ID)
        throw new RangeError(`duplicate machine id ${spec.id}`);
      seen.add(spec.id);
      const index = this.actors.length;
      const cycleMs = spec.cycleTimeMs ?? c.cycleTimeMs;
      checkCycleTime(`cycleTimeMs of ${spec.id}`, cycleMs);
      const m =
        spec.kind === 'oven'
          ? new Oven(this, spec.id, index, cycleMs)
          : new ProductionMachine(this, spec.id, spec.kind, index, cycleMs);
      this.machines.set(spec.id, m);
      this.actors.push(m);
      if (m instanceof Oven) this.ovens.push(m);
    }
    // Sensors come after all machines so that at equal times they sample the state the machines just set.
    for (const oven of this.ovens) this.actors.push(new ZoneSensors(this, oven, this.actors.length));
  }

  /** Current simulated time (the last `step()` argument, or startMs). */
  get nowMs(): number {
    return this.nowMsValue;
  }

  /** Machine ids in declaration order, optionally of one kind. */
  machineIds(kind?: MachineKind): string[] {
    return [...this.machines.values()].filter((m) => kind === undefined || m.kind === kind).map((m) => m.id);
  }

  /**
   * Fires every happening up to and including `nowMs`, then notifies step listeners. Moving backwards
   * is a caller bug. Cost is proportional to the happenings in the interval, so a long jump with a
   * short cycle time is slow but still exact.
   */
  step(nowMs: number): void {
    if (this.stepping) throw new Error('Scenario.step is not re-entrant (called from a listener?)');
    if (!(nowMs >= this.nowMsValue))
      throw new RangeError(`step(${nowMs}) is before now (${this.nowMsValue})`);
    this.stepping = true;
    try {
      for (;;) {
        let next: Actor | undefined;
        for (const a of this.actors)
          if (a.nextAtMs <= nowMs && (!next || a.nextAtMs < next.nextAtMs)) next = a;
        if (!next) break;
        const at = next.nextAtMs;
        this.nowMsValue = at;
        next.fire(at);
      }
      this.nowMsValue = nowMs;
      this.groundTruth.flush();
      for (const l of this.stepListeners) l(nowMs);
    } finally {
      this.stepping = false;
    }
  }

  /** Calls `listener` synchronously for every record, in seq order. Returns an unsubscribe function. */
  onRecord(listener: RecordListener): () => void {
    this.recordListeners.add(listener);
    return () => this.recordListeners.delete(listener);
  }

  /** Calls `listener` at the end of every `step()`, after all its records. Returns an unsubscribe function. */
  onStep(listener: StepListener): () => void {
    this.stepListeners.add(listener);
    return () => this.stepListeners.delete(listener);
  }

  /** Status of one machine at the current simulated time (analog values sampled now). */
  status(id: string): MachineStatus {
    const m = this.machines.get(id);
    if (!m) throw new RangeError(`unknown machine ${id}`);
    return m.status(this.nowMsValue);
  }

  /** Counter-style view of the ground truth; it counts every record, even those dropped from the log. */
  counters(): Counters {
    const machines: Counters['machines'] = {};
    for (const m of this.machines.values()) {
      machines[m.id] = {
        kind: m.kind,
        state: m.state,
        partsTotal: m.totalParts,
        outOfTolerance: m.outOfToleranceTotal,
        lotsFinished: m.lotsFinished,
      };
    }
    return {
      atMs: this.nowMsValue,
      records: this.groundTruth.lastSeq,
      byKind: { ...this.byKind },
      malformedByReason: { ...this.malformedByReason },
      machines,
      lots: [...this.lots.values()].map((l) => structuredClone(l)),
    };
  }

  /** Flushes and closes the ground-truth file. The engine must not be stepped afterwards. */
  close(): void {
    this.groundTruth.close();
  }

  // ---- For the actors of this module only (machines and sensors), not for simulators or tests ------

  emit(record: NewRecord): void {
    const full = this.groundTruth.append(record);
    this.byKind[full.kind]++;
    if (full.kind === 'malformed_message') this.malformedByReason[full.reason]++;
    this.trackLot(full);
    for (const l of this.recordListeners) l(full);
  }

  private trackLot(r: GroundTruthRecord): void {
    if (r.kind === 'lot_started') {
      let l = this.lots.get(r.lot);
      if (!l) {
        l = { lot: r.lot, order: r.order, product: r.product, machines: {} };
        this.lots.set(r.lot, l);
        if (this.lots.size > this.config.lotsTrackedMax) {
          const oldest = this.lots.keys().next().value as string;
          this.lots.delete(oldest);
        }
      }
      l.machines[r.machine] = { parts: 0, outOfTolerance: 0, startedAtMs: r.atMs, finishedAtMs: null };
    } else if (r.kind === 'part_completed') {
      const m = this.lots.get(r.lot)?.machines[r.machine];
      if (m) {
        m.parts++;
        if (!r.inTolerance) m.outOfTolerance++;
      }
    } else if (r.kind === 'lot_finished') {
      const m = this.lots.get(r.lot)?.machines[r.machine];
      if (m) {
        m.finishedAtMs = r.atMs;
        // The oven counts no parts itself: its batch holds the parts the lot arrived with.
        m.parts = r.parts;
      }
    }
  }

  newLotId(): string {
    return `LOT-${this.ids.year}-${String(this.ids.lot++).padStart(6, '0')}`;
  }

  newOrderId(): string {
    return `ORD-${this.ids.year}-${String(this.ids.order++).padStart(5, '0')}`;
  }

  newSerial(): string {
    return `SN-${this.ids.year}-${String(this.ids.serial++).padStart(7, '0')}`;
  }

  /**
   * A press reserves its lot's place in the oven queue when the lot starts, so the queue can never
   * overflow however many presses feed it. Returns false when the press must wait (blocked).
   */
  reserveOvenSlot(): boolean {
    if (this.ovens.length === 0) return true;
    if (this.ovenQueue.length + this.ovenSlotsReserved >= this.config.ovenQueueMax) return false;
    this.ovenSlotsReserved++;
    return true;
  }

  /** A finished press lot takes its reserved place in the oven queue; an idle oven starts loading it. */
  handOffToOven(lot: Lot, atMs: number): void {
    if (this.ovens.length === 0) return;
    if (this.ovenSlotsReserved <= 0) throw new Error('oven hand-off without a reserved slot');
    this.ovenSlotsReserved--;
    this.ovenQueue.push(lot);
    for (const oven of this.ovens) if (oven.wake(atMs)) break;
  }

  /** After a scanner or sensor message, the device may send a garbled one (fault scenarios). */
  maybeMalformed(rng: Rng, machine: string, channel: 'telemetry' | 'scan', atMs: number): void {
    if (this.config.malformedProbability > 0 && rng.chance(this.config.malformedProbability)) {
      this.emit({ kind: 'malformed_message', atMs, machine, channel, reason: rng.pick(MALFORMED_REASONS) });
    }
  }
}

/** Common bookkeeping of every machine: state, alarm, counters. */
abstract class MachineBase implements Actor {
  abstract readonly kind: MachineKind;
  nextAtMs: number;
  state: MachineState = 'Idle';
  alarm: AlarmStatus = { active: false, code: 0, text: '' };
  totalParts = 0;
  outOfToleranceTotal = 0;
  lotsFinished = 0;
  lot: Lot | null = null;
  partCount = 0;
  readonly id: string;
  readonly index: number;
  protected readonly engine: Scenario;
  protected readonly cycleMs: number;
  protected readonly rng: Rng;

  constructor(engine: Scenario, id: string, index: number, cycleMs: number) {
    this.engine = engine;
    this.id = id;
    this.index = index;
    this.cycleMs = cycleMs;
    this.rng = new Rng(engine.config.seed, streamId(id));
    this.nextAtMs = engine.config.startMs; // first firing emits the initial state
  }

  abstract fire(atMs: number): void;
  abstract status(atMs: number): MachineStatus;

  protected setState(to: MachineState, atMs: number, initial = false): void {
    if (!initial && to === this.state) return;
    const from = initial ? null : this.state;
    this.state = to;
    this.engine.emit({ kind: 'state_changed', atMs, machine: this.id, from, to });
  }

  protected raiseAlarm(kind: MachineKind, atMs: number): void {
    const a = this.rng.pick(ALARMS[kind]);
    this.alarm = { active: true, code: a.code, text: a.text };
    this.engine.emit({ kind: 'alarm', atMs, machine: this.id, code: a.code, text: a.text, active: true });
  }

  protected clearAlarm(atMs: number): void {
    this.alarm = { ...this.alarm, active: false };
    const { code, text } = this.alarm;
    this.engine.emit({ kind: 'alarm', atMs, machine: this.id, code, text, active: false });
  }

  protected repairMs(): number {
    const [lo, hi] = this.engine.config.repairCycles;
    return this.rng.range(lo, hi) * this.cycleMs;
  }

  protected base(): StatusBase {
    return {
      id: this.id,
      state: this.state,
      lot: this.lot?.lot ?? null,
      order: this.lot?.order ?? null,
      product: this.lot?.product ?? null,
      plannedParts: this.lot?.planned ?? 0,
      partCount: this.partCount,
      totalParts: this.totalParts,
      alarm: { ...this.alarm },
    };
  }
}

type ProductionAction = 'init' | 'lotStart' | 'cycleStart' | 'finishStep' | 'complete' | 'repair';

/** A CNC turning centre or a press: lots of parts, one cycle per part. */
class ProductionMachine extends MachineBase {
  readonly kind: 'cnc' | 'press';
  private action: ProductionAction = 'init';
  private order: { id: string; lotsLeft: number } | null = null;
  private serial: string | null = null;
  private step = '';
  private cycleStartMs = 0;
  private cycleLenMs = 0;
  private pending: { value: number; inTolerance: boolean } | null = null;
  private lastValue: number | null = null;
  private lastInTolerance: boolean | null = null;
  private cycleComplete = false;
  private lotOutOfTolerance = 0;

  constructor(engine: Scenario, id: string, kind: 'cnc' | 'press', index: number, cycleMs: number) {
    super(engine, id, index, cycleMs);
    this.kind = kind;
  }

  /** Happenings fall on whole milliseconds: timestamps stay integers in every protocol. */
  private schedule(action: ProductionAction, atMs: number): void {
    this.action = action;
    this.nextAtMs = Math.round(atMs);
  }

  fire(atMs: number): void {
    switch (this.action) {
      case 'init':
        this.setState('Idle', atMs, true);
        // Stagger first lots so machines do not tick in lockstep.
        this.schedule('lotStart', atMs + (1 + 0.3 * this.index) * this.cycleMs);
        return;
      case 'lotStart':
        this.startLot(atMs);
        break;
      case 'cycleStart':
        this.startCycle(atMs);
        break;
      case 'finishStep':
        this.setStep(CNC_PRODUCT.steps[1], atMs);
        this.schedule('complete', this.cycleStartMs + PART_DONE_AT * this.cycleLenMs);
        return;
      case 'complete':
        this.completePart(atMs);
        break;
      case 'repair':
        this.clearAlarm(atMs);
        this.setState('Running', atMs);
        this.startCycle(atMs);
        break;
    }
  }

  private get changeoverMs(): number {
    return this.engine.config.changeoverCycles * this.cycleMs;
  }

  private startLot(atMs: number): void {
    const e = this.engine;
    if (this.kind === 'press' && !e.reserveOvenSlot()) {
      // Blocked by the oven: wait one changeover and look again (no record: the state stays Idle).
      this.schedule('lotStart', atMs + Math.max(this.changeoverMs, this.cycleMs));
      return;
    }
    if (!this.order || this.order.lotsLeft === 0)
      this.order = { id: e.newOrderId(), lotsLeft: e.config.lotsPerOrder };
    this.order.lotsLeft--;
    const p = this.kind === 'cnc' ? CNC_PRODUCT : PRESS_PRODUCT;
    this.lot = { lot: e.newLotId(), order: this.order.id, product: p.product, planned: e.config.partsPerLot };
    this.partCount = 0;
    this.lotOutOfTolerance = 0;
    const { lot, order, product, planned } = this.lot;
    e.emit({ kind: 'lot_started', atMs, machine: this.id, lot, order, product, plannedParts: planned });
    e.emit({
      kind: 'material_consumed',
      atMs,
      machine: this.id,
      lot,
      order,
      material: p.material,
      qty: round(planned * p.materialKgPerPart, 2),
      unit: 'kg',
      scanner: SCANNER_ID,
    });
    e.maybeMalformed(e.scannerRng, SCANNER_ID, 'scan', atMs);
    this.setState('Running', atMs);
    this.startCycle(atMs);
  }

  private startCycle(atMs: number): void {
    this.cycleStartMs = atMs;
    this.cycleLenMs = this.cycleMs * (1 + this.rng.range(-CYCLE_JITTER, CYCLE_JITTER));
    this.cycleComplete = false;
    this.pending = this.measure();
    if (this.kind === 'cnc') {
      this.serial = this.engine.newSerial();
      this.setStep(CNC_PRODUCT.steps[0], atMs);
      this.schedule('finishStep', atMs + CNC_FINISH_AT * this.cycleLenMs);
    } else {
      this.schedule('complete', atMs + PART_DONE_AT * this.cycleLenMs);
    }
  }

  private setStep(step: string, atMs: number): void {
    this.step = step;
    const { lot, order } = this.lot!;
    this.engine.emit({
      kind: 'step_started',
      atMs,
      machine: this.id,
      lot,
      order,
      serial: this.serial!,
      step,
    });
  }

  /** Draws the measurement of the part now entering the machine (revealed when it completes). */
  private measure(): { value: number; inTolerance: boolean } {
    const outlier = this.rng.chance(this.engine.config.outlierProbability);
    const sign = this.rng.chance(0.5) ? 1 : -1;
    const gross = this.rng.range(1.25, 2.25); // in tolerances: always outside when it happens
    const noise = this.rng.gaussian();
    if (this.kind === 'cnc') {
      const c = CNC_PRODUCT;
      const wear = c.toolWearMmPerPart * this.partCount;
      const dev = wear + c.diameterSigmaMm * noise + (outlier ? sign * gross * c.diameterToleranceMm : 0);
      const value = round(c.diameterNominalMm + dev, 3); // gauge resolution 1 um
      return { value, inTolerance: Math.abs(value - c.diameterNominalMm) <= c.diameterToleranceMm + 1e-9 };
    }
    const p = PRESS_PRODUCT;
    const dev = p.peakForceSigmaKn * noise + (outlier ? sign * gross * p.peakForceToleranceKn : 0);
    const value = round(p.peakForceNominalKn + dev, 1);
    return { value, inTolerance: Math.abs(value - p.peakForceNominalKn) <= p.peakForceToleranceKn + 1e-9 };
  }

  private completePart(atMs: number): void {
    const e = this.engine;
    const lot = this.lot!;
    const m = this.pending!;
    this.pending = null;
    this.partCount++;
    this.totalParts++;
    this.lastValue = m.value;
    this.lastInTolerance = m.inTolerance;
    if (!m.inTolerance) {
      this.outOfToleranceTotal++;
      this.lotOutOfTolerance++;
    }
    this.cycleComplete = true;
    e.emit({
      kind: 'part_completed',
      atMs,
      machine: this.id,
      lot: lot.lot,
      order: lot.order,
      serial: this.kind === 'cnc' ? this.serial : null,
      partCount: this.partCount,
      totalCount: this.totalParts,
      values: this.kind === 'cnc' ? { diameterMm: m.value } : { peakForceKn: m.value },
      inTolerance: m.inTolerance,
    });
    const nextCycleMs = this.cycleStartMs + this.cycleLenMs;
    if (this.partCount >= lot.planned) {
      e.emit({
        kind: 'lot_finished',
        atMs,
        machine: this.id,
        lot: lot.lot,
        order: lot.order,
        product: lot.product,
        parts: this.partCount,
        outOfTolerance: this.lotOutOfTolerance,
      });
      this.lotsFinished++;
      this.setState('Idle', atMs);
      if (this.kind === 'press') e.handOffToOven(lot, atMs);
      this.schedule('lotStart', nextCycleMs + this.changeoverMs);
    } else if (this.rng.chance(e.config.downProbability)) {
      this.raiseAlarm(this.kind, atMs);
      this.setState('Down', atMs);
      this.schedule('repair', atMs + this.repairMs());
    } else {
      this.schedule('cycleStart', nextCycleMs);
    }
  }

  status(atMs: number): CncStatus | PressStatus {
    const seed = this.engine.config.seed;
    const machining = this.state === 'Running' && !this.cycleComplete;
    const phase = machining ? (atMs - this.cycleStartMs) / this.cycleLenMs : 1;
    if (this.kind === 'cnc') {
      let speed = 0;
      let load = 0;
      if (machining) {
        const rough = this.step === CNC_PRODUCT.steps[0];
        const n = valueNoise(seed, streamId(`${this.id}.spindle`), atMs, 400);
        speed = round((rough ? 1800 : 2600) + 12 * n, 1);
        load = round((rough ? 62 : 28) + 4 * valueNoise(seed, streamId(`${this.id}.load`), atMs, 300), 1);
      }
      return {
        ...this.base(),
        kind: 'cnc',
        program: CNC_PRODUCT.program,
        serial: this.serial,
        step: this.step,
        diameterMm: this.lastValue,
        inTolerance: this.lastInTolerance,
        spindleSpeedRpm: speed,
        spindleLoadPct: load,
      };
    }
    const p = PRESS_PRODUCT;
    const ramDown = machining && phase < PRESS_STROKE_END;
    const pumpOn = this.state !== 'Down';
    let pressure = 0;
    if (pumpOn) {
      pressure = p.standbyPressureBar;
      if (ramDown && this.pending) {
        const peakBar = this.pending.value * p.barPerKn;
        pressure += (peakBar - p.standbyPressureBar) * Math.sin((Math.PI * phase) / PRESS_STROKE_END);
      }
      pressure += 1.5 * valueNoise(seed, streamId(`${this.id}.pressure`), atMs, 150);
    }
    const oil = 42 + 3 * valueNoise(seed, streamId(`${this.id}.oil`), atMs, 60 * this.cycleMs);
    return {
      ...this.base(),
      kind: 'press',
      lastPeakForceKn: this.lastValue,
      inTolerance: this.lastInTolerance,
      cycleComplete: this.cycleComplete,
      ramDown,
      pumpOn,
      hydraulicPressureBar: round(pressure, 2),
      oilTempC: round(oil, 2),
    };
  }
}

type OvenAction = 'init' | 'batchStart' | 'batchEnd' | 'repair' | 'waiting';

/** A tempering oven heat-treating press lots as batches; temperature follows first-order lags. */
class Oven extends MachineBase {
  readonly kind = 'oven' as const;
  private action: OvenAction = 'init';
  private loading = false;
  /** Temperature segment: the noise-free curve relaxes from fromC (at t0) towards toC. */
  private segment: { t0: number; fromC: number; toC: number } = {
    t0: 0,
    fromC: OVEN_PROCESS.standbyC,
    toC: OVEN_PROCESS.standbyC,
  };

  private schedule(action: OvenAction, atMs: number): void {
    this.action = action;
    this.nextAtMs = Math.round(atMs);
  }

  private get tauMs(): number {
    return this.cycleMs;
  }

  /** Noise-free chamber temperature at atMs. */
  private chamberC(atMs: number): number {
    const s = this.segment;
    return s.toC + (s.fromC - s.toC) * Math.exp(-(atMs - s.t0) / this.tauMs);
  }

  private retarget(toC: number, atMs: number): void {
    this.segment = { t0: atMs, fromC: this.chamberC(atMs), toC };
  }

  /** Zone temperature as measured (2 decimals), zone 1..3. */
  zoneTempC(zone: number, atMs: number): number {
    const offset = OVEN_PROCESS.zoneOffsetsC[zone - 1] ?? 0;
    const n = valueNoise(this.engine.config.seed, streamId(`${this.id}.zone${zone}`), atMs, 2 * this.cycleMs);
    return round(this.chamberC(atMs) + offset + OVEN_PROCESS.noiseC * n, 2);
  }

  /** Starts loading if idle and waiting; returns whether this oven took the work. */
  wake(atMs: number): boolean {
    if (this.action !== 'waiting') return false;
    this.loading = true;
    this.schedule('batchStart', atMs + this.engine.config.ovenLoadCycles * this.cycleMs);
    return true;
  }

  /** Idle and empty: wait for a press lot, or start loading the next queued one at once. */
  private afterIdle(atMs: number): void {
    this.loading = false;
    this.schedule('waiting', Number.POSITIVE_INFINITY);
    if (this.engine.ovenQueue.length > 0) this.wake(atMs);
  }

  fire(atMs: number): void {
    const e = this.engine;
    switch (this.action) {
      case 'init':
        this.segment = { t0: atMs, fromC: OVEN_PROCESS.standbyC, toC: OVEN_PROCESS.standbyC };
        this.setState('Idle', atMs, true);
        this.afterIdle(atMs);
        break;
      case 'batchStart': {
        const lot = e.ovenQueue.shift();
        if (!lot) throw new Error(`${this.id}: batch start with an empty queue`);
        this.loading = false;
        this.lot = lot;
        this.partCount = 0;
        e.emit({
          kind: 'lot_started',
          atMs,
          machine: this.id,
          lot: lot.lot,
          order: lot.order,
          product: lot.product,
          plannedParts: lot.planned,
        });
        this.setState('Running', atMs);
        this.retarget(OVEN_PROCESS.setpointC, atMs);
        this.schedule('batchEnd', atMs + e.config.ovenSoakCycles * this.cycleMs);
        break;
      }
      case 'batchEnd': {
        const lot = this.lot!;
        this.totalParts++;
        this.lotsFinished++;
        e.emit({
          kind: 'lot_finished',
          atMs,
          machine: this.id,
          lot: lot.lot,
          order: lot.order,
          product: lot.product,
          parts: lot.planned,
          outOfTolerance: 0,
        });
        this.lot = null;
        this.partCount = 0;
        this.setState('Idle', atMs);
        this.retarget(OVEN_PROCESS.standbyC, atMs);
        if (this.rng.chance(e.config.downProbability)) {
          this.raiseAlarm('oven', atMs);
          this.setState('Down', atMs);
          this.retarget(OVEN_PROCESS.ambientC, atMs);
          this.schedule('repair', atMs + this.repairMs());
          break;
        }
        this.afterIdle(atMs);
        break;
      }
      case 'repair':
        this.clearAlarm(atMs);
        this.setState('Idle', atMs);
        this.retarget(OVEN_PROCESS.standbyC, atMs);
        this.afterIdle(atMs);
        break;
      case 'waiting':
        throw new Error(`${this.id}: fired while waiting`);
    }
  }

  status(atMs: number): OvenStatus {
    return {
      ...this.base(),
      kind: 'oven',
      setpointC: OVEN_PROCESS.setpointC,
      zoneTempsC: [this.zoneTempC(1, atMs), this.zoneTempC(2, atMs), this.zoneTempC(3, atMs)],
      doorOpen: this.loading,
      heatersOn: this.state !== 'Down',
      queuedLots: this.engine.ovenQueue.length,
    };
  }
}

/** The oven's three wireless zone thermocouples, sampling every telemetryPeriodMs. */
class ZoneSensors implements Actor {
  readonly index: number;
  nextAtMs: number;
  private readonly engine: Scenario;
  private readonly oven: Oven;
  private readonly rng: Rng;

  constructor(engine: Scenario, oven: Oven, index: number) {
    this.engine = engine;
    this.oven = oven;
    this.index = index;
    this.rng = new Rng(engine.config.seed, streamId(`${oven.id}.sensors`));
    this.nextAtMs = Math.round(engine.config.startMs + engine.config.telemetryPeriodMs);
  }

  fire(atMs: number): void {
    const lot = this.oven.state === 'Running' ? (this.oven.lot?.lot ?? null) : null;
    for (let zone = 1; zone <= 3; zone++) {
      const value = this.oven.zoneTempC(zone, atMs);
      this.engine.emit({
        kind: 'sensor_sample',
        atMs,
        machine: this.oven.id,
        lot,
        zone,
        value,
        unit: 'degC',
      });
      this.engine.maybeMalformed(this.rng, this.oven.id, 'telemetry', atMs);
    }
    this.nextAtMs = Math.round(atMs + this.engine.config.telemetryPeriodMs);
  }
}

export function createScenario(options: ScenarioOptions): Scenario {
  return new Scenario(options);
}

/**
 * Drives an engine in real time for the demo: every `tickMs` it steps to startMs + elapsed monotonic
 * time (performance.now, so wall-clock jumps do not move the simulation backwards).
 */
export function runRealTime(engine: Scenario, options: { tickMs?: number } = {}): { stop(): void } {
  const tickMs = options.tickMs ?? 100;
  const origin = performance.now() - (engine.nowMs - engine.config.startMs);
  const timer = setInterval(() => {
    engine.step(engine.config.startMs + (performance.now() - origin));
  }, tickMs);
  return { stop: () => clearInterval(timer) };
}
