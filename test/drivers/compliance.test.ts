/**
 * The compliance suite every driver passes against its simulator (js-libp2p's interface-compliance
 * tests are the model): connect and read, readings resume after the server restarts, stop while
 * connecting resolves promptly, nothing is emitted after stop() resolves, and readOnce reads every tag
 * once (or says why not) without emitting anything. Adding a protocol means adding one subject below.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type Simulators, startSimulators } from '../../simulators/index.ts';
import { createDriver } from '../../src/drivers/registry.ts';
import type { Driver } from '../../src/drivers/types.ts';
import type { DeviceConfig } from '../../src/gateway/config/config.ts';
import { deviceMap, type TestContext, testContext } from './helpers/context.ts';
import { freePort, tools } from './helpers/tools.ts';

const root = mkdtempSync(join(tmpdir(), 'masbc-compliance-'));
const pkiFolder = join(root, 'client-pki');
let sims: Simulators;
let ticker: NodeJS.Timeout | undefined;

interface Subject {
  name: string;
  /** Why the subject cannot run here (a missing tool), or null. */
  skip(): string | null;
  /** A device map reading a tag that changes while the engine runs. */
  device(): DeviceConfig;
  /** A device map pointing at nothing that answers. */
  unreachable(): Promise<DeviceConfig>;
  tag: string;
  restart(): Promise<void>;
}

const subjects: Subject[] = [
  {
    name: 'opcua',
    skip: () => null,
    tag: 'speed',
    device: () =>
      deviceMap('opcua', {
        connection: { endpoint: sims.endpoints.opcua, reconnectMaxDelayMs: 300 },
        tags: [
          { name: 'speed', nodeId: 'ns=1;s=CNC1.Spindle.Speed' },
          { name: 'count', nodeId: 'ns=1;s=CNC1.Job.PartCount' },
        ],
      }),
    unreachable: async () =>
      deviceMap('opcua', {
        connection: { endpoint: `opc.tcp://127.0.0.1:${await freePort()}` },
        tags: [{ name: 'speed', nodeId: 'ns=1;s=CNC1.Spindle.Speed' }],
      }),
    restart: () => sims.faults.restartOpcua({ downMs: 100 }),
  },
  {
    name: 'modbus-tcp',
    skip: () => null,
    tag: 'pressure',
    device: () =>
      deviceMap('modbus', {
        connection: {
          transport: 'tcp',
          host: '127.0.0.1',
          port: sims.endpoints.modbusTcpPort,
          pollIntervalMs: 50,
          timeoutMs: 300,
          reconnectMaxDelayMs: 300,
        },
        tags: [
          { name: 'pressure', unitId: 1, area: 'input', address: 0, type: 'float32' },
          { name: 'zone1', unitId: 2, area: 'input', address: 0, type: 'float32', byteOrder: 'CDAB' },
        ],
      }),
    unreachable: async () =>
      deviceMap('modbus', {
        connection: { transport: 'tcp', host: '127.0.0.1', port: await freePort() },
        tags: [{ name: 'pressure', area: 'input', address: 0 }],
      }),
    restart: () => sims.faults.restartModbusTcp({ downMs: 100 }),
  },
  {
    name: 'modbus-rtu',
    skip: () => (tools.socat ? null : 'socat is not installed (apt-get install -y socat)'),
    tag: 'pressure',
    device: () =>
      deviceMap('modbus', {
        connection: {
          transport: 'rtu',
          path: sims.endpoints.modbusRtuPath,
          parity: 'none',
          pollIntervalMs: 100,
          timeoutMs: 200,
          reconnectMaxDelayMs: 300,
        },
        tags: [
          { name: 'pressure', unitId: 1, area: 'input', address: 0, type: 'float32' },
          { name: 'zone1', unitId: 2, area: 'input', address: 0, type: 'float32', byteOrder: 'CDAB' },
        ],
      }),
    unreachable: async () =>
      deviceMap('modbus', {
        connection: { transport: 'rtu', path: join(root, 'no-such-tty') },
        tags: [{ name: 'pressure', area: 'input', address: 0 }],
      }),
    // Pulling the RS-485 plug and putting it back: the port stays open, the units time out and recover.
    restart: async () => {
      await sims.faults.stopModbusRtu();
      await new Promise((r) => setTimeout(r, 500));
      await sims.faults.startModbusRtu();
    },
  },
  {
    name: 'mqtt',
    skip: () => null,
    tag: 'zone2',
    device: () =>
      deviceMap('mqtt', {
        connection: { url: sims.endpoints.mqtt, reconnectMaxDelayMs: 300 },
        tags: [
          {
            name: 'zone2',
            topic: 'plant1/line1/oven1/telemetry',
            where: { '$.zone': 2 },
            value: '$.temp.value',
            type: 'number',
          },
        ],
      }),
    unreachable: async () =>
      deviceMap('mqtt', {
        connection: { url: `mqtt://127.0.0.1:${await freePort()}` },
        tags: [{ name: 'zone2', topic: 'x' }],
      }),
    restart: () => sims.faults.restartMqtt({ downMs: 100 }),
  },
];

beforeAll(async () => {
  sims = await startSimulators({
    seed: 3,
    startMs: Date.UTC(2026, 0, 5, 6),
    scenario: { cycleTimeMs: 200, telemetryPeriodMs: 50, downProbability: 0 },
    opcua: { pkiDir: join(root, 'server-pki') },
    modbus: { rtu: tools.socat },
    mqtt: {},
    dataDir: join(root, 'sim'),
  });
  // The line keeps producing in the background, 50 ms of simulated time every 25 ms.
  ticker = setInterval(() => sims.step(sims.engine.nowMs + 50), 25);
});

afterAll(async () => {
  clearInterval(ticker);
  await sims?.stop();
  rmSync(root, { recursive: true, force: true });
});

async function withDriver(device: DeviceConfig, fn: (d: Driver, t: TestContext) => Promise<void>) {
  const t = testContext({ pkiFolder });
  const driver = createDriver(device, t.ctx);
  await driver.start();
  try {
    await fn(driver, t);
  } finally {
    await driver.stop();
    t.cleanup();
  }
}

for (const s of subjects) {
  describe(`driver compliance: ${s.name}`, () => {
    const reason = s.skip();
    if (reason) console.warn(`SKIPPED: ${s.name} compliance: ${reason}`);

    it.skipIf(reason !== null)('connects and reads good values', async () => {
      await withDriver(s.device(), async (driver, t) => {
        await t.waitFor(() => t.latest(s.tag)?.quality === 'good', 'a good reading');
        const h = driver.health();
        expect(h).toMatchObject({ state: 'connected', protocol: s.device().protocol });
        expect(h.lastGoodReadMs).not.toBeNull();
        expect(t.readings.every((r) => r.device === 'dev')).toBe(true);
      });
    });

    it.skipIf(reason !== null)('resumes reading after the server restarts', async () => {
      await withDriver(s.device(), async (_driver, t) => {
        await t.waitFor(() => t.latest(s.tag)?.quality === 'good', 'a good reading');
        await s.restart();
        await t.waitFor(() => t.latest(s.tag)?.quality === 'bad', 'bad while the server is away', 15_000);
        const from = t.readings.length;
        await t.waitFor(
          () => t.readings.slice(from).some((r) => r.tag === s.tag && r.quality === 'good'),
          'good readings after the restart',
          15_000,
        );
      });
    });

    it.skipIf(reason !== null)('stops promptly while connecting, and emits nothing', async () => {
      const t = testContext({ pkiFolder });
      const driver = createDriver(await s.unreachable(), t.ctx);
      await driver.start();
      expect(['connecting', 'backoff']).toContain(driver.health().state);
      const started = performance.now();
      await driver.stop();
      expect(performance.now() - started).toBeLessThan(1_500);
      expect(driver.health().state).toBe('stopped');
      expect(t.readings).toHaveLength(0);
      t.cleanup();
    });

    it.skipIf(reason !== null)(
      'readOnce: every tag once, nothing emitted; an unreachable device is a problem',
      async () => {
        const t = testContext({ pkiFolder });
        try {
          const device = s.device();
          const once = await createDriver(device, t.ctx).readOnce({ timeoutMs: 5_000 });
          expect(once, JSON.stringify(once.problems)).toMatchObject({
            device: 'dev',
            complete: true,
            problems: [],
          });
          const tags = once.batches.flat().map((r) => r.tag);
          expect(new Set(tags)).toEqual(new Set(device.tags.map((x) => x.name)));
          expect(once.batches.flat().every((r) => r.quality === 'good')).toBe(true);
          const dead = await createDriver(await s.unreachable(), t.ctx).readOnce({ timeoutMs: 1_000 });
          expect(dead.complete).toBe(false);
          expect(dead.problems.length).toBeGreaterThan(0);
          expect(dead.elapsedMs).toBeLessThan(3_000);
          // readOnce hands nothing to the context, and refuses a running driver.
          expect(t.readings).toHaveLength(0);
          const running = createDriver(device, t.ctx);
          await running.start();
          await expect(running.readOnce({ timeoutMs: 1_000 })).rejects.toThrow(/not running/);
          await running.stop();
        } finally {
          t.cleanup();
        }
      },
    );

    it.skipIf(reason !== null)(
      'emits nothing after stop() resolves, while the device keeps changing',
      async () => {
        const t = testContext({ pkiFolder });
        const driver = createDriver(s.device(), t.ctx);
        await driver.start();
        await t.waitFor(() => t.readings.filter((r) => r.quality === 'good').length >= 3, 'readings flowing');
        await driver.stop();
        const count = t.readings.length;
        await new Promise((r) => setTimeout(r, 400));
        expect(t.readings.length).toBe(count);
        await driver.stop(); // idempotent
        t.cleanup();
      },
    );
  });
}
