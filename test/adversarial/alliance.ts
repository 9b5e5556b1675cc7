/**
 * The adversarial suite's alliance: four `masbc-edge peer` processes on loopback (T = 1 s), a
 * legitimate client that keeps submitting real signed events while an attack runs, and the checks
 * every attack test ends with: the client's events committed within a bound, every one exactly
 * once, and every replica at the same height with the same blocks (nothing lost, nothing forked).
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { expect } from 'vitest';
import { toHex } from '../../src/crypto/hash.ts';
import { decodeBatchTx } from '../../src/event/batch.ts';
import {
  blockKey,
  type Cluster,
  type CommitStream,
  followCommits,
  Gateway,
  type PeerProcess,
  startCluster,
  waitFor,
} from '../consensus/cluster/peers.ts';
import { tcpTarget } from './tools.ts';

/** The view-change timeout of the suite's genesis. */
export const T = 1_000;
/**
 * What a legitimate batch may take from submission to commit, attack or not: a view change costs
 * about 2T, a reconnection a redial (at most 5 s); the rest is slack for a loaded CI machine.
 */
export const legitLatencyMaxMs = 8 * T + 5_000;

export interface Alliance {
  cluster: Cluster;
  dir: string;
  /** The libp2p host and port of each validator. */
  p2p: { host: string; port: number }[];
  /** Each member's test gateway, one per alliance: its events form one seq chain across tests. */
  gateway(member: string): Gateway;
  stop(): Promise<void>;
}

export async function startAlliance(peerArgs?: (member: string) => string[]): Promise<Alliance> {
  const dir = mkdtempSync(join(tmpdir(), 'masbc-adversarial-'));
  const cluster = await startCluster(dir, 4, {
    viewChangeTimeoutMs: T,
    statusIntervalMs: 200,
    ...(peerArgs ? { peerArgs } : {}),
  });
  const p2p = cluster.files.alliance.genesis.validators.map((v) => tcpTarget(v.addrs[0]!));
  await waitFor(
    async () =>
      (await Promise.all(cluster.peers.map((p) => p.status()))).every((s) => s.peersConnected === 3),
    'all validators connected',
    20_000,
  );
  const gateways = new Map<string, Gateway>();
  return {
    cluster,
    dir,
    p2p,
    gateway(member) {
      const g = gateways.get(member) ?? new Gateway(cluster.files, member, 10);
      gateways.set(member, g);
      return g;
    },
    async stop() {
      await cluster.stopAll();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

/**
 * A legitimate client: a batch of 10 events of `member`'s test gateway every `everyMs` to `peer`,
 * each waited for until it commits (resubmitted if refused or unanswered, in order, as the
 * gateway's submitter does). Records each batch's latency, submission to commit seen on `peer`.
 */
export async function legitimateClient(a: Alliance, peer: PeerProcess, everyMs = 300) {
  const gateway = a.gateway(peer.member);
  const stream: CommitStream = await followCommits(peer);
  const sent: { ids: string[]; t0: number }[] = [];
  const errors: string[] = [];
  let stopped = false;
  const loop = (async () => {
    while (!stopped) {
      const { ids, bytes } = gateway.events(10);
      sent.push({ ids, t0: Date.now() });
      for (;;) {
        const ok = await peer
          .submit(bytes)
          .then((rs) => rs.every((r) => r.accepted || r.reason === 'duplicate' || r.reason === 'committed'))
          .catch((err: Error) => {
            errors.push(err.message);
            return false;
          });
        if (ok || stopped) break;
        await new Promise((r) => setTimeout(r, 200));
      }
      await new Promise((r) => setTimeout(r, everyMs));
    }
  })();
  const latencies = () =>
    sent.flatMap(({ ids, t0 }) => {
      const at = ids.map((id) => stream.seen.get(id));
      return at.every((x) => x !== undefined) ? [Math.max(...(at as number[])) - t0] : [];
    });
  return {
    gateway,
    stream,
    sent,
    errors,
    latencies,
    /** Stops submitting; resolves once every batch sent committed (or throws after the bound). */
    async stop(): Promise<{ batches: number; latencyMaxMs: number }> {
      stopped = true;
      await loop;
      await waitFor(
        () => latencies().length === sent.length,
        `the legitimate client's ${sent.length} batches to commit`,
        legitLatencyMaxMs,
      );
      stream.close();
      return { batches: sent.length, latencyMaxMs: Math.max(...latencies()) };
    },
  };
}

/**
 * The end of every attack test: every replica reaches the same height with the same blocks, and
 * every batch the client sent (`ids`: transaction ids, hex) is on chain exactly once.
 */
export async function expectNothingLost(a: Alliance, ids: readonly string[]): Promise<void> {
  const peers = a.cluster.peers;
  let height = 0;
  await waitFor(
    async () => {
      const hs = await Promise.all(peers.map(async (p) => (await p.status()).committedHeight));
      height = hs[0]!;
      return hs.every((h) => h === height);
    },
    'every replica at the same height',
    legitLatencyMaxMs,
  );
  const onChain = new Map<string, number>();
  for (let h = 1; h <= height; h++) {
    const blocks = await Promise.all(peers.map((p) => p.block(h)));
    expect(new Set(blocks.map(blockKey)).size, `height ${h}: one block on every replica`).toBe(1);
    for (const tx of blocks[0]!.block.txs) {
      const d = decodeBatchTx(tx);
      if (!d.ok) throw new Error(`height ${h}: ${d.message}`);
      const id = toHex(d.batch.txId);
      onChain.set(id, (onChain.get(id) ?? 0) + 1);
    }
  }
  for (const id of ids) expect(onChain.get(id), `batch ${id} on chain once`).toBe(1);
}
