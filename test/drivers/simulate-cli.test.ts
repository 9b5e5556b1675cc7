/**
 * `masbc-edge simulate` as a real process: it serves the simulators on the ports and serial line the
 * device maps name, the bundled maps' drivers read them unchanged, and Ctrl-C stops it cleanly.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { cpSync, existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect } from 'vitest';
import { createDriver } from '../../src/drivers/registry.ts';
import { loadConfig } from '../../src/gateway/config/config.ts';
import { itUnless } from '../helpers/skip.ts';
import { testContext } from './helpers/context.ts';
import { freePort, missing } from './helpers/tools.ts';

const root = mkdtempSync(join(tmpdir(), 'masbc-simulate-'));
afterAll(() => rmSync(root, { recursive: true, force: true }));

function output(child: ChildProcess): {
  text: () => string;
  waitFor: (re: RegExp, ms?: number) => Promise<void>;
} {
  let text = '';
  const waiters = new Set<() => void>();
  const onData = (d: Buffer) => {
    text += d.toString();
    for (const w of [...waiters]) w();
  };
  child.stdout?.on('data', onData);
  child.stderr?.on('data', onData);
  return {
    text: () => text,
    waitFor: (re, ms = 20_000) =>
      new Promise((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error(`no ${re} in output:\n${text}`)), ms);
        const check = () => {
          if (!re.test(text)) return;
          clearTimeout(timer);
          waiters.delete(check);
          resolve();
        };
        waiters.add(check);
        check();
      }),
  };
}

describe('masbc-edge simulate', () => {
  itUnless(missing('socat', 'apt-get install -y socat'))(
    'serves the bundled device maps (TCP and RTU) and stops cleanly on SIGINT',
    async () => {
      // The bundled configuration, on free ports and a private data folder.
      const config = join(root, 'config');
      cpSync('config', config, { recursive: true });
      const [opcua, modbus, mqtt] = [await freePort(), await freePort(), await freePort()];
      for (const f of readdirSync(join(config, 'devices'))) {
        const file = join(config, 'devices', f);
        writeFileSync(
          file,
          readFileSync(file, 'utf8')
            .replace(':4840', `:${opcua}`)
            .replace('port: 5020', `port: ${modbus}`)
            .replace(':1883', `:${mqtt}`),
        );
      }
      const gateway = join(config, 'gateway.yaml');
      writeFileSync(
        gateway,
        readFileSync(gateway, 'utf8').replace('dataDir: ../data', `dataDir: ${join(root, 'data')}`),
      );
      const loaded = loadConfig(gateway);

      const child = spawn(
        process.execPath,
        ['bin/masbc-edge.js', 'simulate', '-c', gateway, '--status-ms', '0', '--cycle-ms', '200'],
        {
          stdio: ['ignore', 'pipe', 'pipe'],
        },
      );
      const out = output(child);
      const t = testContext({ dataDir: loaded.paths.dataDir });
      const drivers = loaded.devices
        .filter((d) => d.protocol === 'modbus')
        .map((d) => createDriver(d, t.ctx));
      try {
        await out.waitFor(/running; Ctrl-C stops/);
        expect(out.text()).toMatch(new RegExp(`OPC UA CNC\\s+opc\\.tcp://127\\.0\\.0\\.1:${opcua}`));
        expect(out.text()).toMatch(new RegExp(`MQTT broker\\s+mqtt://127\\.0\\.0\\.1:${mqtt}`));
        const gatewayEnd = join(loaded.paths.dataDir, 'simulators', 'tty-gateway');
        expect(out.text()).toContain(gatewayEnd);
        await Promise.all(drivers.map((d) => d.start()));
        // press1 over TCP (unit 1) and oven1-plc over RTU (unit 2), both from the simulator.
        await t.waitFor(
          () =>
            t.readings.some((r) => r.device === 'press1' && r.tag === 'state' && r.quality === 'good') &&
            t.readings.some((r) => r.device === 'oven1-plc' && r.tag === 'setpoint' && r.quality === 'good'),
          'readings over TCP and RTU',
          15_000,
        );
        expect(
          t.readings.find((r) => r.device === 'oven1-plc' && r.tag === 'setpoint')?.value,
        ).toBeGreaterThan(100);
      } finally {
        await Promise.all(drivers.map((d) => d.stop()));
        child.kill('SIGINT');
        const code = await new Promise<number | null>((r) => child.once('exit', (c) => r(c)));
        expect(out.text()).toContain('stopped cleanly');
        expect(code).toBe(0);
        expect(existsSync(join(loaded.paths.dataDir, 'simulators', 'tty-gateway'))).toBe(false);
        t.cleanup();
      }
    },
  );
});
