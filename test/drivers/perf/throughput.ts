/**
 * Throughput of drivers + normaliser in one process (not run by vitest):
 *   node test/drivers/perf/throughput.ts [normaliser] [modbus] [opcua]
 * Prints one JSON line per figure: medians of 3 runs. The outbox is not included (see bench/).
 * Exported so bench/run.ts can include them.
 */
import { fork } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ModbusDriver } from '../../../src/drivers/modbus/driver.ts';
import { OpcuaDriver } from '../../../src/drivers/opcua/driver.ts';
import type { DriverContext, Reading } from '../../../src/drivers/types.ts';
import { deviceSchema } from '../../../src/gateway/config/device-schema.ts';
import { createNormaliser, type NormaliserDevice } from '../../../src/normaliser/normaliser.ts';
import { ruleSchema } from '../../../src/normaliser/rules-schema.ts';
import { startPymodbus, tools } from '../helpers/tools.ts';

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[xs.length >> 1]!;
const quiet = { info() {}, warn() {}, error() {} };

/** A device of `n` tags t0..t(n-1), with a change rule on every 10th tag and a counter on t0. */
function normaliserDevice(id: string, n: number): NormaliserDevice {
  const tags = Array.from({ length: n }, (_, i) => ({ name: `t${i}` }));
  const rules = [
    ruleSchema.parse({
      name: 'count',
      trigger: 'counter',
      tag: 't0',
      kind: 'part_completed',
      values: ['t1', 't2'],
    }),
    ...tags
      .filter((_, i) => i % 10 === 5)
      .map((t) =>
        ruleSchema.parse({ name: `c-${t.name}`, trigger: 'change', tag: t.name, kind: 'measurement' }),
      ),
  ];
  return { id, station: 'ST', tags, rules };
}

export async function normaliserThroughput(): Promise<{ name: string; value: number; unit: string }> {
  const n = 125;
  const device = normaliserDevice('d', n);
  const runs: number[] = [];
  for (let run = 0; run < 4; run++) {
    let events = 0;
    const norm = createNormaliser([device], { onDrafts: (d) => (events += d.length) });
    const batches = 20_000;
    const t0 = performance.now();
    for (let b = 0; b < batches; b++) {
      const batch: Reading[] = new Array(n);
      for (let i = 0; i < n; i++) {
        batch[i] = {
          device: 'd',
          tag: `t${i}`,
          value: i === 0 ? b : (b >> 4) + i,
          quality: 'good',
          sourceTimeMs: b,
        };
      }
      norm.push(batch);
    }
    if (run > 0) runs.push((batches * n) / ((performance.now() - t0) / 1000));
    if (events === 0) throw new Error('no events');
  }
  return {
    name: 'normaliser alone (125-reading batches, incl. building them)',
    value: median(runs),
    unit: 'readings/s',
  };
}

function context(onReadings: (b: readonly Reading[]) => void, dir: string): DriverContext {
  return { onReadings, log: quiet, dataDir: dir, pkiFolder: join(dir, 'pki') };
}

export async function modbusThroughput(): Promise<{
  name: string;
  value: number;
  unit: string;
  note: string;
}> {
  if (!tools.pymodbus) throw new Error('pymodbus is not installed');
  const units = [1, 2, 3, 4];
  const regs = 1000;
  const peer = await startPymodbus({
    mode: 'tcp',
    units: Object.fromEntries(
      units.map((u) => [String(u), { hr: { '0': Array.from({ length: regs }, (_, i) => i) } }]),
    ),
  });
  const dir = mkdtempSync(join(tmpdir(), 'masbc-perf-'));
  try {
    const tags = units.flatMap((u) =>
      Array.from({ length: regs }, (_, i) => ({
        name: `u${u}r${i}`,
        unitId: u,
        area: 'holding',
        address: i,
      })),
    );
    const device = deviceSchema.parse({
      id: 'plc',
      station: 'ST',
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
    });
    // Every reading goes through the tag table; one tag in ten has a change rule.
    const norm = createNormaliser(
      [
        {
          id: 'plc',
          station: 'ST',
          tags: tags.map((t) => ({ name: t.name })),
          rules: tags
            .filter((_, i) => i % 10 === 0)
            .map((t) =>
              ruleSchema.parse({ name: `c-${t.name}`, trigger: 'change', tag: t.name, kind: 'measurement' }),
            ),
        },
      ],
      { onDrafts: () => {} },
    );
    const runs: number[] = [];
    let count = 0;
    const driver = new ModbusDriver(
      device as never,
      context((b) => {
        count += b.length;
        norm.push(b);
      }, dir),
    );
    await driver.start();
    while (count === 0) await new Promise((r) => setTimeout(r, 50));
    for (let run = 0; run < 3; run++) {
      const c0 = count;
      const t0 = performance.now();
      await new Promise((r) => setTimeout(r, 3_000));
      runs.push(((count - c0) * 1000) / (performance.now() - t0));
    }
    await driver.stop();
    return {
      name: 'Modbus TCP driver + normaliser, pymodbus peer (4 units x 1000 registers, 32 requests/poll)',
      value: median(runs),
      unit: 'points/s',
      note: `rss ${(process.memoryUsage().rss / 2 ** 20).toFixed(0)} MiB`,
    };
  } finally {
    await peer.stop();
    rmSync(dir, { recursive: true, force: true });
  }
}

/** A node-opcua server in a child process updating `nodes` doubles every `everyMs`. */
export async function opcuaThroughput(
  nodes = 1000,
  everyMs = 20,
): Promise<{ name: string; value: number; unit: string; note: string }> {
  const dir = mkdtempSync(join(tmpdir(), 'masbc-perf-'));
  const child = fork(
    join(import.meta.dirname, 'opcua-server.ts'),
    [String(nodes), String(everyMs), join(dir, 'server-pki')],
    {
      stdio: ['ignore', 'pipe', 'inherit', 'ipc'],
    },
  );
  try {
    const port = await new Promise<number>((resolve, reject) => {
      child.once('message', (m) => resolve((m as { port: number }).port));
      child.once('exit', (c) => reject(new Error(`server exited ${c}`)));
    });
    const tags = Array.from({ length: nodes }, (_, i) => ({
      name: `v${i}`,
      nodeId: `ns=1;s=V${i}`,
      queueSize: 10,
    }));
    const device = deviceSchema.parse({
      id: 'cnc',
      station: 'ST',
      protocol: 'opcua',
      connection: { endpoint: `opc.tcp://127.0.0.1:${port}`, publishingIntervalMs: 50 },
      tags,
    });
    const norm = createNormaliser(
      [{ id: 'cnc', station: 'ST', tags: tags.map((t) => ({ name: t.name })), rules: [] }],
      {
        onDrafts: () => {},
      },
    );
    let count = 0;
    const driver = new OpcuaDriver(
      device as never,
      context((b) => {
        count += b.length;
        norm.push(b);
      }, dir),
    );
    await driver.start();
    while (count < nodes) await new Promise((r) => setTimeout(r, 50));
    const runs: number[] = [];
    for (let run = 0; run < 3; run++) {
      const c0 = count;
      const t0 = performance.now();
      await new Promise((r) => setTimeout(r, 3_000));
      runs.push(((count - c0) * 1000) / (performance.now() - t0));
    }
    await driver.stop();
    return {
      name: `OPC UA subscription driver + normaliser (${nodes} items, server writes every ${everyMs} ms in another process)`,
      value: median(runs),
      unit: 'value changes/s',
      note: `offered ${((nodes * 1000) / everyMs).toFixed(0)}/s; rss ${(process.memoryUsage().rss / 2 ** 20).toFixed(0)} MiB`,
    };
  } finally {
    child.kill();
    rmSync(dir, { recursive: true, force: true });
  }
}

if (import.meta.main) {
  const wanted = process.argv.slice(2);
  const all = { normaliser: normaliserThroughput, modbus: modbusThroughput, opcua: () => opcuaThroughput() };
  for (const [name, fn] of Object.entries(all)) {
    if (wanted.length && !wanted.includes(name)) continue;
    console.log(JSON.stringify(await fn()));
  }
  process.exit(0);
}
