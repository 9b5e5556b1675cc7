/**
 * A shorter, more instrumented cousin of bench/consensus.ts for performance work: the same
 * alliance (validators as `masbc-edge peer` processes over libp2p on loopback, real batch-signed
 * events verified by every replica, T = 2 s), measuring only committed throughput and commit
 * latency, and reporting per run the blocks committed, their mean size, the view changes started
 * and the load average, so that a change can be judged by more than one number.
 *
 *   node bench/perf-alliance.ts                     # n = 4: throughput ×3, latency at 100 and 1,000 tx/s ×3
 *   N=7 RUNS=3 TOTAL=6000 node bench/perf-alliance.ts
 *   ONLY=tps|lat RATES=1000,2000 node bench/perf-alliance.ts
 *   PROFILE=1 …                                     # --cpu-prof of every validator, summed by function
 *
 * Throughput as bench/consensus.ts measures it: pre-signed batches of 100, round-robin over the
 * validators' HTTP endpoints, at most WINDOW (4,000) uncommitted, from the first submission to the
 * last commit seen on member 1's stream. Latency: RATE tx/s for SECONDS s, each event timed from its
 * submission to its block on the stream of the validator it was submitted to.
 */
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  type Cluster,
  Gateway,
  type PeerProcess,
  startCluster,
  waitFor,
} from '../test/consensus/cluster/peers.ts';
import { machine, median } from './lib.ts';

const env = process.env;
const n = Number(env.N ?? 4);
const runs = Number(env.RUNS ?? 3);
const total = Number(env.TOTAL ?? (n === 4 ? 10_000 : 6_000));
const windowTxs = Number(env.WINDOW ?? 4_000);
const batchSize = Number(env.BATCH ?? 100);
const rates = (env.RATES ?? '100,1000').split(',').map(Number);
const seconds = Number(env.SECONDS ?? 5);
const only = env.ONLY;
const profile = env.PROFILE === '1';
const T = Number(env.T ?? 2_000);

interface CommitStream {
  seen: Map<string, number>;
  blocks: { height: number; txs: number; atMs: number }[];
  next(): Promise<void>;
  close(): void;
}

async function followCommits(peer: PeerProcess): Promise<CommitStream> {
  const abort = new AbortController();
  const res = await fetch(`${peer.url}/v1/commits`, { signal: abort.signal });
  let waiters: (() => void)[] = [];
  const stream: CommitStream = {
    seen: new Map(),
    blocks: [],
    next: () => new Promise((resolve) => waiters.push(resolve)),
    close: () => abort.abort(),
  };
  const reader = res.body!.getReader();
  const dec = new TextDecoder();
  let buffer = '';
  void (async () => {
    try {
      for (;;) {
        const { value, done } = await reader.read();
        if (done) return;
        const now = Date.now();
        buffer += dec.decode(value, { stream: true });
        let i = buffer.indexOf('\n\n');
        while (i >= 0) {
          const frame = buffer.slice(0, i);
          buffer = buffer.slice(i + 2);
          if (frame.startsWith('data: ')) {
            const e = JSON.parse(frame.slice(6)) as { height: number; txIds: string[] };
            for (const id of e.txIds) stream.seen.set(id, now);
            stream.blocks.push({ height: e.height, txs: e.txIds.length, atMs: now });
            const woken = waiters;
            waiters = [];
            for (const w of woken) w();
          }
          i = buffer.indexOf('\n\n');
        }
      }
    } catch {
      // aborted
    }
  })();
  return stream;
}

async function submitAll(
  peers: PeerProcess[],
  batches: { ids: string[]; bytes: Uint8Array[] }[],
  stream: CommitStream,
): Promise<void> {
  let next = 0;
  let submitted = 0;
  const worker = async (peer: PeerProcess) => {
    for (;;) {
      while (submitted - stream.seen.size >= windowTxs) await stream.next();
      const i = next++;
      if (i >= batches.length) return;
      submitted += batches[i]!.bytes.length;
      let pending = batches[i]!.bytes;
      while (pending.length > 0) {
        const results = await peer.submit(pending);
        const retry: Uint8Array[] = [];
        results.forEach((r, k) => {
          if (r.accepted || r.reason === 'duplicate' || r.reason === 'committed') return;
          if (r.reason !== 'mempool-full')
            throw new Error(`${peer.member} refused an event: ${r.reason} ${r.detail}`);
          retry.push(pending[k]!);
        });
        if (retry.length > 0) await stream.next();
        pending = retry;
      }
    }
  };
  await Promise.all(peers.map(worker));
}

function presign(gateways: Gateway[], count: number, batch: number) {
  const batches: { ids: string[]; bytes: Uint8Array[] }[] = [];
  for (let i = 0; i < count / batch; i++) batches.push(gateways[i % gateways.length]!.events(batch));
  return batches;
}

async function viewChanges(c: Cluster): Promise<number> {
  let sum = 0;
  for (const p of c.peers) sum += (await p.metrics()).core.viewChangesStarted;
  return sum;
}

async function throughput(c: Cluster, gateways: Gateway[], count: number) {
  const batches = presign(gateways, count, batchSize);
  const vc0 = await viewChanges(c);
  const stream = await followCommits(c.peers[0]!);
  const t0 = Date.now();
  await submitAll(c.peers, batches, stream);
  const ids = batches.flatMap((b) => b.ids);
  await waitFor(() => ids.every((id) => stream.seen.has(id)), 'every event committed', 300_000, 20);
  const last = Math.max(...ids.map((id) => stream.seen.get(id)!));
  stream.close();
  const blocks = stream.blocks.filter((b) => b.txs > 0);
  return {
    tps: (count * 1000) / (last - t0),
    blocks: blocks.length,
    meanBlock: blocks.reduce((s, b) => s + b.txs, 0) / Math.max(1, blocks.length),
    viewChanges: (await viewChanges(c)) - vc0,
  };
}

async function latency(c: Cluster, gateways: Gateway[], ratePerSecond: number) {
  const streams = await Promise.all(c.peers.map(followCommits));
  const vc0 = await viewChanges(c);
  const perTick = Math.max(1, ratePerSecond / 100);
  const tickMs = (1000 * perTick) / ratePerSecond;
  const sent: { id: string; atMs: number; peer: number }[] = [];
  const ticks = Math.round((seconds * 1000) / tickMs);
  const batches = presign(gateways, ticks * perTick, perTick);
  const t0 = performance.now();
  for (let k = 0; k < ticks; k++) {
    const wait = t0 + k * tickMs - performance.now();
    if (wait > 0) await new Promise((r) => setTimeout(r, wait));
    const peer = k % c.peers.length;
    const at = Date.now();
    void c.peers[peer]!.submit(batches[k]!.bytes);
    for (const id of batches[k]!.ids) sent.push({ id, atMs: at, peer });
  }
  await waitFor(
    () => sent.every((s) => streams[s.peer]!.seen.has(s.id)),
    'latency run committed',
    600_000,
    20,
  );
  for (const s of streams) s.close();
  const lat = sent.map((s) => streams[s.peer]!.seen.get(s.id)! - s.atMs).sort((a, b) => a - b);
  const blocks = streams[0]!.blocks.filter((b) => b.txs > 0);
  return {
    p50: lat[Math.floor(lat.length * 0.5)]!,
    p99: lat[Math.floor(lat.length * 0.99)]!,
    blocks: blocks.length,
    meanBlock: blocks.reduce((s, b) => s + b.txs, 0) / Math.max(1, blocks.length),
    viewChanges: (await viewChanges(c)) - vc0,
  };
}

/** Self time by function (top entries) and by file, summed over every profile in `dir`. */
function profileSummary(dir: string): void {
  const byFn = new Map<string, number>();
  const byFile = new Map<string, number>();
  let all = 0;
  for (const f of readdirSync(dir).filter((x) => x.endsWith('.cpuprofile'))) {
    const p = JSON.parse(readFileSync(join(dir, f), 'utf8')) as {
      nodes: { id: number; callFrame: { functionName: string; url: string; lineNumber: number } }[];
      samples: number[];
      timeDeltas: number[];
    };
    const byId = new Map(p.nodes.map((x) => [x.id, x]));
    p.samples.forEach((id, i) => {
      const cf = byId.get(id)!.callFrame;
      const file = cf.url.replace(/^.*\/(node_modules\/)/, '$1').replace(/^file:\/\/.*\/main\//, '');
      const us = p.timeDeltas[i] ?? 0;
      const fn = `${cf.functionName || '(anon)'} ${file}:${cf.lineNumber + 1}`;
      byFn.set(fn, (byFn.get(fn) ?? 0) + us);
      const pkg = file.startsWith('node_modules/')
        ? file
            .split('/')
            .slice(0, file.startsWith('node_modules/@') ? 3 : 2)
            .join('/')
        : file || cf.functionName;
      byFile.set(pkg, (byFile.get(pkg) ?? 0) + us);
      all += us;
    });
  }
  const show = (title: string, m: Map<string, number>, k: number) => {
    console.log(`\n${title} (of ${(all / 1e6).toFixed(1)} s of samples, all validators)`);
    for (const [name, us] of [...m].sort((a, b) => b[1] - a[1]).slice(0, k))
      console.log(`  ${((100 * us) / all).toFixed(1).padStart(5)} %  ${name}`);
  };
  show('self time by file / package', byFile, 30);
  show('self time by function', byFn, 40);
}

const fmt = (xs: number[]) => xs.map((x) => x.toFixed(0)).join(', ');

async function main() {
  console.log(`${new Date().toISOString()} on ${machine()}; n=${n}, T=${T}`);
  const dir = mkdtempSync(join(tmpdir(), `masbc-perf-${n}-`));
  const profileDir = join(tmpdir(), `masbc-perf-profiles-n${n}`);
  if (profile) {
    rmSync(profileDir, { recursive: true, force: true });
    mkdirSync(profileDir, { recursive: true });
  }
  const cluster = await startCluster(dir, n, {
    viewChangeTimeoutMs: T,
    statusIntervalMs: 1_000,
    nodeArgs: () => (profile ? ['--cpu-prof', '--cpu-prof-dir', profileDir] : []),
  });
  try {
    const gateways = cluster.peers.slice(0, 4).map((p) => new Gateway(cluster.files, p.member, 'batch'));
    if (only !== 'lat') {
      await throughput(cluster, gateways, total); // warm-up
      const rs = [];
      for (let i = 0; i < runs; i++) {
        const r = await throughput(cluster, gateways, total);
        rs.push(r);
        console.log(
          `  tps run ${i + 1}: ${r.tps.toFixed(0)} tx/s, ${r.blocks} blocks of ${r.meanBlock.toFixed(0)}, ${r.viewChanges} view changes, load ${loadavg()[0]!.toFixed(2)}`,
        );
      }
      const tps = rs.map((r) => r.tps);
      console.log(`n=${n} committed tx/s: median ${median(tps).toFixed(0)} (${fmt(tps)})`);
    }
    if (only !== 'tps') {
      for (const rate of rates) {
        const p50 = [];
        const p99 = [];
        for (let i = 0; i < runs; i++) {
          const l = await latency(cluster, gateways, rate);
          p50.push(l.p50);
          p99.push(l.p99);
          console.log(
            `  ${rate} tx/s run ${i + 1}: p50 ${l.p50} ms, p99 ${l.p99} ms, ${l.blocks} blocks of ${l.meanBlock.toFixed(0)}, ${l.viewChanges} view changes, load ${loadavg()[0]!.toFixed(2)}`,
          );
        }
        console.log(
          `n=${n} latency at ${rate} tx/s: p50 median ${median(p50)} ms (${fmt(p50)}), p99 median ${median(p99)} ms (${fmt(p99)})`,
        );
      }
    }
  } finally {
    await cluster.stopAll();
    rmSync(dir, { recursive: true, force: true });
  }
  if (profile) profileSummary(profileDir);
}

await main();
