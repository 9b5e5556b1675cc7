/**
 * `masbc-edge health` tells the truth about a running gateway: real processes, the demo's device
 * maps (CNC over OPC UA, press over Modbus TCP, oven sensors over MQTT) read from the equipment
 * simulators (`masbc-edge simulate`). Healthy while every device is connected; when the simulators
 * stop, health fails naming each device that is down; when they return, it recovers.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { cpSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { afterAll, describe, expect, it } from 'vitest';
import { stopProcess } from '../../src/devtools/processes.ts';
import { freePorts } from '../helpers/cli.ts';
import { tempDir } from '../helpers/tmp.ts';

const bin = join(import.meta.dirname, '..', '..', 'bin', 'masbc-edge.js');
/** The test's device maps reconnect within this; waits below are this plus start-up, with slack. */
const reconnectMaxDelayMs = 1_000;
const settleMs = 60_000;

const children: ChildProcess[] = [];
afterAll(async () => {
  await Promise.all(children.map((c) => stopProcess(c, 10_000)));
});

function run(
  args: string[],
  env: NodeJS.ProcessEnv,
): Promise<{ code: number | null; out: string; err: string }> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [bin, ...args], { env: { ...process.env, ...env } });
    let out = '';
    let err = '';
    child.stdout.on('data', (d) => {
      out += d;
    });
    child.stderr.on('data', (d) => {
      err += d;
    });
    child.once('close', (code) => resolve({ code, out, err }));
  });
}

/** Starts a long-running command; resolves once a line matches `ready`. */
function start(args: string[], env: NodeJS.ProcessEnv, ready: RegExp): Promise<ChildProcess> {
  const child = spawn(process.execPath, [bin, ...args], { env: { ...process.env, ...env } });
  children.push(child);
  const lines: string[] = [];
  return new Promise((resolve, reject) => {
    for (const s of [child.stdout, child.stderr]) {
      createInterface({ input: s }).on('line', (line) => {
        if (lines.length < 200) lines.push(line);
        if (ready.test(line)) resolve(child);
      });
    }
    child.once('exit', (code) => reject(new Error(`${args[0]} exited (${code}):\n${lines.join('\n')}`)));
  });
}

async function healthUntil(
  config: string,
  env: NodeJS.ProcessEnv,
  want: 0 | 1,
  what: string,
): Promise<{ out: string; err: string }> {
  const deadline = Date.now() + settleMs;
  for (;;) {
    const r = await run(['health', '-c', config], env);
    if (r.code === want) return r;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}; last: ${r.out}${r.err}`);
    await new Promise((resolve) => setTimeout(resolve, 500));
  }
}

describe('masbc-edge health', () => {
  it('fails naming the devices when the simulators stop, and recovers when they return', async () => {
    const dir = tempDir('cli-health');
    cpSync('config', join(dir, 'config'), { recursive: true });
    const config = join(dir, 'config', 'gateway.yaml');
    const devices = join(dir, 'config', 'devices');
    // The RTU oven PLC needs socat's virtual serial line: left out, so the test needs no extra package.
    rmSync(join(devices, 'oven1-plc.yaml'));
    const [opcua, modbus, mqtt, ops] = await freePorts(4);
    const edit = (file: string, f: (text: string) => string) =>
      writeFileSync(join(devices, file), f(readFileSync(join(devices, file), 'utf8')));
    edit('cnc1.yaml', (t) =>
      t
        .replace(/opc\.tcp:\/\/127\.0\.0\.1:\d+/, `opc.tcp://127.0.0.1:${opcua}`)
        .replace(/^connection:\n/m, `connection:\n  reconnectMaxDelayMs: ${reconnectMaxDelayMs}\n`),
    );
    edit('press1.yaml', (t) =>
      t.replace(/port: \d+/, `port: ${modbus}\n  reconnectMaxDelayMs: ${reconnectMaxDelayMs}`),
    );
    edit('oven1.yaml', (t) =>
      t.replace(
        /url: mqtt:\/\/127\.0\.0\.1:\d+/,
        `url: mqtt://127.0.0.1:${mqtt}\n  reconnectMaxDelayMs: ${reconnectMaxDelayMs}`,
      ),
    );
    writeFileSync(config, readFileSync(config, 'utf8').replace(/^ {2}port: 8090$/m, `  port: ${ops}`));
    const env = { MASBC_DATA_DIR: join(dir, 'data') };
    expect((await run(['keygen', '--out', join(dir, 'data', 'keys', 'gateway.key')], env)).code).toBe(0);

    const simulate = ['simulate', '-c', config, '--status-ms', '0', '--no-rtu', '--cycle-ms', '500'];
    let sims = await start(simulate, env, /^running; Ctrl-C stops/);
    await start(['run', '-c', config], env, /"msg":"gateway starting"/);

    const healthy = await healthUntil(config, env, 0, 'healthy with every device connected');
    expect(healthy.out).toMatch(/^healthy: ready \(gateway acme\/gw-line1, pid \d+\)/);

    await stopProcess(sims, 10_000);
    const down = await healthUntil(config, env, 1, 'unhealthy with the simulators stopped');
    expect(down.err).toMatch(/^unhealthy: degraded: devices-down: 3 of 3 devices not connected: /);
    for (const d of ['cnc1', 'oven1', 'press1']) expect(down.err).toContain(d);
    // Liveness stays: a PLC that is off is no reason to restart the gateway.
    const live = await run(['health', '-c', config, '--live'], env);
    expect(live.code).toBe(0);
    expect(live.out).toContain('degraded: devices-down');

    sims = await start(simulate, env, /^running; Ctrl-C stops/);
    const back = await healthUntil(config, env, 0, 'healthy again with the simulators back');
    expect(back.out).toMatch(/^healthy: ready/);
  }, 240_000);
});
