/**
 * Measures consensus messages and bytes per committed block against the number of validators,
 * in the simulator, fault-free (PBFT's normal case is O(n²) messages per block) and with one view
 * change. Prints a Markdown table (docs/consensus.md quotes it).
 *
 *   node test/sim/messages.ts            # n = 4 7 10 13 16 22 31
 *   NS=4,7 BLOCKS=50 node test/sim/messages.ts
 */
import { Cluster } from './cluster.ts';
import { Rng } from './rng.ts';
import { simTiming } from './scenario.ts';

const ns = (process.env.NS ?? '4,7,10,13,16,22,31').split(',').map(Number);
const blocks = Number(process.env.BLOCKS ?? 40);
const txsPerBlock = 16;

interface Row {
  n: number;
  perBlock: Record<string, number>;
  bytesPerBlock: number;
  statusPerSecond: number;
  viewChangeMessages: number;
  wallMs: number;
}

function measure(n: number): Row {
  const t0 = performance.now();
  const c = new Cluster({
    n,
    rng: new Rng(n),
    timing: { ...simTiming, viewChangeTimeoutMs: 400, viewChangeTimeoutMaxMs: 6_400 },
    limits: { windowHeights: 1, blockTxsMax: txsPerBlock },
    network: { delayMinMs: 1, delayMaxMs: 5 },
  });
  // One full block per round: the primary proposes as soon as it has txsPerBlock transactions.
  let t = 10;
  for (let b = 0; b < blocks; b++) {
    for (let i = 0; i < txsPerBlock; i++) {
      const tx = c.newTx(200);
      c.at(t, () => c.submit(0, tx));
    }
    t += 60;
  }
  const done = () => c.hosts.every((h) => h.store.length >= blocks);
  if (!c.run(t + 20_000, done))
    throw new Error(`n=${n}: only ${Math.min(...c.hosts.map((h) => h.store.length))} blocks`);
  const perBlock: Record<string, number> = {};
  let status = 0;
  for (const [type, count] of c.stats.sentByType) {
    if (type === 'status') status = count;
    else perBlock[type] = +(count / blocks).toFixed(1);
  }
  const statusBytes = 0; // status messages are small; bytes below count everything
  const row: Row = {
    n,
    perBlock,
    bytesPerBlock: Math.round((c.stats.bytesSent - statusBytes) / blocks),
    statusPerSecond: Math.round(status / (c.nowMs / 1000)),
    viewChangeMessages: 0,
    wallMs: 0,
  };
  // One view change: crash the primary, then count VIEW-CHANGE and NEW-VIEW messages until it completes.
  const before = new Map(c.stats.sentByType);
  c.crash(0);
  const tx = c.newTx(200);
  c.submit(1, tx);
  const moved = () => c.hosts.every((h) => !h.up || (h.replica!.view >= 1 && !h.replica!.viewChanging));
  if (!c.run(c.nowMs + 60_000, moved)) throw new Error(`n=${n}: view change did not complete`);
  row.viewChangeMessages =
    (c.stats.sentByType.get('view-change') ?? 0) -
    (before.get('view-change') ?? 0) +
    (c.stats.sentByType.get('new-view') ?? 0) -
    (before.get('new-view') ?? 0);
  row.wallMs = Math.round(performance.now() - t0);
  return row;
}

const rows = ns.map(measure);
const types = ['pre-prepare', 'prepare', 'commit', 'txs'];
console.log(
  `| n | ${types.join(' | ')} | all / block | bytes / block | status / s | VC+NV msgs (one view change) |`,
);
console.log(`|---|${types.map(() => '---').join('|')}|---|---|---|---|`);
for (const r of rows) {
  const all = Object.values(r.perBlock).reduce((a, b) => a + b, 0);
  console.log(
    `| ${r.n} | ${types.map((t) => r.perBlock[t] ?? 0).join(' | ')} | ${all.toFixed(0)} | ${r.bytesPerBlock} | ${r.statusPerSecond} | ${r.viewChangeMessages} |`,
  );
}
console.log(
  `\n${blocks} blocks of ${txsPerBlock} transactions (200 B) per n; wall time ${rows.map((r) => `n=${r.n}: ${r.wallMs} ms`).join(', ')}`,
);
