/**
 * What each attack of the adversarial suite (test/adversarial/) does to a real alliance: four
 * `masbc-edge peer` processes on loopback (genesis defaults: T = 2 s, STATUS every second), one
 * attack at a time on a fresh alliance, while a legitimate client (member-2's test gateway, or the
 * attacked validator's own for HTTP attacks) submits a batch of 10 events every 500 ms and follows
 * its validator's commits. Per attack: blocks committed during the attack, the client's batches
 * committed, its latency (submission to commit seen, p50 and max), batches still uncommitted 30 s
 * after the attack, the attacked validator's peak RSS, the fewest peers any validator saw connected,
 * silent drops, and the view at the end. The attacker connects from 127.0.0.2.
 *
 * These are measurements, not assertions (the suite asserts behaviour); run on the code before and
 * after a change to compare. `soak` is the long idle and lightly loaded run (no attack) that counts
 * silent drops at the default timing.
 *
 * Run: `node bench/attacks.ts` (all parts), `PARTS=slots,forged node bench/attacks.ts`,
 * `ATTACK_MS=60000` to attack longer, `SOAK_MS=600000` for a 10-minute soak (default 3 minutes idle
 * plus 3 minutes loaded).
 */
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  type Attack,
  deepJson,
  forgedBatches,
  forgedFlood,
  halfOpenHandshakes,
  holdSlots,
  longPolls,
  nestedJson,
  post,
  slowHeaders,
  tcpTarget,
} from '../test/adversarial/tools.ts';
import {
  type Cluster,
  type CommitStream,
  credentialOf,
  followCommits,
  Gateway,
  type PeerProcess,
  startCluster,
} from '../test/consensus/cluster/peers.ts';
import { machine } from './lib.ts';

/**
 * The attacker holds valid credentials (an insider, a stolen token): the stronger attack, since
 * without one every API request is refused (401) before its body is read.
 */
const readerAuth = async (v: PeerProcess) =>
  `Bearer ${await credentialOf(v.genesisFile, v.member, 'reader')}`;
const gatewayAuth = async (c: Cluster, v: PeerProcess, member = v.member) =>
  `Bearer ${await credentialOf(v.genesisFile, member, 'gateway', c.files.gateways.get(member)!.gateway)}`;

const attackMs = Number(process.env.ATTACK_MS ?? 30_000);
const soakMs = Number(process.env.SOAK_MS ?? 180_000);
const parts = (process.env.PARTS ?? 'soak,slots,halfopen,bodies,forged,longpolls,slowloris').split(',');

interface Outcome {
  attack: string;
  blocks: number;
  legitCommitted: number;
  legitSubmitted: number;
  legitRefused: number;
  latencyP50Ms: number;
  latencyP99Ms: number;
  latencyMaxMs: number;
  uncommittedAfter30s: number;
  rssPeakMiB: number;
  rssBeforeMiB: number;
  minPeersConnected: number;
  silentDrops: number;
  view: number;
  attackStats: string;
}

function rssMiB(pid: number | undefined): number {
  if (!pid) return 0;
  try {
    const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
    return m ? Number(m[1]) / 1024 : 0;
  } catch {
    return 0;
  }
}

async function withTimeout<T>(p: Promise<T>, ms: number): Promise<T | undefined> {
  let timer: NodeJS.Timeout | undefined;
  const expired = new Promise<undefined>((resolve) => {
    timer = setTimeout(() => resolve(undefined), ms);
  });
  const r = await Promise.race([p, expired]).catch(() => undefined);
  clearTimeout(timer);
  return r;
}

function percentile(xs: number[], p: number): number {
  if (xs.length === 0) return Number.NaN;
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor((p / 100) * s.length))]!;
}

/**
 * A legitimate client: a batch of 10 events every 500 ms to `peer`, each timed from its first
 * submission to its commit; a batch that is refused or not answered within 10 s is submitted again
 * (in order, as the gateway's submitter does) before the next one.
 */
function legitimateClient(peer: PeerProcess, gateway: Gateway, stream: CommitStream) {
  const sent = new Map<string, number>();
  let refused = 0;
  let stopped = false;
  const loop = (async () => {
    while (!stopped) {
      const { ids, bytes } = gateway.events(10);
      const t0 = Date.now();
      for (const id of ids) sent.set(id, t0);
      for (;;) {
        const ok = await withTimeout(
          peer
            .submit(bytes)
            .then((answers) =>
              answers.every((a) => a.accepted || a.reason === 'duplicate' || a.reason === 'committed'),
            ),
          10_000,
        );
        if (process.env.DEBUG) process.stderr.write(`legit batch ${ok} after ${Date.now() - t0} ms\n`);
        if (ok || stopped) break;
        refused++;
        await new Promise((r) => setTimeout(r, 200));
      }
      await new Promise((r) => setTimeout(r, 500));
    }
  })();
  return {
    sent,
    refused: () => refused,
    async stop() {
      stopped = true;
      await loop;
    },
    latencies: () =>
      [...sent].flatMap(([id, t0]) => {
        const at = stream.seen.get(id);
        return at === undefined ? [] : [at - t0];
      }),
    uncommitted: () => [...sent.keys()].filter((id) => !stream.seen.has(id)).length,
  };
}

async function run(
  name: string,
  durationMs: number,
  target: (c: Cluster) => PeerProcess,
  start: (c: Cluster, target: PeerProcess) => Attack | Promise<Attack>,
  withClient = true,
): Promise<Outcome> {
  const dir = mkdtempSync(join(tmpdir(), 'masbc-attacks-'));
  const cluster = await startCluster(dir, 4, { viewChangeTimeoutMs: 2_000, statusIntervalMs: 1_000 });
  try {
    const victim = target(cluster);
    const client = victim.member === 'member-1' ? cluster.peers[0]! : victim;
    const gateway = new Gateway(cluster.files, client.member, 10);
    // Warm up: everyone connected and one block committed.
    const warm = gateway.events(10);
    await client.submit(warm.bytes);
    for (let i = 0; i < 200; i++) {
      const s = await Promise.all(cluster.peers.map((p) => p.status()));
      if (s.every((x) => x.peersConnected === 3 && x.committedHeight >= 1)) break;
      await new Promise((r) => setTimeout(r, 100));
    }
    const stream = await followCommits(client);
    const heightBefore = (await client.status()).committedHeight;
    const rssBefore = rssMiB(victim.pid);
    let rssPeak = rssBefore;
    let minPeers = 3;
    const sampler = setInterval(() => {
      rssPeak = Math.max(rssPeak, rssMiB(victim.pid));
    }, 200);
    let sampling = true;
    const peerSampler = (async () => {
      while (sampling) {
        const s = await Promise.all(cluster.peers.map((p) => withTimeout(p.status(), 2_000)));
        for (const x of s) if (x) minPeers = Math.min(minPeers, x.peersConnected);
        await new Promise((r) => setTimeout(r, 500));
      }
    })();
    // The attack first: preparing it (signing the forged batches, say) blocks this process, which is
    // also the client's, and must not count against the client.
    const attack = await start(cluster, victim);
    const legit = withClient ? legitimateClient(client, gateway, stream) : idleClient;
    await new Promise((r) => setTimeout(r, durationMs));
    await attack.stop();
    await legit.stop();
    const heightAtEnd = (await withTimeout(client.status(), 10_000))?.committedHeight ?? heightBefore;
    const committedDuring = legit.latencies().length;
    // What the attack delayed has 30 s to commit.
    for (let i = 0; i < 300 && legit.uncommitted() > 0; i++) await new Promise((r) => setTimeout(r, 100));
    sampling = false;
    clearInterval(sampler);
    await peerSampler;
    const metrics = await Promise.all(cluster.peers.map((p) => withTimeout(p.metrics(), 5_000)));
    const silentDrops = metrics.reduce(
      (a, m) => a + Object.values(m?.transport.peers ?? {}).reduce((b, p) => b + p.drops.silent, 0),
      0,
    );
    const lat = legit.latencies();
    stream.close();
    return {
      attack: name,
      blocks: heightAtEnd - heightBefore,
      legitCommitted: committedDuring,
      legitSubmitted: legit.sent.size,
      legitRefused: legit.refused(),
      latencyP50Ms: percentile(lat, 50),
      latencyP99Ms: percentile(lat, 99),
      latencyMaxMs: lat.length > 0 ? Math.max(...lat) : Number.NaN,
      uncommittedAfter30s: legit.uncommitted(),
      rssPeakMiB: rssPeak,
      rssBeforeMiB: rssBefore,
      minPeersConnected: minPeers,
      silentDrops,
      view: Math.max(...metrics.map((m) => m?.status.view ?? -1)),
      attackStats: JSON.stringify(attack.stats()),
    };
  } finally {
    await cluster.stopAll();
    rmSync(dir, { recursive: true, force: true });
  }
}

const idleClient = {
  sent: new Map<string, number>(),
  refused: () => 0,
  stop: async () => {},
  latencies: () => [] as number[],
  uncommitted: () => 0,
};

const none: Attack = { stop: async () => {}, stats: () => ({}) };

/** Repeats `once` until stopped: for attacks made of single requests. */
function repeat(once: () => Promise<unknown>, concurrent: number): Attack {
  let stopped = false;
  let n = 0;
  const statuses: Record<string, number> = {};
  const loops = Array.from({ length: concurrent }, async () => {
    while (!stopped) {
      const a = (await once()) as { status?: number; ms?: number };
      n++;
      statuses[`status ${a.status}`] = (statuses[`status ${a.status}`] ?? 0) + 1;
    }
  });
  return {
    async stop() {
      stopped = true;
      await Promise.all(loops);
    },
    stats: () => ({ requests: n, ...statuses }),
  };
}

const libp2pTargets = (c: Cluster) => c.files.alliance.genesis.validators.map((v) => tcpTarget(v.addrs[0]!));

const attacks: Record<string, () => Promise<Outcome[]>> = {
  soak: async () => [
    await run(
      'none (soak: client at 2 batches/s)',
      soakMs,
      (c) => c.peers[1]!,
      () => none,
    ),
  ],
  slots: async () => [
    await run(
      'hold 12 connections per libp2p port, multistream header only, reopened every 8 s',
      attackMs,
      (c) => c.peers[1]!,
      (c) => holdSlots(libp2pTargets(c), 12, 8_000),
    ),
  ],
  halfopen: async () => [
    await run(
      '12 half-open Noise handshakes per libp2p port, reopened every 8 s',
      attackMs,
      (c) => c.peers[1]!,
      (c) => halfOpenHandshakes(libp2pTargets(c), 12, 8_000),
    ),
  ],
  bodies: async () => {
    const out: Outcome[] = [];
    const huge = Buffer.alloc(32 * 1024 * 1024, 0x61);
    out.push(
      await run(
        'POST /v1/batches 32 MiB, 3 at a time',
        attackMs,
        (c) => c.peers[0]!,
        async (c, v) => {
          const authorization = await gatewayAuth(c, v);
          return repeat(
            () =>
              post(v.url, '/v1/batches', huge, { contentType: 'application/octet-stream', authorization }),
            3,
          );
        },
      ),
    );
    const deep = deepJson(15 * 1024 * 1024);
    out.push(
      await run(
        'POST /v1/receipts 15 MiB [[{},{},…]], 3 at a time',
        attackMs,
        (c) => c.peers[0]!,
        async (_c, v) => {
          const authorization = await readerAuth(v);
          return repeat(
            () => post(v.url, '/v1/receipts', deep, { contentType: 'application/json', authorization }),
            3,
          );
        },
      ),
    );
    const nested = nestedJson(4 * 1024 * 1024);
    out.push(
      await run(
        'POST /v1/batches 8 MiB [[[…]]] as JSON, 3 at a time',
        attackMs,
        (c) => c.peers[0]!,
        async (c, v) => {
          const authorization = await gatewayAuth(c, v);
          return repeat(
            () => post(v.url, '/v1/batches', nested, { contentType: 'application/json', authorization }),
            3,
          );
        },
      ),
    );
    return out;
  },
  forged: async () => [
    await run(
      '6 clients posting 64 forged 512-event batches each, continuously',
      attackMs,
      (c) => c.peers[0]!,
      async (c, v) => {
        const forged = forgedBatches(new Gateway(c.files, 'member-3', 512), 64, 512);
        return forgedFlood(v.url, forged, 6, undefined, await gatewayAuth(c, v, 'member-3'));
      },
    ),
  ],
  longpolls: async () => [
    await run(
      '1,030 idle long-polls on GET /v1/commits',
      attackMs,
      (c) => c.peers[1]!,
      async (_c, v) => longPolls(v.url, 1_030, undefined, await readerAuth(v)),
    ),
  ],
  slowloris: async () => [
    await run(
      '500 connections dripping headers (slowloris)',
      attackMs,
      (c) => c.peers[1]!,
      (_c, v) => slowHeaders(v.url, 500, 1_000),
    ),
  ],
};

console.log(`# attacks on a 4-validator alliance\n\n${new Date().toISOString()} on ${machine()}\n`);
const outcomes: Outcome[] = [];
for (const p of parts) {
  const a = attacks[p];
  if (!a) throw new Error(`unknown part ${p}; known: ${Object.keys(attacks).join(', ')}`);
  process.stderr.write(`running ${p}…\n`);
  for (const o of await a()) {
    outcomes.push(o);
    console.log(JSON.stringify(o));
  }
}
const f = (v: number) => (Number.isFinite(v) ? Math.round(v).toLocaleString('en-US') : '—');
console.log(
  [
    '',
    '| attack | blocks | client batches committed / sent (refused) | p50 / p99 / max latency ms | uncommitted 30 s after | RSS before → peak MiB | min peers | silent drops | view |',
    '|---|---|---|---|---|---|---|---|---|',
    ...outcomes.map(
      (o) =>
        `| ${o.attack} | ${o.blocks} | ${o.legitCommitted} / ${o.legitSubmitted} (${o.legitRefused}) | ${f(o.latencyP50Ms)} / ${f(o.latencyP99Ms)} / ${f(o.latencyMaxMs)} | ${o.uncommittedAfter30s} | ${f(o.rssBeforeMiB)} → ${f(o.rssPeakMiB)} | ${o.minPeersConnected} | ${o.silentDrops} | ${o.view} |`,
    ),
  ].join('\n'),
);
