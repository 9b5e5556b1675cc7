/**
 * The Modbus PLC over real sockets and a real pseudo-terminal, read by independent clients:
 * modbus-serial (TCP and RTU), and where installed mbpoll and pymodbus. Each decodes the documented
 * map on its own; the expected values come from the engine's status at the same simulated instant.
 */
import { execFile, spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { promisify } from 'node:util';
import mb from 'modbus-serial';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  type BitField,
  OVEN_MAP,
  PRESS_MAP,
  type RegisterField,
  type UnitMap,
} from '../../simulators/modbus-maps.ts';
import { type ModbusPlc, startModbusPlc } from '../../simulators/modbus-plc.ts';
import type { WordOrder } from '../../simulators/modbus-protocol.ts';
import { createPtyPair, type PtyPair } from '../../simulators/pty.ts';
import { createScenario, type MachineStatus, type Scenario } from '../../simulators/scenario.ts';
import { itUnless } from '../helpers/skip.ts';

const ModbusRTU = mb.default;
type Client = InstanceType<typeof ModbusRTU>;
const run = promisify(execFile);
const T0 = Date.UTC(2026, 0, 5, 6);
const PYTHON = '/usr/bin/python3';
// The independent clients and the pty pair come from Debian; a test that needs a missing one is
// skipped with the reason (CI installs them and fails when one is missing).
const noMbpoll = existsSync('/usr/bin/mbpoll') ? null : 'mbpoll is not installed (apt-get install -y mbpoll)';
const noPymodbus =
  existsSync(PYTHON) && spawnSync(PYTHON, ['-c', 'import pymodbus']).status === 0
    ? null
    : 'pymodbus is not installed (apt-get install -y python3-pymodbus)';
const noSocat =
  spawnSync('sh', ['-c', 'command -v socat']).status === 0
    ? null
    : 'socat is not installed (apt-get install -y socat)';
const UNITS = [
  { unitId: 1, machine: 'PRESS1', map: PRESS_MAP as UnitMap<MachineStatus> },
  { unitId: 2, machine: 'OVEN1', map: OVEN_MAP as UnitMap<MachineStatus> },
];

/** Bytes A B C D (most significant first) from two registers stored in the given order. */
function abcd(w0: number, w1: number, order: WordOrder): Buffer {
  const x = Buffer.alloc(4);
  x.writeUInt16BE(w0, 0);
  x.writeUInt16BE(w1, 2);
  const idx = { ABCD: [0, 1, 2, 3], CDAB: [2, 3, 0, 1], BADC: [1, 0, 3, 2], DCBA: [3, 2, 1, 0] }[order];
  return Buffer.from(idx.map((i) => x[i]!));
}

function decode(f: RegisterField<MachineStatus>, regs: number[]): number | string {
  const r = (i: number) => regs[f.address + i]!;
  switch (f.type) {
    case 'string': {
      const bytes = Buffer.alloc(2 * f.registers);
      for (let i = 0; i < f.registers; i++) bytes.writeUInt16BE(r(i), 2 * i);
      return bytes.toString('latin1').replace(/\0+$/, '');
    }
    case 'uint16':
      return r(0);
    case 'int16':
      return (r(0) << 16) >> 16;
    case 'uint32':
      return abcd(r(0), r(1), f.order).readUInt32BE(0);
    case 'float32':
      return abcd(r(0), r(1), f.order).readFloatBE(0);
  }
}

/** What a correct client must decode for a field, given the engine's status. */
function expected(f: RegisterField<MachineStatus>, s: MachineStatus): number | string {
  const v = f.read(s);
  if (f.type === 'float32') return Math.fround(Number(v));
  if (f.type === 'int16') return Math.round(Number(v) * f.scale);
  return v;
}

let engine: Scenario;
let plc: ModbusPlc;
let pty: PtyPair | undefined;

beforeAll(async () => {
  // Faults frequent enough that some unit is usually Down or has an alarm at the sampled instant.
  engine = createScenario({ seed: 11, startMs: T0, cycleTimeMs: 10, downProbability: 0.05 });
  engine.step(T0 + 1_234);
  pty = noSocat ? undefined : await createPtyPair();
  plc = await startModbusPlc({ engine, tcp: { port: 0 }, ...(pty ? { rtu: { path: pty.serverPath } } : {}) });
});

afterAll(async () => {
  await plc?.stop();
  await pty?.close();
  engine?.close();
});

async function tcpClient(): Promise<Client> {
  const c = new ModbusRTU();
  await c.connectTCP('127.0.0.1', { port: plc.tcpPort! });
  c.setTimeout(250);
  return c;
}

const close = (c: Client) => new Promise<void>((resolve) => c.close(() => resolve()));

async function readTables(c: Client, unitId: number) {
  c.setID(unitId);
  return {
    holding: (await c.readHoldingRegisters(0, 40)).data,
    input: (await c.readInputRegisters(0, 12)).data,
    coils: (await c.readCoils(0, 8)).data,
    discrete: (await c.readDiscreteInputs(0, 8)).data,
  };
}

function checkUnit(map: UnitMap<MachineStatus>, s: MachineStatus, t: Awaited<ReturnType<typeof readTables>>) {
  for (const f of map.registers) expect([f.name, decode(f, t[f.table])]).toEqual([f.name, expected(f, s)]);
  for (const b of map.bits as readonly BitField<MachineStatus>[])
    expect([b.name, t[b.table][b.address]]).toEqual([b.name, b.read(s)]);
}

describe('Modbus TCP with modbus-serial', () => {
  it('serves both units with their documented maps', async () => {
    const c = await tcpClient();
    for (const u of UNITS) checkUnit(u.map, engine.status(u.machine), await readTables(c, u.unitId));
    // And the values follow the engine: counters match the ground truth after a step.
    engine.step(engine.nowMs + 500);
    c.setID(1);
    const regs = (await c.readHoldingRegisters(30, 4)).data;
    const parts = engine.groundTruth.query({ kind: 'part_completed', machine: 'PRESS1' });
    expect(regs[0]! * 65536 + regs[1]!).toBe(parts.length);
    await close(c);
  });

  it('a silent unit times out while the other unit answers; an exception unit answers with its code', async () => {
    const c = await tcpClient();
    plc.setUnitFault(2, { kind: 'silent' });
    c.setID(2);
    await expect(c.readHoldingRegisters(0, 1)).rejects.toMatchObject({ name: 'TransactionTimedOutError' });
    c.setID(1);
    expect((await c.readHoldingRegisters(34, 1)).data).toHaveLength(1);
    plc.setUnitFault(1, { kind: 'exception', code: 0x06 });
    await expect(c.readHoldingRegisters(34, 1)).rejects.toMatchObject({ modbusCode: 6 });
    c.setID(7); // no such unit: silence, like a gateway without that device
    await expect(c.readHoldingRegisters(0, 1)).rejects.toMatchObject({ name: 'TransactionTimedOutError' });
    plc.setUnitFault(1, null);
    plc.setUnitFault(2, null);
    c.setID(2);
    expect((await c.readHoldingRegisters(30, 1)).data).toHaveLength(1);
    await close(c);
  });

  it('answers protocol errors as a device does', async () => {
    const c = await tcpClient();
    c.setID(1);
    await expect(c.readHoldingRegisters(60, 10)).rejects.toMatchObject({ modbusCode: 2 });
    await expect(c.writeRegister(0, 1)).rejects.toMatchObject({ modbusCode: 1 });
    await close(c);
  });

  it('restart: the listener comes back on the same port and clients reconnect', async () => {
    const c = await tcpClient();
    const port = plc.tcpPort;
    const dropped = new Promise<void>((resolve) => c.on('close', () => resolve()));
    await plc.stopTcp();
    await dropped;
    expect(c.isOpen).toBe(false);
    await expect(tcpClient()).rejects.toThrow(/ECONNREFUSED/);
    await plc.startTcp();
    expect(plc.tcpPort).toBe(port);
    await c.connectTCP('127.0.0.1', { port: port! });
    c.setID(1);
    expect((await c.readHoldingRegisters(0, 10)).data).toHaveLength(10);
    await close(c);
  });
});

describe('Modbus RTU over a pty pair with modbus-serial', () => {
  itUnless(noSocat)('serves both units on one bus, and a silent unit does not block the other', async () => {
    const c = new ModbusRTU();
    await c.connectRTUBuffered(pty!.clientPath, { baudRate: 19200 });
    c.setTimeout(250);
    try {
      for (const u of UNITS) checkUnit(u.map, engine.status(u.machine), await readTables(c, u.unitId));
      plc.setUnitFault(1, { kind: 'silent' });
      c.setID(1);
      await expect(c.readHoldingRegisters(0, 1)).rejects.toMatchObject({ name: 'TransactionTimedOutError' });
      c.setID(2);
      expect((await c.readInputRegisters(0, 2)).data).toHaveLength(2);
    } finally {
      plc.setUnitFault(1, null);
      await close(c);
    }
  });
});

describe('mbpoll (independent C client)', () => {
  const floats = (out: string) =>
    [...out.matchAll(/^\[(\d+)\]:\s+(-?[\d.]+)/gm)].map((m) => [Number(m[1]), Number(m[2])]);

  itUnless(noMbpoll)('reads the oven zone floats (CDAB = mbpoll default) over TCP', async () => {
    const args = [
      '-m',
      'tcp',
      '-p',
      String(plc.tcpPort),
      '-a',
      '2',
      '-0',
      '-r',
      '0',
      '-c',
      '3',
      '-t',
      '3:float',
      '-1',
      '127.0.0.1',
    ];
    const { stdout } = await run('mbpoll', args);
    const zones = engine.status('OVEN1');
    if (zones.kind !== 'oven') throw new Error('OVEN1 is not an oven');
    const got = floats(stdout);
    expect(got.map(([ref]) => ref)).toEqual([0, 2, 4]);
    got.forEach(([, v], i) => {
      expect(v).toBeCloseTo(zones.zoneTempsC[i]!, 2);
    });
  });

  itUnless(noMbpoll ?? noSocat)(
    'reads the press part counter (uint32 ABCD = mbpoll -B) over RTU',
    async () => {
      const args = [
        '-m',
        'rtu',
        '-b',
        '19200',
        '-P',
        'none',
        '-a',
        '1',
        '-0',
        '-r',
        '30',
        '-c',
        '1',
        '-t',
        '4:int',
        '-B',
        '-1',
        pty!.clientPath,
      ];
      const { stdout } = await run('mbpoll', args);
      expect(floats(stdout)).toEqual([[30, engine.status('PRESS1').totalParts]]);
    },
  );
});

describe('pymodbus (independent Python client)', () => {
  /** Decodes every register field of both units with pymodbus' own payload decoder. */
  const script = `
import json, sys
from pymodbus.client import ModbusTcpClient, ModbusSerialClient
from pymodbus.payload import BinaryPayloadDecoder
from pymodbus.constants import Endian
mode, target, units = sys.argv[1], sys.argv[2], json.loads(sys.argv[3])
c = ModbusTcpClient('127.0.0.1', port=int(target), timeout=1) if mode == 'tcp' else ModbusSerialClient(port=target, baudrate=19200, timeout=1)
assert c.connect()
ORDERS = {'ABCD': (Endian.Big, Endian.Big), 'CDAB': (Endian.Big, Endian.Little), 'BADC': (Endian.Little, Endian.Big), 'DCBA': (Endian.Little, Endian.Little)}
out = {}
for unit in units:
    tables = {'holding': c.read_holding_registers(0, 40, slave=unit['unitId']).registers, 'input': c.read_input_registers(0, 12, slave=unit['unitId']).registers}
    for f in unit['fields']:
        regs = tables[f['table']][f['address']:f['address'] + f['width']]
        if f['type'] == 'string':
            v = BinaryPayloadDecoder.fromRegisters(regs, byteorder=Endian.Big).decode_string(2 * f['width']).decode('ascii').rstrip('\\x00')
        elif f['type'] == 'uint16':
            v = regs[0]
        elif f['type'] == 'int16':
            v = BinaryPayloadDecoder.fromRegisters(regs, byteorder=Endian.Big).decode_16bit_int()
        else:
            bo, wo = ORDERS[f['order']]
            d = BinaryPayloadDecoder.fromRegisters(regs, byteorder=bo, wordorder=wo)
            v = d.decode_32bit_uint() if f['type'] == 'uint32' else d.decode_32bit_float()
        out[str(unit['unitId']) + ':' + f['name']] = v
c.close()
print(json.dumps(out))
`;
  const units = UNITS.map((u) => ({
    unitId: u.unitId,
    fields: u.map.registers.map((f) => ({
      ...f,
      width: f.type === 'string' ? f.registers : f.type === 'uint32' || f.type === 'float32' ? 2 : 1,
    })),
  }));

  const check = (decoded: Record<string, number | string>) => {
    for (const u of UNITS) {
      const s = engine.status(u.machine);
      for (const f of u.map.registers)
        expect([f.name, decoded[`${u.unitId}:${f.name}`]]).toEqual([f.name, expected(f, s)]);
    }
  };

  itUnless(noPymodbus)('decodes every documented register over TCP', async () => {
    const { stdout } = await run(PYTHON, ['-c', script, 'tcp', String(plc.tcpPort), JSON.stringify(units)]);
    check(JSON.parse(stdout));
  });

  itUnless(noPymodbus ?? noSocat)('decodes every documented register over RTU', async () => {
    const { stdout } = await run(PYTHON, ['-c', script, 'rtu', pty!.clientPath, JSON.stringify(units)]);
    check(JSON.parse(stdout));
  });
});
