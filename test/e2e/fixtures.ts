/**
 * The whole product over real sockets and processes: equipment simulators (in the test process,
 * their clock driven by the test), a gateway process (`masbc-edge run`) that hosts the first
 * member's validator, and the other members' validators as `masbc-edge peer` processes.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { loadavg } from 'node:os';
import { join, resolve } from 'node:path';
import { createInterface } from 'node:readline';
import { type Simulators, startSimulators } from '../../simulators/index.ts';
import { createLocalAlliance, type LocalAlliance } from '../../src/devtools/local-alliance.ts';
import type { GatewayStats } from '../../src/gateway/gateway.ts';
import type { GatewayStatus } from '../../src/gateway/status.ts';
import { PeerProcess } from '../consensus/cluster/peers.ts';

const bin = resolve(import.meta.dirname, '../../bin/masbc-edge.js');

export const enterprise = 'acme';
export const gatewayId = 'gw-e2e';

export interface E2eAlliance {
  alliance: LocalAlliance;
  peers: PeerProcess[];
}

/**
 * Keys, genesis (with this gateway's key registered) and the three other members' validators. Tests
 * use a 100 ms heartbeat, so that retransmissions and catch-up need no long waits; the bench passes
 * `null` for the production default (docs/consensus.md).
 */
export async function startAlliance(
  dir: string,
  viewChangeTimeoutMs: number,
  statusIntervalMs: number | null = 100,
): Promise<E2eAlliance> {
  const alliance = await createLocalAlliance({
    dir,
    members: [enterprise, 'borealis', 'cobalt', 'dynamo'],
    chainId: 'e2e',
    gateways: { [enterprise]: [gatewayId] },
    params: { viewChangeTimeoutMs } as never,
  });
  const peers = alliance.genesis.validators
    .slice(1)
    .map(
      (v) =>
        new PeerProcess(v.memberId, [
          '--genesis',
          alliance.genesisFile,
          '--key',
          alliance.keyFiles.get(v.memberId)!,
          '--data',
          join(dir, 'data', v.memberId),
          '--status-every-ms',
          '0',
          ...(statusIntervalMs === null ? [] : ['--status-interval-ms', String(statusIntervalMs)]),
        ]),
    );
  await Promise.all(peers.map((p) => p.start()));
  return { alliance, peers };
}

/** Simulators with a manual clock; `run()` moves it in real time until `pause()`. */
export async function startShopFloor(seed: number, dataDir: string) {
  const sims: Simulators = await startSimulators({
    seed,
    dataDir,
    scenario: { cycleTimeMs: 250 },
    opcua: false,
    modbus: { tcp: { port: 0 } },
    mqtt: { port: 0 },
  });
  let timer: NodeJS.Timeout | undefined;
  let simNow = sims.engine.nowMs;
  return {
    sims,
    run(tickMs = 20) {
      timer ??= setInterval(() => {
        simNow += tickMs;
        sims.step(simNow);
      }, tickMs);
    },
    pause() {
      clearInterval(timer);
      timer = undefined;
    },
    async stop() {
      clearInterval(timer);
      await sims.stop();
    },
  };
}

/** Writes gateway.yaml and device maps (press over Modbus TCP, scans over MQTT on a persistent session). */
/**
 * `<root>/gateway.yaml`: config/gateway.yaml as the e2e gateway of `enterprise`, hosting its
 * member's validator, with `<root>/data` and `<root>/devices`; `submit` is an optional flow-style
 * YAML map for `chain.submit`. Returns the file's path.
 */
export function writeValidatorGatewayYaml(root: string, e: E2eAlliance, submit?: string): string {
  mkdirSync(join(root, 'devices'), { recursive: true });
  const gw = readFileSync('config/gateway.yaml', 'utf8')
    .replace(/^dataDir: .*$/m, `dataDir: ${join(root, 'data')}`)
    .replace(/^keyFile: .*$/m, `keyFile: ${e.alliance.gatewayKeyFiles.get(`${enterprise}/${gatewayId}`)}`)
    .replace(/^ {2}id: .*$/m, `  id: ${gatewayId}`)
    .replace(/^ {2}enterprise: .*$/m, `  enterprise: ${enterprise}`)
    .replace(
      /^chain:\n(?: .*\n)*/m,
      [
        'chain:',
        '  role: validator',
        `  genesis: ${e.alliance.genesisFile}`,
        `  memberKeyFile: ${e.alliance.keyFiles.get(enterprise)}`,
        ...(submit ? [`  submit: ${submit}`] : []),
        '',
      ].join('\n'),
    );
  const file = join(root, 'gateway.yaml');
  writeFileSync(file, gw);
  return file;
}

export function writeGatewayConfig(root: string, e: E2eAlliance, sims: Simulators): string {
  const file = writeValidatorGatewayYaml(root, e, '{ resubmitAfterMs: 3000 }');
  const press = readFileSync('config/devices/press1.yaml', 'utf8')
    .replace(/port: \d+/, `port: ${sims.endpoints.modbusTcpPort}`)
    .replace(/pollIntervalMs: \d+/, 'pollIntervalMs: 100');
  writeFileSync(join(root, 'devices', 'press1.yaml'), press);
  const oven = readFileSync('config/devices/oven1.yaml', 'utf8').replace(
    /url: mqtt:\/\/127\.0\.0\.1:\d+/,
    `url: ${sims.endpoints.mqtt}\n  cleanSession: false\n  clientId: masbc-e2e-oven1`,
  );
  writeFileSync(join(root, 'devices', 'oven1.yaml'), oven);
  return file;
}

export type Status = GatewayStatus & GatewayStats;

/** `masbc-edge run` as a child process; its status comes from the status file it refreshes. */
export class GatewayProcess {
  readonly file: string;
  readonly dataDir: string;
  #child: ChildProcess | undefined;
  #exited: Promise<void> = Promise.resolve();
  readonly output: string[] = [];

  constructor(file: string, dataDir: string) {
    this.file = file;
    this.dataDir = dataDir;
  }

  get running(): boolean {
    return this.#child !== undefined;
  }

  /** Starts it and resolves once it reports every device connected. */
  async start(timeoutMs = 30_000): Promise<void> {
    const startedMs = Date.now();
    const child = spawn(process.execPath, [bin, 'run', '-c', this.file, '--log-level', 'warn'], {
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    this.#child = child;
    this.#exited = new Promise((done) =>
      child.once('exit', () => {
        this.#child = undefined;
        done();
      }),
    );
    for (const stream of [child.stdout!, child.stderr!]) {
      createInterface({ input: stream }).on('line', (line) => {
        if (this.output.length > 200) this.output.shift();
        this.output.push(line);
      });
    }
    try {
      await waitUntil(
        () => {
          if (!this.#child) throw new Error(`gateway exited:\n${this.output.join('\n')}`);
          const s = this.status();
          return (
            s !== null &&
            s.updatedMs >= startedMs &&
            s.pid === child.pid &&
            s.devices.every((d) => d.state === 'connected')
          );
        },
        'gateway up with every device connected',
        timeoutMs,
      );
    } catch (err) {
      // What it was doing: its last status (devices, chain) and its last output lines.
      const s = this.status();
      const devices =
        s && s.pid === child.pid ? JSON.stringify(s.devices) : 'no status from this process yet';
      (err as Error).message += `\nload ${loadavg()
        .map((x) => x.toFixed(1))
        .join(' ')}; devices: ${devices}\n${this.output.slice(-20).join('\n')}`;
      throw err;
    }
  }

  status(): Status | null {
    const path = join(this.dataDir, 'status.json');
    if (!existsSync(path)) return null;
    try {
      return JSON.parse(readFileSync(path, 'utf8')) as Status;
    } catch {
      return null; // being replaced right now
    }
  }

  async kill(): Promise<void> {
    this.#child?.kill('SIGKILL');
    await this.#exited;
  }

  async stop(): Promise<void> {
    this.#child?.kill('SIGTERM');
    await this.#exited;
  }
}

/** Polls `check` every 50 ms until it holds, or throws after `timeoutMs`. */
export async function waitUntil(
  check: () => boolean | Promise<boolean>,
  what: string,
  timeoutMs: number,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

/** Runs `masbc-edge chain verify` on a validator's store; returns its output (throws if it fails). */
export function verifyChainCli(dataDir: string, genesisFile: string): Promise<string> {
  return new Promise((resolveOut, reject) => {
    const child = spawn(
      process.execPath,
      [bin, 'chain', 'verify', '--data', dataDir, '--genesis', genesisFile],
      {
        stdio: ['ignore', 'pipe', 'pipe'],
      },
    );
    let out = '';
    child.stdout.on('data', (d) => {
      out += d;
    });
    child.stderr.on('data', (d) => {
      out += d;
    });
    child.once('exit', (code) =>
      code === 0 ? resolveOut(out) : reject(new Error(`chain verify failed (${code}):\n${out}`)),
    );
  });
}
