/**
 * Where a validator's memory goes under sustained load: a 4-validator cluster of `peer` processes
 * takes batches as the consensus bench submits them, then each validator's own Prometheus metrics
 * (prom-client's process and Node.js defaults on its status server) give RSS, V8 heap (total and
 * used), external memory and array buffers. Run alone: `node bench/mem-probe.ts` (EVENTS=80000).
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  followCommits,
  Gateway,
  startCluster,
  submitInOrder,
  waitFor,
} from '../test/consensus/cluster/peers.ts';

const events = Number(process.env.EVENTS ?? 80_000);
const dir = mkdtempSync(join(tmpdir(), 'masbc-mem-'));
const cluster = await startCluster(dir, 4, { viewChangeTimeoutMs: 2_000, statusIntervalMs: 1_000 });
const mib = (x: number) => `${(x / 2 ** 20).toFixed(0)} MiB`;
try {
  const gateways = cluster.peers.map((p) => new Gateway(cluster.files, p.member, 100));
  const stream = await followCommits(cluster.peers[0]!);
  const ids: string[] = [];
  await Promise.all(
    cluster.peers.map(async (peer, g) => {
      for (let done = 0; done < events / 4; done += 2_000) {
        const s = gateways[g]!.events(2_000, 100);
        ids.push(...s.ids);
        // At most ~8,000 events of this gateway in flight, like a submitter's window.
        await waitFor(() => ids.filter((id) => !stream.seen.has(id)).length < 320, 'window', 120_000, 20);
        await submitInOrder(peer, s.bytes, stream, s.bodies);
      }
    }),
  );
  await waitFor(() => ids.every((id) => stream.seen.has(id)), 'all committed', 300_000, 50);
  stream.close();
  for (const p of cluster.peers) {
    const url = /status (http:\/\/\S+)/.exec(p.output.join('\n'))?.[1];
    if (!url) throw new Error(`${p.member}: no status URL`);
    const text = await (await fetch(new URL('metrics', url))).text();
    const get = (name: string) =>
      Number(new RegExp(`^${name}(?:\\{[^}]*\\})? (\\S+)$`, 'm').exec(text)?.[1] ?? Number.NaN);
    console.log(
      `${p.member}: rss ${mib(get('process_resident_memory_bytes'))}, heap total ${mib(get('nodejs_heap_size_total_bytes'))}, heap used ${mib(get('nodejs_heap_size_used_bytes'))}, external ${mib(get('nodejs_external_memory_bytes'))}`,
    );
  }
} finally {
  await cluster.stopAll();
  rmSync(dir, { recursive: true, force: true });
}
