/**
 * One seeded simulator run: a random fault scenario (chaos phase), then heal and a liveness check.
 * Everything derives from the seed, so `runScenario({ seed })` reproduces a failure exactly.
 *
 * Chaos phase: clients submit transactions; the network loses, duplicates and delays messages;
 * partitions come and go; honest replicas crash and restart from persisted state; up to f replicas
 * are faulty (byzantine behaviours, or a restart that lost all state, which may make it vote twice).
 * Safety is checked on every commit (cluster.ts). Then the network heals, every replica restarts,
 * and new transactions must commit at every correct replica within `livenessBoundMs` of simulated time.
 *
 * Even seeds run the ledger application (docs/ledger.md): 1–4 simulated gateways (gateways.ts) sign
 * production events and submit them with duplicates, shuffled batches, late and lost events and
 * equivocation; byzantine primaries may also reorder, skip, duplicate or replay events. Odd seeds
 * run the opaque transactions, drawing exactly what they drew before the ledger existed. After the
 * heal, every event an honest gateway submitted (up to a lost one or a fork) and a few new ones must
 * be on every correct replica's chain.
 */

import { signConfigTx } from '../../src/consensus/app/config-tx.ts';
import { txIdOf } from '../../src/consensus/app/tx.ts';
import type { Timing } from '../../src/consensus/core/config.ts';
import { keyOf } from '../../src/consensus/core/io.ts';
import { faultsTolerated } from '../../src/consensus/core/quorum.ts';
import { publicKeyRecord } from '../../src/crypto/keys.ts';
import { type Behavior, behaviors, Cluster, ledgerBehaviors, SimulationError, txKey } from './cluster.ts';
import { registryOf, type SimEvent, SimGateway } from './gateways.ts';
import { simKeys } from './keys.ts';
import { Rng } from './rng.ts';

export interface ScenarioOptions {
  seed: number;
  n: number;
  /** Length of the chaos phase; default: random 0.6–2 s of simulated time. */
  chaosMs?: number;
  realKeys?: boolean;
  /** Ledger application (default: even seeds) or opaque transactions. */
  ledger?: boolean;
  trace?: (line: string) => void;
}

export interface ScenarioResult {
  seed: number;
  description: string;
  committedHeight: number;
  /** Simulated ms from heal until every correct replica committed the new transactions. */
  recoveryMs: number;
  simulatedMs: number;
  messages: number;
  bytes: number;
  viewChanges: number;
  sentByType: Record<string, number>;
  /** Ledger scenarios: events on the longest correct chain (0 otherwise). */
  events: number;
}

/** Simulated-time timing, scaled down from production so scenarios stay short. */
export const simTiming: Partial<Timing> = {
  viewChangeTimeoutMs: 100,
  viewChangeTimeoutMaxMs: 1_600,
  proposeDelayMs: 5,
  statusIntervalMs: 100,
  clockDriftMs: 400,
  retentionMs: 1_000,
  txCensorshipTimeoutMs: 2_000,
};

/** After the heal, new transactions must commit everywhere correct within this (simulated ms). */
export const livenessBoundMs = 30_000;

export function runScenario(o: ScenarioOptions): ScenarioResult {
  const rng = new Rng(o.seed);
  const n = o.n;
  const f = faultsTolerated(n);
  const faulty = rng.int(0, f);
  const byzantine = rng.int(0, faulty);
  const order = rng.shuffle([...Array(n).keys()]);
  const byzHosts = order.slice(0, byzantine);
  const lostHosts = order.slice(byzantine, faulty);
  const hostBehaviors: Behavior[] = Array.from({ length: n }, () => 'honest');
  for (const i of byzHosts) hostBehaviors[i] = rng.pick(behaviors.filter((b) => b !== 'honest'));
  const driftMs = simTiming.clockDriftMs!;
  const skewMs = Array.from({ length: n }, () => rng.int(-driftMs / 4, driftMs / 4));
  const flakyLinks = rng.chance(0.3);
  const network = {
    lossP: rng.pick([0, 0, 0.01, 0.05, 0.15]),
    duplicateP: rng.pick([0, 0.02, 0.1]),
    delayMinMs: 1,
    delayMaxMs: rng.int(3, 40),
    lateP: rng.pick([0, 0, 0.01, 0.05]),
    lateMaxMs: rng.int(100, 1_500),
    linkLossP: flakyLinks
      ? Array.from({ length: n }, () => Array.from({ length: n }, () => rng.pick([0, 0, 0.2, 0.6])))
      : undefined,
  };
  // A short T against the network's delays makes view changes strike mid-round, with blocks
  // prepared at some replicas only: the situations the view-change proof exists for.
  const timing = { ...simTiming, viewChangeTimeoutMs: rng.pick([30, 60, 100, 100]) };
  const limits = {
    windowHeights: rng.pick([1, 2, 4]),
    blockTxsMax: rng.pick([4, 16, 64]),
    syncBlocksMax: 8,
  };
  const local = {
    mempoolTxsMax: rng.pick([64, 1_000]),
    retainedHeightsMax: 8,
    futureMessagesPerPeerMax: 32,
    bodiesPerHeightMax: 2,
  };
  const chaosMs = o.chaosMs ?? rng.int(600, 2_000);
  const crashAfterVoteP = rng.pick([0, 0, 0.005, 0.02]);
  // The ledger's draws come from a stream of their own, so the draws above stay what they were.
  const ledgerMode = o.ledger ?? o.seed % 2 === 0;
  const lr = new Rng((o.seed ^ 0x1ed6e4) >>> 0);
  let gateways: SimGateway[] = [];
  let ledgerLimits = {};
  if (ledgerMode) {
    for (const i of byzHosts) if (lr.chance(0.5)) hostBehaviors[i] = lr.pick(ledgerBehaviors);
    const g = lr.int(1, 4);
    const keys = simKeys(lr.fork(), g).signers;
    gateways = keys.map((signer, k) => {
      const home = lr.int(0, n - 1);
      return new SimGateway({
        enterprise: `m${home}`,
        gateway: `gw-${k}`,
        home,
        signer,
        mode: lr.pick(['batch', 'event'] as const),
        faults: {
          duplicateP: lr.pick([0, 0.1, 0.5]),
          shuffleP: lr.pick([0, 0, 0.3]),
          lateP: lr.pick([0, 0.05, 0.2]),
          lossy: lr.chance(0.1),
          equivocating: lr.chance(0.1),
        },
        rng: lr.fork(),
        nowMs: () => cluster.nowMs,
      });
    });
    const held = lr.pick([2, 8, 64]);
    ledgerLimits = { heldPerGatewayMax: held, pendingPerGatewayMax: held + lr.pick([1, 16, 4096]) };
  }
  // Half the ledger seeds with two or more gateways add the last one during the run: its member
  // registers its key by a configuration transaction, signed by the member's identity root. Drawn
  // from a stream of its own, so every other draw of the seed stays what it was.
  const cr = new Rng((o.seed ^ 0xc0f16) >>> 0);
  const roots = ledgerMode ? simKeys(cr.fork(), n).signers : [];
  const configGenesis = {
    chainId: 'sim',
    validators: roots.map((r, i) => ({
      memberId: `m${i}`,
      publicKey: publicKeyRecord(r),
      identityRoot: publicKeyRecord(r),
    })),
  };
  const late = gateways.length >= 2 && cr.chance(0.5) ? gateways[gateways.length - 1]! : undefined;
  if (late) {
    const tx = signConfigTx(
      {
        v: 1,
        chainId: 'sim',
        member: late.enterprise,
        seq: 1,
        op: 'register',
        gateway: late.gateway,
        key: publicKeyRecord(late.signer),
      },
      roots[late.home]!,
    );
    late.registration = { tx, key: keyOf(txIdOf(tx)) };
  }
  const desc = [
    `seed=${o.seed} n=${n}`,
    `byzantine=${byzHosts.map((i) => `${i}:${hostBehaviors[i]}`).join(',') || '-'}`,
    `lostState=${lostHosts.join(',') || '-'}`,
    `loss=${network.lossP}${flakyLinks ? '+links' : ''} dup=${network.duplicateP} delay≤${network.delayMaxMs}ms late=${network.lateP}`,
    `T=${timing.viewChangeTimeoutMs}ms`,
    `window=${limits.windowHeights} blockTxs=${limits.blockTxsMax} mempool=${local.mempoolTxsMax}`,
    `chaos=${chaosMs}ms`,
    `crashAfterVote=${crashAfterVoteP}`,
  ];
  if (ledgerMode) {
    const f = (g: SimGateway) =>
      `${g.chain}@${g.home}:${g.mode}` +
      `${g.faults.duplicateP ? ` dup${g.faults.duplicateP}` : ''}${g.faults.shuffleP ? ' shuffle' : ''}` +
      `${g.faults.lateP ? ` late${g.faults.lateP}` : ''}${g.faults.lossy ? ' lossy' : ''}${g.faults.equivocating ? ' equivocating' : ''}`;
    desc.push(`ledger gateways=[${gateways.map(f).join('; ')}] limits=${JSON.stringify(ledgerLimits)}`);
    if (late) desc.push(`registered during the run: ${late.chain}`);
  }
  const cluster: Cluster = new Cluster({
    n,
    rng: rng.fork(),
    behaviors: hostBehaviors,
    skewMs,
    timing,
    limits,
    local,
    network,
    realKeys: o.realKeys,
    ledger: ledgerMode
      ? {
          registry: registryOf(gateways.filter((g) => g !== late)),
          allKeys: registryOf(gateways),
          genesis: configGenesis,
          limits: ledgerLimits,
        }
      : undefined,
    faulty: lostHosts,
    crashAfterVoteP,
    trace: o.trace,
  });
  cluster.gateways = gateways;
  const events = rng.fork();

  // Clients.
  if (!ledgerMode) {
    for (let t = events.int(0, 20); t < chaosMs; t += events.int(5, 80)) {
      const host = events.int(0, n - 1);
      cluster.at(t, () => cluster.submit(host, cluster.newTx(events.int(8, 64))));
    }
  }
  const gatewayRuns = ledgerMode ? gateways.map((g) => runGateway(cluster, g, lr.fork(), chaosMs)) : [];
  // Swarm testing: each seed draws its own fault intensities, so some seeds are calm and others
  // pile one kind of fault on (many short crashes, many partitions, the primary cut off mid-round).
  const partitions = events.pick([0, 1, 2, 4, 8]);
  for (let p = 0; p < partitions; p++) {
    const start = events.int(0, chaosMs);
    const isolatePrimary = events.chance(0.4);
    const groups = Array.from({ length: n }, () => events.int(0, 1));
    const withPrimary = events.int(0, n - 1);
    cluster.at(start, () => {
      if (isolatePrimary) {
        // Cut off the primary of the view most replicas are in, with one random companion.
        const views = cluster.hosts.map((h) => h.replica?.view ?? 0).sort((a, b) => a - b);
        const primary = views[Math.floor(n / 2)]! % n;
        cluster.partition = cluster.hosts.map((h) =>
          h.index === primary || h.index === withPrimary ? 1 : 0,
        );
      } else cluster.partition = groups;
    });
    cluster.at(start + events.pick([events.int(20, 200), events.int(50, 1_500)]), () => cluster.heal());
  }
  desc.push(`partitions=${partitions}`);
  // Crashes of non-faulty replicas (restart with their persisted state).
  const crashes = events.pick([0, 1, 3, 8]);
  for (let c = 0; c < crashes; c++) {
    const host = events.int(0, n - 1);
    if (hostBehaviors[host] !== 'honest' || lostHosts.includes(host)) continue;
    const at = events.int(0, chaosMs);
    cluster.at(at, () => cluster.crash(host));
    cluster.at(at + events.pick([events.int(5, 100), events.int(20, 1_000)]), () => {
      if (!cluster.hosts[host]!.up) cluster.restart(host, false);
    });
  }
  desc.push(`crashes=${crashes}`);
  // Restarts that lose everything (counted in f).
  for (const host of lostHosts) {
    const at = events.int(Math.floor(chaosMs / 4), chaosMs);
    cluster.at(at, () => cluster.restart(host, true));
  }
  const description = desc.join(' ');

  try {
    cluster.run(chaosMs);
    // Heal: reliable network, everyone up.
    cluster.heal();
    cluster.net = { ...cluster.net, lossP: 0, duplicateP: 0, linkLossP: undefined };
    cluster.crashAfterVoteP = 0;
    for (const h of cluster.hosts) if (!h.up) cluster.restart(h.index, false);
    const healMs = cluster.nowMs;
    const correct = cluster.hosts.filter((h) => cluster.correct(h));
    const wanted: Uint8Array[] = [];
    const count = ledgerMode ? 0 : events.int(1, 5);
    for (const run of gatewayRuns) run.afterHeal();
    for (let i = 0; i < count; i++) {
      const tx = cluster.newTx();
      wanted.push(tx);
      const at = healMs + events.int(0, 50);
      const submitTo = (t: number, tries: number) => {
        const r = cluster.submit(events.pick(correct).index, tx);
        // A full mempool refuses (documented policy); a real client retries.
        if (r && !r.accepted && r.reason === 'mempool-full' && tries < 100)
          cluster.at(t + 100, () => submitTo(t + 100, tries + 1));
      };
      cluster.at(at, () => submitTo(at, 0));
    }
    const keys = wanted.map(txKey);
    // Ledger: every event an honest gateway must get on the ledger (up to a lost event or a fork).
    // The stop condition runs after every simulated step: only what is still missing is looked at
    // (correct replicas never lose what they committed).
    let missing: string[] | null = null;
    const done = () => {
      if (!ledgerMode) return correct.every((h) => keys.every((k) => h.txIndex.has(k)));
      missing ??= [
        ...(late?.registration ? [late.registration.key] : []),
        ...gateways.flatMap((g) => g.mustCommit().map((e) => e.key)),
      ];
      while (missing.length > 0 && correct.every((h) => h.txIndex.has(missing![missing!.length - 1]!)))
        missing.pop();
      return missing.length === 0;
    };
    const live = cluster.run(healMs + livenessBoundMs, done);
    if (!live) {
      const state = cluster.hosts
        .map(
          (h) =>
            `${h.index}:${h.behavior}${h.lostState ? '/lost' : ''} h=${h.store.length} v=${h.replica?.view}${h.replica?.viewChanging ? '*' : ''}`,
        )
        .join(' ');
      const missing = ledgerMode
        ? gateways
            .map((g) => {
              const lacking = g.mustCommit().filter((e) => !correct.every((h) => h.txIndex.has(e.key)));
              return lacking.length ? `${g.chain} seqs ${lacking.map((e) => e.seq).join(',')}` : '';
            })
            .filter(Boolean)
            .join('; ')
        : '';
      throw new SimulationError(
        `LIVENESS: transactions not committed ${livenessBoundMs} ms after heal; ${state}${missing ? `; missing ${missing}` : ''}`,
      );
    }
    let messages = 0;
    for (const v of cluster.stats.sentByType.values()) messages += v;
    return {
      seed: o.seed,
      description,
      committedHeight: Math.max(...correct.map((h) => h.store.length)),
      recoveryMs: cluster.nowMs - healMs,
      simulatedMs: cluster.nowMs,
      messages,
      bytes: cluster.stats.bytesSent,
      viewChanges: Math.max(...cluster.hosts.map((h) => h.replica?.metrics().viewChangesStarted ?? 0)),
      sentByType: Object.fromEntries(cluster.stats.sentByType),
      events: Math.max(...correct.map((h) => [...h.heads.values()].reduce((sum, x) => sum + x.seq, 0))),
    };
  } catch (e) {
    const err = e instanceof Error ? e : new Error(String(e));
    err.message = `${err.message}\n  scenario: ${description}\n  reproduce: SEED=${o.seed} N=${n} npx vitest run test/sim/`;
    throw err;
  }
}

/**
 * Drives one simulated gateway: batches of 1–4 events every 20–200 ms of the chaos phase, submitted
 * in order to its validator (with the gateway's faults), and resubmission of everything not yet
 * committed every 150–400 ms, alternating between its validator and a random other one (a gateway
 * whose validator is down or faulty must still get through).
 */
function runGateway(cluster: Cluster, g: SimGateway, r: Rng, chaosMs: number): { afterHeal(): void } {
  let forkSent = 0;
  const up = () => cluster.hosts.filter((h) => h.up).map((h) => h.index);
  const target = (preferHome: boolean) => {
    const hosts = up();
    if (preferHome && cluster.hosts[g.home]!.up) return g.home;
    return hosts.length > 0 ? r.pick(hosts) : g.home;
  };
  const submit = (e: SimEvent, to: number) => {
    if (e.seq === g.lostSeq) return;
    // Until its registration is committed there, the validator refuses its batches (unknown_key).
    if (g.registration && !cluster.hosts[to]!.txIndex.has(g.registration.key))
      cluster.submit(to, g.registration.tx);
    cluster.submit(to, e.tx);
  };
  const send = (e: SimEvent) => {
    submit(e, target(true));
    if (g.faults.duplicateP > 0 && r.chance(g.faults.duplicateP)) submit(e, target(false));
  };
  const produce = (count: number) => {
    const batch = g.produce(count);
    const late: SimEvent[] = [];
    for (const e of batch) {
      if (g.faults.lateP > 0 && r.chance(g.faults.lateP)) late.push(e);
      else e.released = true;
    }
    const order = g.faults.shuffleP > 0 && r.chance(g.faults.shuffleP) ? r.shuffle([...batch]) : batch;
    for (const e of order) if (e.released) send(e);
    for (const e of late) {
      cluster.at(cluster.nowMs + r.int(50, 500), () => {
        e.released = true;
        send(e);
      });
    }
    if (g.fork && forkSent < 2) {
      forkSent++;
      cluster.submit(target(false), g.fork.tx);
    }
  };
  for (let t = r.int(0, 50); t < chaosMs; t += r.int(60, 400)) cluster.at(t, () => produce(r.int(1, 3)));
  let round = 0;
  const period = r.int(150, 400);
  const resubmit = () => {
    const to = target(round++ % 2 === 0);
    const host = cluster.hosts[to]!;
    if (g.registration && !host.txIndex.has(g.registration.key)) cluster.submit(to, g.registration.tx);
    for (const e of g.unsent((key) => host.txIndex.has(key), 16)) cluster.submit(to, e.tx);
    cluster.at(cluster.nowMs + period, resubmit);
  };
  cluster.at(period, resubmit);
  return {
    afterHeal() {
      produce(r.int(1, 3));
      if (g.fork) cluster.submit(target(false), g.fork.tx);
    },
  };
}
