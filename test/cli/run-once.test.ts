/**
 * `masbc-edge run --once` as a real process against the simulators, with the bundled device maps:
 * every tag read once (OPC UA one Read, Modbus one poll per unit, MQTT one message per topic filter),
 * the events a fresh normaliser would make, nothing written anywhere, exit 0 when every device
 * answered and 1 (with the reasons) when a Modbus unit or an MQTT topic stays silent. The only file it
 * writes is the gateway's own OPC UA certificate, created once and kept (issue 14, item 3).
 */
import { spawn } from 'node:child_process';
import { cpSync, existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import mqtt from 'mqtt';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type Simulators, startSimulators } from '../../simulators/index.ts';
import type { OnceReport } from '../../src/cli/run.ts';

const bin = join(import.meta.dirname, '..', '..', 'bin', 'masbc-edge.js');
const root = mkdtempSync(join(tmpdir(), 'masbc-run-once-'));
const dataDir = join(root, 'data');
const gatewayFile = join(root, 'config', 'gateway.yaml');
let sims: Simulators;

/** Runs the CLI without blocking this process (the simulators answer from here). */
function cli(args: string[]): Promise<{ code: number | null; out: string; err: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [bin, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    child.stdout.on('data', (d) => {
      out += d;
    });
    child.stderr.on('data', (d) => {
      err += d;
    });
    const timer = setTimeout(() => child.kill('SIGKILL'), 20_000);
    child.once('error', reject);
    child.once('exit', (code) => {
      clearTimeout(timer);
      resolve({ code, out, err });
    });
  });
}

async function publishRetained(topic: string, payload: string): Promise<void> {
  const client = await mqtt.connectAsync(sims.endpoints.mqtt!, { reconnectPeriod: 0 });
  await client.publishAsync(topic, payload, { qos: 1, retain: true });
  await client.endAsync();
}

/** Files under the data folder. */
const written = () =>
  existsSync(dataDir)
    ? readdirSync(dataDir, { recursive: true, withFileTypes: true }).filter((e) => e.isFile())
    : [];
/**
 * --once writes only the gateway's own OPC UA certificate and key (once, kept for `run`; node-opcua adds
 * its lock files): no outbox, no key, no status file, no trust decision (nothing in trusted/).
 */
const writesOnlyTheOwnCertificate = () => {
  const files = written().map((e) => join(e.parentPath, e.name).slice(dataDir.length + 1));
  const pki = join('pki', 'opcua');
  expect(
    files.every((f) => f.startsWith(pki)),
    files.join(', '),
  ).toBe(true);
  expect(
    files.filter((f) => /trusted|rejected/.test(f)),
    files.join(', '),
  ).toEqual([]);
  expect(files).toContain(join('pki', 'opcua', 'own', 'certs', 'client_certificate.pem'));
};

beforeAll(async () => {
  sims = await startSimulators({
    seed: 7,
    startMs: Date.UTC(2026, 0, 5, 6),
    scenario: { cycleTimeMs: 300 },
    opcua: { pkiDir: join(root, 'sim', 'pki') },
    modbus: {},
    mqtt: {},
    dataDir: join(root, 'sim'),
  });
  // Production under way: lots started, parts counted.
  for (let i = 0; i < 40; i++) sims.step(sims.engine.nowMs + 100);
  // The bundled configuration on the simulators' ports; the RTU oven PLC read over TCP (unit 2).
  cpSync('config', join(root, 'config'), { recursive: true });
  const devices = join(root, 'config', 'devices');
  const edit = (file: string, f: (text: string) => string) =>
    writeFileSync(join(devices, file), f(readFileSync(join(devices, file), 'utf8')));
  edit('cnc1.yaml', (t) => t.replace(/opc\.tcp:\/\/127\.0\.0\.1:\d+/, sims.endpoints.opcua!));
  edit('press1.yaml', (t) => t.replace('port: 5020', `port: ${sims.endpoints.modbusTcpPort}`));
  edit('oven1-plc.yaml', (t) =>
    t.replace(
      /transport: rtu[\s\S]*?stopBits: 1\n/,
      `transport: tcp\n  host: 127.0.0.1\n  port: ${sims.endpoints.modbusTcpPort}\n`,
    ),
  );
  edit('oven1.yaml', (t) => t.replace(/mqtt:\/\/127\.0\.0\.1:\d+/, sims.endpoints.mqtt!));
  writeFileSync(gatewayFile, readFileSync(gatewayFile, 'utf8').replace(/dataDir: .*/, `dataDir: ${dataDir}`));
}, 30_000);

afterAll(async () => {
  await sims?.stop();
  rmSync(root, { recursive: true, force: true });
});

describe('masbc-edge run --once', () => {
  it('reads every tag of every device once, shows the events they would make, writes only the gateway OPC UA certificate, exits 0', async () => {
    const telemetry = sims.mqtt!.topicOf('OVEN1', 'telemetry');
    const scans = sims.mqtt!.topicOf('SCANNER1', 'scan');
    const ts = sims.engine.nowMs;
    await publishRetained(
      telemetry,
      JSON.stringify({ ts, lot: null, zone: 2, temp: { value: 181.5, unit: 'degC' } }),
    );
    await publishRetained(
      scans,
      JSON.stringify({
        ts,
        material: 'RM-TEST-1',
        qty: 8.4,
        unit: 'kg',
        lot: 'LOT-X',
        order: 'ORD-X',
        station: 'CNC1',
      }),
    );

    const r = await cli([
      'run',
      '--once',
      '-c',
      gatewayFile,
      '--format',
      'json',
      '--once-timeout-ms',
      '8000',
    ]);
    expect(r.code, r.err).toBe(0);
    const report = JSON.parse(r.out) as OnceReport;
    expect(report.complete).toBe(true);
    const device = (id: string) => report.devices.find((d) => d.device === id)!;
    const value = (id: string, tag: string) => device(id).readings.find((x) => x.tag === tag)?.value;
    expect(report.devices.map((d) => [d.device, d.complete, d.problems])).toEqual([
      ['cnc1', true, []],
      ['oven1-plc', true, []],
      ['oven1', true, []],
      ['press1', true, []],
    ]);
    // OPC UA: every tag in one Read, subscribe-mode ones included; values as the CNC shows them.
    expect(
      device('cnc1')
        .readings.map((x) => x.tag)
        .sort(),
    ).toEqual(
      [
        'state',
        'program',
        'lotId',
        'orderId',
        'product',
        'productSerial',
        'step',
        'partCount',
        'totalParts',
        'diameter',
        'inTolerance',
        'alarmActive',
        'alarmCode',
        'alarmText',
        'spindleSpeed',
        'spindleLoad',
      ].sort(),
    );
    expect(value('cnc1', 'lotId')).toBe(sims.engine.status('CNC1').lot ?? '');
    // Modbus: one poll per unit, each on its own device map.
    expect(device('press1').readings).toHaveLength(15);
    expect(value('press1', 'lotId')).toBe(sims.engine.status('PRESS1').lot ?? '');
    expect(device('oven1-plc').readings).toHaveLength(11);
    // MQTT: one message per topic filter; zones whose message did not come are a note, not a failure.
    expect(value('oven1', 'zone2Temp')).toBe(181.5);
    expect(value('oven1', 'scanMaterial')).toBe('RM-TEST-1');
    expect(device('oven1').notes.join()).toMatch(/no reading for zone1Temp, zone3Temp/);
    // The events: status on start (initial: emit), the scan, the period rules evaluated once.
    const kinds = report.drafts.map((d) => `${d.device}/${d.kind}`);
    expect(kinds).toEqual(
      expect.arrayContaining([
        'cnc1/equipment_status',
        'press1/equipment_status',
        'oven1/material_consumed',
        'oven1/measurement',
        'press1/measurement',
      ]),
    );
    expect(report.drafts.find((d) => d.kind === 'material_consumed')).toMatchObject({
      lot: 'LOT-X',
      order: 'ORD-X',
      values: { scanMaterial: { v: 'RM-TEST-1', q: 'good' }, scanQty: { v: 8.4, unit: 'kg' } },
    });
    // A fresh normaliser: counters and first values are baselines, and the report says so.
    expect(report.silentRules).toEqual(
      expect.arrayContaining([
        { device: 'cnc1', rule: 'part-completed', reason: 'counter: a single read only sets the baseline' },
        {
          device: 'press1',
          rule: 'lot',
          reason: 'change: the first value is the baseline (initial: emit would report it)',
        },
      ]),
    );
    // Nothing stored or signed: no key was needed; only the gateway's OPC UA certificate is kept.
    writesOnlyTheOwnCertificate();
    expect(report.opcua).toMatchObject({ certificateCreated: true, rejected: [] });
  }, 30_000);

  it('reports a silent Modbus unit and a silent MQTT topic, in text, and exits 1', async () => {
    sims.faults.setModbusUnitFault(2, { kind: 'silent' });
    // No retained scan any more: the scanner's topic stays silent.
    await publishRetained(sims.mqtt!.topicOf('SCANNER1', 'scan'), '');
    try {
      const r = await cli(['run', '--once', '-c', gatewayFile, '--once-timeout-ms', '1500']);
      expect(r.code, r.err).toBe(1);
      expect(r.out).toMatch(/^press1 \(modbus\): answered in \d+ ms, 15 readings$/m);
      expect(r.out).toMatch(/^oven1-plc \(modbus\): DID NOT ANSWER COMPLETELY/m);
      expect(r.out).toMatch(/problem: timeout \(unit 2\): alarmLamp, doorOpen, lotId, .*, \+3 more$/m);
      // An event-driven topic that stayed silent is said, and is not a failure (issue 14, item 10).
      expect(r.out).toMatch(/^oven1 \(mqtt\): answered in \d+ ms/m);
      expect(r.out).toContain('silent: no message within 1500 ms on plant1/line1/scanner1/scan');
      expect(r.out).toMatch(/^ {2}lotId +null +bad +timeout \(unit 2\)$/m);
      expect(r.out).toContain('3 of 4 devices answered completely; exit 1');
      writesOnlyTheOwnCertificate();
    } finally {
      sims.faults.setModbusUnitFault(2, null);
    }
  }, 30_000);

  it('a silent event-driven MQTT topic is listed, exit 0; --once-silent-topics fail makes it a failure (issue 14, item 10)', async () => {
    // The scanner publishes only when material is scanned: its topic may well stay silent.
    await publishRetained(sims.mqtt!.topicOf('SCANNER1', 'scan'), '');
    const r = await cli([
      'run',
      '--once',
      '-c',
      gatewayFile,
      '--format',
      'json',
      '--once-timeout-ms',
      '1500',
    ]);
    expect(r.code, r.err).toBe(0);
    const report = JSON.parse(r.out) as OnceReport;
    expect(report.complete).toBe(true);
    expect(report.devices.find((d) => d.device === 'oven1')).toMatchObject({
      complete: true,
      problems: [],
      silentTopics: ['plant1/line1/scanner1/scan'],
    });
    const strict = await cli([
      'run',
      '--once',
      '-c',
      gatewayFile,
      '--once-timeout-ms',
      '1500',
      '--once-silent-topics',
      'fail',
    ]);
    expect(strict.code, strict.err).toBe(1);
    expect(strict.out).toMatch(/^oven1 \(mqtt\): DID NOT ANSWER COMPLETELY/m);
    expect(strict.out).toContain('silent: no message within 1500 ms on plant1/line1/scanner1/scan');
    expect(strict.out).toContain('3 of 4 devices answered completely; exit 1');
    // The option belongs to --once.
    const without = await cli(['run', '-c', gatewayFile, '--once-silent-topics', 'fail']);
    expect(without.code).toBe(2);
    expect(without.err).toContain('--once-silent-topics needs --once');
  }, 30_000);

  it('refuses --once options without --once, and a timeout out of range (exit 2)', async () => {
    const without = await cli(['run', '-c', gatewayFile, '--format', 'json']);
    expect(without.code).toBe(2);
    expect(without.err).toContain('--format needs --once');
    const short = await cli(['run', '--once', '-c', gatewayFile, '--once-timeout-ms', '50']);
    expect(short.code).toBe(2);
    expect(short.err).toContain('expected an integer from 100 to 3600000');
    writesOnlyTheOwnCertificate();
  });
});
