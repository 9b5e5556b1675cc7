/**
 * Modbus driver over real sockets: several units on one connection, a unit that stops answering,
 * exception responses, server restart, stop while connecting; interop with pymodbus over TCP and
 * RTU (socat pty pair). Decoding of every type and order is covered by modbus-golden.test.ts.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ModbusDriver } from '../../src/drivers/modbus/driver.ts';
import type { ModbusDevice } from '../../src/drivers/modbus/schema.ts';
import type { Reading } from '../../src/drivers/types.ts';
import { itUnless } from '../helpers/skip.ts';
import { testContext } from './helpers/context.ts';
import { startModbusServer, type TestModbusServer } from './helpers/modbus-server.ts';
import { missing, startPymodbus, startSocatPair } from './helpers/tools.ts';

type Tag = ModbusDevice['tags'][number];
const tag = (t: Partial<Tag> & Pick<Tag, 'name' | 'address'>): Tag => ({
  unitId: 1,
  area: 'holding',
  type: 'uint16',
  byteOrder: 'ABCD',
  scale: 1,
  offset: 0,
  ...t,
});

function tcpDevice(
  port: number,
  tags: Tag[],
  connection: Partial<ModbusDevice['connection']> = {},
): ModbusDevice {
  return {
    id: 'plc',
    station: 'ST-1',
    enabled: true,
    protocol: 'modbus',
    connection: {
      transport: 'tcp',
      host: '127.0.0.1',
      port,
      requestsInFlightMax: 1,
      timeoutMs: 300,
      connectTimeoutMs: 2_000,
      pollIntervalMs: 100,
      reconnectMaxDelayMs: 1_000,
      maxGapRegisters: 8,
      maxGapBits: 32,
      maxRegistersPerRequest: 125,
      maxBitsPerRequest: 2000,
      ...connection,
    } as ModbusDevice['connection'],
    tags,
  };
}

/** Largest interval between consecutive batches containing `tagName`, from `sinceIndex` on. */
function largestGapMs(batches: { at: number; batch: Reading[] }[], tagName: string): number {
  const times = batches
    .filter((b) => b.batch.some((r) => r.tag === tagName && r.quality === 'good'))
    .map((b) => b.at);
  let gap = 0;
  for (let i = 1; i < times.length; i++) gap = Math.max(gap, times[i]! - times[i - 1]!);
  return gap;
}

describe('modbus driver against a Modbus TCP server', () => {
  let server: TestModbusServer;
  beforeAll(async () => {
    server = await startModbusServer();
  });
  afterAll(async () => {
    await server.close();
  });

  for (const inFlight of [1, 2]) {
    it(`a unit that stops answering does not stall the other (requestsInFlightMax ${inFlight})`, async () => {
      server.clear();
      server.set(1, 'holding', 0, [11]);
      server.set(2, 'holding', 0, [22]);
      const t = testContext();
      const timed: { at: number; batch: Reading[] }[] = [];
      const onReadings = t.ctx.onReadings;
      t.ctx.onReadings = (batch) => {
        timed.push({ at: performance.now(), batch: [...batch] });
        onReadings(batch);
      };
      const device = tcpDevice(
        server.port,
        [tag({ name: 'u1', address: 0 }), tag({ name: 'u2', unitId: 2, address: 0 })],
        { requestsInFlightMax: inFlight },
      );
      const driver = new ModbusDriver(device, t.ctx);
      await driver.start();
      try {
        await t.waitFor(() => t.latest('u2')?.value === 22, 'unit 2 answering');
        server.silent.add(2);
        await t.waitFor(() => t.latest('u2')?.quality === 'bad', 'unit 2 marked bad');
        expect(t.latest('u2')?.reason).toMatch(/timeout \(unit 2\)/);
        // Watch unit 1 over three probes of dead unit 2 (each costs one unit timeout), counted by the
        // driver rather than timed: a machine's load slows polls and probes alike. Probes start 4
        // timeouts apart (less jitter, then backing off), polls every pollIntervalMs: between two
        // probes unit 1 is read several times, at least (4 / 2 − 1) × timeout / poll = 3 with one
        // request in flight. A driver that let a dead unit stall the line, or probed it every cycle,
        // would read unit 1 about once per timeout.
        const from = timed.length;
        const timeouts = () => driver.health().errors.timeout ?? 0;
        const before = timeouts();
        await t.waitFor(() => timeouts() >= before + 3, 'three probes of unit 2 timed out', 20_000);
        const window = timed.slice(from);
        const reads = window.filter((b) => b.batch.some((r) => r.tag === 'u1')).length;
        expect(
          reads,
          `unit 1 readings over 3 probes of unit 2 (largest gap ${largestGapMs(window, 'u1').toFixed(0)} ms)`,
        ).toBeGreaterThanOrEqual(2 * 3);
        const h = driver.health();
        expect((h.detail!.units as Record<string, { state: string }>)['2']?.state).toBe('down');
        expect(h.errors.timeout).toBeGreaterThanOrEqual(1);
        // Bad readings are emitted on the transition only, not once per probe.
        expect(t.readings.filter((r) => r.tag === 'u2' && r.quality === 'bad')).toHaveLength(1);
        server.silent.delete(2);
        server.set(2, 'holding', 0, [23]);
        await t.waitFor(() => t.latest('u2')?.value === 23, 'unit 2 back');
      } finally {
        await driver.stop();
        t.cleanup();
      }
    });
  }

  it('logs a unit timeout as readable text, not "[object Object]" (issue 14, item 11)', async () => {
    server.clear();
    server.set(3, 'holding', 0, [5]);
    server.silent.add(3);
    const t = testContext();
    const driver = new ModbusDriver(
      tcpDevice(server.port, [tag({ name: 'x', unitId: 3, address: 0 })]),
      t.ctx,
    );
    await driver.start();
    try {
      await t.waitFor(
        () => t.logs.some((l) => l.level === 'warn' && l.fields?.reason === 'timeout'),
        'a timeout warning',
      );
      const line = t.logs.find((l) => l.level === 'warn' && l.fields?.reason === 'timeout')!;
      // modbus-serial rejects with a plain object, not an Error: its message must still come through.
      expect(line.msg).not.toContain('[object Object]');
      expect(line.msg).toMatch(/timed out/i);
      expect(driver.health().lastError).toMatch(/timed out/i);
    } finally {
      await driver.stop();
      server.silent.delete(3);
      t.cleanup();
    }
  });

  it('an exception inside a merged request costs only the tag on the unmapped address', async () => {
    server.clear();
    server.set(1, 'holding', 0, [1, 2, 3, 4, 5, 6]);
    server.unmapped.add('1:holding:3');
    const t = testContext();
    const driver = new ModbusDriver(
      tcpDevice(server.port, [
        tag({ name: 'a', address: 0 }),
        tag({ name: 'hole', address: 3 }),
        tag({ name: 'f', address: 5 }),
      ]),
      t.ctx,
    );
    expect(driver.plan).toHaveLength(1);
    await driver.start();
    try {
      await t.waitFor(() => t.latest('a')?.value === 1 && t.latest('f')?.value === 6, 'good tags');
      await t.waitFor(() => t.latest('hole')?.quality === 'bad', 'unmapped tag bad');
      expect(t.latest('hole')?.reason).toMatch(/exception 2/i);
      const h = driver.health();
      expect(h.errors['exception-2']).toBeGreaterThanOrEqual(2);
      expect((h.detail!.units as Record<string, { splits: number; requests: number }>)['1']).toMatchObject({
        splits: 1,
        requests: 3,
      });
    } finally {
      await driver.stop();
      t.cleanup();
    }
  });

  it('reconnects after the server restarts, marks tags bad meanwhile, and emits nothing after stop', async () => {
    const first = await startModbusServer();
    const port = first.port;
    first.set(1, 'holding', 0, [7]);
    const t = testContext();
    const driver = new ModbusDriver(tcpDevice(port, [tag({ name: 'x', address: 0 })]), t.ctx);
    await driver.start();
    let second: TestModbusServer | undefined;
    try {
      await t.waitFor(() => t.latest('x')?.value === 7, 'first value');
      await first.close();
      await t.waitFor(() => t.latest('x')?.quality === 'bad', 'bad on disconnect');
      expect(t.latest('x')?.reason).toBe('disconnected');
      second = await startModbusServer(port);
      second.set(1, 'holding', 0, [8]);
      await t.waitFor(() => t.latest('x')?.value === 8, 'value after restart');
      expect(driver.health()).toMatchObject({ state: 'connected', reconnects: 1 });
    } finally {
      await driver.stop();
      const count = t.readings.length;
      await new Promise((r) => setTimeout(r, 300));
      expect(t.readings.length).toBe(count);
      expect(driver.health().state).toBe('stopped');
      await second?.close();
      t.cleanup();
    }
  });

  it('stops promptly while connecting to a host that never answers', async () => {
    const t = testContext();
    // 10.255.255.1 is unroutable: the connect either hangs or fails at once, depending on the network.
    const connectTimeoutMs = 60_000;
    const device = tcpDevice(502, [tag({ name: 'x', address: 0 })], { connectTimeoutMs });
    (device.connection as { host: string }).host = '10.255.255.1';
    const driver = new ModbusDriver(device, t.ctx);
    await driver.start();
    expect(['connecting', 'backoff']).toContain(driver.health().state);
    const started = performance.now();
    await driver.stop();
    // Promptly: not waiting for the pending connect (a stop that did would take connectTimeoutMs).
    expect(performance.now() - started).toBeLessThan(connectTimeoutMs / 4);
    expect(t.readings).toHaveLength(0);
    t.cleanup();
  });

  it('refuses at construction a tag larger than one request allows, opening nothing', () => {
    const t = testContext();
    const device = tcpDevice(1, [tag({ name: 's', address: 0, type: 'string', length: 40 })], {
      maxRegistersPerRequest: 10,
    });
    expect(() => new ModbusDriver(device, t.ctx)).toThrow(/at most 10/);
    t.cleanup();
  });
});

describe('modbus interop with pymodbus (independent implementation)', () => {
  const units = {
    '1': {
      hr: { '0': [0x4c4f, 0x542d, 0x3100, 0, 0, 0x0001, 0x86a0, 0x4049, 0x0fdb] },
      co: { '0': [1, 0, 1] },
    },
    '2': { ir: { '10': [0xfffe] }, di: { '3': [1] } },
  };
  const tags = [
    tag({ name: 'lot', address: 0, type: 'string', length: 10 }),
    tag({ name: 'count', address: 5, type: 'uint32' }),
    tag({ name: 'pi', address: 7, type: 'float32' }),
    tag({ name: 'c0', area: 'coil', address: 0, type: 'bit' }),
    tag({ name: 'c1', area: 'coil', address: 1, type: 'bit' }),
    tag({ name: 'c2', area: 'coil', address: 2, type: 'bit' }),
    tag({ name: 'in2', unitId: 2, area: 'input', address: 10, type: 'int16', scale: 0.5 }),
    tag({ name: 'di3', unitId: 2, area: 'discrete', address: 3, type: 'bit' }),
  ];
  const expected = {
    lot: 'LOT-1',
    count: 100_000,
    // The float32 nearest to pi as its shortest decimal, 3.1415927 (issue 14, item 7).
    pi: Number(Math.fround(Math.PI).toPrecision(8)),
    c0: true,
    c1: false,
    c2: true,
    in2: -1,
    di3: true,
  };
  const check = async (device: ModbusDevice) => {
    const t = testContext();
    const driver = new ModbusDriver(device, t.ctx);
    await driver.start();
    try {
      await t.waitFor(() => Object.keys(expected).every((n) => t.latest(n)), 'every tag', 15_000);
      expect(Object.fromEntries(Object.keys(expected).map((n) => [n, t.latest(n)!.value]))).toEqual(expected);
    } finally {
      await driver.stop();
      t.cleanup();
    }
  };

  itUnless(missing('pymodbus', 'apt-get install -y python3-pymodbus'))('Modbus TCP', async () => {
    const peer = await startPymodbus({ mode: 'tcp', units });
    try {
      await check(tcpDevice(peer.port, tags));
    } finally {
      await peer.stop();
    }
  });

  itUnless(
    missing('pymodbus', 'apt-get install -y python3-pymodbus') ||
      missing('socat', 'apt-get install -y socat'),
  )('Modbus RTU over a socat pty pair', async () => {
    const pty = await startSocatPair();
    // pyserial cannot set parity on a Linux pty (EINVAL on reconfigure): the virtual line runs 8N1.
    const peer = await startPymodbus({ mode: 'rtu', device: pty.a, baudrate: 19_200, parity: 'N', units });
    try {
      const device = tcpDevice(0, tags);
      device.connection = {
        ...device.connection,
        transport: 'rtu',
        path: pty.b,
        baudRate: 19_200,
        parity: 'none',
        dataBits: 8,
        stopBits: 1,
        timeoutMs: 500,
      } as ModbusDevice['connection'];
      await check(device);
    } finally {
      await peer.stop();
      await pty.stop();
    }
  });
});
