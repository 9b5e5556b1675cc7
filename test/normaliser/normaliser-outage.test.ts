/**
 * Parts and context across outages, end to end (driver → normaliser) against real servers: the
 * project's simulators configured like the equipment of issue 14, and pymodbus where an independent
 * peer is at hand. What a part event may say about its lot when the readings cannot tell, and what
 * one delivery (one Modbus poll, one OPC UA publish) sets before any rule runs.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DataType } from 'node-opcua';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type Simulators, startSimulators } from '../../simulators/index.ts';
import { createDriver } from '../../src/drivers/registry.ts';
import type { Reading } from '../../src/drivers/types.ts';
import type { EventDraft } from '../../src/event/draft.ts';
import { type DeviceConfig, loadConfig } from '../../src/gateway/config/config.ts';
import { createNormaliser } from '../../src/normaliser/normaliser.ts';
import { deviceMap, testContext } from '../drivers/helpers/context.ts';
import { freePort, missing, startMosquitto, startPymodbus } from '../drivers/helpers/tools.ts';
import { itUnless } from '../helpers/skip.ts';

const root = mkdtempSync(join(tmpdir(), 'masbc-outage-'));

afterAll(() => {
  rmSync(root, { recursive: true, force: true });
});

/** A driver feeding a fresh normaliser; every batch and draft recorded. */
function pipeline(device: DeviceConfig, clock?: () => number) {
  const drafts: EventDraft[] = [];
  const normaliser = createNormaliser([device], { onDrafts: (d) => drafts.push(...d) });
  const t = testContext({ pkiFolder: join(root, 'client-pki'), ...(clock ? { nowMs: clock } : {}) });
  const onReadings = t.ctx.onReadings;
  t.ctx.onReadings = (batch: readonly Reading[]) => {
    normaliser.push(batch);
    onReadings(batch); // records the batch and re-checks the test's waits, drafts included
  };
  const driver = createDriver(device, t.ctx);
  return { drafts, t, driver, normaliser };
}

describe('Modbus: one poll is applied as one read (issue 14, item 6)', () => {
  itUnless(missing('pymodbus', 'apt-get install -y python3-pymodbus'))(
    'after a PLC restart reset its counter, the parts carry the input register of the same poll',
    async () => {
      const port = await freePort();
      // Counter (holding 0-1, FC 3) and an input register (FC 4): two requests of one poll.
      const image = (count: number, input: number) => ({
        '1': { hr: { '0': [0, count] }, ir: { '0': [input] } },
      });
      let peer = await startPymodbus({ mode: 'tcp', port, units: image(10, 5) });
      const device = deviceMap('modbus', {
        id: 'press',
        connection: {
          transport: 'tcp',
          host: '127.0.0.1',
          port,
          pollIntervalMs: 50,
          timeoutMs: 500,
          reconnectMaxDelayMs: 300,
        },
        tags: [
          { name: 'partsTotal', area: 'holding', address: 0, type: 'uint32' },
          { name: 'inputReg', area: 'input', address: 0, type: 'int16' },
        ],
        rules: [
          {
            name: 'part',
            trigger: 'counter',
            tag: 'partsTotal',
            kind: 'part_completed',
            values: ['inputReg'],
          },
        ],
      });
      // Every call of the driver's clock is a distinct millisecond: requests of one poll never share
      // a time by chance, as they would not on a loaded machine or a slow serial line.
      let calls = 0;
      const { drafts, t, driver } = pipeline(device, () => Date.now() + calls++);
      await driver.start();
      try {
        await t.waitFor(() => t.latest('inputReg')?.value === 5, 'the first poll');
        await peer.stop();
        await t.waitFor(() => t.latest('inputReg')?.reason === 'disconnected', 'the outage');
        // The PLC comes back with its counter reset: 3 parts since, and a new input register value.
        peer = await startPymodbus({ mode: 'tcp', port, units: image(3, 7) });
        await t.waitFor(() => drafts.length >= 3, 'the three parts', 15_000);
        expect(drafts.map((d) => d.values.partsTotal?.v)).toEqual([1, 2, 3]);
        // The last part was read in the same poll as the input register: it carries its value.
        expect(drafts[2]!.values.inputReg).toEqual({ v: 7, q: 'good' });
        expect(drafts.slice(0, 2).map((d) => d.values.inputReg)).toEqual([
          { v: null, q: 'bad' },
          { v: null, q: 'bad' },
        ]);
        // Every batch of good readings (one poll of the unit) has one time.
        for (const batch of t.batches.filter((b) => b.every((r) => r.quality === 'good'))) {
          expect(new Set(batch.map((r) => r.sourceTimeMs)).size).toBe(1);
        }
      } finally {
        await driver.stop();
        await peer.stop();
        t.cleanup();
      }
    },
  );
});

describe('a lot change during an outage (issue 14, item 2)', () => {
  let sims: Simulators;
  beforeAll(async () => {
    sims = await startSimulators({
      seed: 14,
      startMs: Date.UTC(2026, 0, 5, 6),
      scenario: { cycleTimeMs: 1_000, partsPerLot: 4, changeoverCycles: 1, downProbability: 0 },
      opcua: { pkiDir: join(root, 'server-pki') },
      modbus: {},
      mqtt: false,
      dataDir: join(root, 'sim'),
    });
  });
  afterAll(async () => {
    await sims?.stop();
  });

  /** Advances simulated time in small steps, letting I/O run between them. */
  async function advance(until: () => boolean, stepMs = 50): Promise<void> {
    for (let i = 0; i < 100_000 && !until(); i++) {
      sims.step(sims.engine.nowMs + stepMs);
      await new Promise((r) => setImmediate(r));
    }
  }

  const bundled = (id: string): DeviceConfig => {
    const d = loadConfig('config/gateway.yaml').devices.find((x) => x.id === id)!;
    if (d.protocol === 'opcua')
      return {
        ...d,
        connection: { ...d.connection, endpoint: sims.endpoints.opcua!, reconnectMaxDelayMs: 300 },
      };
    if (d.protocol === 'modbus' && d.connection.transport === 'tcp')
      return {
        ...d,
        connection: {
          ...d.connection,
          port: sims.endpoints.modbusTcpPort!,
          pollIntervalMs: 50,
          reconnectMaxDelayMs: 300,
        },
      };
    throw new Error(`unexpected device ${id}`);
  };

  const cases = [
    {
      name: 'OPC UA (the CNC simulator, bundled cnc1.yaml)',
      device: () => bundled('cnc1'),
      machine: 'CNC1',
      counter: 'totalParts',
      stop: () => sims.faults.stopOpcua(),
      start: () => sims.faults.startOpcua(),
    },
    {
      name: 'Modbus TCP (the PLC simulator, bundled press1.yaml)',
      device: () => bundled('press1'),
      machine: 'PRESS1',
      counter: 'partsTotal',
      stop: () => sims.faults.stopModbusTcp(),
      start: () => sims.faults.startModbusTcp(),
    },
  ];
  for (const c of cases) {
    it(`${c.name}: the parts made meanwhile are booked to no lot, never the new one`, async () => {
      const { drafts, t, driver } = pipeline(c.device());
      const lotOf = () => sims.engine.status(c.machine).lot;
      const truth = () =>
        sims.groundTruth.query({ kind: 'part_completed', machine: c.machine }).filter((r) => r.seq > cut) as {
          totalCount: number;
          lot: string;
          order: string;
        }[];
      const parts = () => drafts.filter((d) => d.kind === 'part_completed');
      let cut = 0;
      await driver.start();
      try {
        await advance(() => lotOf() !== null);
        await t.waitFor(() => t.latest('lotId')?.value === lotOf(), 'the lot read');
        await t.waitFor(() => t.latest(c.counter)?.quality === 'good', 'the counter read');
        cut = sims.groundTruth.lastSeq;
        // Two parts with the line connected.
        const target = truth().length + 2;
        await advance(() => truth().length >= target);
        await t.waitFor(() => parts().length >= truth().length, 'the connected parts');
        // The server goes away; the lot ends, the next starts, parts are made under both.
        const before = lotOf();
        const orderBefore = sims.engine.status(c.machine).order;
        await c.stop();
        await t.waitFor(() => t.latest(c.counter)?.reason === 'disconnected', 'the outage');
        const outageFrom = truth().length;
        await advance(() => lotOf() !== before && truth().some((p) => p.lot === lotOf()));
        const outage = truth().slice(outageFrom);
        expect(outage.some((p) => p.lot === before)).toBe(true);
        expect(outage.some((p) => p.lot !== before)).toBe(true);
        await c.start();
        await t.waitFor(() => parts().length >= truth().length, 'every part after the outage', 20_000);
        const got = parts();
        expect(got.map((d) => d.values[c.counter]?.v)).toEqual(truth().map((p) => p.totalCount));
        truth().forEach((p, i) => {
          const e = got[i]!;
          if (i < outageFrom) {
            expect([p.totalCount, e.lot, e.order]).toEqual([p.totalCount, p.lot, p.order]);
          } else {
            // Made during the outage: the readings cannot say under which lot, and the event says so.
            // The order is kept when both lots belong to it (the simulator runs several lots per order).
            const sameOrder = sims.engine.status(c.machine).order === orderBefore;
            expect([p.totalCount, e.lot, e.order]).toEqual([
              p.totalCount,
              undefined,
              sameOrder ? p.order : undefined,
            ]);
            expect(e.values['@context']?.v).toMatch(
              sameOrder ? /^lot(, step)? unknown/ : /^lot, order(, step)? unknown/,
            );
          }
        });
        // The lot change itself is reported: the old lot finished, the new one started.
        expect(drafts.filter((d) => d.kind === 'lot_started').map((d) => d.lot)).toContain(lotOf());
        expect(drafts.filter((d) => d.kind === 'lot_finished').map((d) => d.lot)).toContain(before);
        // And the next part, seen connected, is the new lot's.
        const n = truth().length;
        await advance(() => truth().length > n);
        await t.waitFor(() => parts().length > n, 'a part after the outage');
        expect([parts()[n]!.lot, parts()[n]!.values['@context']]).toEqual([lotOf(), undefined]);
      } finally {
        await driver.stop();
        t.cleanup();
      }
    });
  }

  itUnless(missing('mosquitto', 'apt-get install -y mosquitto'))(
    'MQTT (mosquitto): the parts counted while the broker was down are booked to no lot',
    async () => {
      let broker = await startMosquitto();
      const port = broker.port;
      const url = `mqtt://127.0.0.1:${port}`;
      const topic = 'plant1/line1/press9/status';
      const device = deviceMap('mqtt', {
        id: 'press9',
        connection: { url, reconnectMaxDelayMs: 300 },
        tags: [
          { name: 'lotId', topic, value: '$.lot', type: 'string' },
          { name: 'orderId', topic, value: '$.order', type: 'string' },
          { name: 'partsTotal', topic, value: '$.count', type: 'number' },
        ],
        context: { lot: 'lotId', order: 'orderId' },
        rules: [
          { name: 'part', trigger: 'counter', tag: 'partsTotal', kind: 'part_completed' },
          { name: 'lot', trigger: 'change', tag: 'lotId', kind: 'lot_started' },
        ],
      });
      const { drafts, t, driver } = pipeline(device);
      const send = async (payload: object) => {
        const { default: mqtt } = await import('mqtt');
        const client = await mqtt.connectAsync(url, { reconnectPeriod: 0 });
        await client.publishAsync(topic, JSON.stringify(payload), { qos: 1 });
        await client.endAsync();
      };
      await driver.start();
      try {
        await t.waitFor(() => driver.health().state === 'connected', 'connected');
        await send({ lot: 'LOT-67', order: 'ORD-0033', count: 41 });
        await t.waitFor(() => t.latest('partsTotal')?.value === 41, 'the baseline');
        await broker.stop();
        await t.waitFor(() => t.latest('partsTotal')?.reason === 'disconnected', 'the outage');
        broker = await startMosquitto({ port });
        await t.waitFor(() => driver.health().state === 'connected', 'reconnected', 15_000);
        await send({ lot: 'LOT-68', order: 'ORD-0034', count: 44 });
        await t.waitFor(() => drafts.filter((d) => d.kind === 'part_completed').length === 3, 'three parts');
        const parts = drafts.filter((d) => d.kind === 'part_completed');
        expect(parts.map((d) => [d.values.partsTotal?.v, d.lot, d.order])).toEqual([
          [42, undefined, undefined],
          [43, undefined, undefined],
          [44, undefined, undefined],
        ]);
        expect(parts[2]!.values['@context']?.v).toBe(
          'lot, order unknown: they changed between two readings of the counter (41 and 44)',
        );
      } finally {
        await driver.stop();
        await broker.stop();
        t.cleanup();
      }
    },
  );
});

describe('one delivery sets the context before its rules run (issue 14, item 5)', () => {
  it('OPC UA: the first status event carries the lot and order of the first publish', async () => {
    const T0 = Date.UTC(2026, 0, 5, 6);
    // A controller whose state last changed before the current lot was loaded (open62541 keeps each
    // variable's own source timestamp): the first publish has State at T0, LotId and OrderId later.
    const sims = await startSimulators({
      seed: 5,
      startMs: T0 + 60_000,
      opcua: {
        pkiDir: join(root, 'server-pki-5'),
        extraVariables: [
          { name: 'State', dataType: DataType.String, value: 'Running', sourceTimeMs: T0 },
          { name: 'LotId', dataType: DataType.String, value: 'LOT-68', sourceTimeMs: T0 + 1_000 },
          { name: 'OrderId', dataType: DataType.String, value: 'ORD-0034', sourceTimeMs: T0 + 1_000 },
        ],
      },
      modbus: false,
      mqtt: false,
      dataDir: join(root, 'sim-5'),
    });
    const device = deviceMap('opcua', {
      id: 'cnc9',
      connection: { endpoint: sims.endpoints.opcua, reconnectMaxDelayMs: 300 },
      tags: [
        { name: 'state', nodeId: 'ns=1;s=Extras.State' },
        { name: 'lotId', nodeId: 'ns=1;s=Extras.LotId' },
        { name: 'orderId', nodeId: 'ns=1;s=Extras.OrderId' },
      ],
      context: { lot: 'lotId', order: 'orderId' },
      rules: [
        {
          name: 'state',
          trigger: 'change',
          tag: 'state',
          initial: 'emit',
          kind: 'equipment_status',
          values: ['state'],
        },
      ],
    });
    const { drafts, t, driver } = pipeline(device);
    await driver.start();
    try {
      await t.waitFor(() => drafts.length > 0, 'the status event');
      // Delivered together: one batch (the first publish).
      expect(t.batches[0]!.map((r) => r.tag).sort()).toEqual(['lotId', 'orderId', 'state']);
      expect(drafts.map((d) => [d.kind, d.lot, d.order, d.sourceTimeMs])).toEqual([
        ['equipment_status', 'LOT-68', 'ORD-0034', T0],
      ]);
    } finally {
      await driver.stop();
      await sims.stop();
      t.cleanup();
    }
  });
});
