/**
 * The compliance suite every driver passes against its simulator (js-libp2p's interface-compliance
 * tests are the model): connect and read, readings resume after the server restarts, stop while
 * connecting resolves promptly, nothing is emitted after stop() resolves, and readOnce reads every tag
 * once (or says why not) without emitting anything. Since issue 14 also: a connection whose socket
 * stays quiet for many times its request timeout stays up (quiet socket), and a server that accepts
 * only 3 sessions (connections) never sees more than one from the driver across connection drops and
 * restarts, and never refuses it (session limit). Adding a protocol means adding one subject below.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect } from 'vitest';
import { type Simulators, startSimulators } from '../../simulators/index.ts';
import { startModbusPlc } from '../../simulators/modbus-plc.ts';
import { startMqttSensors } from '../../simulators/mqtt-sensors.ts';
import { startOpcuaCnc } from '../../simulators/opcua-cnc.ts';
import { createDriver } from '../../src/drivers/registry.ts';
import type { Driver, DriverHealth } from '../../src/drivers/types.ts';
import type { DeviceConfig } from '../../src/gateway/config/config.ts';
import { itUnless } from '../helpers/skip.ts';
import { deviceMap, type TestContext, testContext } from './helpers/context.ts';
import { startProxy } from './helpers/proxy.ts';
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
  /**
   * A device map on which nothing changes and nothing needs asking for a while (slow publishing or
   * polling, a silent topic), and how long to watch it: many times its request timeout, derived from
   * the map and, when the driver reports them, from its keep-alive and transport timeouts.
   */
  quiet(): { device: DeviceConfig; watchMs(health: DriverHealth): number };
  /** A server of its own accepting at most `limit` sessions (connections); absent on a serial line. */
  limited?(limit: number): Promise<LimitedServer>;
}

interface LimitedServer {
  port: number;
  /** A device map reading `Subject.tag` on `port` (a proxy in front of the server). */
  device(port: number): DeviceConfig;
  /** Sessions (connections) the server holds now. */
  sessions(): number;
  /** Sessions (connections) it refused since it started. */
  refused(): number;
  restart(): Promise<void>;
  close(): Promise<void>;
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
    quiet: () => ({
      // Poll-only, once a minute: nothing but the driver's own keep-alive crosses the socket, which
      // idles far longer than the 300 ms request timeout. A short session timeout makes the keep-alive
      // and the transport timeout short enough to watch several of them (a quiet subscription is in
      // opcua.test.ts).
      device: deviceMap('opcua', {
        connection: { endpoint: sims.endpoints.opcua, requestTimeoutMs: 300, sessionTimeoutMs: 1_500 },
        tags: [
          {
            name: 'nominal',
            nodeId: 'ns=1;s=CNC1.Quality.DiameterNominal',
            mode: 'poll',
            pollIntervalMs: 60_000,
          },
        ],
      }),
      watchMs: (h) => Math.max(8 * 300, 2.5 * Number(h.detail?.transportTimeoutMs ?? 0)),
    }),
    limited: async (limit) => {
      const server = await startOpcuaCnc({
        engine: sims.engine,
        pkiDir: join(root, 'limited-pki'),
        maxSessions: limit,
      });
      return {
        port: server.port,
        device: (port) =>
          deviceMap('opcua', {
            connection: { endpoint: `opc.tcp://127.0.0.1:${port}`, reconnectMaxDelayMs: 300 },
            tags: [{ name: 'speed', nodeId: 'ns=1;s=CNC1.Spindle.Speed' }],
          }),
        sessions: () => server.sessions().current,
        refused: () => server.sessions().refused,
        restart: () => server.restart({ downMs: 100 }),
        close: () => server.stop(),
      };
    },
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
    quiet: () => ({
      device: deviceMap('modbus', {
        connection: {
          transport: 'tcp',
          host: '127.0.0.1',
          port: sims.endpoints.modbusTcpPort,
          pollIntervalMs: 1_000,
          timeoutMs: 300,
        },
        tags: [{ name: 'pressure', unitId: 1, area: 'input', address: 0, type: 'float32' }],
      }),
      watchMs: () => 3_000,
    }),
    limited: async (limit) => {
      const plc = await startModbusPlc({ engine: sims.engine, tcp: { port: 0, maxConnections: limit } });
      return {
        port: plc.tcpPort!,
        device: (port) =>
          deviceMap('modbus', {
            connection: {
              transport: 'tcp',
              host: '127.0.0.1',
              port,
              pollIntervalMs: 50,
              timeoutMs: 300,
              reconnectMaxDelayMs: 300,
            },
            tags: [{ name: 'pressure', unitId: 1, area: 'input', address: 0, type: 'float32' }],
          }),
        sessions: () => plc.tcpConnections,
        refused: () => plc.stats.refusedConnections,
        restart: () => plc.restartTcp({ downMs: 100 }),
        close: () => plc.stop(),
      };
    },
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
    quiet: () => ({
      device: deviceMap('modbus', {
        connection: {
          transport: 'rtu',
          path: sims.endpoints.modbusRtuPath,
          parity: 'none',
          pollIntervalMs: 1_000,
          timeoutMs: 200,
        },
        tags: [{ name: 'pressure', unitId: 1, area: 'input', address: 0, type: 'float32' }],
      }),
      watchMs: () => 3_000,
    }),
    // A serial line has no sessions: the session-limit case does not apply.
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
    quiet: () => ({
      // A topic nobody publishes on; the client pings every second to keep the connection.
      device: deviceMap('mqtt', {
        connection: { url: sims.endpoints.mqtt, keepaliveS: 1 },
        tags: [{ name: 'silent', topic: 'plant1/line1/nobody/quiet' }],
      }),
      watchMs: () => 3_000,
    }),
    limited: async (limit) => {
      const broker = await startMqttSensors({ engine: sims.engine, port: 0, maxConnections: limit });
      await broker.start();
      return {
        port: broker.port,
        device: (port) =>
          deviceMap('mqtt', {
            connection: { url: `mqtt://127.0.0.1:${port}`, reconnectMaxDelayMs: 300 },
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
        sessions: () => broker.connections,
        refused: () => broker.stats.refusedConnections,
        restart: () => broker.restart({ downMs: 100 }),
        close: () => broker.close(),
      };
    },
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

    itUnless(reason)('connects and reads good values', async () => {
      await withDriver(s.device(), async (driver, t) => {
        await t.waitFor(() => t.latest(s.tag)?.quality === 'good', 'a good reading');
        const h = driver.health();
        expect(h).toMatchObject({ state: 'connected', protocol: s.device().protocol });
        expect(h.lastGoodReadMs).not.toBeNull();
        expect(t.readings.every((r) => r.device === 'dev')).toBe(true);
      });
    });

    itUnless(reason)('resumes reading after the server restarts', async () => {
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

    itUnless(reason)('stops promptly while connecting, and emits nothing', async () => {
      const t = testContext({ pkiFolder });
      const device = await s.unreachable();
      const driver = createDriver(device, t.ctx);
      await driver.start();
      expect(['connecting', 'backoff']).toContain(driver.health().state);
      const started = performance.now();
      await driver.stop();
      // Promptly: without waiting out a pending connect or request (the device's own timeout, which
      // a stop that waited would take in full) — half of it leaves a loaded machine plenty of slack.
      const c = device.connection as {
        connectTimeoutMs?: number;
        requestTimeoutMs?: number;
        timeoutMs?: number;
      };
      const timeoutMs = c.connectTimeoutMs ?? c.requestTimeoutMs ?? c.timeoutMs;
      expect(timeoutMs, 'the device map gives its timeout').toBeGreaterThanOrEqual(1_000);
      expect(performance.now() - started).toBeLessThan(timeoutMs! / 2);
      expect(driver.health().state).toBe('stopped');
      expect(t.readings).toHaveLength(0);
      t.cleanup();
    });

    itUnless(reason)(
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
          const deadTimeoutMs = 1_000;
          const dead = await createDriver(await s.unreachable(), t.ctx).readOnce({
            timeoutMs: deadTimeoutMs,
          });
          expect(dead.complete).toBe(false);
          expect(dead.problems.length).toBeGreaterThan(0);
          // Gives up by its timeout (three times over: slack for a loaded machine).
          expect(dead.elapsedMs).toBeLessThan(3 * deadTimeoutMs);
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

    itUnless(reason)(
      'quiet socket: stays connected while nothing changes for many times its request timeout',
      async () => {
        const quiet = s.quiet();
        await withDriver(quiet.device, async (driver, t) => {
          await t.waitFor(() => driver.health().state === 'connected', 'connected');
          const watchMs = quiet.watchMs(driver.health());
          await new Promise((r) => setTimeout(r, watchMs));
          const h = driver.health();
          expect(
            { state: h.state, reconnects: h.reconnects, errors: h.errors },
            `after ${watchMs} ms of quiet: ${h.lastError ?? ''}`,
          ).toEqual({ state: 'connected', reconnects: 0, errors: {} });
          expect(t.readings.filter((r) => r.reason === 'disconnected')).toEqual([]);
        });
      },
    );

    // Only protocols whose servers limit sessions (OPC UA) have this test.
    if (s.limited)
      itUnless(reason)(
        'session limit: holds one session on a server allowing 3, across 4 connection drops and 2 restarts',
        async () => {
          const server = await s.limited!(3);
          const proxy = await startProxy(server.port);
          try {
            await withDriver(server.device(proxy.port), async (driver, t) => {
              const goodSince = (from: number) =>
                t.readings.slice(from).some((r) => r.tag === s.tag && r.quality === 'good');
              await t.waitFor(() => goodSince(0), 'a good reading');
              for (let round = 1; round <= 6; round++) {
                const from = t.readings.length;
                // A pulled cable leaves the server up (and, for OPC UA, the session open on it).
                if (round <= 4) proxy.drop();
                else await server.restart();
                await t.waitFor(
                  () => t.readings.slice(from).some((r) => r.tag === s.tag && r.reason === 'disconnected'),
                  `the connection lost (round ${round})`,
                  15_000,
                );
                const lost = t.readings.length;
                await t.waitFor(() => goodSince(lost), `readings back (round ${round})`, 15_000);
                expect(server.sessions(), `sessions on the server after round ${round}`).toBe(1);
              }
              expect(server.refused(), JSON.stringify(driver.health())).toBe(0);
              expect(driver.health().errors.session ?? 0).toBe(0);
            });
          } finally {
            await proxy.close();
            await server.close();
          }
        },
      );

    itUnless(reason)('emits nothing after stop() resolves, while the device keeps changing', async () => {
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
    });
  });
}
