/**
 * The block store: committed blocks with their commit certificates, an index by transaction id, the
 * consensus replica's persisted state (view, votes, prepared certificates, NEW-VIEW) and the
 * application's state derived from the chain (the ledger's per-gateway heads), in one SQLite file so
 * that one transaction covers them all (docs/runtime.md, "Persistence").
 *
 * - Every row carries `checksum` = SHA-256 of its stored bytes, checked on every read; a block row
 *   is also checked against its own contents (height, block hash, the certificate naming that
 *   hash). A mismatch throws {@link ChainCorruptionError} naming the table and key: corruption is
 *   reported as such, never decoded into something else (CometBFT's WAL has the same rule).
 * - `save` applies the core's `PersistRecord`s as upserts keyed exactly like `applyRecord`
 *   (core/io.ts), appends committed blocks and upserts the application's state rows, in ONE
 *   transaction. Blocks must extend the tip: the committed tip never moves back. Application state
 *   is always saved as of the tip, so a crash can never leave it and the blocks out of step.
 * - Memory is bounded: reads take one block at a time (`blockAt`, `verifyChain` walks a cursor);
 *   the replica state holds at most a few windows of heights because the core prunes it.
 * - Blocks and the replica's records are stored in the codec's binary form (src/consensus/wire/codec.ts),
 *   never JSON. The store's format is a row of `chain_meta`; a store written by an earlier release
 *   (JSON records, format 1) is refused at open with a message saying so: there is no migration,
 *   since no deployment ever held one. The application's own rows (`app_state`) are its business.
 *
 * @example
 *   const store = ChainStore.open({ path: join(dataDir, 'chain.db'), chain, txId });
 *   const state = store.loadPersistedState();          // for Replica.start
 *   store.save({ records: rd.persist, committed: rd.committed, appState: rowsChangedByThoseBlocks });
 *   store.loadAppState();                               // { height, blockHash, rows } as of ≤ the tip
 *   store.inclusionProof(txId);                         // RFC 6962 audit path + header + certificate
 */
import { join } from 'node:path';
import { bytesEqual, fromBase64Url, sha256, toBase64Url, toHex } from '../../crypto/hash.ts';
import { merklePath, verifyMerklePath } from '../../crypto/merkle.ts';
import {
  type Migration,
  openDatabase,
  type SqliteDatabase,
  StoreError,
  type Synchronous,
} from '../../store/db.ts';
import type { Result } from '../core/errors.ts';
import { certificateToJson, headerToJson } from '../core/forms.ts';
import { emptyPersistedState, type PersistedState, type PersistRecord } from '../core/io.ts';
import { blockHash } from '../core/signing.ts';
import type { BlockHeader, CertifiedBlock, ChainLimits, CommitCertificate, NewView } from '../core/types.ts';
import {
  type VerifyContext,
  verifyCertifiedBlock,
  verifyCommitCertificate,
  verifyPreparedCertificate,
} from '../core/verify.ts';
import {
  decodeCertifiedBlock,
  decodeMessage,
  decodePrepared,
  decodeStateTip,
  decodeViewRecord,
  decodeVoteRecord,
  encodeCertifiedBlock,
  encodeMessage,
  encodePrepared,
  encodeStateTip,
  encodeViewRecord,
  encodeVoteRecord,
} from '../wire/codec.ts';
import { certificateFromJson, headerFromJson } from '../wire/json.ts';

/**
 * How blocks and replica records are encoded. 1: canonical JSON with base64url byte fields (every
 * store written before `chain_meta` existed); 2: the binary form of wire/codec.ts.
 */
export const chainStoreFormat = 2;

const jsonStoreRefusal =
  'this chain store was written by an earlier release, with blocks and replica records in JSON ' +
  `(format 1); this release reads only the binary format ${chainStoreFormat} and has no migration for it. ` +
  'Move the data folder aside and start the validator with an empty one';

export const chainMigrations: readonly Migration[] = [
  {
    version: 1,
    description: 'blocks, tx index, replica state',
    up: `
      CREATE TABLE blocks (
        height INTEGER PRIMARY KEY,
        hash BLOB NOT NULL UNIQUE,
        timestamp_ms INTEGER NOT NULL,
        tx_count INTEGER NOT NULL,
        data BLOB NOT NULL,
        checksum BLOB NOT NULL
      );
      CREATE TABLE txs (
        id BLOB PRIMARY KEY,
        height INTEGER NOT NULL,
        idx INTEGER NOT NULL
      ) WITHOUT ROWID;
      CREATE TABLE replica_slots (
        slot TEXT PRIMARY KEY,
        data BLOB NOT NULL,
        checksum BLOB NOT NULL
      ) WITHOUT ROWID;
      CREATE TABLE replica_votes (
        kind TEXT NOT NULL,
        height INTEGER NOT NULL,
        data BLOB NOT NULL,
        checksum BLOB NOT NULL,
        PRIMARY KEY (kind, height)
      ) WITHOUT ROWID;
      CREATE TABLE replica_prepared (
        height INTEGER PRIMARY KEY,
        data BLOB NOT NULL,
        checksum BLOB NOT NULL
      );
    `,
  },
  {
    version: 2,
    description: 'application state (ledger heads), saved with the blocks',
    // app_state_tip: one row, the block the rows are as of. Stores written before this version have
    // blocks and no state: it then loads as of height 0 and the application replays the blocks.
    up: `
      CREATE TABLE app_state (
        key TEXT PRIMARY KEY,
        data BLOB NOT NULL,
        checksum BLOB NOT NULL
      ) WITHOUT ROWID;
      CREATE TABLE app_state_tip (
        slot INTEGER PRIMARY KEY CHECK (slot = 1),
        data BLOB NOT NULL,
        checksum BLOB NOT NULL
      );
    `,
  },
  {
    version: 3,
    description: `binary blocks and replica records (chain store format ${chainStoreFormat}); JSON stores refused`,
    // Records written before this version are JSON. A store holding any is refused (the migration
    // fails, so the store stays as it was); an empty one simply becomes a binary store.
    up: (db) => {
      for (const table of ['blocks', 'replica_slots', 'replica_votes', 'replica_prepared', 'app_state_tip']) {
        if (db.prepare(`SELECT 1 FROM ${table} LIMIT 1`).get() !== undefined) {
          throw new Error(`${jsonStoreRefusal} (found rows in ${table})`);
        }
      }
      db.exec(`
        CREATE TABLE chain_meta (key TEXT PRIMARY KEY, value TEXT NOT NULL) WITHOUT ROWID;
        INSERT INTO chain_meta (key, value) VALUES ('format', '${chainStoreFormat}');
      `);
    },
  },
];

/** A stored record does not match its checksum or its own contents. */
export class ChainCorruptionError extends StoreError {
  override name = 'ChainCorruptionError';
  readonly table: string;
  readonly key: string;
  constructor(table: string, key: string, reason: string) {
    super(`chain store: ${table} ${key} is corrupt: ${reason}`);
    this.table = table;
    this.key = key;
  }
}

/** `verifyChain` found a block that does not link or whose certificate does not verify. */
export class ChainVerificationError extends StoreError {
  override name = 'ChainVerificationError';
  readonly height: number;
  constructor(height: number, reason: string) {
    super(`chain verification failed at height ${height}: ${reason}`);
    this.height = height;
  }
}

/** A caller tried to break an invariant of the store (a bug in the caller, not bad data). */
export class ChainInvariantError extends StoreError {
  override name = 'ChainInvariantError';
}

/** What the store needs to know about the chain it holds. */
export interface ChainContext extends VerifyContext {
  limits: ChainLimits;
  /** What block 1 points to. */
  genesisHash: Uint8Array;
}

export interface ChainStoreOptions {
  path: string;
  chain: ChainContext;
  /** The application's transaction id (TxHooks.txId): the key of the transaction index. */
  txId: (tx: Uint8Array) => Uint8Array;
  /** Default 'full': a vote that returned from `save` survives power loss (docs/store.md). */
  synchronous?: Synchronous;
}

/** One `save`: what a runtime collected from one or more `Ready`s, in order. */
export interface SaveBatch {
  records: readonly PersistRecord[];
  committed: readonly CertifiedBlock[];
  /**
   * Application state rows (key → bytes, upserts) changed by the blocks up to the tip after
   * `committed`. When given (even empty), the stored state is then as of that tip: an application
   * that keeps state here passes it with every batch that commits blocks.
   */
  appState?: ReadonlyMap<string, Uint8Array>;
}

/** The application's stored state: its rows and the block they are as of (at most the tip). */
export interface StoredAppState {
  /** 0 (and the genesis hash) when nothing was saved yet, e.g. a store written before the state was kept. */
  height: number;
  blockHash: Uint8Array;
  rows: Map<string, Uint8Array>;
}

/** Where a transaction sits on chain. */
export interface TxLocation {
  height: number;
  index: number;
}

/**
 * Everything a third party needs to check that a transaction is final, given only the genesis:
 * the certificate verifies against the genesis validators, names the header's hash, and the audit
 * path leads from the transaction to the header's `txRoot` (RFC 6962 / RFC 9162 §2.1.3).
 */
export interface InclusionProof {
  tx: Uint8Array;
  height: number;
  index: number;
  /** Tree size: `header.txCount`. */
  txCount: number;
  path: Uint8Array[];
  header: BlockHeader;
  certificate: CommitCertificate;
}

/** The chain's tip, or height 0 with the genesis hash. */
export interface ChainTip {
  height: number;
  hash: Uint8Array;
}

export function chainStorePath(dataDir: string): string {
  return join(dataDir, 'chain.db');
}

function prepareStatements(db: SqliteDatabase) {
  return {
    tipRow: db.prepare('SELECT height, hash, data, checksum FROM blocks ORDER BY height DESC LIMIT 1'),
    blockAt: db.prepare('SELECT height, hash, data, checksum FROM blocks WHERE height = ?'),
    blocksFrom: db.prepare(
      'SELECT height, hash, data, checksum FROM blocks WHERE height >= ? ORDER BY height LIMIT ?',
    ),
    insertBlock: db.prepare(
      'INSERT INTO blocks (height, hash, timestamp_ms, tx_count, data, checksum) VALUES (?, ?, ?, ?, ?, ?)',
    ),
    insertTx: db.prepare('INSERT OR IGNORE INTO txs (id, height, idx) VALUES (?, ?, ?)'),
    txAt: db.prepare('SELECT height, idx FROM txs WHERE id = ?'),
    hasTx: db.prepare('SELECT 1 FROM txs WHERE id = ?').pluck(),
    txCount: db.prepare('SELECT count(*) FROM txs').pluck(),
    upsertSlot: db.prepare(
      'INSERT INTO replica_slots (slot, data, checksum) VALUES (?, ?, ?) ON CONFLICT (slot) DO UPDATE SET data = excluded.data, checksum = excluded.checksum',
    ),
    upsertVote: db.prepare(
      'INSERT INTO replica_votes (kind, height, data, checksum) VALUES (?, ?, ?, ?) ON CONFLICT (kind, height) DO UPDATE SET data = excluded.data, checksum = excluded.checksum',
    ),
    upsertPrepared: db.prepare(
      'INSERT INTO replica_prepared (height, data, checksum) VALUES (?, ?, ?) ON CONFLICT (height) DO UPDATE SET data = excluded.data, checksum = excluded.checksum',
    ),
    pruneVotes: db.prepare('DELETE FROM replica_votes WHERE height <= ?'),
    prunePrepared: db.prepare('DELETE FROM replica_prepared WHERE height <= ?'),
    slot: db.prepare('SELECT data, checksum FROM replica_slots WHERE slot = ?'),
    votes: db.prepare('SELECT kind, height, data, checksum FROM replica_votes ORDER BY height, kind'),
    prepared: db.prepare('SELECT height, data, checksum FROM replica_prepared ORDER BY height'),
    upsertAppState: db.prepare(
      'INSERT INTO app_state (key, data, checksum) VALUES (?, ?, ?) ON CONFLICT (key) DO UPDATE SET data = excluded.data, checksum = excluded.checksum',
    ),
    upsertAppTip: db.prepare(
      'INSERT INTO app_state_tip (slot, data, checksum) VALUES (1, ?, ?) ON CONFLICT (slot) DO UPDATE SET data = excluded.data, checksum = excluded.checksum',
    ),
    appState: db.prepare('SELECT key, data, checksum FROM app_state ORDER BY key'),
    appTip: db.prepare('SELECT data, checksum FROM app_state_tip WHERE slot = 1'),
  };
}

type Statements = ReturnType<typeof prepareStatements>;

const checksumOf = (data: Uint8Array) => sha256(data);
/**
 * An application state row's checksum covers its key too: a key damaged on disk would otherwise
 * carry an intact value to another key (another gateway's head, say).
 */
const appRowChecksumOf = (key: string, data: Uint8Array) =>
  sha256(Buffer.concat([Buffer.from(key, 'utf8'), Buffer.from([0]), data]));
type Json = Record<string, unknown>;

interface BlockRow {
  height: number;
  hash: Uint8Array;
  data: Uint8Array;
  checksum: Uint8Array;
}

interface DataRow {
  data: Uint8Array;
  checksum: Uint8Array;
}

export class ChainStore {
  readonly path: string;
  readonly chain: ChainContext;
  readonly #db: SqliteDatabase;
  readonly #txId: (tx: Uint8Array) => Uint8Array;
  readonly #sizes = new WeakMap<CertifiedBlock, number>();
  #tip: ChainTip;
  #tipTimestampMs: number;
  #duplicateTxIds = 0;
  #closed = false;
  readonly #q: Statements;

  static open(options: ChainStoreOptions): ChainStore {
    const db = openDatabase(options.path, {
      synchronous: options.synchronous ?? 'full',
      migrations: chainMigrations,
    });
    try {
      return new ChainStore(db, options);
    } catch (err) {
      db.close();
      throw err;
    }
  }

  private constructor(db: SqliteDatabase, options: ChainStoreOptions) {
    const format = db.prepare("SELECT value FROM chain_meta WHERE key = 'format'").pluck().get();
    if (format !== String(chainStoreFormat)) {
      throw new StoreError(
        `${options.path}: chain store format ${String(format)}, this release reads format ${chainStoreFormat}`,
      );
    }
    this.#db = db;
    this.path = options.path;
    this.chain = options.chain;
    this.#txId = options.txId;
    this.#q = prepareStatements(db);
    this.#tip = { height: 0, hash: options.chain.genesisHash };
    this.#tipTimestampMs = 0;
    this.#loadTip();
  }

  #loadTip(): void {
    const top = this.#q.tipRow.get() as BlockRow | undefined;
    if (top) {
      const cb = this.#decodeBlockRow(top);
      this.#tip = { height: top.height, hash: top.hash };
      this.#tipTimestampMs = cb.block.header.timestampMs;
    } else {
      this.#tip = { height: 0, hash: this.chain.genesisHash };
      this.#tipTimestampMs = 0;
    }
  }

  /**
   * Runs `read` on one consistent snapshot of a store that another process (a running validator)
   * may be writing: inside one read transaction, with the tip re-read in it. Without it a reader
   * can see the ledger state saved with block h+1 next to a tip of h read a moment earlier, and
   * report corruption that is not there. For readers such as `masbc-edge chain verify`.
   */
  snapshot<T>(read: () => T): T {
    this.#db.exec('BEGIN');
    try {
      this.#loadTip();
      return read();
    } finally {
      this.#db.exec('COMMIT');
    }
  }

  /** Highest committed block (height 0 and the genesis hash when there is none). */
  get tip(): ChainTip {
    return this.#tip;
  }

  get height(): number {
    return this.#tip.height;
  }

  /** Certified blocks whose transactions repeated an id already indexed (kept at its first place). */
  get duplicateTxIds(): number {
    return this.#duplicateTxIds;
  }

  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#db.close();
  }

  // -------------------------------------------------------------------------------------------
  // Writing

  /**
   * Applies `records` in order (upserts with `applyRecord`'s keys) and appends `committed`, in one
   * transaction: either all of it is durable when this returns, or none (an exception). Throws
   * {@link ChainInvariantError} if a block does not extend the tip.
   */
  save(batch: SaveBatch): void {
    if (batch.records.length === 0 && batch.committed.length === 0 && !batch.appState) return;
    let tip = this.#tip;
    let tipTimestampMs = this.#tipTimestampMs;
    const q = this.#q;
    this.#db.transaction(() => {
      for (const r of batch.records) this.#applyRecord(r);
      for (const cb of batch.committed) {
        const h = cb.block.header;
        const hash = blockHash(h);
        if (h.height !== tip.height + 1 || !bytesEqual(h.prevHash, tip.hash)) {
          throw new ChainInvariantError(`block ${h.height} does not extend the tip ${tip.height}`);
        }
        if (cb.certificate.height !== h.height || !bytesEqual(cb.certificate.blockHash, hash)) {
          throw new ChainInvariantError(`the certificate of block ${h.height} names another block`);
        }
        const data = encodeCertifiedBlock(cb);
        q.insertBlock.run(h.height, hash, h.timestampMs, h.txCount, data, checksumOf(data));
        cb.block.txs.forEach((tx, i) => {
          if (q.insertTx.run(this.#txId(tx), h.height, i).changes === 0) this.#duplicateTxIds++;
        });
        tip = { height: h.height, hash };
        tipTimestampMs = h.timestampMs;
      }
      if (batch.appState) {
        for (const [key, data] of batch.appState) {
          q.upsertAppState.run(key, data, appRowChecksumOf(key, data));
        }
        const data = encodeStateTip({ height: tip.height, blockHash: tip.hash });
        q.upsertAppTip.run(data, checksumOf(data));
      }
    })();
    this.#tip = tip;
    this.#tipTimestampMs = tipTimestampMs;
  }

  #applyRecord(r: PersistRecord): void {
    const q = this.#q;
    switch (r.kind) {
      case 'view': {
        const data = encodeViewRecord(r);
        q.upsertSlot.run('view', data, checksumOf(data));
        return;
      }
      case 'new-view': {
        const data = encodeMessage(r.message);
        q.upsertSlot.run('new-view', data, checksumOf(data));
        return;
      }
      case 'vote': {
        const data = encodeVoteRecord(r);
        q.upsertVote.run(r.vote, r.height, data, checksumOf(data));
        return;
      }
      case 'prepared': {
        const data = encodePrepared(r);
        q.upsertPrepared.run(r.certificate.header.height, data, checksumOf(data));
        return;
      }
      case 'prune':
        q.pruneVotes.run(r.heightMax);
        q.prunePrepared.run(r.heightMax);
        return;
    }
  }

  // -------------------------------------------------------------------------------------------
  // Reading

  /**
   * What `Replica.start` needs after a restart. Every record is checked (checksum, decoding, and
   * for prepared certificates their signatures and that the block hashes to the certified header).
   */
  loadPersistedState(): PersistedState {
    const state = emptyPersistedState();
    const view = this.#q.slot.get('view') as DataRow | undefined;
    if (view) {
      const v = this.#decoded('replica_slots', 'view', view, decodeViewRecord);
      state.view = v.view;
      state.viewChanging = v.viewChanging;
    }
    const nv = this.#q.slot.get('new-view') as DataRow | undefined;
    if (nv) {
      this.#check('replica_slots', 'new-view', nv);
      const m = decodeMessage(nv.data, this.chain.limits);
      if (!m.ok || m.value.type !== 'new-view') {
        throw new ChainCorruptionError('replica_slots', 'new-view', m.ok ? 'not a new-view' : m.error.detail);
      }
      state.newView = m.value as NewView;
    }
    for (const row of this.#q.votes.all() as (DataRow & { kind: string; height: number })[]) {
      const key = `${row.kind}@${row.height}`;
      const vote = this.#decoded('replica_votes', key, row, decodeVoteRecord);
      if (vote.vote !== row.kind || vote.height !== row.height) {
        throw new ChainCorruptionError('replica_votes', key, `holds the ${vote.vote} vote at ${vote.height}`);
      }
      state.votes.push(vote);
    }
    for (const row of this.#q.prepared.all() as (DataRow & { height: number })[]) {
      const key = String(row.height);
      const { certificate, block } = this.#decoded('replica_prepared', key, row, (data) =>
        decodePrepared(data, this.chain.limits),
      );
      if (certificate.header.height !== row.height) {
        throw new ChainCorruptionError('replica_prepared', key, `holds height ${certificate.header.height}`);
      }
      const bad = verifyPreparedCertificate(this.chain, certificate);
      if (bad) throw new ChainCorruptionError('replica_prepared', key, bad.detail);
      if (!bytesEqual(blockHash(block.header), blockHash(certificate.header))) {
        throw new ChainCorruptionError('replica_prepared', key, 'block does not match its certificate');
      }
      state.prepared.push({ certificate, block });
    }
    state.tip = this.#tip.height > 0 ? this.blockAt(this.#tip.height)! : null;
    return state;
  }

  /**
   * The application's state as last saved: its rows, checked against their checksums, and the block
   * they are as of, checked against the chain (at most the tip, and the block stored at that
   * height). Throws {@link ChainCorruptionError} naming the row otherwise.
   */
  loadAppState(): StoredAppState {
    const rows = new Map<string, Uint8Array>();
    for (const row of this.#q.appState.all() as (DataRow & { key: string })[]) {
      if (!bytesEqual(appRowChecksumOf(row.key, row.data), row.checksum)) {
        throw new ChainCorruptionError('app_state', row.key, 'checksum mismatch');
      }
      rows.set(row.key, row.data);
    }
    const tipRow = this.#q.appTip.get() as DataRow | undefined;
    if (!tipRow) {
      if (rows.size > 0)
        throw new ChainCorruptionError('app_state_tip', '1', 'missing while state rows exist');
      return { height: 0, blockHash: this.chain.genesisHash, rows };
    }
    const { height, blockHash: hash } = this.#decoded('app_state_tip', '1', tipRow, decodeStateTip);
    if (height > this.#tip.height) {
      throw new ChainCorruptionError(
        'app_state_tip',
        '1',
        `height ${height} is above the chain's tip ${this.#tip.height}`,
      );
    }
    const at = height === 0 ? undefined : this.blockAt(height);
    if (height > 0 && !at)
      throw new ChainCorruptionError('blocks', `height ${height}`, 'missing below the tip');
    const expected = at ? blockHash(at.block.header) : this.chain.genesisHash;
    if (!bytesEqual(expected, hash)) {
      throw new ChainCorruptionError(
        'app_state_tip',
        '1',
        `names another block than the one at height ${height}`,
      );
    }
    return { height, blockHash: hash, rows };
  }

  /** The certified block at `height`, or undefined above the tip (or at 0). Checked on read. */
  blockAt(height: number): CertifiedBlock | undefined {
    const row = this.#q.blockAt.get(height) as BlockRow | undefined;
    return row ? this.#decodeBlockRow(row) : undefined;
  }

  /** Encoded size of a block this store returned (what it weighs in a sync response). */
  encodedBytesOf(cb: CertifiedBlock): number {
    return this.#sizes.get(cb) ?? encodeCertifiedBlock(cb).byteLength;
  }

  /** Is a transaction with this id in a committed block? */
  hasTx(id: Uint8Array): boolean {
    return this.#q.hasTx.get(id) !== undefined;
  }

  txLocation(id: Uint8Array): TxLocation | undefined {
    const row = this.#q.txAt.get(id) as { height: number; idx: number } | undefined;
    return row ? { height: row.height, index: row.idx } : undefined;
  }

  /** Indexed transactions (for status pages and tests). */
  txCount(): number {
    return this.#q.txCount.get() as number;
  }

  /** Inclusion proof of a committed transaction, or undefined if it is not on chain. */
  inclusionProof(id: Uint8Array): InclusionProof | undefined {
    const at = this.txLocation(id);
    if (!at) return undefined;
    const cb = this.blockAt(at.height);
    const tx = cb?.block.txs[at.index];
    if (!cb || !tx) throw new ChainCorruptionError('txs', toHex(id), `points at a missing block or index`);
    return {
      tx,
      height: at.height,
      index: at.index,
      txCount: cb.block.header.txCount,
      path: merklePath(cb.block.txs.map(this.#txId), at.index),
      header: cb.block.header,
      certificate: cb.certificate,
    };
  }

  /**
   * Walks the chain from the genesis: every block's checksum, its link to the previous one, its
   * body (transaction root, limits) and its commit certificate against the genesis validators.
   * One block in memory at a time. Returns the verified height; throws {@link ChainVerificationError}
   * (or {@link ChainCorruptionError} for a record that fails its checksum).
   */
  verifyChain(options: { onProgress?: (height: number) => void; pageBlocks?: number } = {}): number {
    const page = options.pageBlocks ?? 64;
    let prev = this.chain.genesisHash;
    let prevTimestampMs = 0;
    let height = 0;
    for (;;) {
      const rows = this.#q.blocksFrom.all(height + 1, page) as BlockRow[];
      if (rows.length === 0) break;
      for (const row of rows) {
        if (row.height !== height + 1) throw new ChainVerificationError(height + 1, 'missing block');
        const cb = this.#decodeBlockRow(row);
        const h = cb.block.header;
        if (!bytesEqual(h.prevHash, prev))
          throw new ChainVerificationError(row.height, 'prevHash does not link');
        if (h.timestampMs < prevTimestampMs)
          throw new ChainVerificationError(row.height, 'timestamp goes backwards');
        const bad = verifyCertifiedBlock(this.chain, this.chain.limits, cb);
        if (bad) throw new ChainVerificationError(row.height, `${bad.code}: ${bad.detail}`);
        prev = row.hash;
        prevTimestampMs = h.timestampMs;
        height = row.height;
        options.onProgress?.(height);
      }
    }
    return height;
  }

  // -------------------------------------------------------------------------------------------
  // Checks on read

  #check(table: string, key: string, row: DataRow): void {
    if (!bytesEqual(checksumOf(row.data), row.checksum)) {
      throw new ChainCorruptionError(table, key, 'checksum mismatch');
    }
  }

  /** A record checked against its checksum, then decoded; either failing is corruption. */
  #decoded<T>(table: string, key: string, row: DataRow, decode: (data: Uint8Array) => Result<T>): T {
    this.#check(table, key, row);
    const r = decode(row.data);
    if (!r.ok) throw new ChainCorruptionError(table, key, `${r.error.code}: ${r.error.detail}`);
    return r.value;
  }

  #decodeBlockRow(row: BlockRow): CertifiedBlock {
    const key = `height ${row.height}`;
    this.#check('blocks', key, row);
    const r = decodeCertifiedBlock(row.data, this.chain.limits);
    if (!r.ok) throw new ChainCorruptionError('blocks', key, r.error.detail);
    const cb = r.value;
    const hash = blockHash(cb.block.header);
    if (cb.block.header.height !== row.height || !bytesEqual(hash, row.hash)) {
      throw new ChainCorruptionError('blocks', key, 'header does not match the row');
    }
    if (cb.certificate.height !== row.height || !bytesEqual(cb.certificate.blockHash, hash)) {
      throw new ChainCorruptionError('blocks', key, 'certificate names another block');
    }
    this.#sizes.set(cb, row.data.byteLength);
    return cb;
  }
}

/**
 * Checks an inclusion proof with nothing but the chain's context (genesis validators): the
 * certificate, that it names this header, and the audit path to the header's `txRoot`.
 * Returns null if it holds, else why not.
 */
export function verifyInclusionProof(chain: VerifyContext, proof: InclusionProof): string | null {
  const hash = blockHash(proof.header);
  if (proof.header.height !== proof.height || proof.certificate.height !== proof.height) {
    return 'heights disagree';
  }
  if (!bytesEqual(proof.certificate.blockHash, hash)) return 'the certificate names another block';
  if (proof.txCount !== proof.header.txCount) return 'tree size is not the header txCount';
  const bad = verifyCommitCertificate(chain, proof.certificate);
  if (bad) return `certificate: ${bad.detail}`;
  if (!verifyMerklePath(chain.txId(proof.tx), proof.index, proof.txCount, proof.path, proof.header.txRoot)) {
    return 'the audit path does not lead to txRoot';
  }
  return null;
}

/** JSON form of a proof (byte fields base64url), e.g. for an HTTP answer or a receipt. */
export function inclusionProofToJson(p: InclusionProof): Json {
  return {
    certificate: certificateToJson(p.certificate),
    header: headerToJson(p.header),
    height: p.height,
    index: p.index,
    path: p.path.map(toBase64Url),
    tx: toBase64Url(p.tx),
    txCount: p.txCount,
  };
}

/**
 * Reads `inclusionProofToJson` back (e.g. an HTTP answer), checking only its shape: verify it with
 * {@link verifyInclusionProof}. Throws RangeError on anything else.
 */
export function inclusionProofFromJson(v: unknown, limits?: ChainLimits): InclusionProof {
  const bad = (why: string) => new RangeError(`inclusion proof: ${why}`);
  if (typeof v !== 'object' || v === null || Array.isArray(v)) throw bad('not an object');
  const o = v as Json;
  const header = headerFromJson(o.header, limits);
  if (!header.ok) throw bad(`header: ${header.error.detail}`);
  for (const k of ['height', 'index', 'txCount'] as const) {
    if (!Number.isSafeInteger(o[k]) || (o[k] as number) < 0) throw bad(`${k} is not a non-negative integer`);
  }
  if (typeof o.tx !== 'string' || !Array.isArray(o.path) || o.path.length > 64) throw bad('tx or path');
  const certificate = certificateFromJson(o.certificate, limits);
  if (!certificate.ok) throw bad(`certificate: ${certificate.error.detail}`);
  const path = o.path.map((p: unknown) => {
    const b = typeof p === 'string' ? fromBase64Url(p) : undefined;
    if (b?.byteLength !== 32) throw bad('a path node is not 32 bytes');
    return b;
  });
  return {
    tx: fromBase64Url(o.tx),
    height: o.height as number,
    index: o.index as number,
    txCount: o.txCount as number,
    path,
    header: header.value,
    certificate: certificate.value,
  };
}
