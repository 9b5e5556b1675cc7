import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import type { GroundTruthRecord, PartCompleted } from '../../simulators/ground-truth.ts';
import { GroundTruthLog } from '../../simulators/ground-truth.ts';
import { Rng, valueNoise } from '../../simulators/random.ts';
import {
  CNC_PRODUCT,
  createScenario,
  PRESS_PRODUCT,
  runRealTime,
  type ScenarioOptions,
} from '../../simulators/scenario.ts';

const T0 = Date.UTC(2026, 0, 5, 6, 0, 0);
const FAULTY: ScenarioOptions = {
  seed: 42,
  startMs: T0,
  cycleTimeMs: 10,
  telemetryPeriodMs: 50,
  downProbability: 0.05,
  malformedProbability: 0.05,
};

function run(options: ScenarioOptions, untilMs: number, stepMs: number): GroundTruthRecord[] {
  const e = createScenario(options);
  for (let t = options.startMs; t < untilMs; t += stepMs) e.step(t);
  e.step(untilMs);
  e.close();
  expect(e.groundTruth.dropped).toBe(0);
  return e.groundTruth.query();
}

describe('scenario determinism', () => {
  it('same seed gives identical ground truth whatever the step granularity', () => {
    const coarse = run(FAULTY, T0 + 5_000, 5_000);
    const fine = run(FAULTY, T0 + 5_000, 3);
    expect(coarse.length).toBeGreaterThan(1_000);
    expect(fine).toEqual(coarse);
  });

  it('another seed gives another history', () => {
    const a = run(FAULTY, T0 + 1_000, 1_000);
    const b = run({ ...FAULTY, seed: 43 }, T0 + 1_000, 1_000);
    expect(JSON.stringify(b)).not.toEqual(JSON.stringify(a));
  });

  it('the PRNG and value noise are pure functions of their seeds', () => {
    const draw = (seed: number, stream: number) => {
      const r = new Rng(seed, stream);
      return [r.nextU32(), r.nextU32(), r.next(), r.gaussian()];
    };
    expect(draw(1, 2)).toEqual(draw(1, 2));
    expect(draw(1, 2)).not.toEqual(draw(1, 3));
    const n = valueNoise(9, 7, 1234.5, 100);
    expect(valueNoise(9, 7, 1234.5, 100)).toBe(n);
    expect(Math.abs(n)).toBeLessThanOrEqual(1);
    // Uniform draws stay in [0, 1) and average near 1/2.
    const r = new Rng(5);
    let sum = 0;
    for (let i = 0; i < 10_000; i++) {
      const x = r.next();
      expect(x >= 0 && x < 1).toBe(true);
      sum += x;
    }
    expect(sum / 10_000).toBeCloseTo(0.5, 1);
  });
});

describe('scenario physics', () => {
  const records = run(FAULTY, T0 + 20_000, 250);
  const of = <K extends GroundTruthRecord['kind']>(kind: K) =>
    records.filter((r): r is Extract<GroundTruthRecord, { kind: K }> => r.kind === kind);

  it('numbers records gap-free in time order', () => {
    records.forEach((r, i) => {
      expect(r.seq).toBe(i + 1);
      if (i > 0) expect(r.atMs).toBeGreaterThanOrEqual(records[i - 1]!.atMs);
      expect(Number.isInteger(r.atMs)).toBe(true);
    });
  });

  it('every finished lot has its planned parts, counted 1..n, and belongs to one order', () => {
    const lotsPerOrder = new Map<string, Set<string>>();
    for (const fin of of('lot_finished').filter((r) => r.machine !== 'OVEN1')) {
      const parts = of('part_completed').filter((p) => p.lot === fin.lot && p.machine === fin.machine);
      expect(parts.map((p) => p.partCount)).toEqual(Array.from({ length: 20 }, (_, i) => i + 1));
      expect(parts.every((p) => p.order === fin.order)).toBe(true);
      expect(fin.outOfTolerance).toBe(parts.filter((p) => !p.inTolerance).length);
      const set = lotsPerOrder.get(fin.order) ?? new Set();
      set.add(fin.lot);
      lotsPerOrder.set(fin.order, set);
    }
    for (const lots of lotsPerOrder.values()) expect(lots.size).toBeLessThanOrEqual(3);
    expect(of('lot_started')[0]!.lot).toMatch(/^LOT-2026-\d{6}$/);
    expect(of('lot_started')[0]!.order).toMatch(/^ORD-2026-\d{5}$/);
  });

  it('CNC parts carry unique serials and gauge values consistent with their tolerance flag', () => {
    const cnc = of('part_completed').filter((p) => p.machine.startsWith('CNC'));
    const serials = cnc.map((p) => p.serial);
    expect(new Set(serials).size).toBe(serials.length);
    expect(serials[0]).toMatch(/^SN-2026-\d{7}$/);
    for (const p of cnc) {
      const d = p.values.diameterMm!;
      expect(p.inTolerance).toBe(
        Math.abs(d - CNC_PRODUCT.diameterNominalMm) <= CNC_PRODUCT.diameterToleranceMm + 1e-9,
      );
      expect(Math.round(d * 1000) / 1000).toBe(d); // 1 um gauge resolution
    }
    const bad = cnc.filter((p) => !p.inTolerance).length / cnc.length;
    expect(bad).toBeGreaterThan(0);
    expect(bad).toBeLessThan(0.1);
    // Each part went through both steps, in order, before it completed.
    const steps = of('step_started').filter((s) => s.serial === cnc[0]!.serial);
    expect(steps.map((s) => s.step)).toEqual([...CNC_PRODUCT.steps]);
    const press = of('part_completed').filter((p) => p.machine === 'PRESS1');
    expect(
      press.every(
        (p) => p.serial === null && Math.abs(p.values.peakForceKn! - PRESS_PRODUCT.peakForceNominalKn) < 50,
      ),
    ).toBe(true);
  });

  it('machines go down with an alarm and come back after it clears', () => {
    const downs = of('state_changed').filter((s) => s.to === 'Down');
    expect(downs.length).toBeGreaterThan(0);
    let recovered = 0;
    for (const d of downs) {
      const raised = records.find(
        (r) => r.kind === 'alarm' && r.machine === d.machine && r.atMs === d.atMs && r.active,
      );
      expect(raised).toBeDefined();
      const back = records.find(
        (r) => r.kind === 'state_changed' && r.machine === d.machine && r.seq > d.seq,
      );
      const cleared = records.find(
        (r) => r.kind === 'alarm' && r.machine === d.machine && r.seq > d.seq && !r.active,
      );
      if (back === undefined) {
        // Only a machine's last breakdown may outlast the run, and then its alarm is still raised.
        expect(downs.filter((x) => x.machine === d.machine).at(-1), `${d.machine} stays down`).toBe(d);
        expect(cleared, `${d.machine} cleared without coming back`).toBeUndefined();
        continue;
      }
      expect(back).toMatchObject({ from: 'Down', to: expect.not.stringMatching(/^Down$/) });
      // The alarm clears at the moment the machine comes back, just before it.
      expect(cleared, `${d.machine} back without its alarm cleared`).toMatchObject({ atMs: back.atMs });
      expect(cleared!.seq).toBeLessThan(back.seq);
      recovered++;
    }
    expect(recovered, 'breakdowns repaired within the run').toBeGreaterThan(0);
  });

  it('press lots are heat-treated by the oven under the same lot id, in order', () => {
    const pressLots = of('lot_finished')
      .filter((r) => r.machine === 'PRESS1')
      .map((r) => r.lot);
    const ovenLots = of('lot_started')
      .filter((r) => r.machine === 'OVEN1')
      .map((r) => r.lot);
    expect(ovenLots.length).toBeGreaterThan(0);
    expect(ovenLots).toEqual(pressLots.slice(0, ovenLots.length));
  });

  it('material scans open every CNC and press lot; sensors sample three zones near the setpoint', () => {
    const started = of('lot_started').filter((r) => r.machine !== 'OVEN1');
    expect(of('material_consumed').map((m) => m.lot)).toEqual(started.map((s) => s.lot));
    const samples = of('sensor_sample');
    expect(samples.length).toBe(3 * (20_000 / 50));
    const soaking = samples.filter(
      (s) =>
        s.lot !== null &&
        s.atMs > of('lot_started').find((l) => l.lot === s.lot && l.machine === 'OVEN1')!.atMs + 50,
    );
    expect(soaking.length).toBeGreaterThan(0);
    for (const s of soaking) expect(Math.abs(s.value - 180)).toBeLessThan(5);
    const malformed = of('malformed_message');
    expect(new Set(malformed.map((m) => m.reason))).toEqual(
      new Set(['invalid_json', 'wrong_type', 'missing_field']),
    );
  });

  it('counters agree with the log', () => {
    const e = createScenario(FAULTY);
    e.step(T0 + 3_000);
    const c = e.counters();
    const log = e.groundTruth.query();
    expect(c.records).toBe(log.length);
    expect(c.byKind.part_completed).toBe(log.filter((r) => r.kind === 'part_completed').length);
    const cnc1 = log.filter((r): r is PartCompleted => r.kind === 'part_completed' && r.machine === 'CNC1');
    expect(c.machines.CNC1!.partsTotal).toBe(cnc1.length);
    const lot = c.lots.find((l) => l.machines.CNC1)!;
    expect(lot.machines.CNC1!.parts).toBe(cnc1.filter((p) => p.lot === lot.lot).length);
    expect(e.status('CNC1').totalParts).toBe(cnc1.length);
    e.close();
  });
});

describe('ground-truth log', () => {
  const dir = mkdtempSync(path.join(tmpdir(), 'masbc-gt-'));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it('keeps the newest records when full, counts the dropped ones, and the JSONL file keeps all', () => {
    const file = path.join(dir, 'gt.jsonl');
    const e = createScenario({ ...FAULTY, groundTruthCapacity: 100, groundTruthFile: file });
    e.step(T0 + 2_000);
    e.close();
    const gt = e.groundTruth;
    expect(gt.size).toBe(100);
    expect(gt.dropped).toBe(gt.lastSeq - 100);
    expect(gt.firstSeq).toBe(gt.lastSeq - 99);
    const kept = gt.query();
    expect(kept.map((r) => r.seq)).toEqual(Array.from({ length: 100 }, (_, i) => gt.firstSeq + i));
    const lines = readFileSync(file, 'utf8')
      .trimEnd()
      .split('\n')
      .map((l) => JSON.parse(l) as GroundTruthRecord);
    expect(lines.length).toBe(gt.lastSeq);
    expect(lines.slice(-100)).toEqual(kept);
    expect(gt.query({ fromSeq: gt.lastSeq - 4 }).length).toBe(5);
    expect(gt.query({ kind: 'part_completed', limit: 3 }).every((r) => r.kind === 'part_completed')).toBe(
      true,
    );
  });

  it('rejects invalid options', () => {
    expect(() => new GroundTruthLog({ capacity: 0 })).toThrow(RangeError);
    expect(() => createScenario({ seed: 1, startMs: T0, cycleTimeMs: 5 })).toThrow(/cycleTimeMs/);
    expect(() =>
      createScenario({
        seed: 1,
        startMs: T0,
        machines: [
          { id: 'CNC1', kind: 'cnc' },
          { id: 'CNC1', kind: 'cnc' },
        ],
      }),
    ).toThrow(/duplicate/);
    const e = createScenario({ seed: 1, startMs: T0 });
    e.step(T0 + 10);
    expect(() => e.step(T0)).toThrow(RangeError);
  });
});

describe('real-time runner', () => {
  it('steps the engine with the monotonic clock', async () => {
    const e = createScenario({ seed: 3, startMs: Date.now(), cycleTimeMs: 10 });
    const stepped = new Promise<number>((resolve) => {
      const off = e.onStep((now) => {
        if (e.groundTruth.query({ kind: 'part_completed' }).length > 0) {
          off();
          resolve(now);
        }
      });
    });
    const runner = runRealTime(e, { tickMs: 5 });
    await stepped;
    runner.stop();
    e.close();
    expect(e.nowMs).toBeGreaterThan(e.config.startMs);
  });
});
