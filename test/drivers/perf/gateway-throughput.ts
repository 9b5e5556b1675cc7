/**
 * Throughput through the WHOLE gateway process: the real Gateway (driver → normaliser → batcher →
 * signing → SQLite outbox, synchronous: full as shipped) on a generated configuration in a temporary
 * data folder, in a process of its own (gateway-process.ts), against a peer in another process:
 *
 * - Modbus TCP: Debian's pymodbus (an independent implementation, ~10x faster per request than our
 *   simulator's modbus-serial ServerTCP, which answers each request after a setTimeout(0)), 4 units x
 *   1000 holding registers, polled every 10 ms with 4 requests in flight; every 20th register and
 *   register 0 of each unit change every 100 ms (the peer counts them up), with a change rule on each
 *   and a counter rule on register 0: ~0.5 % of the points become events.
 * - OPC UA: a node-opcua server in another process (our CNC simulator has 16 variables changing once a
 *   cycle: far too few), 2000 Double variables written every 20 ms (100 k changes/s offered), all
 *   subscribed in every-change mode; a change rule on every 100th: ~1 % of the changes become events.
 *
 *   node test/drivers/perf/gateway-throughput.ts [modbus] [opcua]
 *   MASBC_CPU_PROF=/tmp/prof node test/drivers/perf/gateway-throughput.ts opcua   # --cpu-prof of the gateway
 *
 * Prints one JSON line per figure; bench/drivers.ts reports them in `npm run bench drivers`.
 */
import { type ChildProcess, fork } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { generateKey, writeKeyFile } from '../../../src/crypto/keys.ts';
import { startPymodbus, tools } from '../helpers/tools.ts';
import type { GatewayReport } from './gateway-process.ts';

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[xs.length >> 1]!;

export interface GatewayFigures {
  name: string;
  unit: string;
  /** Readings (points, value changes) per second through the gateway, per window. */
  runs: number[];
  value: number;
  eventsPerS: number;
  rssMiB: number;
  cpuPct: number;
  note: string;
  report: GatewayReport;
}

/** A gateway configuration (bundled gateway.yaml with a temp data folder and a fresh key) and device maps. */
function writeGatewayConfig(root: string, devices: Record<string, unknown>[]): string {
  const dataDir = join(root, 'data');
  mkdirSync(join(root, 'devices'), { recursive: true });
  writeKeyFile(join(dataDir, 'keys', 'gateway.key'), generateKey('ed25519'));
  const gatewayFile = join(root, 'gateway.yaml');
  const bundled = readFileSync(join(import.meta.dirname, '..', '..', '..', 'config', 'gateway.yaml'), 'utf8');
  writeFileSync(gatewayFile, bundled.replace(/dataDir: .*/, `dataDir: ${dataDir}`));
  // JSON is YAML: the generated maps go through the same loader and schema as hand-written ones.
  for (const d of devices) writeFileSync(join(root, 'devices', `${d.id}.yaml`), JSON.stringify(d, null, 1));
  return gatewayFile;
}

/** CPU seconds a process has used so far (Linux /proc), or null elsewhere. */
function cpuSeconds(pid: number): number | null {
  try {
    const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]!.split(' ');
    return (Number(fields[11]) + Number(fields[12])) / 100; // utime + stime, in clock ticks of 10 ms
  } catch {
    return null;
  }
}

/**
 * Runs the gateway process on `gatewayFile` and returns its measurements, with the peer's CPU use
 * over the same time (% of one core): it tells which side limits the figure.
 */
interface PeerReport {
  peerCpuPct: number | null;
  /** Values the peer wrote per second over the measurement, when it can tell (the OPC UA server). */
  offeredPerS: number | null;
}

/** Asks the OPC UA server process how many values it has written so far. */
function written(server: ChildProcess | undefined): Promise<number | null> {
  if (!server) return Promise.resolve(null);
  return new Promise((resolve) => {
    server.once('message', (m) => resolve((m as { written: number }).written));
    server.send({});
  });
}

function runGateway(
  gatewayFile: string,
  peer: { pid: number; server?: ChildProcess },
  runs = 3,
  runMs = 3_000,
  warmupMs = 2_000,
): Promise<GatewayReport & PeerReport> {
  const peerPid = peer.pid;
  const prof = process.env.MASBC_CPU_PROF;
  const child = fork(
    join(import.meta.dirname, 'gateway-process.ts'),
    [gatewayFile, String(runs), String(runMs), String(warmupMs)],
    {
      stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
      execArgv: [...process.execArgv, ...(prof ? ['--cpu-prof', '--cpu-prof-dir', prof] : [])],
    },
  );
  return new Promise((resolve, reject) => {
    let report: (GatewayReport & PeerReport) | undefined;
    let peer0: Promise<{ cpu: number | null; written: number | null; t: number }> | undefined;
    const snapshot = async () => ({
      cpu: cpuSeconds(peerPid),
      written: await written(peer.server),
      t: performance.now(),
    });
    child.on('message', async (m) => {
      if ((m as { phase?: string }).phase === 'measuring') {
        peer0 = snapshot();
        return;
      }
      const [a, b] = await Promise.all([peer0!, snapshot()]);
      const seconds = (b.t - a.t) / 1000;
      report = {
        ...(m as GatewayReport),
        peerCpuPct: a.cpu === null || b.cpu === null ? null : ((b.cpu - a.cpu) / seconds) * 100,
        offeredPerS: a.written === null || b.written === null ? null : (b.written - a.written) / seconds,
      };
    });
    child.once('error', reject);
    child.once('exit', (code) =>
      report ? resolve(report) : reject(new Error(`gateway process exited (${code}) without a report`)),
    );
  });
}

function figures(
  name: string,
  unit: string,
  report: GatewayReport & PeerReport,
  note: string,
): GatewayFigures {
  const w = report.windows;
  const runs = w.map((x) => x.readingsPerS);
  const problems = [
    report.draftsDropped ? `${report.draftsDropped} drafts dropped` : '',
    report.queue.failures ? `${report.queue.failures} outbox write failures` : '',
    ...report.devices.filter((d) => d.state !== 'connected').map((d) => `${d.device} ${d.state}`),
  ].filter(Boolean);
  const result = {
    name,
    unit,
    runs,
    value: median(runs),
    eventsPerS: median(w.map((x) => x.eventsPerS)),
    rssMiB: median(w.map((x) => x.rssMiB)),
    cpuPct: median(w.map((x) => x.cpuPct)),
    report,
    note: '',
  };
  // Modbus: how long one unit's poll cycle takes (its requests go one after another) against the interval.
  const units = Object.values(
    (report.devices[0]?.detail?.units ?? {}) as Record<
      string,
      { lastPollDurationMs: number | null; polls: number; overruns: number }
    >,
  );
  const cycle = units.length
    ? `; a unit's poll cycle ${median(units.map((u) => u.lastPollDurationMs ?? 0))} ms, ${Math.round(
        (100 * units.reduce((a, u) => a + u.overruns, 0)) /
          Math.max(
            1,
            units.reduce((a, u) => a + u.polls, 0),
          ),
      )} % of cycles overran the interval`
    : '';
  result.note =
    `${note}${cycle}; events stored ${Math.round(result.eventsPerS).toLocaleString('en-US')}/s; gateway RSS ` +
    `${result.rssMiB.toFixed(0)} MiB (V8 heap ${median(w.map((x) => x.heapMiB)).toFixed(0)}), CPU ` +
    `${result.cpuPct.toFixed(0)} % of a core; peer CPU ` +
    `${report.peerCpuPct === null ? '?' : report.peerCpuPct.toFixed(0)} % of a core` +
    (report.offeredPerS === null
      ? ''
      : `; the server really wrote ${Math.round(report.offeredPerS).toLocaleString('en-US')} values/s`) +
    (problems.length ? `; ${problems.join(', ')}` : '');
  return result;
}

export async function modbusGatewayThroughput(): Promise<GatewayFigures> {
  if (!tools.pymodbus) throw new Error('pymodbus is not installed (apt-get install -y python3-pymodbus)');
  const units = [1, 2, 3, 4];
  const regs = 1000;
  const changing = Array.from({ length: regs }, (_, i) => i).filter((i) => i % 20 === 0);
  const peer = await startPymodbus({
    mode: 'tcp',
    units: Object.fromEntries(
      units.map((u) => [String(u), { hr: { '0': Array.from({ length: regs }, (_, i) => i) } }]),
    ),
    tick: { ms: 100, hr: changing },
  });
  const root = mkdtempSync(join(tmpdir(), 'masbc-bench-gw-'));
  try {
    const tags = units.flatMap((u) =>
      Array.from({ length: regs }, (_, i) => ({
        name: `u${u}r${i}`,
        unitId: u,
        area: 'holding',
        address: i,
      })),
    );
    const rules = units.flatMap((u) => [
      {
        name: `parts-u${u}`,
        trigger: 'counter',
        tag: `u${u}r0`,
        kind: 'part_completed',
        values: [`u${u}r1`],
      },
      ...changing
        .filter((i) => i > 0)
        .map((i) => ({
          name: `m-u${u}r${i}`,
          trigger: 'change',
          tag: `u${u}r${i}`,
          kind: 'measurement',
          values: [`u${u}r${i}`],
        })),
    ]);
    const gatewayFile = writeGatewayConfig(root, [
      {
        id: 'plc',
        station: 'ST-1',
        protocol: 'modbus',
        connection: {
          transport: 'tcp',
          host: '127.0.0.1',
          port: peer.port,
          pollIntervalMs: 10,
          requestsInFlightMax: 4,
          timeoutMs: 2000,
        },
        tags,
        rules,
      },
    ]);
    const report = await runGateway(gatewayFile, { pid: peer.pid });
    return figures(
      'Modbus TCP through the gateway process (driver + normaliser + signed outbox), pymodbus peer',
      'points/s',
      report,
      `4 units x 1000 registers, 32 requests/poll, 4 in flight; ${rules.length} rules on 5 % of the registers`,
    );
  } finally {
    await peer.stop();
    rmSync(root, { recursive: true, force: true });
  }
}

export async function opcuaGatewayThroughput(nodes = 2000, everyMs = 20): Promise<GatewayFigures> {
  const root = mkdtempSync(join(tmpdir(), 'masbc-bench-gw-'));
  const server = fork(
    join(import.meta.dirname, 'opcua-server.ts'),
    [String(nodes), String(everyMs), join(root, 'server-pki')],
    { stdio: ['ignore', 'ignore', 'inherit', 'ipc'] },
  );
  try {
    const port = await new Promise<number>((resolve, reject) => {
      server.once('message', (m) => resolve((m as { port: number }).port));
      server.once('exit', (c) => reject(new Error(`OPC UA server exited ${c}`)));
    });
    const tags = Array.from({ length: nodes }, (_, i) => ({
      name: `v${i}`,
      nodeId: `ns=1;s=V${i}`,
      queueSize: 10,
    }));
    const rules = tags
      .filter((_, i) => i % 100 === 0)
      .map((t) => ({
        name: `m-${t.name}`,
        trigger: 'change',
        tag: t.name,
        kind: 'measurement',
        values: [t.name],
      }));
    const gatewayFile = writeGatewayConfig(root, [
      {
        id: 'cnc',
        station: 'ST-1',
        protocol: 'opcua',
        connection: { endpoint: `opc.tcp://127.0.0.1:${port}`, publishingIntervalMs: 50 },
        tags,
        rules,
      },
    ]);
    const report = await runGateway(gatewayFile, { pid: server.pid!, server });
    return figures(
      'OPC UA subscription through the gateway process (driver + normaliser + signed outbox), node-opcua server in another process',
      'value changes/s',
      report,
      `${nodes} items written every ${everyMs} ms (${((nodes * 1000) / everyMs).toLocaleString('en-US')}/s offered); ${rules.length} change rules (1 %)`,
    );
  } finally {
    server.kill();
    rmSync(root, { recursive: true, force: true });
  }
}

if (import.meta.main) {
  const wanted = process.argv.slice(2);
  const all = { modbus: modbusGatewayThroughput, opcua: () => opcuaGatewayThroughput() };
  for (const [name, fn] of Object.entries(all)) {
    if (wanted.length && !wanted.includes(name)) continue;
    const { report: _report, ...f } = await fn();
    console.log(JSON.stringify(f));
  }
  process.exit(0);
}
