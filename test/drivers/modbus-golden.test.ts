/**
 * Golden cases (src/drivers/modbus/testcases/<case>/): each holds a device map, a register image
 * (memory.json: unit → area → start address → values) and the expected plan and readings. Every
 * case runs twice: through the pure planner and decoder, and through the driver against a real
 * Modbus TCP server loaded with the image. A bug report becomes a new folder.
 */
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { decodeBit, registerDecoder } from '../../src/drivers/modbus/decode.ts';
import { ModbusDriver } from '../../src/drivers/modbus/driver.ts';
import { isBitArea, planRequests } from '../../src/drivers/modbus/plan.ts';
import type { ModbusDevice } from '../../src/drivers/modbus/schema.ts';
import { loadDeviceMap } from '../../src/gateway/config/config.ts';
import { testContext } from './helpers/context.ts';
import { startModbusServer, type TestModbusServer } from './helpers/modbus-server.ts';

const root = 'src/drivers/modbus/testcases';
type Image = Record<string, Record<string, Record<string, number[]>>>;

interface GoldenCase {
  name: string;
  device: ModbusDevice;
  memory: Image;
  expected: { requests: object[]; readings: Record<string, unknown> };
}

const cases: GoldenCase[] = readdirSync(root)
  .sort()
  .map((name) => {
    const loaded = loadDeviceMap(join(root, name, 'device.yaml'));
    if (!loaded.value) throw new Error(`${name}: ${loaded.issues.map((i) => i.message).join('; ')}`);
    if (loaded.value.protocol !== 'modbus') throw new Error(`${name}: not a modbus device`);
    return {
      name,
      device: loaded.value,
      memory: JSON.parse(readFileSync(join(root, name, 'memory.json'), 'utf8')),
      expected: JSON.parse(readFileSync(join(root, name, 'expected.json'), 'utf8')),
    };
  });

/** The bytes a device would answer to a request, built from the image (unset addresses read 0). */
function response(image: Image, unitId: number, area: string, address: number, count: number): Uint8Array {
  const cells = new Map<number, number>();
  for (const [start, values] of Object.entries(image[String(unitId)]?.[area] ?? {}))
    for (let i = 0; i < values.length; i++) cells.set(Number(start) + i, values[i]!);
  if (area === 'coil' || area === 'discrete') {
    const out = new Uint8Array(Math.ceil(count / 8));
    for (let i = 0; i < count; i++) if (cells.get(address + i)) out[i >> 3]! |= 1 << (i & 7);
    return out;
  }
  const out = Buffer.alloc(count * 2);
  for (let i = 0; i < count; i++) out.writeUInt16BE(cells.get(address + i) ?? 0, 2 * i);
  return out;
}

describe('modbus golden cases: planner and decoder', () => {
  for (const c of cases) {
    it(c.name, () => {
      const conn = c.device.connection;
      const plan = planRequests(c.device.tags, conn);
      expect(plan.map(({ tags: _tags, ...r }) => r)).toEqual(c.expected.requests);
      const got: Record<string, unknown> = {};
      for (const r of plan) {
        const data = response(c.memory, r.unitId, r.area, r.address, r.count);
        for (const i of r.tags) {
          const tag = c.device.tags[i]!;
          const offset = tag.address - r.address;
          got[tag.name] = isBitArea(tag.area)
            ? decodeBit(data, offset)
            : registerDecoder(tag).decode(data, offset);
        }
      }
      expect(got).toEqual(c.expected.readings);
    });
  }
});

describe('modbus golden cases: driver against a Modbus TCP server', () => {
  let server: TestModbusServer;
  beforeAll(async () => {
    server = await startModbusServer();
  });
  afterAll(async () => {
    await server.close();
  });

  for (const c of cases) {
    it(c.name, async () => {
      server.clear();
      server.load(c.memory);
      const t = testContext();
      const device = {
        ...c.device,
        connection: { ...c.device.connection, host: '127.0.0.1', port: server.port, pollIntervalMs: 50 },
      } as ModbusDevice;
      const driver = new ModbusDriver(device, t.ctx);
      await driver.start();
      try {
        const names = Object.keys(c.expected.readings);
        await t.waitFor(() => names.every((n) => t.latest(n)), 'a reading of every tag');
        const got = Object.fromEntries(names.map((n) => [n, t.latest(n)!.value]));
        expect(got).toEqual(c.expected.readings);
        expect(t.readings.every((r) => r.quality === 'good' && r.device === 'golden')).toBe(true);
      } finally {
        await driver.stop();
        t.cleanup();
      }
    });
  }
});
