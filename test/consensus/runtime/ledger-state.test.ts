/**
 * The ledger's state in the block store (node/ledger.ts, ChainStore `appState`): saved in the same
 * SQLite transaction as the blocks that changed it, loaded at start, rebuilt from stored blocks when
 * it is missing, and reported as corruption when a row is damaged. Four in-process validators over
 * the memory transport, real SQLite, real signed events of the gateways the genesis registers.
 */
import Database from 'better-sqlite3';
import { afterEach, describe, expect, it } from 'vitest';
import type { LedgerMetrics } from '../../../src/consensus/app/ledger.ts';
import { gatewayRegistryOf } from '../../../src/consensus/app/registry.ts';
import {
  applyBlock,
  encodeLedgerState,
  genesisLedgerState,
  type LedgerState,
} from '../../../src/consensus/app/state.ts';
import { txIdOf } from '../../../src/consensus/app/tx.ts';
import type { Genesis } from '../../../src/consensus/genesis/genesis.ts';
import { ChainCorruptionError, ChainStore } from '../../../src/consensus/runtime/block-store.ts';
import { ledgerStateFromRows, openLedger } from '../../../src/consensus/runtime/ledger.ts';
import { ConsensusNode, chainContext } from '../../../src/consensus/runtime/node.ts';
import { encodeCanonical } from '../../../src/crypto/canonical.ts';
import { sha256 } from '../../../src/crypto/hash.ts';
import { loadKeyFile } from '../../../src/crypto/keys.ts';
import { type MemoryAlliance, memoryAlliance, until } from './cluster-fixture.ts';
import { signEvents } from './events-fixture.ts';

let cluster: MemoryAlliance | undefined;
afterEach(async () => {
  await cluster?.stopAll();
  cluster = undefined;
});

/** The ledger state obtained by folding every stored block from the genesis (the reference). */
function replayed(genesis: Genesis, store: ChainStore): LedgerState {
  let state = genesisLedgerState(genesis.hashBytes);
  for (let h = 1; h <= store.height; h++) state = applyBlock(state, store.blockAt(h)!.block);
  return state;
}

/** The ledger state the store holds, as `openLedger` reads it. */
function stored(genesis: Genesis, store: ChainStore): LedgerState {
  return ledgerStateFromRows(store.loadAppState(), new Set(gatewayRegistryOf(genesis).chains()));
}

function openStore(genesis: Genesis, path: string): ChainStore {
  return ChainStore.open({ path, chain: chainContext(genesis), txId: txIdOf });
}

/** Submits `rounds` × `count` events (a batch each) of every gateway, each gateway to its own validator, and waits for all of them everywhere. */
async function commitRounds(c: MemoryAlliance, rounds: number, count: number, only?: string[]) {
  const members = only ?? c.members;
  const ids: string[] = [];
  for (let r = 0; r < rounds; r++) {
    for (const [i, gw] of c.gateways.gateways.entries()) {
      const { txIds, bytes } = signEvents(gw, count);
      const results = c.nodes.get(members[(i + r) % members.length]!)!.submit(bytes);
      expect(results.filter((x) => !x.accepted)).toEqual([]);
      ids.push(...txIds);
    }
  }
  const nodes = members.map((m) => c.nodes.get(m)!);
  await until(
    () => nodes.every((n) => ids.every((id) => n.store.hasTx(Buffer.from(id, 'hex')))),
    'every event committed on every running validator',
  );
  return ids;
}

describe('the ledger state in the block store', () => {
  it('is saved with every block: after a restart it equals a replay from the genesis, and the chains go on', async () => {
    cluster = await memoryAlliance(4, { gateways: 3 });
    const { genesis } = cluster.alliance;
    for (const m of cluster.members) await cluster.start(m);
    await commitRounds(cluster, 3, 40);
    for (const node of cluster.nodes.values()) {
      expect(encodeLedgerState(stored(genesis, node.store))).toBe(
        encodeLedgerState(replayed(genesis, node.store)),
      );
    }

    // member-4 stops, the others go on, it restarts from its store and catches up by sync.
    const d = cluster.nodes.get('member-4')!;
    await d.stop();
    await commitRounds(cluster, 2, 30, ['member-1', 'member-2', 'member-3']);
    const restarted = await cluster.start('member-4');
    const target = cluster.nodes.get('member-1')!.store.height;
    await until(() => restarted.store.height >= target, 'member-4 catches up');
    expect((restarted.metrics().app as LedgerMetrics).height).toBe(restarted.store.height);
    // Its chains continue where the ledger left them: new events commit, old ones are replays.
    const ids = await commitRounds(cluster, 1, 10, ['member-4']);
    expect(ids).toHaveLength(30);
    const old = restarted.store.blockAt(1)!.block.txs[0]!;
    expect(restarted.submit([old])[0]).toMatchObject({ accepted: false, reason: 'committed' });
    for (const node of cluster.nodes.values()) {
      const state = stored(genesis, node.store);
      expect(state.height).toBe(node.store.height);
      expect(encodeLedgerState(state)).toBe(encodeLedgerState(replayed(genesis, node.store)));
      expect(state.heads.size).toBe(3);
    }
    expect(cluster.stateLag).toEqual([]);
  });

  it('is read by another process as one snapshot while the validator commits (chain verify)', async () => {
    cluster = await memoryAlliance(4, { gateways: 2 });
    const { genesis } = cluster.alliance;
    for (const m of cluster.members) await cluster.start(m);
    await commitRounds(cluster, 1, 20);
    const writer = cluster.nodes.get('member-1')!.store;
    const reader = openStore(genesis, writer.path);
    try {
      const seen = reader.height;
      await commitRounds(cluster, 1, 20); // blocks and ledger state committed under the reader
      expect(writer.height).toBeGreaterThan(seen);
      // Outside a snapshot, the tip read at open and the state read now disagree: not corruption.
      expect(() => reader.loadAppState()).toThrow(ChainCorruptionError);
      const state = reader.snapshot(() => {
        expect(reader.height).toBe(writer.height);
        return stored(genesis, reader);
      });
      expect(state.height).toBe(writer.height);
      expect(encodeLedgerState(state)).toBe(encodeLedgerState(replayed(genesis, reader)));
    } finally {
      reader.close();
    }
  });

  it('is rebuilt from the stored blocks when the store has none (written before it was kept)', async () => {
    cluster = await memoryAlliance(4, { gateways: 2 });
    const { genesis } = cluster.alliance;
    for (const m of cluster.members) await cluster.start(m);
    await commitRounds(cluster, 2, 25);
    const paths = [...cluster.nodes.values()].map((n) => n.store.path);
    await cluster.stopAll();
    for (const path of paths) {
      const db = new Database(path);
      db.exec('DELETE FROM app_state; DELETE FROM app_state_tip;');
      db.close();
    }
    const store = openStore(genesis, paths[0]!);
    try {
      expect(store.loadAppState()).toMatchObject({ height: 0, rows: new Map() });
      const { ledger, replayedBlocks } = openLedger(genesis, store);
      expect(replayedBlocks).toBe(store.height);
      expect(encodeLedgerState(ledger.state)).toBe(encodeLedgerState(replayed(genesis, store)));
      expect(encodeLedgerState(stored(genesis, store))).toBe(encodeLedgerState(ledger.state)); // saved
    } finally {
      store.close();
    }
    // The whole alliance restarts on those stores and goes on committing in order.
    for (const m of cluster.members) await cluster.start(m);
    await commitRounds(cluster, 1, 10);
    expect(cluster.stateLag).toEqual([]);
  });

  it('and the blocks are saved in one transaction: a failure saving the state saves neither', async () => {
    cluster = await memoryAlliance(4, { gateways: 1 });
    const { genesis } = cluster.alliance;
    for (const m of cluster.members) await cluster.start(m);
    await commitRounds(cluster, 1, 20);
    const b = cluster.nodes.get('member-2')!;
    const heightBefore = b.store.height;
    // Every later write of the state fails, after the blocks of the same transaction were written.
    const db = new Database(b.store.path);
    db.exec(`
      CREATE TRIGGER fail_insert BEFORE INSERT ON app_state_tip BEGIN SELECT RAISE(ABORT, 'injected failure'); END;
      CREATE TRIGGER fail_update BEFORE UPDATE ON app_state_tip BEGIN SELECT RAISE(ABORT, 'injected failure'); END;
    `);
    db.close();
    const gw = cluster.gateways.gateways[0]!;
    cluster.nodes.get('member-1')!.submit(signEvents(gw, 20).bytes);
    await b.closed;
    expect(b.state).toBe('failed');
    expect(b.status().problem).toMatch(/injected failure/);
    const fix = new Database(b.store.path);
    fix.exec('DROP TRIGGER fail_insert; DROP TRIGGER fail_update;');
    fix.close();
    const store = openStore(genesis, b.store.path);
    try {
      expect(store.height).toBe(heightBefore); // the block was not kept without its state
      expect(store.loadAppState().height).toBe(heightBefore);
      expect(encodeLedgerState(stored(genesis, store))).toBe(encodeLedgerState(replayed(genesis, store)));
    } finally {
      store.close();
    }
    const restarted = await cluster.start('member-2');
    const target = cluster.nodes.get('member-1')!.store.height;
    await until(() => restarted.store.height >= target, 'member-2 catches up');
    expect(encodeLedgerState(stored(genesis, restarted.store))).toBe(
      encodeLedgerState(replayed(genesis, restarted.store)),
    );
  });

  it('reports a damaged state row as corruption, naming it, and the runtime refuses a state not at the tip', async () => {
    cluster = await memoryAlliance(4, { gateways: 2 });
    const { genesis } = cluster.alliance;
    for (const m of cluster.members) await cluster.start(m);
    await commitRounds(cluster, 1, 10);
    const a = cluster.nodes.get('member-1')!;
    const path = a.store.path;
    await cluster.stopAll();
    const chain = cluster.gateways.gateways[1]!.chain;
    const db = new Database(path);
    const row = db.prepare('SELECT data, checksum FROM app_state WHERE key = ?').get(chain) as {
      data: Buffer;
      checksum: Buffer;
    };
    const tip = db.prepare('SELECT data FROM app_state_tip').get() as { data: Buffer };
    const setRow = (data: Uint8Array, checksum: Uint8Array) =>
      db.prepare('UPDATE app_state SET data = ?, checksum = ? WHERE key = ?').run(data, checksum, chain);
    const expectCorrupt = (table: string, key: string, why: RegExp) => {
      const store = openStore(genesis, path);
      try {
        let error: unknown;
        try {
          openLedger(genesis, store);
        } catch (err) {
          error = err;
        }
        expect(error).toBeInstanceOf(ChainCorruptionError);
        expect(error).toMatchObject({ table, key });
        expect((error as Error).message).toMatch(why);
      } finally {
        store.close();
      }
    };
    try {
      // One flipped byte.
      const flipped = Buffer.from(row.data);
      flipped[flipped.length - 3]! ^= 1;
      setRow(flipped, row.checksum);
      expectCorrupt('app_state', chain, /checksum mismatch/);
      // A row moved to another key keeps its bytes but not its checksum (the key is covered).
      const other = cluster.gateways.gateways[0]!.chain;
      const moved = db.prepare('SELECT data, checksum FROM app_state WHERE key = ?').get(other) as typeof row;
      setRow(moved.data, moved.checksum);
      expectCorrupt('app_state', chain, /checksum mismatch/);
      // Well-checksummed, but not a head the ledger could have written.
      const bogus = encodeCanonical({ id: '0'.repeat(64), seq: 0 });
      setRow(bogus, sha256(Buffer.from(chain), Buffer.from([0]), bogus));
      expectCorrupt('app_state', chain, /not a gateway head/);
      setRow(row.data, row.checksum);
      // The tip record.
      const badTip = Buffer.from(tip.data);
      badTip[badTip.length - 2]! ^= 1;
      db.prepare('UPDATE app_state_tip SET data = ?').run(badTip);
      expectCorrupt('app_state_tip', '1', /checksum mismatch/);
      db.prepare('UPDATE app_state_tip SET data = ?').run(tip.data);
    } finally {
      db.close();
    }

    // Intact again: the node opens. An application whose state is not at the store's tip is refused.
    const store = openStore(genesis, path);
    const empty = openStore(genesis, `${cluster.dir}/empty/chain.db`);
    try {
      expect(openLedger(genesis, store).ledger.height).toBe(store.height);
      const init = {
        genesis,
        self: 'member-1',
        signer: loadKeyFile(cluster.alliance.keyFiles.get('member-1')!),
        transport: cluster.net.transport('member-1'),
        store,
      };
      expect(() => new ConsensusNode({ ...init, app: openLedger(genesis, empty).app })).toThrow(
        /state is as of height 0, the store's tip is [1-9]/,
      );
    } finally {
      store.close();
      empty.close();
    }
  });
});
