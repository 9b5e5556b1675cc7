/**
 * The member's private body store (docs/store.md, "Bodies"): the bodies of its own gateways' events,
 * which never go on the chain. The chain holds each event's envelope with a salted commitment to its
 * body; the body itself lives here, with the member that produced it, and goes only to readers
 * allowed to see it, who check it against the commitment (Hyperledger Fabric's implicit private data
 * collections are the model: hash on the ledger, data with the owner).
 *
 * - `keep` stores a batch's bodies all or nothing, after checking that the batch is the member's
 *   own (a body of another member is refused, `foreign_body`), that each body matches its envelope's
 *   commitment and is well formed, and that it fits the disk budget (`body_store_full`). It is
 *   idempotent, so a gateway may send the same batch again. A batch's bodies are kept before its
 *   transaction is submitted, so nothing becomes final on the chain without its body here.
 * - `markCommitted` records the height at which a batch became final; readers get committed bodies.
 * - Retention (per data class, like Fabric's `blockToLive`, but by source time): `prune` deletes
 *   bodies older than the class's retention; 0 keeps them forever. Bodies whose batch never became
 *   final (refused by the alliance) are deleted after the same retention, counted from when they
 *   were stored.
 *
 * Bounds: the disk budget `maxBytes` (bytes SQLite really uses); rows per query answer are the
 * caller's `limit`. When full, new bodies are refused and the gateway keeps the batch in its outbox
 * (acquisition goes on there); nothing committed is lost, because nothing is submitted before its
 * bodies are kept.
 *
 * @example
 *   const bodies = BodyStore.open({ path: bodyStorePath(dataDir), member: 'acme', maxBytes: 4 << 30 });
 *   bodies.keep(decodedBatch, bodyTexts);
 *   bodies.markCommitted(txIdHex, 42);
 *   bodies.byLot('LOT-7', 100);
 */
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import type { DecodedBatch } from '../event/batch.ts';
import { EventRejected } from '../event/errors.ts';
import type { EventBody, EventEnvelope } from '../event/event.ts';
import type { DataClass } from '../event/kinds.ts';
import { checkBody } from '../event/verify.ts';
import {
  type Migration,
  openDatabase,
  type SqliteDatabase,
  StoreError,
  type Synchronous,
  usedBytes,
} from './db.ts';

export const bodyStoreFormat = { name: 'masbc-edge body store', version: 1 } as const;

export const bodyStoreMigrations: readonly Migration[] = [
  {
    version: 1,
    description: 'bodies of the member own events',
    up: `
      CREATE TABLE bodies (
        id TEXT PRIMARY KEY,
        tx_id TEXT NOT NULL,
        gateway TEXT NOT NULL,
        seq INTEGER NOT NULL,
        kind TEXT NOT NULL,
        data_class TEXT NOT NULL,
        lot TEXT,
        product TEXT,
        order_id TEXT,
        source_time_ms INTEGER NOT NULL,
        stored_ms INTEGER NOT NULL,
        height INTEGER,
        env TEXT NOT NULL,
        body TEXT NOT NULL
      );
      CREATE INDEX bodies_tx ON bodies (tx_id);
      CREATE INDEX bodies_lot ON bodies (lot, gateway, seq) WHERE lot IS NOT NULL;
      CREATE INDEX bodies_order ON bodies (order_id, gateway, seq) WHERE order_id IS NOT NULL;
      CREATE INDEX bodies_product ON bodies (product, gateway, seq) WHERE product IS NOT NULL;
      CREATE INDEX bodies_age ON bodies (data_class, source_time_ms);
      CREATE INDEX bodies_unfinal ON bodies (stored_ms) WHERE height IS NULL;
      CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
    `,
  },
];

export type BodyRefusalCode = 'foreign_body' | 'body_mismatch' | 'malformed' | 'oversize' | 'body_store_full';

/** A batch's bodies were not kept; `code` is stable (it becomes the submission's verdict). */
export class BodiesRefused extends StoreError {
  override name = 'BodiesRefused';
  readonly code: BodyRefusalCode;
  constructor(code: BodyRefusalCode, message: string) {
    super(message);
    this.code = code;
  }
}

/** Retention of committed bodies per data class, in ms; 0 keeps them forever. */
export type BodyRetention = Record<DataClass, number>;

/** Default disk budget of a body store (bytes SQLite really uses). */
export const defaultBodyStoreBytes = 8 * 1024 ** 3;

export const defaultBodyRetention: Readonly<BodyRetention> = Object.freeze({
  process: 0,
  equipment: 365 * 86_400_000,
});

export interface BodyStoreOptions {
  path: string;
  /** The member whose bodies these are: any other member's are refused. */
  member: string;
  /** Disk budget: bytes SQLite really uses. */
  maxBytes: number;
  retention?: Partial<BodyRetention>;
  synchronous?: Synchronous;
}

/** An event as the member holds it: envelope, body, and where it is final. */
export interface KeptEvent {
  id: string;
  txId: string;
  env: EventEnvelope;
  body: EventBody;
  /** The body's canonical JSON, as kept: what its commitment hashes. */
  bodyText: string;
  /** Height of the block holding its batch, or null while not final. */
  height: number | null;
}

export interface BodyStoreStats {
  bodies: number;
  committed: number;
  usedBytes: number;
  maxBytes: number;
  /** How long bodies are kept per data class, ms (0: forever). */
  retention: BodyRetention;
  refused: Record<BodyRefusalCode, number>;
  pruned: number;
}

/** The body store's file in a validator's data folder. */
export function bodyStorePath(dataDir: string): string {
  return join(dataDir, 'bodies.db');
}

/** Rows deleted per statement when pruning, so a long prune never holds the write lock for long. */
const pruneRows = 10_000;
/** Disk bytes per stored byte of a body row, counting its index entries and page slack. */
const rowOverheadFactor = 2;

interface Row {
  id: string;
  tx_id: string;
  env: string;
  body: string;
  height: number | null;
}

export class BodyStore {
  readonly member: string;
  readonly #db: SqliteDatabase;
  readonly #maxBytes: number;
  readonly #retention: BodyRetention;
  readonly #refused: Record<BodyRefusalCode, number> = {
    foreign_body: 0,
    body_mismatch: 0,
    malformed: 0,
    oversize: 0,
    body_store_full: 0,
  };
  #pruned = 0;
  readonly #stmt;

  static open(options: BodyStoreOptions): BodyStore {
    return new BodyStore(
      openDatabase(options.path, {
        synchronous: options.synchronous ?? 'full',
        migrations: bodyStoreMigrations,
        format: bodyStoreFormat,
      }),
      options,
    );
  }

  /** The member a body store at `path` belongs to, or undefined if there is none. */
  static memberAt(path: string): string | undefined {
    if (!existsSync(path)) return undefined;
    const db = openDatabase(path, { synchronous: 'normal', migrations: bodyStoreMigrations, readonly: true });
    try {
      return db.prepare("SELECT value FROM meta WHERE key = 'member'").pluck().get() as string | undefined;
    } finally {
      db.close();
    }
  }

  private constructor(db: SqliteDatabase, options: BodyStoreOptions) {
    const member = db.prepare("SELECT value FROM meta WHERE key = 'member'").pluck().get() as
      | string
      | undefined;
    if (member === undefined)
      db.prepare("INSERT INTO meta (key, value) VALUES ('member', ?)").run(options.member);
    else if (member !== options.member) {
      db.close();
      throw new StoreError(`${options.path} holds the bodies of ${member}, not of ${options.member}`);
    }
    this.#db = db;
    this.member = options.member;
    this.#maxBytes = options.maxBytes;
    this.#retention = { ...defaultBodyRetention, ...options.retention };
    for (const [k, v] of Object.entries(this.#retention))
      if (!Number.isSafeInteger(v) || v < 0) throw new RangeError(`retention of ${k} must be ≥ 0 ms`);
    const select = 'SELECT id, tx_id, env, body, height FROM bodies';
    this.#stmt = {
      insert: db.prepare(
        'INSERT OR IGNORE INTO bodies (id, tx_id, gateway, seq, kind, data_class, lot, product, order_id, source_time_ms, stored_ms, env, body) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)',
      ),
      countTx: db.prepare('SELECT count(*) FROM bodies WHERE tx_id = ?').pluck(),
      commit: db.prepare('UPDATE bodies SET height = ? WHERE tx_id = ? AND height IS NULL'),
      byId: db.prepare(`${select} WHERE id = ?`),
      byTx: db.prepare(`${select} WHERE tx_id = ? ORDER BY seq`),
      byLot: db.prepare(`${select} WHERE lot = ? ORDER BY gateway, seq LIMIT ?`),
      byOrder: db.prepare(`${select} WHERE order_id = ? ORDER BY gateway, seq LIMIT ?`),
      byProduct: db.prepare(`${select} WHERE product = ? ORDER BY gateway, seq LIMIT ?`),
      pruneClass: db.prepare(
        'DELETE FROM bodies WHERE rowid IN (SELECT rowid FROM bodies WHERE data_class = ? AND source_time_ms < ? LIMIT ?)',
      ),
      pruneUnfinal: db.prepare(
        'DELETE FROM bodies WHERE rowid IN (SELECT rowid FROM bodies WHERE height IS NULL AND stored_ms < ? LIMIT ?)',
      ),
      counts: db.prepare('SELECT count(*) AS bodies, count(height) AS committed FROM bodies'),
      unfinalTx: db.prepare('SELECT DISTINCT tx_id FROM bodies WHERE height IS NULL').pluck(),
    };
  }

  /**
   * Keeps the bodies (canonical JSON texts, in the batch's order) of a decoded batch, all or none.
   * Throws BodiesRefused with a stable code. Keeping a batch already kept changes nothing.
   */
  keep(batch: DecodedBatch, bodies: readonly string[], nowMs = Date.now()): void {
    const [refused] = this.keepAll([{ batch, bodies }], nowMs);
    if (refused) throw refused;
  }

  /**
   * Keeps the bodies of several batches (each all or none) in one transaction, so one disk sync
   * covers a whole submission. Each batch is checked on its own, as `keep` does; the answer lists, in
   * order, null for a batch whose bodies are kept (or were already) and the refusal of one that is
   * not. A refusal of one batch does not affect the others.
   */
  keepAll(
    items: readonly { batch: DecodedBatch; bodies: readonly string[] }[],
    nowMs = Date.now(),
  ): (BodiesRefused | null)[] {
    const answers: (BodiesRefused | null)[] = [];
    const toInsert: { batch: DecodedBatch; bodies: readonly string[]; parsed: EventBody[]; txId: string }[] =
      [];
    let used = usedBytes(this.#db);
    for (const { batch, bodies } of items) {
      const checked = this.#check(batch, bodies);
      if (checked instanceof BodiesRefused) {
        answers.push(checked);
        continue;
      }
      const txId = Buffer.from(batch.txId).toString('hex');
      if (this.#stmt.countTx.get(txId) === batch.envelopes.length) {
        answers.push(null);
        continue;
      }
      if (used + checked.bytes * rowOverheadFactor > this.#maxBytes) {
        answers.push(
          this.#refuse('body_store_full', `the body store's budget of ${this.#maxBytes} bytes is reached`),
        );
        continue;
      }
      used += checked.bytes * rowOverheadFactor;
      toInsert.push({ batch, bodies, parsed: checked.parsed, txId });
      answers.push(null);
    }
    if (toInsert.length === 0) return answers;
    this.#db.transaction(() => {
      for (const { batch, bodies, parsed, txId } of toInsert) {
        for (const [i, body] of parsed.entries()) {
          const env = batch.envelopes[i]!;
          this.#stmt.insert.run(
            Buffer.from(batch.ids[i]!).toString('hex'),
            txId,
            env.gateway,
            env.seq,
            env.kind,
            env.dataClass,
            body.lot ?? null,
            body.product ?? null,
            body.order ?? null,
            env.sourceTimeMs,
            nowMs,
            Buffer.from(batch.envelopeBytes[i]!).toString('latin1'),
            bodies[i]!,
          );
        }
      }
    })();
    return answers;
  }

  /** A batch's bodies checked against it, or the (counted) refusal. */
  #check(
    batch: DecodedBatch,
    bodies: readonly string[],
  ): BodiesRefused | { parsed: EventBody[]; bytes: number } {
    const h = batch.header;
    if (h.enterprise !== this.member)
      return this.#refuse(
        'foreign_body',
        `a body of ${h.enterprise}'s events: this store keeps ${this.member}'s only`,
      );
    if (bodies.length !== batch.envelopes.length)
      return this.#refuse(
        'malformed',
        `${bodies.length} bodies for a batch of ${batch.envelopes.length} events`,
      );
    const parsed: EventBody[] = [];
    let bytes = 0;
    for (const [i, text] of bodies.entries()) {
      const env = batch.envelopes[i]!;
      try {
        parsed.push(checkBody(text, env.body, env.kind, i));
      } catch (err) {
        if (!(err instanceof EventRejected)) throw err;
        const code = err.code === 'body_mismatch' || err.code === 'oversize' ? err.code : 'malformed';
        return this.#refuse(code, err.message);
      }
      bytes += text.length + batch.envelopeBytes[i]!.byteLength;
    }
    return { parsed, bytes };
  }

  /** True when every body of the batch `txId` (with `count` events) is kept. */
  holds(txId: string, count: number): boolean {
    return this.#stmt.countTx.get(txId) === count;
  }

  /**
   * Records that the batches `txIds` (a block's, or one) are final at `height`, in one transaction:
   * one disk sync per block, not per batch. Returns how many bodies that concerned.
   */
  markCommitted(txIds: string | readonly string[], height: number): number {
    const ids = typeof txIds === 'string' ? [txIds] : txIds;
    return this.#db.transaction(() => {
      let changed = 0;
      for (const id of ids) changed += this.#stmt.commit.run(height, id).changes;
      return changed;
    })();
  }

  /**
   * Records the height of every batch whose bodies are kept but not yet marked final, as `heightOf`
   * answers (the block store's index), e.g. at start after a crash. Returns how many bodies changed.
   */
  reconcile(heightOf: (txId: string) => number | null): number {
    return this.#db.transaction(() => {
      let changed = 0;
      for (const txId of this.#stmt.unfinalTx.all() as string[]) {
        const height = heightOf(txId);
        if (height !== null) changed += this.#stmt.commit.run(height, txId).changes;
      }
      return changed;
    })();
  }

  get(id: string): KeptEvent | undefined {
    const row = this.#stmt.byId.get(id) as Row | undefined;
    return row && this.#kept(row);
  }

  byTx(txId: string): KeptEvent[] {
    return (this.#stmt.byTx.all(txId) as Row[]).map((r) => this.#kept(r));
  }

  byLot(lot: string, limit: number): KeptEvent[] {
    return (this.#stmt.byLot.all(lot, limit) as Row[]).map((r) => this.#kept(r));
  }

  byOrder(order: string, limit: number): KeptEvent[] {
    return (this.#stmt.byOrder.all(order, limit) as Row[]).map((r) => this.#kept(r));
  }

  byProduct(product: string, limit: number): KeptEvent[] {
    return (this.#stmt.byProduct.all(product, limit) as Row[]).map((r) => this.#kept(r));
  }

  /** Deletes bodies past their class's retention, and never-final ones stored that long ago. */
  prune(nowMs = Date.now()): number {
    let total = 0;
    for (const [dataClass, ms] of Object.entries(this.#retention) as [DataClass, number][]) {
      if (ms === 0) continue;
      for (;;) {
        const n = this.#stmt.pruneClass.run(dataClass, nowMs - ms, pruneRows).changes;
        total += n;
        if (n < pruneRows) break;
      }
    }
    const shortest = Math.min(...Object.values(this.#retention).filter((ms) => ms > 0));
    if (Number.isFinite(shortest)) {
      for (;;) {
        const n = this.#stmt.pruneUnfinal.run(nowMs - shortest, pruneRows).changes;
        total += n;
        if (n < pruneRows) break;
      }
    }
    this.#pruned += total;
    return total;
  }

  stats(): BodyStoreStats {
    const c = this.#stmt.counts.get() as { bodies: number; committed: number };
    return {
      ...c,
      usedBytes: usedBytes(this.#db),
      maxBytes: this.#maxBytes,
      retention: { ...this.#retention },
      refused: { ...this.#refused },
      pruned: this.#pruned,
    };
  }

  close(): void {
    if (this.#db.open) this.#db.close();
  }

  /** Counts a refusal and returns its error, for the caller to throw. */
  #refuse(code: BodyRefusalCode, message: string): BodiesRefused {
    this.#refused[code]++;
    return new BodiesRefused(code, message);
  }

  #kept(row: Row): KeptEvent {
    return {
      id: row.id,
      txId: row.tx_id,
      env: JSON.parse(row.env) as EventEnvelope,
      body: JSON.parse(row.body) as EventBody,
      bodyText: row.body,
      height: row.height,
    };
  }
}
