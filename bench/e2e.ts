/**
 * End to end on this machine: an MQTT source → a gateway process (`masbc-edge run`, hosting the first
 * member's validator) → 4 validators (three `masbc-edge peer` processes) over libp2p.
 *
 * The source publishes material scans at a set rate (QoS 0, so the broker never waits for the
 * gateway: the offered rate is the rate). Each scan is one `material_consumed` event whose source
 * time is its publish time, so the gateway's finality latency is source to final block.
 *
 * Phases: (1) latency at 1,000 events/s, with each process's CPU share; (2) sustained committed
 * events/s at a rate above what the alliance can take; (3) a 60 s chain outage (2 of 4 validators
 * stopped) at a live rate, then the backlog's drain rate as a multiple of that live rate; and every
 * process's RSS.
 *
 * Run alone: `node bench/e2e.ts` (OUTAGE_S=60 LIVE_RATE=300 SUSTAIN_RATE=4000 to change the phases;
 * CHAIN_THREAD=false to host the gateway's validator on its main loop instead of its own thread).
 */
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Aedes } from 'aedes';
import mqtt from 'mqtt';
import {
  type E2eAlliance,
  GatewayProcess,
  startAlliance,
  waitUntil,
  writeValidatorGatewayYaml,
} from '../test/e2e/fixtures.ts';
import type { Figure } from './lib.ts';

const topic = 'plant1/line1/scanner1/scan';

async function startBroker() {
  const broker = await Aedes.createBroker();
  const server = createServer(broker.handle);
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const port = (server.address() as { port: number }).port;
  return {
    url: `mqtt://127.0.0.1:${port}`,
    async close() {
      await new Promise<void>((r) => server.close(() => r()));
      await new Promise<void>((r) => broker.close(() => r()));
    },
  };
}

/** Publishes scans at `rate` per second (in 10 ms slices) until stopped. */
function publisher(url: string) {
  const client = mqtt.connect(url, { clientId: 'bench-source' });
  let timer: NodeJS.Timeout | undefined;
  let sent = 0;
  let carry = 0;
  return {
    ready: new Promise<void>((r) => client.once('connect', () => r())),
    get sent() {
      return sent;
    },
    setRate(rate: number) {
      clearInterval(timer);
      if (rate <= 0) return;
      let last = performance.now();
      timer = setInterval(() => {
        const now = performance.now();
        carry += ((now - last) * rate) / 1000;
        last = now;
        const n = Math.floor(carry);
        carry -= n;
        const ts = Date.now();
        for (let i = 0; i < n; i++) {
          sent++;
          client.publish(
            topic,
            `{"ts":${ts},"material":"RM-42CRMO4-D30","qty":1.5,"unit":"kg","lot":"LOT-BENCH-${sent >> 10}","order":"ORD-BENCH","station":"CNC1"}`,
            { qos: 0 },
          );
        }
      }, 10);
    },
    async close() {
      clearInterval(timer);
      await client.endAsync();
    },
  };
}

/** gateway.yaml (validator role, batch signing) and one MQTT scanner map, QoS 0. */
function writeBenchGateway(root: string, e: E2eAlliance, url: string): string {
  const file = writeValidatorGatewayYaml(root, e);
  // CHAIN_THREAD=false: the validator on the gateway's main loop (chain.thread), for an A/B run.
  if (process.env.CHAIN_THREAD === 'false') {
    writeFileSync(file, readFileSync(file, 'utf8').replace(/^chain:\n/m, 'chain:\n  thread: false\n'));
  }
  writeFileSync(
    join(root, 'devices', 'scanner.yaml'),
    [
      'id: scanner1',
      'station: ST-30',
      'protocol: mqtt',
      'connection:',
      `  url: ${url}`,
      '  qos: 0',
      'tags:',
      `  - { name: scanMaterial, topic: ${topic}, value: $.material, timestamp: $.ts, type: string }`,
      `  - { name: scanQty, topic: ${topic}, value: $.qty, timestamp: $.ts, type: number, unit: kg }`,
      `  - { name: scanLot, topic: ${topic}, value: $.lot, timestamp: $.ts, type: string }`,
      'rules:',
      '  - { name: material, trigger: update, tag: scanMaterial, kind: material_consumed, values: [scanMaterial, scanQty], context: { lot: scanLot } }',
      '',
    ].join('\n'),
  );
  return file;
}

/** Pids of processes whose command line contains `text` (the peers, found by their key file). */
function pidsWith(text: string): number[] {
  const pids: number[] = [];
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      if (readFileSync(`/proc/${entry}/cmdline`, 'utf8').includes(text)) pids.push(Number(entry));
    } catch {}
  }
  return pids;
}

function rssMb(pid: number): number {
  try {
    const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
    return m ? Number(m[1]) / 1024 : 0;
  } catch {
    return 0;
  }
}

/** CPU seconds (user + system) a process has used so far, from /proc/<pid>/stat (clock ticks of 10 ms). */
function cpuSeconds(pid: number): number {
  try {
    const f = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]!.split(' ');
    return (Number(f[11]) + Number(f[12])) / 100;
  } catch {
    return 0;
  }
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

export async function benchE2e(): Promise<Figure[]> {
  const outageS = Number(process.env.OUTAGE_S ?? 60);
  const liveRate = Number(process.env.LIVE_RATE ?? 300);
  const sustainRate = Number(process.env.SUSTAIN_RATE ?? 4_000);
  const root = mkdtempSync(join(tmpdir(), 'masbc-bench-e2e-'));
  const broker = await startBroker();
  const alliance = await startAlliance(join(root, 'alliance'), 2_000, null); // production timing
  const file = writeBenchGateway(join(root, 'gateway'), alliance, broker.url);
  const gateway = new GatewayProcess(file, join(root, 'gateway', 'data'));
  const source = publisher(broker.url);
  const figures: Figure[] = [];
  const log = (line: string) => process.stderr.write(`  e2e: ${line}\n`);
  let monitor: NodeJS.Timeout | undefined;
  try {
    await gateway.start(60_000);
    await source.ready;
    const s = () => gateway.status()!;
    // Progress every 10 s: the backlog, what became final, and each validator's view and why it left
    // its views (a view-change storm under load shows up here first).
    const t0Run = Date.now();
    const progress = async () => {
      const g = gateway.status();
      if (!g) return; // the status file is being replaced: the next line will do
      const peers = await Promise.all(
        alliance.peers.map((p) =>
          p.metrics().then(
            (m) =>
              `${p.member} v${m.status.view}${m.status.viewChanging ? '*' : ''} h${m.status.committedHeight} ` +
              `mp${m.core.mempoolTxs} ${JSON.stringify(m.core.viewChangeCauses)}`,
            () => `${p.member} down`,
          ),
        ),
      );
      log(
        `${((Date.now() - t0Run) / 1000).toFixed(0)} s: outbox ${g.outbox.pending} pending, ` +
          `${g.submitter?.committed ?? 0} final, ${g.submitter?.resubmitted ?? 0} resubmitted, ` +
          `gateway's validator v${g.chain?.view ?? '?'}; ${peers.join('; ')}`,
      );
    };
    monitor = setInterval(() => {
      progress().catch((err: unknown) => log(`progress line failed: ${(err as Error).message}`));
    }, 10_000);

    // (1) Latency at 1,000 events/s: the gateway's source-to-finality p50/p99 over its last 4,096 events.
    source.setRate(1_000);
    await sleep(5_000);
    // CPU per process over the last 20 s of it: where the two cores go.
    const procs = [
      { name: 'gateway+validator', pid: s().pid },
      ...alliance.peers.map((p) => ({
        name: p.member,
        pid: pidsWith(alliance.alliance.keyFiles.get(p.member)!)[0] ?? 0,
      })),
    ];
    const cpu0 = procs.map((p) => cpuSeconds(p.pid));
    const cpuT0 = Date.now();
    await sleep(20_000);
    const cpuShares = procs.map(
      (p, i) => (100 * (cpuSeconds(p.pid) - cpu0[i]!)) / ((Date.now() - cpuT0) / 1000),
    );
    const lat = s().submitter!.latencyMs;
    figures.push({
      name: 'source → final block latency at 1,000 events/s, p50',
      value: lat.p50,
      unit: 'ms',
      runs: [lat.p50],
      note: `${lat.samples} events`,
    });
    figures.push({
      name: 'source → final block latency at 1,000 events/s, p99',
      value: lat.p99,
      unit: 'ms',
      runs: [lat.p99],
    });
    log(`latency p50 ${lat.p50} ms p99 ${lat.p99} ms`);
    figures.push({
      name: 'CPU per process at 1,000 events/s (% of one core)',
      value: cpuShares.reduce((a, b) => a + b, 0),
      unit: '% in all (of 200 %)',
      runs: cpuShares,
      note: procs.map((p, i) => `${p.name} ${cpuShares[i]!.toFixed(0)} %`).join('; '),
    });
    log(`CPU ${procs.map((p, i) => `${p.name} ${cpuShares[i]!.toFixed(0)}%`).join(', ')}`);

    // (2) Sustained: offer more than the alliance takes; committed events/s over three 10 s windows.
    source.setRate(sustainRate);
    await sleep(5_000);
    const windows: number[] = [];
    const stored: number[] = [];
    for (let i = 0; i < 3; i++) {
      const c0 = s().submitter!.committed;
      const s0 = s().eventsStored;
      const t0 = Date.now();
      await sleep(10_000);
      const dt = (Date.now() - t0) / 1000;
      windows.push((s().submitter!.committed - c0) / dt);
      stored.push((s().eventsStored - s0) / dt);
    }
    windows.sort((a, b) => a - b);
    stored.sort((a, b) => a - b);
    figures.push({
      name: `sustained committed events/s (offered ${sustainRate}/s)`,
      value: windows[1]!,
      unit: 'events/s',
      runs: windows,
    });
    // What acquisition kept up meanwhile: the rest waits at the source (here the broker).
    figures.push({
      name: `events/s stored in the outbox meanwhile (offered ${sustainRate}/s)`,
      value: stored[1]!,
      unit: 'events/s',
      runs: stored,
    });
    log(
      `sustained ${windows.map((w) => w.toFixed(0)).join(', ')} events/s committed, ` +
        `${stored.map((w) => w.toFixed(0)).join(', ')} stored`,
    );
    const rss = [`gateway+validator ${rssMb(s().pid).toFixed(0)} MiB`];
    source.setRate(0);
    await waitUntil(() => s().outbox.pending === 0, 'backlog of phase 2 drained', 600_000);

    // (3) Outage: 2 of 4 validators down for OUTAGE_S at the live rate, then the drain.
    source.setRate(liveRate);
    await sleep(3_000);
    const [, cobalt, dynamo] = alliance.peers;
    for (const p of alliance.peers) {
      const pid = pidsWith(alliance.alliance.keyFiles.get(p.member)!)[0] ?? 0;
      rss.push(`${p.member} ${rssMb(pid).toFixed(0)} MiB`);
    }
    await Promise.all([cobalt!.stop(), dynamo!.stop()]);
    await sleep(outageS * 1_000);
    const backlog = s().outbox.pending;
    await Promise.all([cobalt!.start(), dynamo!.start()]);
    const t0 = Date.now();
    const c0 = s().submitter!.committed;
    await waitUntil(() => s().outbox.pending < liveRate, 'backlog drained', 900_000);
    const drainRate = ((s().submitter!.committed - c0) * 1000) / (Date.now() - t0);
    figures.push({
      name: `drain after a ${outageS} s outage (backlog ${backlog} events, live ${liveRate}/s)`,
      value: drainRate / liveRate,
      unit: '× live rate',
      runs: [drainRate / liveRate],
      note: `${drainRate.toFixed(0)} events/s committed while draining, in ${((Date.now() - t0) / 1000).toFixed(1)} s (includes restart and catch-up)`,
    });
    log(`drain ${drainRate.toFixed(0)} events/s = ${(drainRate / liveRate).toFixed(1)}× live`);
    figures.push({
      name: 'RSS per process (at sustained load)',
      value: rssMb(s().pid),
      unit: 'MiB (gateway)',
      runs: [],
      note: rss.join('; '),
    });
  } finally {
    clearInterval(monitor);
    await source.close();
    await gateway.stop();
    await Promise.all(alliance.peers.map((p) => p.stop()));
    await broker.close();
    rmSync(root, { recursive: true, force: true });
  }
  return figures;
}

if (import.meta.main) {
  const { formatFigures, machine } = await import('./lib.ts');
  console.log(`${machine()}\n`);
  console.log(formatFigures('End to end: source → gateway → 4 validators', await benchE2e()));
}
