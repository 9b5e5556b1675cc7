/**
 * The outbox: signed batches wait here, durably, until they are final on the chain and their bodies
 * are in the member's body store (docs/store.md).
 *
 * - Appends sign drafts into batches (one signature and one chain transaction per batch) and insert
 *   them, with each event's envelope and body, in ONE transaction, together with the gateway's new
 *   chain head (seq, id). A crash therefore never leaves a seq used twice or skipped, and an event is
 *   acknowledged (append returned) only once it is on disk (see db.ts for the synchronous level).
 * - A batch leaves only when it is final on the chain AND the member's body store has confirmed it
 *   holds its bodies (`markBodiesKept`): bodies live nowhere else until then, so a committed body is
 *   never lost to pruning.
 * - A disk budget (bytes really used by the database, and rows) bounds the outbox. Under pressure,
 *   batches that may leave are pruned first, oldest first. When the outbox is full of batches that
 *   may not, nothing stored is dropped: new drafts are refused, counted, and summarised (count, time
 *   range, kinds) in a persisted gap record. They never receive a seq, so the gateway's hash chain
 *   stays unbroken; when space returns, the next append first signs one `gap` event carrying that
 *   record, making the loss provable on the ledger.
 * - Every read of a batch for submission re-verifies it (decoding, ids, root, signature) and its
 *   bodies against their commitments, so a flipped byte on disk is reported as corruption instead
 *   of being passed on.
 *
 * The store refuses a database of the older event format (bodies inside signed events) with a clear
 * message: no deployment of it exists to migrate.
 *
 * @example
 *   const outbox = Outbox.open({ path, verifier, maxBytes: 1 << 30, maxRows: 1e7 });
 *   outbox.append(drafts, signer);
 *   const batches = outbox.pending({ afterSeq: 0, eventsMax: 4096 });
 *   outbox.markCommitted([{ txId, height, blockHash, txIndex }]);
 *   outbox.markBodiesKept([txId]);
 */
import { join } from 'node:path';
import { batchEventsMax } from '../event/bounds.ts';
import type { EventDraft } from '../event/draft.ts';
import { EventRejected } from '../event/errors.ts';
import { type EventRecord, encodeBody, eventId, type GapInfo } from '../event/event.ts';
import type { EventKind } from '../event/kinds.ts';
import { type ChainHead, type EventSigner, emptyHead, type SignedBatch } from '../event/signer.ts';
import { type BatchVerifier, checkBody } from '../event/verify.ts';
import {
  type Migration,
  openDatabase,
  type SqliteDatabase,
  StoreError,
  type Synchronous,
  usedBytes,
} from './db.ts';

export const outboxFormat = { name: 'masbc-edge outbox', version: 2 } as const;

export const outboxMigrations: readonly Migration[] = [
  {
    version: 1,
    description: 'batches, events, meta, dead letters (event format 2)',
    up: `
      CREATE TABLE batches (
        first_seq INTEGER PRIMARY KEY,
        count INTEGER NOT NULL,
        tx_id TEXT NOT NULL UNIQUE,
        tx BLOB NOT NULL,
        committed INTEGER NOT NULL DEFAULT 0,
        bodies_kept INTEGER NOT NULL DEFAULT 0,
        height INTEGER,
        receipt TEXT,
        committed_ms INTEGER
      );
      CREATE INDEX batches_open ON batches (first_seq) WHERE committed = 0 OR bodies_kept = 0;
      CREATE INDEX batches_done ON batches (committed_ms) WHERE committed = 1 AND bodies_kept = 1;
      CREATE TABLE events (
        seq INTEGER PRIMARY KEY,
        id TEXT NOT NULL UNIQUE,
        batch_seq INTEGER NOT NULL REFERENCES batches (first_seq) ON DELETE CASCADE,
        kind TEXT NOT NULL,
        lot TEXT,
        product TEXT,
        order_id TEXT,
        source_time_ms INTEGER NOT NULL,
        gateway_time_ms INTEGER NOT NULL,
        env TEXT NOT NULL,
        body TEXT NOT NULL
      );
      CREATE INDEX events_batch ON events (batch_seq);
      CREATE INDEX events_lot ON events (lot, seq) WHERE lot IS NOT NULL;
      CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
      CREATE TABLE dead_letters (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        device TEXT NOT NULL,
        source TEXT NOT NULL,
        reason TEXT NOT NULL,
        payload TEXT NOT NULL,
        payload_bytes INTEGER NOT NULL,
        received_ms INTEGER NOT NULL
      );
    `,
  },
];
/** Dead letters kept for inspection; beyond this the oldest are deleted (and counted). */
export const deadLettersStoredMax = 10_000;

export interface StoredDeadLetter {
  id: number;
  device: string;
  source: string;
  reason: string;
  payload: string;
  payloadBytes: number;
  receivedMs: number;
}

/** A lot as the outbox holds it (`Outbox.lots`). */
export interface LotSummary {
  lot: string;
  /** Events of the lot in the outbox, and how many of them are final. */
  events: number;
  final: number;
  firstSourceMs: number;
  lastSourceMs: number;
  /** seq of its newest event. */
  lastSeq: number;
}

/** Where a batch is final: the block that holds it and the transaction's place in it. */
export interface CommitReceipt {
  /** Transaction id, lower-case hex. */
  txId: string;
  height: number;
  blockHash: string;
  /** The transaction's index in the block. */
  txIndex?: number;
}

/** A batch waiting to be final (or for its bodies to be kept), as the submitter sends it. */
export interface StoredBatch {
  firstSeq: number;
  count: number;
  /** Transaction id, lower-case hex. */
  txId: string;
  /** The transaction's bytes, exactly as signed. */
  tx: Uint8Array;
  /** The events' bodies as canonical JSON, in seq order: for the member's body store only. */
  bodies: string[];
  /** Id, source and gateway time of each event, in seq order. */
  events: { id: string; sourceTimeMs: number; gatewayTimeMs: number }[];
  committed: boolean;
  bodiesKept: boolean;
}

/** One event with its state, for inspection. */
export interface StoredEvent {
  seq: number;
  event: EventRecord;
  txId: string;
  committed: boolean;
  height: number | null;
}

export interface AppendOptions {
  /** Events per signed batch (≤ batchEventsMax); a larger append is several batches, in one transaction. */
  batchEventsMax?: number;
  /**
   * Application state to save in the same transaction (e.g. the normaliser's counters), so that what
   * was emitted and the memory of having emitted it can never disagree after a crash. Read it back
   * with {@link Outbox.loadMeta}.
   */
  meta?: Record<string, unknown>;
}

export interface AppendResult {
  /** Events now on disk (acknowledged), including a leading gap event if one was due. */
  stored: EventRecord[];
  /** The batches they were signed in. */
  batches: SignedBatch[];
  /** Drafts refused because the budget is exhausted (recorded in the pending gap). */
  dropped: number;
}

export interface OutboxStats {
  /** Events stored. */
  rows: number;
  /** Events not yet final. */
  pending: number;
  /** Events final on the chain. */
  committed: number;
  /** Batches final whose bodies the member's body store has not confirmed yet. */
  bodiesUnconfirmed: number;
  usedBytes: number;
  maxBytes: number;
  maxRows: number;
  head: ChainHead;
  /** Drafts refused since this process opened the store. */
  droppedTotal: number;
  /** Gap events appended since this process opened the store. */
  gapsAppended: number;
  /** The loss not yet recorded on the ledger, if any. */
  pendingGap: GapInfo | null;
  /** First seqs of batches found corrupt on read. */
  corrupt: number[];
}

export interface OutboxOptions {
  path: string;
  /** Verifies batches read back (the gateway's own key): detects corruption on disk. */
  verifier: BatchVerifier;
  maxBytes: number;
  maxRows: number;
  synchronous?: Synchronous;
  /** Called once per corrupt batch found on read (its first seq). */
  onCorrupt?: (seq: number, reason: string) => void;
  /** Called when drafts are refused for lack of space (rate-limit your logging there). */
  onDrop?: (count: number, gap: GapInfo) => void;
}

/** The outbox's file in the gateway's data folder. */
export function outboxPath(dataDir: string): string {
  return join(dataDir, 'outbox.db');
}

/** Oldest done batches deleted per pruning pass under disk pressure. */
const pruneBatchRows = 1_000;
/** Bound on the corrupt-batch list kept for stats. */
const corruptListMax = 100;
/**
 * Newest batches this process signed and wrote, kept to skip re-verifying their rows on read (see
 * #decode). Overflow: the oldest entry is forgotten and its row is fully verified when read.
 */
export const freshBatchesMax = 1_024;
/** First guess of a stored event's size on disk (its share of the batch, envelope, body, indexes). */
const rowBytesInitial = 1024;
/** Disk bytes per stored byte of an event, counting its index entries and page slack. */
const rowOverheadFactor = 1.6;

export class CorruptBatch extends StoreError {
  override name = 'CorruptBatch';
  readonly seq: number;
  constructor(seq: number, reason: string) {
    super(`outbox batch at seq ${seq} is corrupt: ${reason}`);
    this.seq = seq;
  }
}

interface BatchRow {
  first_seq: number;
  count: number;
  tx_id: string;
  tx: Buffer;
  committed: number;
  bodies_kept: number;
}

interface EventRow {
  seq: number;
  id: string;
  env: string;
  body: string;
  tx_id: string;
  committed: number;
  height: number | null;
}

const eventSelect =
  'SELECT e.seq, e.id, e.env, e.body, b.tx_id, b.committed, b.height FROM events e JOIN batches b ON b.first_seq = e.batch_seq';

export class Outbox {
  readonly #db: SqliteDatabase;
  readonly #opts: OutboxOptions;
  #head: ChainHead;
  #rows: number;
  #pending: number;
  #pendingGap: GapInfo | null;
  #rowBytes = rowBytesInitial;
  #droppedTotal = 0;
  #gapsAppended = 0;
  readonly #corrupt: number[] = [];
  /** first seq → the batch this process wrote (bounded by freshBatchesMax, oldest forgotten first). */
  readonly #fresh = new Map<number, StoredBatch>();
  readonly #stmt;

  static open(options: OutboxOptions): Outbox {
    return new Outbox(
      openDatabase(options.path, {
        synchronous: options.synchronous ?? 'full',
        migrations: outboxMigrations,
        format: outboxFormat,
      }),
      options,
    );
  }

  private constructor(db: SqliteDatabase, options: OutboxOptions) {
    this.#db = db;
    this.#opts = options;
    this.#stmt = {
      insertBatch: db.prepare('INSERT INTO batches (first_seq, count, tx_id, tx) VALUES (?, ?, ?, ?)'),
      insertEvent: db.prepare(
        'INSERT INTO events (seq, id, batch_seq, kind, lot, product, order_id, source_time_ms, gateway_time_ms, env, body) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)',
      ),
      setMeta: db.prepare(
        'INSERT INTO meta (key, value) VALUES (?, ?) ON CONFLICT (key) DO UPDATE SET value = excluded.value',
      ),
      delMeta: db.prepare('DELETE FROM meta WHERE key = ?'),
      getMeta: db.prepare('SELECT value FROM meta WHERE key = ?').pluck(),
      open: db.prepare(
        'SELECT first_seq, count, tx_id, tx, committed, bodies_kept FROM batches WHERE committed = 0 AND first_seq > ? ORDER BY first_seq LIMIT ?',
      ),
      unconfirmed: db.prepare(
        'SELECT first_seq, count, tx_id, tx, committed, bodies_kept FROM batches WHERE committed = 1 AND bodies_kept = 0 AND first_seq > ? ORDER BY first_seq LIMIT ?',
      ),
      bodiesOf: db.prepare(
        'SELECT seq, id, body, source_time_ms, gateway_time_ms FROM events WHERE batch_seq = ? ORDER BY seq',
      ),
      isPending: db.prepare('SELECT 1 FROM batches WHERE tx_id = ? AND committed = 0'),
      bySeq: db.prepare(`${eventSelect} WHERE e.seq = ?`),
      byId: db.prepare(`${eventSelect} WHERE e.id = ?`),
      byLot: db.prepare(`${eventSelect} WHERE e.lot = ? ORDER BY e.seq LIMIT ?`),
      last: db.prepare(`${eventSelect} ORDER BY e.seq DESC LIMIT ?`),
      lastSeq: db.prepare('SELECT seq, id FROM events ORDER BY seq DESC LIMIT 1'),
      commit: db.prepare(
        'UPDATE batches SET committed = 1, height = ?, receipt = ?, committed_ms = ? WHERE tx_id = ? AND committed = 0 RETURNING count',
      ),
      keep: db.prepare('UPDATE batches SET bodies_kept = 1 WHERE tx_id = ? AND bodies_kept = 0'),
      pruneOld: db.prepare(
        'DELETE FROM batches WHERE first_seq IN (SELECT first_seq FROM batches WHERE committed = 1 AND bodies_kept = 1 AND committed_ms < ? ORDER BY committed_ms LIMIT ?) RETURNING count',
      ),
      pruneOldest: db.prepare(
        'DELETE FROM batches WHERE first_seq IN (SELECT first_seq FROM batches WHERE committed = 1 AND bodies_kept = 1 ORDER BY first_seq LIMIT ?) RETURNING count',
      ),
      addDead: db.prepare(
        'INSERT INTO dead_letters (device, source, reason, payload, payload_bytes, received_ms) VALUES (?, ?, ?, ?, ?, ?)',
      ),
      trimDead: db.prepare('DELETE FROM dead_letters WHERE id <= (SELECT max(id) FROM dead_letters) - ?'),
      lastDead: db.prepare(
        'SELECT id, device, source, reason, payload, payload_bytes AS payloadBytes, received_ms AS receivedMs FROM dead_letters ORDER BY id DESC LIMIT ?',
      ),
      // Operator queries (`outbox --lots`): the lots with the newest events, from the lot index alone.
      newestLots: db.prepare(
        'SELECT lot, max(seq) AS lastSeq FROM events WHERE lot IS NOT NULL GROUP BY lot ORDER BY lastSeq DESC LIMIT ?',
      ),
      lotSummary: db.prepare(
        'SELECT count(*) AS events, coalesce(sum(b.committed), 0) AS final, min(e.source_time_ms) AS firstSourceMs, max(e.source_time_ms) AS lastSourceMs FROM events e JOIN batches b ON b.first_seq = e.batch_seq WHERE e.lot = ?',
      ),
    };
    const head = this.#stmt.getMeta.get('head') as string | undefined;
    this.#head = head ? (JSON.parse(head) as ChainHead) : emptyHead;
    const gap = this.#stmt.getMeta.get('pending_gap') as string | undefined;
    this.#pendingGap = gap ? (JSON.parse(gap) as GapInfo) : null;
    const counts = db
      .prepare(
        'SELECT coalesce(sum(count), 0) AS rows, coalesce(sum(CASE WHEN committed = 0 THEN count ELSE 0 END), 0) AS pending FROM batches',
      )
      .get() as { rows: number; pending: number };
    this.#rows = counts.rows;
    this.#pending = counts.pending;
    this.#checkHead();
  }

  /** The stored head must be the newest stored event (unless that was pruned after commit). */
  #checkHead(): void {
    const newest = this.#stmt.lastSeq.get() as { seq: number; id: string } | undefined;
    if (newest && newest.seq > this.#head.seq) {
      throw new StoreError(
        `outbox head says seq ${this.#head.seq} but seq ${newest.seq} is stored: the store was modified outside masbc-edge`,
      );
    }
    if (newest && newest.seq === this.#head.seq && newest.id !== this.#head.id) {
      throw new CorruptBatch(newest.seq, 'its last event id differs from the recorded chain head');
    }
  }

  get head(): ChainHead {
    return this.#head;
  }

  /**
   * Signs the drafts into batches after the current head and stores them, in one transaction. If the
   * budget is exhausted, stores nothing and records the drafts in the pending gap.
   */
  append(drafts: readonly EventDraft[], signer: EventSigner, options: AppendOptions = {}): AppendResult {
    if (drafts.length === 0 && !options.meta) return { stored: [], batches: [], dropped: 0 };
    let written: StoredBatch[] = [];
    const txn = this.#db.transaction((): AppendResult => {
      for (const [k, v] of Object.entries(options.meta ?? {}))
        this.#stmt.setMeta.run(`app:${k}`, JSON.stringify(v));
      if (drafts.length === 0) return { stored: [], batches: [], dropped: 0 };
      const gapDue = this.#pendingGap !== null;
      if (!this.#makeRoom(drafts.length + (gapDue ? 1 : 0))) {
        this.#recordDrop(drafts);
        return { stored: [], batches: [], dropped: drafts.length };
      }
      const toSign = gapDue ? [this.#gapDraft(this.#pendingGap!, drafts[0]!), ...drafts] : [...drafts];
      const chunk = Math.min(options.batchEventsMax ?? batchEventsMax, batchEventsMax);
      let head = this.#head;
      const stored: EventRecord[] = [];
      const batches: SignedBatch[] = [];
      let bytes = 0;
      written = [];
      for (let i = 0; i < toSign.length; i += chunk) {
        const signed = signer.sign(toSign.slice(i, i + chunk), head);
        head = signed.head;
        const firstSeq = signed.batch.header.firstSeq;
        this.#stmt.insertBatch.run(firstSeq, signed.events.length, signed.batch.txId, signed.batch.tx);
        bytes += signed.batch.tx.byteLength;
        const bodies: string[] = [];
        for (const e of signed.events) {
          const body = encodeBody(e.body!);
          const env = JSON.stringify(e.env);
          bodies.push(body);
          bytes += body.length + env.length;
          this.#stmt.insertEvent.run(
            e.env.seq,
            e.id,
            firstSeq,
            e.env.kind,
            e.body?.lot ?? null,
            e.body?.product ?? null,
            e.body?.order ?? null,
            e.env.sourceTimeMs,
            e.env.gatewayTimeMs,
            env,
            body,
          );
        }
        written.push({
          firstSeq,
          count: signed.events.length,
          txId: signed.batch.txId,
          tx: signed.batch.tx,
          bodies,
          events: signed.events.map((e) => ({
            id: e.id,
            sourceTimeMs: e.env.sourceTimeMs,
            gatewayTimeMs: e.env.gatewayTimeMs,
          })),
          committed: false,
          bodiesKept: false,
        });
        stored.push(...signed.events);
        batches.push(signed.batch);
      }
      this.#stmt.setMeta.run('head', JSON.stringify(head));
      if (gapDue) this.#stmt.delMeta.run('pending_gap');
      // An event's size on disk ≈ its share of the stored bytes plus index entries; a moving average
      // keeps the room check honest.
      this.#rowBytes = this.#rowBytes * 0.9 + (bytes / stored.length) * rowOverheadFactor * 0.1;
      return { stored, batches, dropped: 0 };
    });
    const result = txn.immediate();
    // Only now, after the transaction committed, update what memory believes.
    if (result.stored.length > 0) {
      const last = result.stored[result.stored.length - 1]!;
      this.#head = { seq: last.env.seq, id: last.id };
      for (const w of written) this.#fresh.set(w.firstSeq, w);
      for (const seq of this.#fresh.keys()) {
        if (this.#fresh.size <= freshBatchesMax) break;
        this.#fresh.delete(seq);
      }
      this.#rows += result.stored.length;
      this.#pending += result.stored.length;
      if (this.#pendingGap) {
        this.#pendingGap = null;
        this.#gapsAppended += 1;
      }
    } else if (result.dropped > 0) {
      this.#droppedTotal += result.dropped;
      this.#pendingGap = JSON.parse(this.#stmt.getMeta.get('pending_gap') as string) as GapInfo;
      this.#opts.onDrop?.(result.dropped, this.#pendingGap);
    }
    return result;
  }

  /**
   * Records drafts lost before they reached the outbox (a full queue upstream) in the pending gap,
   * so the next append signs a gap event for them too.
   */
  recordDropped(drafts: readonly EventDraft[], reason?: string): void {
    if (drafts.length === 0) return;
    this.#db.transaction(() => this.#recordDrop(drafts, reason))();
    this.#droppedTotal += drafts.length;
    this.#pendingGap = JSON.parse(this.#stmt.getMeta.get('pending_gap') as string) as GapInfo;
    this.#opts.onDrop?.(drafts.length, this.#pendingGap);
  }

  #gapDraft(gap: GapInfo, next: EventDraft): EventDraft {
    return {
      kind: 'gap',
      dataClass: 'equipment',
      station: next.station,
      device: next.device,
      sourceTimeMs: gap.lastSourceTimeMs,
      rule: 'outbox-budget',
      values: { droppedCount: { v: gap.droppedCount, q: 'good' } },
      gap,
    };
  }

  #recordDrop(drafts: readonly EventDraft[], reason?: string): void {
    const gap: GapInfo = this.#pendingGap
      ? structuredClone(this.#pendingGap)
      : {
          droppedCount: 0,
          firstSourceTimeMs: drafts[0]!.sourceTimeMs,
          lastSourceTimeMs: drafts[0]!.sourceTimeMs,
          afterSeq: this.#head.seq,
          byKind: {},
          reason:
            reason ??
            `outbox budget exhausted (${this.#opts.maxBytes} bytes / ${this.#opts.maxRows} rows of events not yet final or whose bodies the member has not confirmed)`,
        };
    for (const d of drafts) {
      gap.droppedCount += 1;
      gap.firstSourceTimeMs = Math.min(gap.firstSourceTimeMs, Math.round(d.sourceTimeMs));
      gap.lastSourceTimeMs = Math.max(gap.lastSourceTimeMs, Math.round(d.sourceTimeMs));
      gap.byKind[d.kind as EventKind] = (gap.byKind[d.kind as EventKind] ?? 0) + 1;
    }
    this.#stmt.setMeta.run('pending_gap', JSON.stringify(gap));
  }

  /** True when `rows` more events fit; prunes done batches (oldest first) to make room. */
  #makeRoom(rows: number): boolean {
    const fits = () =>
      this.#rows + rows <= this.#opts.maxRows &&
      usedBytes(this.#db) + rows * this.#rowBytes <= this.#opts.maxBytes;
    while (!fits()) {
      const removed = this.#countOf(this.#stmt.pruneOldest.all(pruneBatchRows));
      if (removed === 0) return false;
      this.#rows -= removed;
    }
    return true;
  }

  #countOf(rows: unknown[]): number {
    let n = 0;
    for (const r of rows as { count: number }[]) n += r.count;
    return n;
  }

  /** Application state saved by {@link append}'s `meta`, or undefined. */
  loadMeta(key: string): unknown {
    const v = this.#stmt.getMeta.get(`app:${key}`) as string | undefined;
    return v === undefined ? undefined : JSON.parse(v);
  }

  /**
   * Keeps malformed or unmappable payloads for inspection (one transaction per call). The table is
   * bounded at {@link deadLettersStoredMax}: the oldest go first; returns how many were deleted.
   */
  addDeadLetters(letters: readonly Omit<StoredDeadLetter, 'id'>[]): number {
    if (letters.length === 0) return 0;
    return this.#db.transaction(() => {
      for (const l of letters) {
        this.#stmt.addDead.run(l.device, l.source, l.reason, l.payload, l.payloadBytes, l.receivedMs);
      }
      return this.#stmt.trimDead.run(deadLettersStoredMax).changes;
    })();
  }

  /** The newest dead letters, newest first. */
  deadLetters(limit: number): StoredDeadLetter[] {
    return this.#stmt.lastDead.all(limit) as StoredDeadLetter[];
  }

  /**
   * Oldest batches with first seq > afterSeq that are not final yet, up to `eventsMax` events (at
   * least one batch), verified on read. A corrupt batch stops the list: nothing after it can be final
   * before it.
   */
  pending(options: { afterSeq?: number; eventsMax: number }): StoredBatch[] {
    return this.#read(this.#stmt.open, options);
  }

  /**
   * Oldest final batches whose bodies the member has not confirmed keeping, up to `eventsMax` events
   * (at least one batch), verified on read: the submitter sends them again until it has.
   */
  unconfirmed(options: { afterSeq?: number; eventsMax: number }): StoredBatch[] {
    return this.#read(this.#stmt.unconfirmed, options);
  }

  #read(
    query: { all(after: number, limit: number): unknown[] },
    options: { afterSeq?: number; eventsMax: number },
  ): StoredBatch[] {
    const out: StoredBatch[] = [];
    let events = 0;
    let after = options.afterSeq ?? 0;
    for (;;) {
      const rows = query.all(after, 64) as BatchRow[];
      if (rows.length === 0) return out;
      for (const row of rows) {
        if (out.length > 0 && events + row.count > options.eventsMax) return out;
        const b = this.#decode(row);
        if (!b) return out;
        out.push(b);
        events += b.count;
        after = row.first_seq;
      }
    }
  }

  /** Marks batches final. Returns how many events were newly marked (repeats are ignored). */
  markCommitted(
    receipts: readonly CommitReceipt[],
    nowMs = Date.now(),
    meta?: Record<string, unknown>,
  ): number {
    const n = this.#db.transaction(() => {
      for (const [k, v] of Object.entries(meta ?? {})) this.#stmt.setMeta.run(`app:${k}`, JSON.stringify(v));
      let changed = 0;
      for (const r of receipts) {
        const rows = this.#stmt.commit.all(
          r.height,
          JSON.stringify({ blockHash: r.blockHash, txIndex: r.txIndex ?? null }),
          nowMs,
          r.txId,
        );
        changed += this.#countOf(rows);
      }
      return changed;
    })();
    this.#pending -= n;
    for (const b of this.#fresh.values()) if (receipts.some((r) => r.txId === b.txId)) b.committed = true;
    return n;
  }

  /** Records that the member's body store holds these batches' bodies. Returns how many batches changed. */
  markBodiesKept(txIds: readonly string[]): number {
    const n = this.#db.transaction(() => {
      let changed = 0;
      for (const id of txIds) changed += this.#stmt.keep.run(id).changes;
      return changed;
    })();
    if (n > 0) for (const b of this.#fresh.values()) if (txIds.includes(b.txId)) b.bodiesKept = true;
    return n;
  }

  /** True when `txId` is one of this outbox's batches not yet final. */
  isOwnPending(txId: string): boolean {
    return this.#stmt.isPending.get(txId) !== undefined;
  }

  /** Deletes done batches (final, bodies kept) older than the retention; returns how many events. */
  prune(retainCommittedMs: number, nowMs = Date.now()): number {
    let total = 0;
    for (;;) {
      const rows = this.#stmt.pruneOld.all(nowMs - retainCommittedMs, pruneBatchRows);
      total += this.#countOf(rows);
      if (rows.length < pruneBatchRows) break;
    }
    this.#rows -= total;
    return total;
  }

  get(seq: number): StoredEvent | undefined {
    const row = this.#stmt.bySeq.get(seq) as EventRow | undefined;
    return row ? this.#event(row) : undefined;
  }

  getById(id: string): StoredEvent | undefined {
    const row = this.#stmt.byId.get(id) as EventRow | undefined;
    return row ? this.#event(row) : undefined;
  }

  byLot(lot: string, limit = 1000): StoredEvent[] {
    return (this.#stmt.byLot.all(lot, limit) as EventRow[])
      .map((r) => this.#event(r))
      .filter((e) => e !== undefined);
  }

  /**
   * The `limit` lots with the newest events, newest first, with their event counts (still in the
   * outbox: pruned events are not counted) and source-time span. Reads the lot index, then each lot.
   */
  lots(limit: number): LotSummary[] {
    return (this.#stmt.newestLots.all(limit) as { lot: string; lastSeq: number }[]).map((l) => ({
      lot: l.lot,
      lastSeq: l.lastSeq,
      ...(this.#stmt.lotSummary.get(l.lot) as Omit<LotSummary, 'lot' | 'lastSeq'>),
    }));
  }

  /** The newest `limit` events, newest first. */
  last(limit: number): StoredEvent[] {
    return (this.#stmt.last.all(limit) as EventRow[])
      .map((r) => this.#event(r))
      .filter((e) => e !== undefined);
  }

  stats(): OutboxStats {
    const unconfirmed = this.#db
      .prepare('SELECT count(*) AS n FROM batches WHERE committed = 1 AND bodies_kept = 0')
      .pluck()
      .get() as number;
    return {
      rows: this.#rows,
      pending: this.#pending,
      committed: this.#rows - this.#pending,
      bodiesUnconfirmed: unconfirmed,
      usedBytes: usedBytes(this.#db),
      maxBytes: this.#opts.maxBytes,
      maxRows: this.#opts.maxRows,
      head: this.#head,
      droppedTotal: this.#droppedTotal,
      gapsAppended: this.#gapsAppended,
      pendingGap: this.#pendingGap,
      corrupt: [...this.#corrupt],
    };
  }

  close(): void {
    if (this.#db.open) this.#db.close();
  }

  /**
   * Reads and re-verifies a stored batch (decoding, root, key, signature, bodies against their
   * commitments, columns against content); reports corruption and returns undefined. A batch whose
   * bytes are exactly those this process signed and wrote (one of the newest freshBatchesMax) skips
   * the re-verification, which would check what was verified by construction.
   */
  #decode(row: BatchRow): StoredBatch | undefined {
    const fresh = this.#fresh.get(row.first_seq);
    if (fresh && fresh.txId === row.tx_id && Buffer.from(fresh.tx).equals(row.tx)) {
      fresh.committed = row.committed === 1;
      fresh.bodiesKept = row.bodies_kept === 1;
      return fresh;
    }
    let reason: string;
    try {
      const batch = this.#opts.verifier.verify(row.tx);
      const events = this.#stmt.bodiesOf.all(row.first_seq) as {
        seq: number;
        id: string;
        body: string;
        source_time_ms: number;
        gateway_time_ms: number;
      }[];
      const txId = Buffer.from(batch.txId).toString('hex');
      if (txId !== row.tx_id || batch.header.firstSeq !== row.first_seq || batch.header.count !== row.count)
        reason = 'its columns disagree with its content';
      else if (events.length !== row.count) reason = `${events.length} of its ${row.count} events are stored`;
      else {
        const bodies = events.map((e) => e.body);
        this.#opts.verifier.checkBodies(batch, bodies);
        events.forEach((e, i) => {
          if (e.id !== Buffer.from(batch.ids[i]!).toString('hex') || e.seq !== row.first_seq + i)
            throw new EventRejected('id_mismatch', `event ${e.seq}: its id disagrees with the batch`);
        });
        return {
          firstSeq: row.first_seq,
          count: row.count,
          txId,
          tx: new Uint8Array(row.tx),
          bodies,
          events: events.map((e) => ({
            id: e.id,
            sourceTimeMs: e.source_time_ms,
            gatewayTimeMs: e.gateway_time_ms,
          })),
          committed: row.committed === 1,
          bodiesKept: row.bodies_kept === 1,
        };
      }
    } catch (err) {
      if (!(err instanceof EventRejected)) throw err;
      reason = `${err.code}: ${err.message}`;
    }
    this.#reportCorrupt(row.first_seq, reason);
    return undefined;
  }

  /** An event for inspection: its body is checked against its envelope's commitment. */
  #event(row: EventRow): StoredEvent | undefined {
    try {
      const env = JSON.parse(row.env) as EventRecord['env'];
      if (eventId(env) !== row.id)
        throw new EventRejected('id_mismatch', 'id is not the hash of the envelope');
      const body = checkBody(row.body, env.body, env.kind);
      return {
        seq: row.seq,
        event: { id: row.id, env, body },
        txId: row.tx_id,
        committed: row.committed === 1,
        height: row.height,
      };
    } catch (err) {
      if (!(err instanceof EventRejected) && !(err instanceof SyntaxError)) throw err;
      this.#reportCorrupt(row.seq, err instanceof EventRejected ? `${err.code}: ${err.message}` : 'not JSON');
      return undefined;
    }
  }

  #reportCorrupt(seq: number, reason: string): void {
    if (this.#corrupt.includes(seq)) return;
    if (this.#corrupt.length >= corruptListMax) this.#corrupt.shift();
    this.#corrupt.push(seq);
    this.#opts.onCorrupt?.(seq, reason);
  }
}
