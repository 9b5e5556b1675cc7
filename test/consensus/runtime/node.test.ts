/**
 * The runtime over the in-memory transport with real SQLite stores, the ledger and real signed
 * events of the gateways the genesis registers: commits, identical stores, certificates and proofs,
 * the store's upserts against `applyRecord`, refusals counted by reason, restart from the store,
 * and a clean stop. The ledger state's persistence has its own file (ledger-state.test.ts).
 */
import Database from 'better-sqlite3';
import { afterEach, describe, expect, it } from 'vitest';
import type { PersistedState } from '../../../src/consensus/core/io.ts';
import { MemoryNetwork } from '../../../src/consensus/net/memory.ts';
import { ChainCorruptionError, verifyInclusionProof } from '../../../src/consensus/runtime/block-store.ts';
import { monotonicWallClock } from '../../../src/consensus/runtime/clock.ts';
import {
  type CommittedBlockEvent,
  chainContext,
  NodeNotRunningError,
} from '../../../src/consensus/runtime/node.ts';
import { encodeCanonical } from '../../../src/crypto/canonical.ts';
import { toHex } from '../../../src/crypto/hash.ts';
import { createLocalAlliance } from '../../../src/devtools/local-alliance.ts';
import { tempDir } from '../../helpers/tmp.ts';
import { type MemoryAlliance, memoryAlliance, openNode, until } from './cluster-fixture.ts';
import { signEvents, strangerGateway } from './events-fixture.ts';

let cluster: MemoryAlliance | undefined;
afterEach(async () => {
  await cluster?.stopAll();
  cluster = undefined;
});

/** Comparable form of a persisted state (record order does not matter, bytes as hex). */
function comparable(s: PersistedState) {
  const enc = (v: unknown) =>
    toHex(encodeCanonical(JSON.parse(JSON.stringify(v, (_, x) => (x instanceof Uint8Array ? toHex(x) : x)))));
  return {
    view: s.view,
    viewChanging: s.viewChanging,
    newView: s.newView ? enc(s.newView) : null,
    votes: s.votes.map(enc).sort(),
    prepared: s.prepared.map(enc).sort(),
  };
}

describe('ConsensusNode over the in-memory transport', () => {
  it('commits submitted events exactly once, identical on every replica, with valid certificates and proofs', async () => {
    cluster = await memoryAlliance(4, { gateways: 2 });
    const gws = cluster.gateways;
    for (const m of cluster.members) await cluster.start(m);
    const nodes = [...cluster.nodes.values()];
    const finalised = new Map<string, number>();
    nodes[1]!.onCommitted((e: CommittedBlockEvent) => {
      for (const id of e.txIds) finalised.set(toHex(id), e.height);
    });
    const submitted: string[] = [];
    for (let round = 0; round < 5; round++) {
      for (const [i, gw] of gws.gateways.entries()) {
        const { txIds, bytes } = signEvents(gw, 100, 10);
        const results = nodes[(round + i) % 4]!.submit(bytes);
        expect(results.every((r) => r.accepted)).toBe(true);
        submitted.push(...txIds);
      }
    }
    await until(() => submitted.every((id) => finalised.has(id)), 'every event final at member-2');
    const height = nodes[1]!.store.height;
    await until(() => nodes.every((n) => n.store.height >= height), 'every replica at the same height');

    // Same blocks everywhere, every tx once, chain verifies from the genesis.
    const ref = nodes[0]!.store;
    for (const n of nodes) {
      expect(n.store.verifyChain()).toBeGreaterThanOrEqual(height);
      for (let h = 1; h <= height; h++) {
        expect(toHex(n.store.blockAt(h)!.certificate.blockHash)).toBe(
          toHex(ref.blockAt(h)!.certificate.blockHash),
        );
      }
    }
    let onChain = 0;
    for (let h = 1; h <= height; h++) onChain += ref.blockAt(h)!.block.txs.length;
    expect(onChain).toBe(submitted.length);
    expect(ref.txCount()).toBe(submitted.length);
    const ctx = chainContext(cluster.alliance.genesis);
    for (const id of [submitted[0]!, submitted[37]!, submitted.at(-1)!]) {
      const proof = ref.inclusionProof(Buffer.from(id, 'hex'))!;
      expect(verifyInclusionProof(ctx, proof)).toBeNull();
      proof.index = (proof.index + 1) % proof.txCount;
      expect(verifyInclusionProof(ctx, proof)).not.toBeNull();
    }

    // Replayed and forged batches are refused and counted by reason.
    const replay = nodes[2]!.submit(signEvents(gws.gateways[0]!, 1).bytes);
    expect(replay[0]!.accepted).toBe(true);
    const again = nodes[3]!.submit(signEvents(gws.gateways[0]!, 1).bytes);
    expect(again[0]!.accepted).toBe(true);
    const old = ref.blockAt(1)!.block.txs[0]!;
    // The last digit of the last envelope's source time (`…NNN,"v":2}`): still a valid envelope, but
    // its id is no longer a leaf of the root the batch signed.
    const forged = signEvents(gws.gateways[1]!, 1).bytes[0]!.slice();
    forged[forged.length - 8] = forged[forged.length - 8]! ^ 1;
    const stranger = signEvents(strangerGateway(), 1).bytes[0]!;
    const results = nodes[0]!.submit([old, forged, stranger, new TextEncoder().encode('{"not":"a batch"}')]);
    expect(results.map((r) => (r.accepted ? 'ok' : r.reason))).toEqual([
      'committed',
      'invalid',
      'invalid',
      'invalid',
    ]);
    const st = nodes[0]!.status();
    expect(st.refusals.committed).toBe(1);
    expect(st.refusals.invalid).toBe(3);
    expect(st.invalidTxs).toEqual({ root_mismatch: 1, unknown_key: 1, malformed: 1 });
    expect(cluster.stateLag).toEqual([]);
  });

  it('saves exactly the state applyRecord gives, restarts from it and catches up', async () => {
    cluster = await memoryAlliance(4, { gateways: 1 });
    const gws = cluster.gateways;
    for (const m of cluster.members) await cluster.start(m);
    const [a, , , d] = cluster.members.map((m) => cluster!.nodes.get(m)!);
    a!.submit(signEvents(gws.gateways[0]!, 50).bytes);
    await until(() => d!.store.height >= 1 && d!.status().mempoolTxs === 0, 'first commits');
    for (const [m, node] of cluster.nodes) {
      expect(comparable(node.store.loadPersistedState()), m).toEqual(comparable(cluster.reference.get(m)!));
    }

    // Stop member-4, commit more without it, restart it from its store: it syncs certified blocks.
    const before = d!.store.height;
    await d!.stop();
    expect(d!.state).toBe('stopped');
    const sentAtStop = JSON.stringify(d!.metrics().transport);
    // More blocks than the pipeline window (4 heights), so that retransmitted COMMITs of the
    // heights in flight cannot bring it up to date: only sync can.
    for (let i = 0; i < 12; i++) {
      const h = a!.store.height;
      a!.submit(signEvents(gws.gateways[0]!, 20).bytes);
      await until(() => a!.store.height > h, `commit ${i + 1} without member-4`);
    }
    expect(JSON.stringify(d!.metrics().transport)).toBe(sentAtStop);

    const missed = a!.store.height;
    expect(missed - before, 'blocks member-4 missed').toBeGreaterThan(2 * 4);
    const servedBefore = [...cluster.nodes.values()].reduce((n, x) => n + x.metrics().sync.servedBlocks, 0);
    const restarted = await cluster.start('member-4'); // a fresh transport and a reopened store
    await until(() => restarted.store.height >= a!.store.height, 'member-4 catches up');
    // Part of it by sync: it asked a peer that reported more blocks, and was served blocks with their
    // certificates (the rest can come from COMMITs and proposal answers; verifyChain below checks
    // every stored block's certificate).
    expect(restarted.metrics().sync.requested).toBeGreaterThan(0);
    const served = [...cluster.nodes.entries()]
      .filter(([m]) => m !== 'member-4')
      .reduce((n, [, x]) => n + x.metrics().sync.servedBlocks, 0);
    expect(served - servedBefore).toBeGreaterThan(0);
    expect(restarted.metrics().core.committedHeight).toBe(restarted.store.height);
    expect(restarted.store.verifyChain()).toBe(restarted.store.height);
  });

  it('reports a corrupt block as corruption, not as data', async () => {
    cluster = await memoryAlliance(4, { gateways: 1 });
    const gws = cluster.gateways;
    for (const m of cluster.members) await cluster.start(m);
    const a = cluster.nodes.get('member-1')!;
    // Two blocks at least, so that the damaged one (height 1) is not the tip, which opening reads.
    a.submit(signEvents(gws.gateways[0]!, 10).bytes);
    await until(() => a.store.height >= 1, 'a commit');
    a.submit(signEvents(gws.gateways[0]!, 10).bytes);
    await until(() => a.store.height >= 2, 'a second commit');
    const path = a.store.path;
    await cluster.stopAll();
    const db = new Database(path);
    const row = db.prepare('SELECT data FROM blocks WHERE height = 1').get() as { data: Buffer };
    const data = Buffer.from(row.data);
    data.writeUInt8(data.readUInt8(data.length - 10) ^ 1, data.length - 10);
    db.prepare('UPDATE blocks SET data = ? WHERE height = 1').run(data);
    db.close();
    const { ChainStore } = await import('../../../src/consensus/runtime/block-store.ts');
    const store = ChainStore.open({
      path,
      chain: chainContext(cluster.alliance.genesis),
      txId: () => new Uint8Array(32),
    });
    try {
      expect(() => store.blockAt(1)).toThrow(ChainCorruptionError);
      expect(() => store.verifyChain()).toThrow(/blocks height 1 is corrupt: checksum mismatch/);
    } finally {
      store.close();
    }
  });

  it('stops itself, sending nothing more, when the store cannot save', async () => {
    cluster = await memoryAlliance(4, { gateways: 1 });
    const gws = cluster.gateways;
    for (const m of cluster.members) await cluster.start(m);
    const b = cluster.nodes.get('member-2')!;
    const transport = cluster.net.transport('member-2');
    let failing = false;
    let sentAfterFailure = 0;
    for (const method of ['send', 'broadcast'] as const) {
      const original = transport[method].bind(transport) as (...args: unknown[]) => void;
      (transport as unknown as Record<string, unknown>)[method] = (...args: unknown[]) => {
        if (failing) sentAfterFailure++;
        original(...args);
      };
    }
    b.store.save = () => {
      failing = true;
      throw new Error('disk full');
    };
    // The primary proposes; member-2 must persist its PREPARE before sending it, and cannot.
    cluster.nodes.get('member-1')!.submit(signEvents(gws.gateways[0]!, 5).bytes);
    await b.closed;
    expect(b.state).toBe('failed');
    expect(b.status().problem).toMatch(/disk full/);
    expect(sentAfterFailure).toBe(0);
    expect(() => b.submit([])).toThrow(NodeNotRunningError);
  });
});

describe('ConsensusNode configuration', () => {
  it('refuses a mempool larger than half the ledger remembers verdicts for, before anything starts', async () => {
    const alliance = await createLocalAlliance({ dir: tempDir('node-bounds'), members: 4 });
    const net = new MemoryNetwork(alliance.genesis);
    const open = (mempoolTxsMax: number) =>
      openNode(alliance, 'member-1', net.transport('member-1'), tempDir('node-bounds-data'), {
        local: { mempoolTxsMax },
      });
    // defaultLedgerLimits.verdictsMax is 16,384: 8,192 pending fit, one more does not.
    expect(() => open(8_193)).toThrow(/remembers 16384 transaction verdicts; .* at least 16386/);
    const fits = open(8_192);
    expect(fits.state).toBe('new');
    fits.store.close();
  });
});

describe('monotonicWallClock', () => {
  it('never goes back, keeps running when the wall clock is stepped back, follows it forward', () => {
    let wall = 1_000_000;
    let mono = 0;
    const clock = monotonicWallClock(
      () => wall,
      () => mono,
      1_000,
    );
    expect(clock.nowMs()).toBe(1_000_000);
    mono += 500;
    wall -= 3_600_000; // NTP steps the wall clock back an hour
    expect(clock.nowMs()).toBe(1_000_500); // timers keep running at the monotonic rate
    mono += 500;
    expect(clock.nowMs()).toBe(1_001_000);
    wall = 2_000_000; // stepped far forward: followed
    expect(clock.nowMs()).toBe(2_000_000);
    mono += 10;
    expect(clock.nowMs()).toBe(2_000_010);
  });
});
