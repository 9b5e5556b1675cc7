/**
 * The block store's own format: blocks and every replica record are stored in the codec's binary
 * form and read back as saved; a store written in the JSON format of earlier releases is refused at
 * open, untouched, with a message saying what it is; records under the wrong key are corruption.
 * (The runtime's use of the store, with real nodes, is node.test.ts and ledger-state.test.ts.)
 */
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { describe, expect, it } from 'vitest';
import type { PersistRecord } from '../../../src/consensus/core/io.ts';
import { defaultChainLimits } from '../../../src/consensus/core/limits.ts';
import { blockHash, voteSigningBytes } from '../../../src/consensus/core/signing.ts';
import type { CertifiedBlock } from '../../../src/consensus/core/types.ts';
import {
  type ChainContext,
  ChainCorruptionError,
  ChainStore,
  chainMigrations,
  chainStoreFormat,
} from '../../../src/consensus/runtime/block-store.ts';
import { recordTags, wireFormat } from '../../../src/consensus/wire/codec.ts';
import { certifiedBlockToJson } from '../../../src/consensus/wire/json.ts';
import { encodeCanonical } from '../../../src/crypto/canonical.ts';
import { sha256 } from '../../../src/crypto/hash.ts';
import { openDatabase, StoreError } from '../../../src/store/db.ts';
import { tempDir } from '../../helpers/tmp.ts';
import { block, certificateFor, ctx, keys, preparedFor, samples } from '../wire/fixtures.ts';

const enc = new TextEncoder();
const genesisHash = sha256(enc.encode('genesis'));
const chain: ChainContext = { ...ctx, limits: defaultChainLimits, genesisHash };
const txId = (tx: Uint8Array) => sha256(tx);
const open = (path: string) => ChainStore.open({ path, chain, txId });

/** Block 1 on the genesis, certified in view 0; block 2 on it, prepared in view 0. */
function chainData() {
  const b1 = block({ height: 1, view: 0, prevHash: genesisHash });
  const first: CertifiedBlock = { block: b1, certificate: certificateFor(b1, 0) };
  const b2 = block({ height: 2, view: 0, prevHash: blockHash(b1.header) }, [enc.encode('c')]);
  const ppSignature = keys[0]!.sign(voteSigningBytes('pre-prepare', ctx.chainId, 0, 2, blockHash(b2.header)));
  const records: PersistRecord[] = [
    { kind: 'view', view: 3, viewChanging: true },
    // In the order the store reads them back: by height, then kind.
    { kind: 'vote', vote: 'commit', view: 0, height: 2, blockHash: blockHash(b2.header) },
    { kind: 'vote', vote: 'prepare', view: 0, height: 2, blockHash: blockHash(b2.header) },
    { kind: 'prepared', certificate: preparedFor(b2, 0, ppSignature), block: b2 },
    { kind: 'new-view', message: samples().newView },
  ];
  return { first, records };
}

const tables = ['blocks', 'replica_slots', 'replica_votes', 'replica_prepared', 'app_state_tip'];

describe('chain store format', () => {
  it('stores blocks and replica records in binary and reads back what it saved', () => {
    const path = join(tempDir('store'), 'chain.db');
    const { first, records } = chainData();
    const store = open(path);
    try {
      store.save({ records, committed: [first], appState: new Map([['k', enc.encode('v')]]) });
    } finally {
      store.close();
    }
    const db = new Database(path, { readonly: true });
    try {
      expect(db.prepare("SELECT value FROM chain_meta WHERE key = 'format'").pluck().get()).toBe(
        String(chainStoreFormat),
      );
      const tags = new Set<number>();
      for (const table of tables) {
        for (const { data } of db.prepare(`SELECT data FROM ${table}`).all() as { data: Buffer }[]) {
          expect(data[0], table).toBe(wireFormat); // a JSON record would start with '{'
          tags.add(data[1]!);
        }
      }
      expect([...tags].sort()).toEqual(
        [
          recordTags.certifiedBlock,
          recordTags.view,
          recordTags.vote,
          recordTags.prepared,
          recordTags.stateTip,
          0x05, // the NEW-VIEW slot holds the message itself
        ].sort(),
      );
    } finally {
      db.close();
    }
    const again = open(path);
    try {
      const state = again.loadPersistedState();
      expect(state.view).toBe(3);
      expect(state.viewChanging).toBe(true);
      expect(state.votes).toEqual(records.filter((r) => r.kind === 'vote'));
      const prepared = records.find((r) => r.kind === 'prepared')!;
      expect(state.prepared).toEqual([{ certificate: prepared.certificate, block: prepared.block }]);
      expect(state.newView).toEqual(samples().newView);
      expect(state.tip).toEqual(first);
      const appState = again.loadAppState();
      expect([appState.height, appState.blockHash]).toEqual([1, blockHash(first.block.header)]);
      expect([...appState.rows].map(([k, v]) => [k, new Uint8Array(v)])).toEqual([['k', enc.encode('v')]]);
      expect(again.verifyChain()).toBe(1);
      expect(again.encodedBytesOf(again.blockAt(1)!)).toBeGreaterThan(0);
    } finally {
      again.close();
    }
  });

  it('refuses a store written in the JSON format, saying so and leaving it as it was', () => {
    const path = join(tempDir('store'), 'chain.db');
    const { first } = chainData();
    // What an earlier release wrote: schema version 2, records as canonical JSON.
    const old = openDatabase(path, { synchronous: 'full', migrations: chainMigrations.slice(0, 2) });
    const data = encodeCanonical(certifiedBlockToJson(first));
    old
      .prepare(
        'INSERT INTO blocks (height, hash, timestamp_ms, tx_count, data, checksum) VALUES (?, ?, ?, ?, ?, ?)',
      )
      .run(1, blockHash(first.block.header), first.block.header.timestampMs, 2, data, sha256(data));
    old.close();
    let error: unknown;
    try {
      open(path).close();
    } catch (err) {
      error = err;
    }
    expect(error).toBeInstanceOf(StoreError);
    expect((error as Error).message).toMatch(/chain\.db/);
    expect((error as Error).message).toMatch(/written by an earlier release.*JSON \(format 1\)/);
    expect((error as Error).message).toMatch(/binary format 2 and has no migration/);
    expect((error as Error).message).toMatch(/found rows in blocks/);
    const db = new Database(path, { readonly: true });
    try {
      expect(db.prepare('SELECT max(version) FROM schema_migrations').pluck().get()).toBe(2);
      expect(db.prepare('SELECT count(*) FROM blocks').pluck().get()).toBe(1);
    } finally {
      db.close();
    }
  });

  it('upgrades an empty store of the earlier release, and refuses an unknown format', () => {
    const path = join(tempDir('store'), 'chain.db');
    openDatabase(path, { synchronous: 'full', migrations: chainMigrations.slice(0, 2) }).close();
    const store = open(path);
    store.save({ records: [], committed: [chainData().first] });
    store.close();
    const db = new Database(path);
    db.prepare("UPDATE chain_meta SET value = '3' WHERE key = 'format'").run();
    db.close();
    expect(() => open(path)).toThrow(/chain store format 3, this release reads format 2/);
  });

  it('reports a replica record stored under another key as corruption', () => {
    const path = join(tempDir('store'), 'chain.db');
    const { records } = chainData();
    const store = open(path);
    store.save({ records, committed: [] });
    store.close();
    const db = new Database(path);
    db.prepare("UPDATE replica_votes SET kind = 'pre-prepare' WHERE kind = 'commit'").run();
    db.close();
    const again = open(path);
    try {
      expect(() => again.loadPersistedState()).toThrow(ChainCorruptionError);
      expect(() => again.loadPersistedState()).toThrow(
        /replica_votes pre-prepare@2 is corrupt: holds the commit vote/,
      );
    } finally {
      again.close();
    }
  });
});
