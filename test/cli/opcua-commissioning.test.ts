/**
 * Commissioning an OPC UA machine that checks client certificates, from the docs alone, with real
 * `masbc-edge` processes (issue 14, items 3, 4 and 11): `run --once` against a server that refuses
 * unknown clients, trust the server's certificate where docs/device-maps.md says it is kept, trust the
 * gateway's on the machine, run `--once` again (it must present the same certificate), then `run`.
 * Also: nothing but JSON log lines on the gateway's stdout, node-opcua's own messages included.
 */
import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import {
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  renameSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type Simulators, startSimulators } from '../../simulators/index.ts';
import type { OnceReport } from '../../src/cli/run.ts';

const bin = join(import.meta.dirname, '..', '..', 'bin', 'masbc-edge.js');
const root = mkdtempSync(join(tmpdir(), 'masbc-commissioning-'));
const serverPki = join(root, 'sim-pki');
const env = { ...process.env, CNC_PASSWORD: 'op-secret' };
let sims: Simulators;

/** Runs the CLI without blocking this process (the simulator answers from here). */
function cli(args: string[]): Promise<{ code: number | null; out: string; err: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [bin, ...args], { stdio: ['ignore', 'pipe', 'pipe'], env });
    let out = '';
    let err = '';
    child.stdout.on('data', (d) => {
      out += d;
    });
    child.stderr.on('data', (d) => {
      err += d;
    });
    const timer = setTimeout(() => child.kill('SIGKILL'), 30_000);
    child.once('error', reject);
    child.once('exit', (code) => {
      clearTimeout(timer);
      resolve({ code, out, err });
    });
  });
}

/** A gateway folder with one OPC UA device; returns its gateway.yaml and data folder. */
function gatewayFolder(name: string, connection: string): { file: string; data: string } {
  const dir = join(root, name);
  mkdirSync(join(dir, 'devices'), { recursive: true });
  const data = join(dir, 'data');
  writeFileSync(
    join(dir, 'gateway.yaml'),
    readFileSync('config/gateway.yaml', 'utf8').replace(/dataDir: .*/, `dataDir: ${data}`),
  );
  writeFileSync(
    join(dir, 'devices', 'cnc1.yaml'),
    `id: cnc1
station: ST-10
protocol: opcua
connection:
  endpoint: ${sims.endpoints.opcua}
${connection}
tags:
  - { name: state, nodeId: "ns=1;s=CNC1.State" }
  - { name: lotId, nodeId: "ns=1;s=CNC1.Job.LotId" }
context: { lot: lotId }
rules:
  - { name: state, trigger: change, tag: state, initial: emit, kind: equipment_status, values: [state] }
`,
  );
  return { file: join(dir, 'gateway.yaml'), data };
}

const pemFiles = (dir: string) => (existsSync(dir) ? readdirSync(dir).filter((f) => f.endsWith('.pem')) : []);

/** Starts `masbc-edge run`, waits for a JSON line matching `until`, stops it; returns every stdout line. */
async function runUntil(file: string, until: (line: Record<string, unknown>) => boolean): Promise<string[]> {
  const child: ChildProcess = spawn(process.execPath, [bin, 'run', '-c', file], {
    stdio: ['ignore', 'pipe', 'pipe'],
    env,
  });
  let out = '';
  let err = '';
  child.stderr!.on('data', (d) => {
    err += d;
  });
  const exited = new Promise<number | null>((r) => child.once('exit', (code) => r(code)));
  try {
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(
        () => reject(new Error(`no matching log line in 30 s:\n${out}\n${err}`)),
        30_000,
      );
      child.stdout!.on('data', (d) => {
        out += d;
        for (const line of out.split('\n')) {
          try {
            if (until(JSON.parse(line))) {
              clearTimeout(timer);
              resolve();
            }
          } catch {
            // not JSON: checked by the caller
          }
        }
      });
      child.once('exit', (code) => {
        clearTimeout(timer);
        reject(new Error(`gateway exited (${code}) early:\n${out}\n${err}`));
      });
    });
  } finally {
    child.kill('SIGTERM');
    await exited;
  }
  return out.split('\n').filter((l) => l.trim() !== '');
}

beforeAll(async () => {
  sims = await startSimulators({
    seed: 3,
    startMs: Date.UTC(2026, 0, 5, 6),
    opcua: {
      pkiDir: serverPki,
      users: [{ username: 'operator', password: 'op-secret' }],
      clientCertificates: 'trusted-only',
    },
    modbus: false,
    mqtt: false,
    dataDir: join(root, 'sim'),
  });
}, 30_000);

afterAll(async () => {
  await sims?.stop();
  rmSync(root, { recursive: true, force: true });
});

describe('commissioning an OPC UA machine that checks client certificates', () => {
  it('run --once, trust both certificates where the docs say, run --once again and run (items 3 and 4)', async () => {
    const { file, data } = gatewayFolder(
      'secure',
      `  securityMode: SignAndEncrypt
  securityPolicy: Basic256Sha256
  serverCertificate: trusted-only
  auth: { type: username, username: operator, password: "\${env:CNC_PASSWORD}" }`,
    );
    const pki = join(data, 'pki', 'opcua');
    const own = join(pki, 'own', 'certs', 'client_certificate.pem');

    // 1. The gateway does not trust the machine yet: refused, and the machine's certificate is kept
    //    in <data>/pki/opcua/rejected/ as docs/device-maps.md says.
    const first = await cli(['run', '--once', '-c', file, '--format', 'json', '--once-timeout-ms', '10000']);
    expect(first.code, first.err).toBe(1);
    expect(JSON.parse(first.out).complete).toBe(false);
    const rejected = pemFiles(join(pki, 'rejected'));
    expect(rejected).toHaveLength(1);
    expect(rejected[0]).toMatch(/^.*\[[0-9a-f]{40}\]\.pem$/);
    // The gateway's own certificate exists now, in the data folder, to be given to the machine.
    expect(existsSync(own)).toBe(true);
    const ownPem = readFileSync(own, 'utf8');

    // 2. Trust the machine: move its certificate from rejected/ to trusted/certs/.
    mkdirSync(join(pki, 'trusted', 'certs'), { recursive: true });
    renameSync(join(pki, 'rejected', rejected[0]!), join(pki, 'trusted', 'certs', rejected[0]!));
    const second = await cli(['run', '--once', '-c', file, '--format', 'json', '--once-timeout-ms', '10000']);
    expect(second.code).toBe(1);
    // Now the machine refuses the gateway: it kept the gateway's certificate, the same one as own/.
    const atMachine = pemFiles(join(serverPki, 'server', 'rejected'));
    expect(atMachine).toHaveLength(1);
    expect(readFileSync(join(serverPki, 'server', 'rejected', atMachine[0]!), 'utf8').trim()).toBe(
      ownPem.trim(),
    );

    // 3. Trust the gateway on the machine (and restart it, as many controllers need).
    renameSync(
      join(serverPki, 'server', 'rejected', atMachine[0]!),
      join(serverPki, 'server', 'trusted', 'certs', atMachine[0]!),
    );
    await sims.faults.restartOpcua();
    const third = await cli(['run', '--once', '-c', file, '--format', 'json', '--once-timeout-ms', '10000']);
    expect(third.code, `${third.out}\n${third.err}`).toBe(0);
    const report = JSON.parse(third.out) as OnceReport;
    expect(report.devices[0]).toMatchObject({ device: 'cnc1', complete: true, problems: [] });
    expect(report.drafts.map((d) => d.kind)).toEqual(['equipment_status']);
    // The same certificate all along: created once, kept, reused.
    expect(readFileSync(own, 'utf8')).toBe(ownPem);
    expect(pemFiles(join(serverPki, 'server', 'rejected'))).toEqual([]);

    // 4. The gateway itself connects with it too.
    execKeygen(data);
    const lines = await runUntil(file, (l) => l.msg === 'connected' && l.device === 'cnc1');
    expect(lines.length).toBeGreaterThan(0);
    expect(readFileSync(own, 'utf8')).toBe(ownPem);
  }, 120_000);

  it('run on a fresh data folder writes only JSON log lines to stdout, node-opcua included (item 11)', async () => {
    const { file, data } = gatewayFolder('plain', '  securityMode: None\n  securityPolicy: None');
    execKeygen(data);
    // A fresh data folder: node-opcua creates the client certificate and says so ("please wait").
    expect(existsSync(join(data, 'pki', 'opcua', 'own', 'certs', 'client_certificate.pem'))).toBe(false);
    const lines = await runUntil(file, (l) => l.msg === 'connected' && l.device === 'cnc1');
    const notJson = lines.filter((l) => {
      try {
        JSON.parse(l);
        return false;
      } catch {
        return true;
      }
    });
    expect(notJson).toEqual([]);
    // node-opcua's message is a log line like the others.
    expect(lines.some((l) => /Creating default certificate/.test(l))).toBe(true);
  }, 60_000);
});

function execKeygen(data: string): void {
  const keyFile = join(data, 'keys', 'gateway.key');
  if (existsSync(keyFile)) return;
  const r = spawnSync(process.execPath, [bin, 'keygen', '--out', keyFile], { stdio: 'ignore', env });
  if (r.status !== 0) throw new Error(`keygen failed (${r.status})`);
}
