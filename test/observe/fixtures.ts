/**
 * A gateway in this process with its status server, reading the equipment simulators (press over
 * Modbus TCP, oven sensors and scanner over MQTT) in real time, and hosting the only validator of a
 * one-member alliance, so its events become final without other processes.
 */
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { type Simulators, startSimulators } from '../../simulators/index.ts';
import { createLocalAlliance } from '../../src/devtools/local-alliance.ts';
import { loadConfig } from '../../src/gateway/config/config.ts';
import { Gateway } from '../../src/gateway/gateway.ts';
import { createLogger, type Logger } from '../../src/log/logger.ts';
import type { OpsServer } from '../../src/observe/server.ts';
import { startGatewayOps } from '../../src/observe/start.ts';

/** Reconnect backoff of the test devices: a restarted simulator is back within this (plus one poll). */
export const reconnectMaxDelayMs = 500;

export interface OpsGateway {
  sims: Simulators;
  gateway: Gateway;
  ops: OpsServer;
  url: string;
  logFile: string;
  stop(): Promise<void>;
}

export async function startOpsGateway(dir: string, extraYaml: string[] = []): Promise<OpsGateway> {
  const sims = await startSimulators({
    seed: 7,
    dataDir: join(dir, 'sims'),
    scenario: { cycleTimeMs: 400, malformedProbability: 0.2 },
    clock: { realTime: { tickMs: 50 } },
    opcua: false,
    modbus: { tcp: { port: 0 } },
    mqtt: { port: 0 },
  });
  const alliance = await createLocalAlliance({
    dir: join(dir, 'alliance'),
    members: ['acme'],
    chainId: 'ops-test',
    gateways: { acme: ['gw-ops'] },
  });
  mkdirSync(join(dir, 'devices'), { recursive: true });
  writeFileSync(
    join(dir, 'devices', 'press1.yaml'),
    readFileSync('config/devices/press1.yaml', 'utf8')
      .replace(/port: \d+/, `port: ${sims.endpoints.modbusTcpPort}`)
      .replace(/pollIntervalMs: \d+/, `pollIntervalMs: 100\n  reconnectMaxDelayMs: ${reconnectMaxDelayMs}`),
  );
  writeFileSync(
    join(dir, 'devices', 'oven1.yaml'),
    readFileSync('config/devices/oven1.yaml', 'utf8').replace(
      /url: mqtt:\/\/127\.0\.0\.1:\d+/,
      `url: ${sims.endpoints.mqtt}\n  reconnectMaxDelayMs: ${reconnectMaxDelayMs}`,
    ),
  );
  const file = join(dir, 'gateway.yaml');
  writeFileSync(
    file,
    [
      'gateway: { id: gw-ops, enterprise: acme, site: plant1, line: line1 }',
      'dataDir: data',
      `keyFile: ${alliance.gatewayKeyFiles.get('acme/gw-ops')}`,
      'chain:',
      '  role: validator',
      `  genesis: ${alliance.genesisFile}`,
      `  memberKeyFile: ${alliance.keyFiles.get('acme')}`,
      'ops: { host: 127.0.0.1, port: 0 }',
      ...extraYaml,
      '',
    ].join('\n'),
  );
  const config = loadConfig(file);
  const logFile = join(dir, 'gateway.log');
  const log: Logger = createLogger('info', logFile, { sync: true });
  const ops = (await startGatewayOps(config, log)).server!;
  const gateway = await Gateway.start(config, { log, ...ops.observer.gatewayHooks });
  ops.observer.attachGateway(gateway);
  return {
    sims,
    gateway,
    ops,
    url: ops.url,
    logFile,
    async stop() {
      await ops.close();
      await gateway.stop();
      await sims.stop();
      log.flush();
    },
  };
}

/** Polls `check` every 100 ms until it holds; the deadline only bounds a failing test. */
export async function waitFor<T>(
  check: () => Promise<T | undefined | false> | T | undefined | false,
  what: string,
  timeoutMs: number,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await check();
    if (v !== undefined && v !== false) return v;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

export async function getJson<T = Record<string, unknown>>(
  url: string,
): Promise<{ status: number; body: T }> {
  const res = await fetch(url);
  return { status: res.status, body: (await res.json()) as T };
}
