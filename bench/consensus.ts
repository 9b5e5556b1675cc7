/**
 * The consensus runtime end to end over real libp2p on loopback: validators are separate OS
 * processes (`masbc-edge peer`), as deployed, running the ledger; every transaction is a real
 * signed batch of event envelopes that every replica verifies (`checkTx`: the binary form, a key
 * the genesis registers, the signature, the envelopes against the header's Merkle root) and
 * orders (each gateway's seq/prev chain, a block rule); the member's own validator also keeps the
 * events' bodies in its body store. Reported, at n = 4 and n = 7, as medians of 3 runs:
 *
 * - committed events/s: events pre-signed by one test gateway per member (so signing costs the
 *   validators nothing), each gateway submitting its own chain in seq order to its member's
 *   validator (POST /v1/batches, with the bodies) as a gateway's submitter does: whatever is signed
 *   and fits its window (`windowEvents` of its events uncommitted), up to 64 batches per request (a 'mempool-full' or pool-full refusal is retried, in
 *   order, after the next commit), timed from the first submission to the last commit seen on
 *   member-1's commits (GET /v1/commits, long-polled). Once with 100 events per signed batch and, at
 *   n = 4, once with one event per batch (what a gateway signing each event would cost);
 * - commit latency p50/p99 at 100 and 1,000 events/s (a batch every 10 ms, of 1 or 10 events,
 *   round-robin over the gateways, each to its member's validator, in its order), each event
 *   timed from its submission to its block in the commits of the validator it was submitted to;
 *   above capacity this is the backlog's wait, reported as measured;
 * - time from kill -9 of the primary to the next commit (T = 2,000 ms, the genesis default);
 * - catch-up: a validator stopped while ~300 small blocks (20 events) commit, then restarted:
 *   certified blocks/s from its restart until it reaches the others' height; and the same with ~40
 *   full blocks (2,500 events each): events/s.
 *
 * Why processes and not one process hosting several validators: each validator is single-threaded
 * JavaScript, so one process would put the whole alliance on one of the two cores; separate
 * processes let the OS spread them over both, which is also what a deployment looks like. The
 * price is that n processes share 2 cores, which is exactly the constraint being measured.
 *
 * NODE_ARGS passes options to the validators' node (e.g. NODE_ARGS=--max-old-space-size=128).
 *
 * PROFILE=1 writes `node --cpu-prof` profiles of every validator to <tmpdir>/masbc-consensus-profiles-n<N>/
 * and prints where their CPU time went, by category (a validator killed with -9 writes none).
 *
 * Run alone: `node bench/consensus.ts` (N=4 or N=7 for one size; PARTS=throughput,per-event,latency,kill,catchup
 * for some of the figures).
 */
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { submitBatchesMax } from '../src/consensus/runtime/client.ts';
import { submitter as submitterBounds } from '../src/gateway/bounds.ts';
import {
  type Cluster,
  type CommitStream,
  followCommits,
  Gateway,
  type PeerProcess,
  startCluster,
  submitInOrder,
  waitFor,
} from '../test/consensus/cluster/peers.ts';
import { type Figure, formatFigures, machine, median } from './lib.ts';

/**
 * T: the genesis default. With 1 s, blocks that take longer than T to commit under full CPU load
 * (n processes on 2 cores) set off view changes that halve throughput (measured: 2–4 per 6,000
 * events at T = 1 s, 0–3 at T = 2 s, most right after an idle period).
 */
const T = 2_000;
/** What to measure (PARTS=throughput,per-event,latency,kill,catchup; all by default), e.g. to profile one. */
const parts = new Set((process.env.PARTS ?? 'throughput,per-event,latency,kill,catchup').split(','));
const runs = 3;
/**
 * Events each gateway keeps in flight (submitted, not yet committed) during the throughput runs: a
 * gateway submitter's default window.
 */
const windowEvents = submitterBounds.windowEvents.default;

/** One POST of one gateway's batches. */
interface Submission {
  /** Index of the gateway (and of its member's validator) that signed it. */
  gateway: number;
  /** The batches' transaction ids (hex). */
  ids: string[];
  bytes: Uint8Array[];
  bodies: string[][];
  /** Events in all its batches. */
  events: number;
}

/**
 * Each gateway submits its own batches, in the order it signed them, to its member's validator,
 * each keeping at most `windowEvents` of its events submitted and not yet seen committed on
 * `stream`, as gateways' submitters do (an unbounded backlog only measures how the mempool and the
 * re-forwarding of pending transactions cope with overload).
 */
async function submitAll(
  peers: PeerProcess[],
  submissions: Submission[],
  stream: CommitStream,
  windowEvents: number,
): Promise<void> {
  const eventsOf = new Map(submissions.flatMap((s) => s.ids.map((id) => [id, s.events / s.ids.length])));
  const inFlight = (mine: Submission[], submitted: number) => {
    let committed = 0;
    for (const s of mine) for (const id of s.ids) if (stream.seen.has(id)) committed += eventsOf.get(id)!;
    return submitted - committed;
  };
  const gateways = new Set(submissions.map((b) => b.gateway));
  // Like a gateway's submitter: everything signed and within the window goes at once, up to the
  // validator API's batches per request, in the gateway's order.
  const worker = async (g: number) => {
    const mine = submissions.filter((b) => b.gateway === g);
    let submitted = 0;
    for (let k = 0; k < mine.length; ) {
      while (inFlight(mine.slice(0, k), submitted) >= windowEvents) await stream.next();
      const room = windowEvents - inFlight(mine.slice(0, k), submitted);
      const next: Submission[] = [];
      let events = 0;
      let batches = 0;
      while (k < mine.length && (next.length === 0 || events + mine[k]!.events <= room)) {
        if (batches + mine[k]!.bytes.length > submitBatchesMax) break;
        events += mine[k]!.events;
        batches += mine[k]!.bytes.length;
        next.push(mine[k++]!);
      }
      submitted += events;
      await submitInOrder(
        peers[g]!,
        next.flatMap((x) => x.bytes),
        stream,
        next.flatMap((x) => x.bodies),
      );
    }
  };
  await Promise.all([...gateways].map(worker));
}

/**
 * `total` events, `perSubmission` to a POST and `perBatch` to a signed batch, round-robin over the
 * gateways, each gateway's in its chain's order.
 */
function presign(gateways: Gateway[], total: number, perSubmission: number, perBatch: number): Submission[] {
  const out: Submission[] = [];
  for (let i = 0; i < total / perSubmission; i++) {
    const gateway = i % gateways.length;
    const { ids, bytes, bodies } = gateways[gateway]!.events(perSubmission, perBatch);
    out.push({ gateway, ids, bytes, bodies, events: perSubmission });
  }
  return out;
}

async function throughput(c: Cluster, gateways: Gateway[], total: number, perBatch: number): Promise<number> {
  const submissions = presign(gateways, total, perBatch === 1 ? 50 : perBatch, perBatch);
  const stream = await followCommits(c.peers[0]!);
  const t0 = Date.now();
  await submitAll(c.peers, submissions, stream, windowEvents);
  const ids = submissions.flatMap((b) => b.ids);
  await waitFor(() => ids.every((id) => stream.seen.has(id)), 'every event committed', 300_000, 50);
  const last = Math.max(...ids.map((id) => stream.seen.get(id)!));
  const blocks = stream.blocks.filter((b) => b.txs > 0);
  process.stderr.write(
    `    ${blocks.length} blocks, ${(ids.length / Math.max(1, blocks.length)).toFixed(1)} batches per block, ${((last - t0) / Math.max(1, blocks.length)).toFixed(0)} ms per block\n`,
  );
  stream.close();
  return (total * 1000) / (last - t0);
}

async function latency(c: Cluster, gateways: Gateway[], ratePerSecond: number, seconds: number) {
  const streams = await Promise.all(c.peers.map(followCommits));
  const perTick = Math.max(1, ratePerSecond / 100);
  const tickMs = (1000 * perTick) / ratePerSecond;
  const sent: { id: string; atMs: number; peer: number }[] = [];
  const ticks = Math.round((seconds * 1000) / tickMs);
  // One signed batch of `perTick` events per tick, as a gateway's submitter would send them.
  const submissions = presign(gateways, ticks * perTick, perTick, perTick);
  // Per gateway, its submissions one after the other (its chain's order); the time counted is when
  // each was due, so a submission queued behind the previous one waits in the figure too.
  const chains = gateways.map(() => Promise.resolve());
  const t0 = performance.now();
  for (let k = 0; k < ticks; k++) {
    const wait = t0 + k * tickMs - performance.now();
    if (wait > 0) await new Promise((r) => setTimeout(r, wait));
    const { gateway: peer, ids, bytes, bodies, events } = submissions[k]!;
    const at = Date.now();
    chains[peer] = chains[peer]!.then(() => submitInOrder(c.peers[peer]!, bytes, streams[peer]!, bodies));
    // One entry per event: the percentiles are over events, each timed by its batch's commit.
    for (const id of ids) for (let e = 0; e < events / ids.length; e++) sent.push({ id, atMs: at, peer });
  }
  await Promise.all(chains);
  // Above capacity the backlog drains at the committed rate: allow for it, then report what it was.
  await waitFor(
    () => sent.every((s) => streams[s.peer]!.seen.has(s.id)),
    'latency run committed',
    600_000,
    50,
  );
  for (const s of streams) s.close();
  const lat = sent.map((s) => streams[s.peer]!.seen.get(s.id)! - s.atMs).sort((a, b) => a - b);
  return { p50: lat[Math.floor(lat.length * 0.5)]!, p99: lat[Math.floor(lat.length * 0.99)]! };
}

async function killPrimary(c: Cluster, gateways: Gateway[]): Promise<number> {
  const s = await c.peers[0]!.status();
  const primary = c.peers.find((p) => p.member === s.primary)!;
  const others = c.peers.filter((p) => p !== primary);
  const before = Math.max(
    ...(await Promise.all(others.map(async (p) => (await p.status()).committedHeight))),
  );
  await primary.kill();
  const killedAt = Date.now();
  const results = await others[0]!.submit(gateways[0]!.events(10).bytes);
  if (results.some((r) => !r.accepted)) throw new Error(`refused after the kill: ${JSON.stringify(results)}`);
  await waitFor(
    async () => (await others[0]!.status()).committedHeight > before,
    'commit after kill',
    30_000,
    10,
  );
  const ms = Date.now() - killedAt;
  await primary.start();
  await waitFor(
    async () => (await primary.status()).committedHeight >= (await others[0]!.status()).committedHeight,
    'killed primary back',
    30_000,
  );
  return ms;
}

/**
 * A validator stopped while about `blocks` blocks of `eventsPerBlock` events commit, then restarted:
 * certified blocks/s and events/s from its restart until it reaches the others' height.
 */
async function catchUp(
  c: Cluster,
  gateways: Gateway[],
  blocks: number,
  eventsPerBlock: number,
): Promise<{ blocksPerS: number; eventsPerS: number }> {
  const lagging = c.peers[c.peers.length - 1]!;
  await lagging.stop();
  const up = c.peers.filter((p) => p !== lagging);
  const start = (await up[0]!.status()).committedHeight;
  let events = 0;
  // One submission at a time (batches of up to 100 events), so that each becomes (about) one block.
  while ((await up[0]!.status()).committedHeight < start + blocks) {
    const height = (await up[0]!.status()).committedHeight;
    const results = await up[height % up.length]!.submit(
      gateways[height % gateways.length]!.events(eventsPerBlock, Math.min(100, eventsPerBlock)).bytes,
    );
    if (results.some((r) => !r.accepted)) throw new Error(`refused: ${JSON.stringify(results)}`);
    events += eventsPerBlock;
    await waitFor(async () => (await up[0]!.status()).committedHeight > height, 'a block', 10_000, 5);
  }
  const target = (await up[0]!.status()).committedHeight;
  const behind = target - (await readHeightOffline(lagging));
  await lagging.start();
  const t0 = Date.now();
  await waitFor(async () => (await lagging.status()).committedHeight >= target, 'catch-up', 120_000, 10);
  const s = (Date.now() - t0) / 1000;
  return { blocksPerS: behind / s, eventsPerS: events / s };
}

/** Resident set of a process in MiB (0 if it is not running). */
function rssMiB(pid: number | undefined): number {
  if (pid === undefined) return 0;
  const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return m ? Number(m[1]) / 1024 : 0;
}

/** The lagging validator's height: what it reported just before it stopped is not kept, so ask the store. */
async function readHeightOffline(peer: PeerProcess): Promise<number> {
  const { default: Database } = await import('better-sqlite3');
  const dataDir = peer.dataDir;
  const db = new Database(join(dataDir, 'chain.db'), { readonly: true });
  try {
    return (db.prepare('SELECT coalesce(max(height), 0) AS h FROM blocks').get() as { h: number }).h;
  } finally {
    db.close();
  }
}

const categories: [string, RegExp][] = [
  [
    'signature verification (Ed25519)',
    /verifyOneShot|crypto\/sig|getKeyObjectSlots|KeyObject|createPublicKey/,
  ],
  ['SHA-256 (ids, Merkle, checksums)', /crypto\/hash|Hash$|digest|sha256|merkle/],
  [
    'JSON / canonical / base64 / zod',
    /JSON|canonical|base64|fromBase64Url|toBase64Url|codec\.ts|zod|schemas\.js|RegExp|encodeUtf8|decode node:internal\/encoding|TextDecoder|utf8/i,
  ],
  ['SQLite (incl. fsync)', /sqlite|better-sqlite3|store\/chain|transaction\.js/],
  [
    'libp2p, Noise, Yamux, TCP',
    /libp2p|noise|yamux|chacha|cipher|stream|socket|net:|writeBuffer|writev|muxer|uint8arraylist/i,
  ],
  ['HTTP API', /node:_http|http_parser|validator-api\.ts|fastify|find-my-way|llhttp/],
  ['garbage collection', /garbage collector/],
  ['idle', /^\(idle\)/],
  ['module loading', /loader|compileSourceTextModule|wrapSafe|module_job/],
];

/** Self time of every frame of every profile, summed by category (first match wins). */
function profileSummary(dir: string): Figure[] {
  const totals = new Map<string, number>();
  let all = 0;
  for (const f of readdirSync(dir).filter((x) => x.endsWith('.cpuprofile'))) {
    const p = JSON.parse(readFileSync(join(dir, f), 'utf8')) as {
      nodes: { id: number; callFrame: { functionName: string; url: string } }[];
      samples: number[];
      timeDeltas: number[];
    };
    const byId = new Map(p.nodes.map((n) => [n.id, n]));
    p.samples.forEach((id, i) => {
      const n = byId.get(id)!;
      const name = `${n.callFrame.functionName || '(anon)'} ${n.callFrame.url}`;
      const cat =
        categories.find(([, re]) => re.test(name))?.[0] ?? 'other JavaScript (consensus core, runtime, app)';
      const us = p.timeDeltas[i] ?? 0;
      totals.set(cat, (totals.get(cat) ?? 0) + us);
      all += us;
    });
  }
  return [...totals]
    .sort((a, b) => b[1] - a[1])
    .map(([name, us]) => ({
      name: `CPU: ${name}`,
      value: (100 * us) / all,
      unit: '%',
      runs: [us / 1e6],
      note: 'seconds, all validators',
    }));
}

async function benchSize(n: number, profile: boolean): Promise<Figure[]> {
  const dir = mkdtempSync(join(tmpdir(), `masbc-bench-consensus-${n}-`));
  const profileDir = join(tmpdir(), `masbc-consensus-profiles-n${n}`);
  if (profile) {
    rmSync(profileDir, { recursive: true, force: true });
    mkdirSync(profileDir, { recursive: true });
  }
  const cluster = await startCluster(dir, n, {
    viewChangeTimeoutMs: T,
    statusIntervalMs: 1_000,
    nodeArgs: () => [
      ...(profile ? ['--cpu-prof', '--cpu-prof-dir', profileDir] : []),
      ...(process.env.NODE_ARGS?.split(' ').filter(Boolean) ?? []),
    ],
  });
  const figures: Figure[] = [];
  // Each figure also goes to stderr as soon as it is measured, so a long run that fails late keeps them.
  const add = (f: Figure) => {
    figures.push(f);
    process.stderr.write(
      `  ${f.name}: ${f.value.toFixed(1)} ${f.unit} (${f.runs.map((r) => r.toFixed(1)).join(', ')})\n`,
    );
  };
  try {
    // One test gateway per member (the genesis registers them); each signs one chain, in both modes.
    const batchGateways = cluster.peers.map((p) => new Gateway(cluster.files, p.member, 100));
    const total = n === 4 ? 40_000 : 20_000;
    // Warm-up of a full run: the first burst after start-up is the one that sets off view changes.
    if (parts.has('throughput')) await throughput(cluster, batchGateways, total, 100);
    const tps: number[] = [];
    if (parts.has('throughput')) {
      for (let i = 0; i < runs; i++) tps.push(await throughput(cluster, batchGateways, total, 100));
      add({
        name: `n=${n}: committed events/s, 100 events per signed batch`,
        value: median(tps),
        unit: 'events/s',
        runs: tps,
        note: `${total} events per run`,
      });
    }
    if (parts.has('throughput')) {
      // Each validator's resident memory right after the sustained runs (VmRSS, /proc).
      const rss = cluster.peers.map((p) => rssMiB(p.pid));
      add({
        name: `n=${n}: RSS per validator after the throughput runs`,
        value: Math.max(...rss),
        unit: 'MiB (largest)',
        runs: rss,
        note: 'one validator each',
      });
    }
    if (n === 4 && parts.has('per-event')) {
      const tpsEvent: number[] = [];
      for (let i = 0; i < runs; i++) tpsEvent.push(await throughput(cluster, batchGateways, 4_000, 1));
      add({
        name: `n=${n}: committed events/s, one event per signed batch`,
        value: median(tpsEvent),
        unit: 'events/s',
        runs: tpsEvent,
        note: '4,000 events per run',
      });
    }
    for (const rate of parts.has('latency') ? [100, 1_000] : []) {
      const p50s: number[] = [];
      const p99s: number[] = [];
      for (let i = 0; i < runs; i++) {
        const l = await latency(cluster, batchGateways, rate, 5);
        p50s.push(l.p50);
        p99s.push(l.p99);
      }
      const what = `n=${n}: commit latency at ${rate.toLocaleString('en-US')} events/s`;
      add({ name: `${what}, p50`, value: median(p50s), unit: 'ms', runs: p50s, note: '5 s of load per run' });
      add({ name: `${what}, p99`, value: median(p99s), unit: 'ms', runs: p99s });
    }
    const kills: number[] = [];
    for (let i = 0; i < runs; i++)
      if (parts.has('kill')) kills.push(await killPrimary(cluster, batchGateways));
    if (kills.length > 0)
      add({
        name: `n=${n}: kill -9 primary → next commit`,
        value: median(kills),
        unit: 'ms',
        runs: kills,
        note: `T = ${T} ms`,
      });
    const catchups: number[] = [];
    for (let i = 0; i < runs; i++)
      if (parts.has('catchup')) catchups.push((await catchUp(cluster, batchGateways, 300, 20)).blocksPerS);
    if (catchups.length > 0)
      add({
        name: `n=${n}: catch-up, small blocks`,
        value: median(catchups),
        unit: 'certified blocks/s',
        runs: catchups,
        note: '~300 blocks of 20 events behind',
      });
    const catchupEvents: number[] = [];
    for (let i = 0; i < runs; i++)
      if (parts.has('catchup'))
        catchupEvents.push((await catchUp(cluster, batchGateways, 40, 2_500)).eventsPerS);
    if (catchupEvents.length > 0)
      add({
        name: `n=${n}: catch-up, full blocks`,
        value: median(catchupEvents),
        unit: 'events/s',
        runs: catchupEvents,
        note: '~40 blocks of 2,500 events (25 batches) behind',
      });
  } finally {
    await cluster.stopAll();
    rmSync(dir, { recursive: true, force: true });
  }
  if (profile) figures.push(...profileSummary(profileDir));
  return figures;
}

export async function benchConsensus(): Promise<Figure[]> {
  const sizes = process.env.N ? [Number(process.env.N)] : [4, 7];
  const figures: Figure[] = [];
  for (const n of sizes) figures.push(...(await benchSize(n, process.env.PROFILE === '1')));
  return figures;
}

if (import.meta.main) {
  console.log(`${new Date().toISOString()} on ${machine()}\n`);
  console.log(formatFigures('Consensus over libp2p, validators as processes', await benchConsensus()));
}
