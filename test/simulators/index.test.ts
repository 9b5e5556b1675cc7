/**
 * The whole set started together from one engine, reached through the returned endpoints, with
 * faults from the `faults` API; and the real-time runner used by `masbc-edge simulate`.
 */
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import mb from 'modbus-serial';
import mqtt from 'mqtt';
import { AttributeIds, OPCUACertificateManager, OPCUAClient } from 'node-opcua';
import { afterAll, describe, expect, it } from 'vitest';
import { runSimulators, startSimulators } from '../../simulators/index.ts';

const T0 = Date.UTC(2026, 0, 5, 6);
const dir = mkdtempSync(path.join(tmpdir(), 'masbc-sims-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** Handles our servers, sockets, child processes and timers would hold, counted by type. */
function resources(): Record<string, number> {
  const kinds = ['TCPServerWrap', 'TCPSocketWrap', 'ProcessWrap', 'PipeWrap', 'TTYWrap', 'Timeout'];
  const counts: Record<string, number> = Object.fromEntries(kinds.map((k) => [k, 0]));
  for (const r of process.getActiveResourcesInfo()) if (r in counts) counts[r]!++;
  return counts;
}

describe('startSimulators', () => {
  it('runs every simulator from one engine, injects faults, and stops without leaking handles', async () => {
    const baseline = resources();
    const file = path.join(dir, 'truth.jsonl');
    const sims = await startSimulators({
      seed: 21,
      startMs: T0,
      dataDir: dir,
      scenario: { cycleTimeMs: 10, telemetryPeriodMs: 50, groundTruthFile: file },
      modbus: { rtu: true },
    });
    const e = sims.endpoints;
    expect(e.opcua).toMatch(/^opc\.tcp:\/\/127\.0\.0\.1:\d+$/);
    expect(e.modbusTcp).toBe(`tcp://127.0.0.1:${e.modbusTcpPort}`);
    expect(e.modbusRtuPath).toMatch(/client$/);
    expect(e.mqtt).toMatch(/^mqtt:\/\/127\.0\.0\.1:\d+$/);

    const mq = await mqtt.connectAsync(e.mqtt!, { reconnectPeriod: 0 });
    await mq.subscribeAsync('plant1/line1/oven1/telemetry', { qos: 1 });
    const telemetry: string[] = [];
    mq.on('message', (_t, p) => telemetry.push(p.toString()));

    sims.step(T0 + 1_000);
    const counters = sims.counters();
    expect(counters.machines.CNC1!.partsTotal).toBeGreaterThan(50);

    // OPC UA sees the CNC, Modbus the press, MQTT the oven sensors: all the same engine.
    const ua = OPCUAClient.create({
      endpointMustExist: false,
      clientCertificateManager: new OPCUACertificateManager({
        rootFolder: path.join(dir, 'client-pki'),
        automaticallyAcceptUnknownCertificate: true,
      }),
    });
    await ua.connect(e.opcua!);
    const session = await ua.createSession();
    const total = await session.read({
      nodeId: 'ns=1;s=CNC2.Counters.TotalParts',
      attributeId: AttributeIds.Value,
    });
    expect(total.value.value).toBe(counters.machines.CNC2!.partsTotal);
    await session.close();
    await ua.disconnect();

    const plc = new mb.default();
    await plc.connectTCP('127.0.0.1', { port: e.modbusTcpPort! });
    plc.setTimeout(200);
    plc.setID(1);
    const regs = (await plc.readHoldingRegisters(30, 2)).data;
    expect(regs[0]! * 65536 + regs[1]!).toBe(counters.machines.PRESS1!.partsTotal);
    sims.faults.setModbusUnitFault(1, { kind: 'silent' });
    await expect(plc.readHoldingRegisters(30, 2)).rejects.toMatchObject({ name: 'TransactionTimedOutError' });
    plc.setID(2);
    expect((await plc.readInputRegisters(0, 2)).data).toHaveLength(2);
    await new Promise<void>((resolve) => plc.close(() => resolve()));

    const samples = sims.groundTruth.query({ kind: 'sensor_sample' }).length;
    await new Promise<void>((resolve) => {
      const check = () => telemetry.length >= samples && resolve();
      mq.on('message', check);
      check();
    });
    expect(telemetry).toHaveLength(samples);
    await mq.endAsync();

    await sims.stop();
    await sims.stop(); // idempotent
    const after = resources();
    for (const kind of Object.keys(after))
      expect([kind, after[kind]! <= baseline[kind]!]).toEqual([kind, true]);
    const lines = readFileSync(file, 'utf8').trimEnd().split('\n');
    expect(lines).toHaveLength(sims.groundTruth.lastSeq);
  });
});

describe('runSimulators', () => {
  it('prints the seed, the endpoints and a status line, in real time', async () => {
    const lines: string[] = [];
    let statusSeen: () => void = () => {};
    const status = new Promise<void>((resolve) => {
      statusSeen = resolve;
    });
    const sims = await runSimulators({
      seed: 77,
      opcua: false,
      scenario: { cycleTimeMs: 10 },
      tickMs: 5,
      statusEveryMs: 50,
      log: (line) => {
        lines.push(line);
        if (line.includes(' | ground truth ')) statusSeen();
      },
    });
    await status;
    await sims.stop();
    expect(lines[0]).toBe('simulators: seed 77 (pass it again to replay the same scenario)');
    expect(lines.some((l) => l.includes(`Modbus TCP     ${sims.endpoints.modbusTcp}`))).toBe(true);
    expect(lines.some((l) => l.includes(`MQTT broker    ${sims.endpoints.mqtt}`))).toBe(true);
    expect(lines.find((l) => l.includes('ground truth'))).toMatch(/CNC1 (Idle|Running|Down)/);
    expect(sims.engine.nowMs).toBeGreaterThan(sims.engine.config.startMs);
  });
});
