/**
 * The bundled device maps (config/devices/*.yaml) end to end: simulators → drivers → normaliser, with
 * the events checked against the simulators' ground truth. Every part the CNC completes becomes one
 * part_completed event carrying that part's diameter, serial and lot; every lot change a
 * lot_finished/lot_started pair; the press's parts are all counted; every material scan becomes one
 * material_consumed event with its lot, and malformed scans none; the oven temperature is reported
 * periodically with the lot in the oven.
 *
 * No fixed sleeps: the test waits until the drivers have delivered what the simulators' current state
 * implies (see `drained`), and the simulators' clock only moves when the test steps it.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { GroundTruthRecord, Simulators } from '../../simulators/index.ts';
import { startSimulators } from '../../simulators/index.ts';
import { createDriver } from '../../src/drivers/registry.ts';
import type { Driver, Reading } from '../../src/drivers/types.ts';
import type { EventDraft } from '../../src/event/draft.ts';
import type { EventKind } from '../../src/event/kinds.ts';
import { type DeviceConfig, loadConfig } from '../../src/gateway/config/config.ts';
import { createNormaliser, type Normaliser } from '../../src/normaliser/normaliser.ts';

const root = mkdtempSync(join(tmpdir(), 'masbc-e2e-normaliser-'));
let sims: Simulators;
let drivers: Driver[] = [];
let normaliser: Normaliser;
const drafts: EventDraft[] = [];
/**
 * Per oven measurement, what the gateway had last read from the oven's telemetry when the period rule
 * fired: the lot reading's device timestamp and the zone 2 reading (value and timestamp). The
 * simulators' ground truth then says which lot was in the oven at that moment.
 */
const measuredWith = new Map<EventDraft, { lotAtMs: number; zone2: { v: unknown; atMs: number } }>();
const lastReading = new Map<string, Reading>();
/** Reading batches from the press (one per poll). */
let pressPolls = 0;
let cut = 0;
let statsAtCut: ReturnType<Normaliser['stats']>;
let malformedAtCut = 0;
const mqttDriver = () => drivers.find((d) => d.protocol === 'mqtt')!;

/** The bundled maps, pointed at the simulators' ephemeral ports and polled faster. */
function bundledDevices(): DeviceConfig[] {
  const config = loadConfig('config/gateway.yaml');
  return config.devices.flatMap((d): DeviceConfig[] => {
    switch (d.id) {
      case 'cnc1':
        return [{ ...d, connection: { ...d.connection, endpoint: sims.endpoints.opcua! } } as DeviceConfig];
      case 'press1':
        return [
          {
            ...d,
            connection: { ...d.connection, port: sims.endpoints.modbusTcpPort!, pollIntervalMs: 40 },
          } as DeviceConfig,
        ];
      case 'oven1':
        return [{ ...d, connection: { ...d.connection, url: sims.endpoints.mqtt! } } as DeviceConfig];
      default:
        return []; // oven1-plc (RTU) is covered by the driver tests
    }
  });
}

function truth<K extends GroundTruthRecord['kind']>(kind: K, machine?: string) {
  return sims.groundTruth
    .query({ kind, ...(machine ? { machine } : {}) })
    .filter((r) => r.seq > cut) as Extract<GroundTruthRecord, { kind: K }>[];
}

const events = (device: string, kind: string) => drafts.filter((d) => d.device === device && d.kind === kind);

async function until(check: () => boolean, what: string, timeoutMs = 10_000): Promise<void> {
  const deadline = performance.now() + timeoutMs;
  while (!check()) {
    if (performance.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

/**
 * Waits until the drivers have delivered everything that happened up to the simulators' current
 * time (which stands still between steps): every MQTT message published has reached the driver; the
 * CNC's counters, seen through its subscription, are the machine's; and the press was polled in full
 * after the last step.
 */
async function drained(): Promise<void> {
  const polls = pressPolls;
  const messages = () => (mqttDriver().health().detail as { messages: number }).messages;
  const cnc = sims.engine.status('CNC1');
  await until(
    () =>
      pressPolls >= polls + 2 &&
      sims.mqtt!.queued === 0 &&
      messages() === sims.mqtt!.stats.published &&
      lastReading.get('cnc1/totalParts')?.value === cnc.totalParts &&
      lastReading.get('cnc1/partCount')?.value === cnc.partCount,
    'the drivers caught up with the simulators',
  );
}

beforeAll(async () => {
  sims = await startSimulators({
    seed: 2026,
    startMs: Date.UTC(2026, 0, 5, 6),
    scenario: {
      cycleTimeMs: 300,
      partsPerLot: 6,
      changeoverCycles: 1,
      telemetryPeriodMs: 250,
      malformedProbability: 0.2,
      downProbability: 0.05,
    },
    opcua: { pkiDir: join(root, 'server-pki') },
    modbus: {},
    mqtt: {},
    dataDir: join(root, 'sim'),
  });
  const devices = bundledDevices();
  normaliser = createNormaliser(devices, {
    onDrafts: (d) => {
      drafts.push(...d);
      for (const e of d) {
        if (e.device !== 'oven1' || e.kind !== 'measurement') continue;
        const lot = lastReading.get('oven1/ovenLot')!;
        const zone2 = lastReading.get('oven1/zone2Temp')!;
        measuredWith.set(e, {
          lotAtMs: lot.sourceTimeMs,
          zone2: { v: zone2.value, atMs: zone2.sourceTimeMs },
        });
      }
    },
  });
  const log = { info() {}, warn() {}, error() {} };
  const seen = new Set<string>();
  drivers = devices.map((d) =>
    createDriver(d, {
      onReadings: (batch) => {
        for (const r of batch) {
          seen.add(r.device);
          lastReading.set(`${r.device}/${r.tag}`, r);
        }
        if (batch[0]?.device === 'press1') pressPolls++;
        normaliser.push(batch);
      },
      log,
      dataDir: root,
      pkiFolder: join(root, 'client-pki'),
    }),
  );
  await Promise.all(drivers.map((d) => d.start()));
  // Let the engine run a little so the MQTT devices publish, then wait for every device to report.
  await until(() => drivers.every((d) => d.health().state === 'connected'), 'drivers connected');
  for (let i = 0; i < 100 && seen.size < devices.length; i++) {
    sims.step(sims.engine.nowMs + 50);
    await new Promise((r) => setTimeout(r, 20));
  }
  await until(() => seen.size === devices.length, 'a reading from every device');
  // Baselines are taken; from here on every happening must be accounted for.
  await drained();
  cut = sims.groundTruth.lastSeq;
  malformedAtCut = mqttDriver().health().errors.malformed ?? 0;
  statsAtCut = normaliser.stats();
  drafts.length = 0;
  // 15 s of production at about 4x real time, in 20 ms steps (each poll of the press sees ~1 part).
  const end = sims.engine.nowMs + 15_000;
  let tickAt = Date.now();
  while (sims.engine.nowMs < end) {
    sims.step(sims.engine.nowMs + 20);
    // Period rules run on the gateway's clock: driven 10 times faster than production, so the oven's
    // 10 s measurement fires about 15 times, with and without a batch in the oven.
    tickAt += 200;
    normaliser.tick(tickAt);
    await new Promise((r) => setTimeout(r, 5));
  }
  // Everything produced has reached the normaliser: the tests below compare whole sequences.
  await drained();
}, 60_000);

afterAll(async () => {
  await Promise.all(drivers.map((d) => d.stop()));
  await sims?.stop();
  rmSync(root, { recursive: true, force: true });
});

describe('bundled device maps against the simulators', () => {
  it('cnc1: one part_completed per part, with that part diameter, serial, lot and order', async () => {
    const parts = truth('part_completed', 'CNC1');
    expect(parts.length).toBeGreaterThan(20);
    await until(() => events('cnc1', 'part_completed').length >= parts.length, 'every CNC part');
    const got = events('cnc1', 'part_completed');
    expect(got.map((e) => e.values.totalParts?.v)).toEqual(parts.map((p) => p.totalCount));
    for (const [i, p] of parts.entries()) {
      const e = got[i]!;
      expect(e).toMatchObject({
        station: 'ST-10',
        dataClass: 'process',
        lot: p.lot,
        order: p.order,
        product: p.serial!,
      });
      expect(e.values.diameter).toEqual({ v: p.values.diameterMm, unit: 'mm', q: 'good' });
      expect(e.values.inTolerance).toEqual({ v: p.inTolerance, q: 'good' });
      expect(e.values.partCount).toEqual({ v: p.partCount, q: 'good' });
    }
  });

  it('cnc1: lot_finished then lot_started on every lot change, each with its own order', async () => {
    const started = truth('lot_started', 'CNC1');
    const finished = truth('lot_finished', 'CNC1');
    expect(started.length).toBeGreaterThanOrEqual(2);
    await until(() => events('cnc1', 'lot_started').length >= started.length, 'every CNC lot');
    expect(events('cnc1', 'lot_started').map((e) => [e.lot, e.order])).toEqual(
      started.map((r) => [r.lot, r.order]),
    );
    // A lot is finished when the next one starts (the machine's LotId changes then).
    const finishedLots = events('cnc1', 'lot_finished').map((e) => [e.lot, e.order]);
    const expectedFinished = finished
      .filter((f) => started.some((s) => s.atMs > f.atMs))
      .map((r) => [r.lot, r.order]);
    expect(finishedLots).toEqual(expectedFinished);
  });

  it('cnc1: equipment status follows the machine state and alarms are raised with their text', async () => {
    const states = truth('state_changed', 'CNC1');
    await until(() => events('cnc1', 'equipment_status').length >= states.length, 'every state change');
    expect(events('cnc1', 'equipment_status').map((e) => e.values.state?.v)).toEqual(states.map((s) => s.to));
    expect(events('cnc1', 'equipment_status').every((e) => e.dataClass === 'equipment')).toBe(true);
    const raised = truth('alarm', 'CNC1').filter((a) => a.active);
    const alarms = events('cnc1', 'alarm').filter((e) => e.values.alarmActive?.v === true);
    expect(alarms.map((e) => [e.values.alarmCode?.v, e.values.alarmText?.v])).toEqual(
      raised.map((a) => [a.code, a.text]),
    );
  });

  it('press1 (Modbus TCP): every part counted once, in order, with the lot', async () => {
    const parts = truth('part_completed', 'PRESS1');
    expect(parts.length).toBeGreaterThan(10);
    await until(() => events('press1', 'part_completed').length >= parts.length, 'every press part');
    const got = events('press1', 'part_completed');
    expect(got.map((e) => e.values.partsTotal?.v)).toEqual(parts.map((p) => p.totalCount));
    // Its lot, or none with the reason when one poll saw the lot change and the part together (the
    // poll cannot tell which came first): never another lot.
    expect(got.map((e, i) => (e.lot === undefined && e.values['@context'] ? parts[i]!.lot : e.lot))).toEqual(
      parts.map((p) => p.lot),
    );
    expect(got.filter((e) => e.lot === parts[got.indexOf(e)]!.lot).length).toBeGreaterThan(parts.length / 2);
    // A part seen in its own poll carries its peak force; parts of a jump carry it as not observed.
    for (const [i, p] of parts.entries()) {
      const force = got[i]!.values.peakForce!;
      if (force.q === 'good') expect(force.v).toBeCloseTo(p.values.peakForceKn!, 3);
      else expect(force).toEqual({ v: null, unit: 'kN', q: 'bad' });
    }
    expect(got.filter((e) => e.values.peakForce?.q === 'good').length).toBeGreaterThan(parts.length / 2);
  });

  it('oven1 (MQTT): one material_consumed per scan with its lot; malformed scans give none', async () => {
    const scans = truth('material_consumed');
    const malformed = truth('malformed_message').filter((m) => m.channel === 'scan');
    expect(scans.length).toBeGreaterThan(3);
    const got = events('oven1', 'material_consumed');
    expect(got.map((e) => [e.values.scanMaterial?.v, e.values.scanQty?.v, e.lot, e.order])).toEqual(
      scans.map((s) => [s.material, s.qty, s.lot, s.order]),
    );
    // Every malformed message (scans and telemetry) became a dead letter, none an event.
    const allMalformed = truth('malformed_message').length;
    expect(malformed.length).toBeGreaterThan(0);
    await until(
      () => (mqttDriver().health().errors.malformed ?? 0) - malformedAtCut === allMalformed,
      'every malformed message dead-lettered',
    );
  });

  it('oven1 (MQTT): periodic temperature measurements bound to the lot in the oven', () => {
    const got = events('oven1', 'measurement');
    // 150 s of gateway clock at one measurement per 10 s, some while a batch is in the oven.
    expect(got.length).toBeGreaterThanOrEqual(14);
    expect(got.some((e) => e.lot !== undefined)).toBe(true);
    // The simulator's samples (all of them: a measurement may use a reading from before the cut).
    const samples = sims.groundTruth.query({ kind: 'sensor_sample', machine: 'OVEN1' }) as Extract<
      GroundTruthRecord,
      { kind: 'sensor_sample' }
    >[];
    for (const e of got) {
      expect(e).toMatchObject({ station: 'ST-30', dataClass: 'process' });
      const w = measuredWith.get(e)!;
      // The lot is the one the simulator had in the oven when it sent the last telemetry the gateway
      // had read (none between batches), not merely some oven lot.
      const atLot = samples.filter((r) => r.atMs === w.lotAtMs);
      expect(atLot.length, `oven samples at ${w.lotAtMs}`).toBeGreaterThan(0);
      expect(e.lot, `the lot in the oven at ${w.lotAtMs}`).toBe(atLot[0]!.lot ?? undefined);
      // The temperature is the simulator's zone 2 sample the gateway had last read.
      const zone2 = samples.find((r) => r.atMs === w.zone2.atMs && r.zone === 2)!;
      expect(e.values.zone2Temp).toEqual({ v: zone2.value, unit: 'degC', q: 'good' });
      expect(w.zone2.v).toBe(zone2.value);
    }
  });

  it("the normaliser's counters agree with the events it emitted and with production", () => {
    const stats = normaliser.stats();
    const counted = (kind: EventKind) => (stats.events[kind] ?? 0) - (statsAtCut.events[kind] ?? 0);
    const emitted = (kind: EventKind) => drafts.filter((d) => d.kind === kind).length;
    const kinds = new Set<EventKind>([
      ...Object.keys(stats.events),
      ...drafts.map((d) => d.kind),
    ] as EventKind[]);
    for (const kind of kinds) expect(counted(kind), kind).toBe(emitted(kind));
    const parts = truth('part_completed', 'CNC1').length + truth('part_completed', 'PRESS1').length;
    expect(emitted('part_completed')).toBe(parts);
    expect(emitted('material_consumed')).toBe(truth('material_consumed').length);
    expect(stats.unknownReadings).toBe(0);
  });
});
