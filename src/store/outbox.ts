/**
 * The outbox: signed events wait here, durably, until they are seen in a final block.
 *
 * - Appends sign and insert a batch of drafts in ONE transaction, together with the gateway's new
 *   chain head (seq, id). A crash therefore never leaves a seq used twice or skipped, and an event
 *   is acknowledged (append returned) only once it is on disk (see db.ts for the synchronous level).
 * - A disk budget (bytes really used by the database, and rows) bounds the outbox. Under pressure,
 *   committed events (already final on chain) are pruned first, oldest first. When the outbox is
 *   full of events not yet final, nothing stored is dropped: new drafts are refused, counted, and
 *   summarised (count, time range, kinds) in a persisted gap record. They never receive a seq, so the
 *   gateway's hash chain stays unbroken; when space returns, the next append first signs one `gap`
 *   event carrying that record, making the loss provable on the ledger.
 * - Every read re-verifies the event (id, body commitment, signature), so a flipped byte on disk is
 *   reported as corruption instead of being passed on.
 *
 * @example
 *   const outbox = Outbox.open({ path, verifier, maxBytes: 1 << 30, maxRows: 1e7 });
 *   outbox.append(drafts, signer);
 *   const batch = outbox.pending({ afterSeq: 0, limit: 500 });
 *   outbox.markCommitted([{ id, height, blockHash, proof }]);
 */
import { join } from 'node:path';
import { signatureBatchMax } from '../event/bounds.ts';
import type { EventDraft } from '../event/draft.ts';
import { encodeEvent, type GapInfo, type SignedEvent } from '../event/event.ts';
import type { EventKind } from '../event/kinds.ts';
import { type ChainHead, type EventSigner, emptyHead } from '../event/signer.ts';
import { EventRejected, type EventVerifier } from '../event/verify.ts';
import {
  type Migration,
  openDatabase,
  type SqliteDatabase,
  StoreError,
  type Synchronous,
  usedBytes,
} from './db.ts';

export const outboxMigrations: readonly Migration[] = [
  {
    version: 1,
    description: 'events, meta',
    up: `
      CREATE TABLE events (
        seq INTEGER PRIMARY KEY,
        id TEXT NOT NULL UNIQUE,
        kind TEXT NOT NULL,
        lot TEXT,
        product TEXT,
        order_id TEXT,
        source_time_ms INTEGER NOT NULL,
        gateway_time_ms INTEGER NOT NULL,
        json TEXT NOT NULL,
        bytes INTEGER NOT NULL,
        committed INTEGER NOT NULL DEFAULT 0,
        height INTEGER,
        receipt TEXT,
        committed_ms INTEGER
      );
      CREATE INDEX events_pending ON events (seq) WHERE committed = 0;
      CREATE INDEX events_committed ON events (committed_ms) WHERE committed = 1;
      CREATE INDEX events_lot ON events (lot, seq) WHERE lot IS NOT NULL;
      CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
    `,
  },
  {
    version: 2,
    description: 'dead letters',
    up: `
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

/** Proof that an event is final: the block that holds it and the event's place in it. */
export interface CommitReceipt {
  id: string;
  height: number;
  blockHash: string;
  /** Anything the chain gives to prove inclusion (Merkle path, certificate reference), as JSON. */
  proof?: unknown;
}

export interface StoredEvent {
  seq: number;
  event: SignedEvent;
  /** Canonical JSON as stored (the wire form). */
  json: string;
  committed: boolean;
  height: number | null;
}

export interface AppendOptions {
  /** Events per signature batch; a larger append is signed in several batches, in one transaction. */
  signBatchMax?: number;
  /**
   * Application state to save in the same transaction (e.g. the normaliser's counters), so that what
   * was emitted and the memory of having emitted it can never disagree after a crash. Read it back
   * with {@link Outbox.loadMeta}.
   */
  meta?: Record<string, unknown>;
}

export interface AppendResult {
  /** Events now on disk (acknowledged), including a leading gap event if one was due. */
  stored: SignedEvent[];
  /** Drafts refused because the budget is exhausted (recorded in the pending gap). */
  dropped: number;
}

export interface OutboxStats {
  rows: number;
  pending: number;
  committed: number;
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
  /** Seqs found corrupt on read. */
  corrupt: number[];
}

export interface OutboxOptions {
  path: string;
  /** Verifies events read back (the gateway's own keys): detects corruption on disk. */
  verifier: EventVerifier;
  maxBytes: number;
  maxRows: number;
  synchronous?: Synchronous;
  /** Called once per corrupt event found on read. */
  onCorrupt?: (seq: number, reason: string) => void;
  /** Called when drafts are refused for lack of space (rate-limit your logging there). */
  onDrop?: (count: number, gap: GapInfo) => void;
}

/** The outbox's file in the gateway's data folder. */
export function outboxPath(dataDir: string): string {
  return join(dataDir, 'outbox.db');
}

/** Oldest committed events deleted per pruning pass under disk pressure. */
const pruneBatchRows = 10_000;
/** Bound on the corrupt-seq list kept for stats. */
const corruptListMax = 100;
/**
 * Newest events this process signed and wrote, kept to skip re-verifying their rows on read (see
 * #decode). Overflow: the oldest entry is forgotten and its row is fully verified when read.
 */
export const freshEventsMax = 16_384;
/** First guess of a stored row's size on disk (data + index entries), refined as rows are written. */
const rowBytesInitial = 1024;
/** Disk bytes per JSON byte of a row, counting its index entries and page slack (measured: ~1.3–1.6). */
const rowOverheadFactor = 1.6;

export class CorruptEvent extends StoreError {
  override name = 'CorruptEvent';
  readonly seq: number;
  constructor(seq: number, reason: string) {
    super(`outbox event seq ${seq} is corrupt: ${reason}`);
    this.seq = seq;
  }
}

interface Row {
  seq: number;
  id: string;
  json: string;
  committed: number;
  height: number | null;
}

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
  /** seq → what this process wrote for it (bounded by freshEventsMax, oldest forgotten first). */
  readonly #fresh = new Map<number, { json: string; event: SignedEvent }>();
  readonly #stmt;

  static open(options: OutboxOptions): Outbox {
    return new Outbox(
      openDatabase(options.path, {
        synchronous: options.synchronous ?? 'full',
        migrations: outboxMigrations,
      }),
      options,
    );
  }

  private constructor(db: SqliteDatabase, options: OutboxOptions) {
    this.#db = db;
    this.#opts = options;
    this.#stmt = {
      insert: db.prepare(
        'INSERT INTO events (seq, id, kind, lot, product, order_id, source_time_ms, gateway_time_ms, json, bytes) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)',
      ),
      setMeta: db.prepare(
        'INSERT INTO meta (key, value) VALUES (?, ?) ON CONFLICT (key) DO UPDATE SET value = excluded.value',
      ),
      delMeta: db.prepare('DELETE FROM meta WHERE key = ?'),
      getMeta: db.prepare('SELECT value FROM meta WHERE key = ?').pluck(),
      pending: db.prepare(
        'SELECT seq, id, json, committed, height FROM events WHERE committed = 0 AND seq > ? ORDER BY seq LIMIT ?',
      ),
      bySeq: db.prepare('SELECT seq, id, json, committed, height FROM events WHERE seq = ?'),
      isPending: db.prepare('SELECT 1 FROM events WHERE id = ? AND committed = 0'),
      byId: db.prepare('SELECT seq, id, json, committed, height FROM events WHERE id = ?'),
      byLot: db.prepare(
        'SELECT seq, id, json, committed, height FROM events WHERE lot = ? ORDER BY seq LIMIT ?',
      ),
      last: db.prepare('SELECT seq, id, json, committed, height FROM events ORDER BY seq DESC LIMIT ?'),
      commit: db.prepare(
        'UPDATE events SET committed = 1, height = ?, receipt = ?, committed_ms = ? WHERE id = ? AND committed = 0',
      ),
      pruneOld: db.prepare(
        'DELETE FROM events WHERE seq IN (SELECT seq FROM events WHERE committed = 1 AND committed_ms < ? ORDER BY committed_ms LIMIT ?)',
      ),
      addDead: db.prepare(
        'INSERT INTO dead_letters (device, source, reason, payload, payload_bytes, received_ms) VALUES (?, ?, ?, ?, ?, ?)',
      ),
      trimDead: db.prepare('DELETE FROM dead_letters WHERE id <= (SELECT max(id) FROM dead_letters) - ?'),
      lastDead: db.prepare(
        'SELECT id, device, source, reason, payload, payload_bytes AS payloadBytes, received_ms AS receivedMs FROM dead_letters ORDER BY id DESC LIMIT ?',
      ),
      pruneOldest: db.prepare(
        'DELETE FROM events WHERE seq IN (SELECT seq FROM events WHERE committed = 1 ORDER BY seq LIMIT ?)',
      ),
      // Operator queries (`outbox --lots`): the lots with the newest events, from the lot index alone.
      newestLots: db.prepare(
        'SELECT lot, max(seq) AS lastSeq FROM events WHERE lot IS NOT NULL GROUP BY lot ORDER BY lastSeq DESC LIMIT ?',
      ),
      lotSummary: db.prepare(
        'SELECT count(*) AS events, coalesce(sum(committed), 0) AS final, min(source_time_ms) AS firstSourceMs, max(source_time_ms) AS lastSourceMs FROM events WHERE lot = ?',
      ),
    };
    const head = this.#stmt.getMeta.get('head') as string | undefined;
    this.#head = head ? (JSON.parse(head) as ChainHead) : emptyHead;
    const gap = this.#stmt.getMeta.get('pending_gap') as string | undefined;
    this.#pendingGap = gap ? (JSON.parse(gap) as GapInfo) : null;
    const counts = db
      .prepare('SELECT count(*) AS rows, coalesce(sum(committed = 0), 0) AS pending FROM events')
      .get() as {
      rows: number;
      pending: number;
    };
    this.#rows = counts.rows;
    this.#pending = counts.pending;
    this.#checkHead();
  }

  /** The stored head must be the newest stored event (unless that was pruned after commit). */
  #checkHead(): void {
    const newest = this.#stmt.last.get(1) as Row | undefined;
    if (newest && newest.seq > this.#head.seq) {
      throw new StoreError(
        `outbox head says seq ${this.#head.seq} but seq ${newest.seq} is stored: the store was modified outside masbc-edge`,
      );
    }
    if (newest && newest.seq === this.#head.seq && newest.id !== this.#head.id) {
      throw new CorruptEvent(newest.seq, 'its id differs from the recorded chain head');
    }
  }

  get head(): ChainHead {
    return this.#head;
  }

  /**
   * Signs the drafts as one batch after the current head and stores them, in one transaction.
   * If the budget is exhausted, stores nothing and records the drafts in the pending gap.
   */
  append(drafts: readonly EventDraft[], signer: EventSigner, options: AppendOptions = {}): AppendResult {
    if (drafts.length === 0 && !options.meta) return { stored: [], dropped: 0 };
    let written: { json: string; event: SignedEvent }[] = [];
    const txn = this.#db.transaction((): AppendResult => {
      for (const [k, v] of Object.entries(options.meta ?? {}))
        this.#stmt.setMeta.run(`app:${k}`, JSON.stringify(v));
      if (drafts.length === 0) return { stored: [], dropped: 0 };
      const gapDue = this.#pendingGap !== null;
      if (!this.#makeRoom(drafts.length + (gapDue ? 1 : 0))) {
        this.#recordDrop(drafts);
        return { stored: [], dropped: drafts.length };
      }
      const toSign = gapDue ? [this.#gapDraft(this.#pendingGap!, drafts[0]!), ...drafts] : [...drafts];
      const chunk = options.signBatchMax ?? signatureBatchMax;
      let head = this.#head;
      const events: SignedEvent[] = [];
      for (let i = 0; i < toSign.length; i += chunk) {
        const signed = signer.sign(toSign.slice(i, i + chunk), head);
        head = signed.head;
        events.push(...signed.events);
      }
      let bytes = 0;
      written = [];
      for (const e of events) {
        const json = encodeEvent(e);
        written.push({ json, event: e });
        bytes += json.length;
        const b = e.body;
        this.#stmt.insert.run(
          e.env.seq,
          e.id,
          e.env.kind,
          b?.lot ?? null,
          b?.product ?? null,
          b?.order ?? null,
          e.env.sourceTimeMs,
          e.env.gatewayTimeMs,
          json,
          json.length,
        );
      }
      this.#stmt.setMeta.run('head', JSON.stringify(head));
      if (gapDue) this.#stmt.delMeta.run('pending_gap');
      // Row size on disk ≈ JSON plus its index entries; a moving average keeps the room check honest.
      this.#rowBytes = this.#rowBytes * 0.9 + (bytes / events.length) * rowOverheadFactor * 0.1;
      return { stored: events, dropped: 0 };
    });
    const result = txn.immediate();
    // Only now, after the transaction committed, update what memory believes.
    if (result.stored.length > 0) {
      const last = result.stored[result.stored.length - 1]!;
      this.#head = { seq: last.env.seq, id: last.id };
      for (const w of written) this.#fresh.set(w.event.env.seq, w);
      for (const seq of this.#fresh.keys()) {
        if (this.#fresh.size <= freshEventsMax) break;
        this.#fresh.delete(seq);
      }
      this.#rows += result.stored.length;
      this.#pending += result.stored.length;
      if (this.#pendingGap) {
        this.#pendingGap = null;
        this.#gapsAppended += 1;
      }
    } else {
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
            `outbox budget exhausted (${this.#opts.maxBytes} bytes / ${this.#opts.maxRows} rows of events not yet final)`,
        };
    for (const d of drafts) {
      gap.droppedCount += 1;
      gap.firstSourceTimeMs = Math.min(gap.firstSourceTimeMs, Math.round(d.sourceTimeMs));
      gap.lastSourceTimeMs = Math.max(gap.lastSourceTimeMs, Math.round(d.sourceTimeMs));
      gap.byKind[d.kind as EventKind] = (gap.byKind[d.kind as EventKind] ?? 0) + 1;
    }
    this.#stmt.setMeta.run('pending_gap', JSON.stringify(gap));
  }

  /** True when `rows` more events fit; prunes committed events (oldest first) to make room. */
  #makeRoom(rows: number): boolean {
    const fits = () =>
      this.#rows + rows <= this.#opts.maxRows &&
      usedBytes(this.#db) + rows * this.#rowBytes <= this.#opts.maxBytes;
    while (!fits()) {
      const removed = this.#stmt.pruneOldest.run(pruneBatchRows).changes;
      if (removed === 0) return false;
      this.#rows -= removed;
    }
    return true;
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

  /** Oldest events not yet final with seq > afterSeq, up to `limit`, verified on read. */
  pending(options: { afterSeq?: number; limit: number }): StoredEvent[] {
    const rows = this.#stmt.pending.all(options.afterSeq ?? 0, options.limit) as Row[];
    const out: StoredEvent[] = [];
    for (const row of rows) {
      const e = this.#decode(row);
      // A corrupt event cannot be submitted, and nothing after it can be final before it: stop here.
      if (!e) break;
      out.push(e);
    }
    return out;
  }

  /** Marks events final. Returns how many were newly marked (repeats are ignored). */
  markCommitted(
    receipts: readonly CommitReceipt[],
    nowMs = Date.now(),
    meta?: Record<string, unknown>,
  ): number {
    const n = this.#db.transaction(() => {
      for (const [k, v] of Object.entries(meta ?? {})) this.#stmt.setMeta.run(`app:${k}`, JSON.stringify(v));
      let changed = 0;
      for (const r of receipts) {
        changed += this.#stmt.commit.run(
          r.height,
          JSON.stringify({ blockHash: r.blockHash, proof: r.proof ?? null }),
          nowMs,
          r.id,
        ).changes;
      }
      return changed;
    })();
    this.#pending -= n;
    return n;
  }

  /** True when `id` is one of this outbox's events not yet final. */
  isOwnPending(id: string): boolean {
    return this.#stmt.isPending.get(id) !== undefined;
  }

  /** Deletes committed events older than the retention; returns how many. */
  prune(retainCommittedMs: number, nowMs = Date.now()): number {
    let total = 0;
    for (;;) {
      const n = this.#stmt.pruneOld.run(nowMs - retainCommittedMs, pruneBatchRows).changes;
      total += n;
      if (n < pruneBatchRows) break;
    }
    this.#rows -= total;
    return total;
  }

  get(seq: number): StoredEvent | undefined {
    const row = this.#stmt.bySeq.get(seq) as Row | undefined;
    return row ? this.#decode(row) : undefined;
  }

  getById(id: string): StoredEvent | undefined {
    const row = this.#stmt.byId.get(id) as Row | undefined;
    return row ? this.#decode(row) : undefined;
  }

  byLot(lot: string, limit = 1000): StoredEvent[] {
    return (this.#stmt.byLot.all(lot, limit) as Row[])
      .map((r) => this.#decode(r))
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
    return (this.#stmt.last.all(limit) as Row[]).map((r) => this.#decode(r)).filter((e) => e !== undefined);
  }

  stats(): OutboxStats {
    return {
      rows: this.#rows,
      pending: this.#pending,
      committed: this.#rows - this.#pending,
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
   * Parses and re-verifies a stored row; reports corruption and returns undefined. A row whose
   * bytes are exactly those this process signed and wrote (one of the newest freshEventsMax) skips
   * the re-verification, which would check what was verified by construction: any changed byte
   * makes the strings differ and the row is verified in full.
   */
  #decode(row: Row): StoredEvent | undefined {
    const fresh = this.#fresh.get(row.seq);
    if (fresh && fresh.json === row.json && fresh.event.id === row.id) {
      return {
        seq: row.seq,
        event: fresh.event,
        json: row.json,
        committed: row.committed === 1,
        height: row.height,
      };
    }
    let reason: string;
    try {
      const parsed: unknown = JSON.parse(row.json);
      const event = this.#opts.verifier.verify(parsed, Buffer.byteLength(row.json));
      if (event.id !== row.id || event.env.seq !== row.seq) reason = 'its columns disagree with its content';
      else {
        return { seq: row.seq, event, json: row.json, committed: row.committed === 1, height: row.height };
      }
    } catch (err) {
      if (!(err instanceof EventRejected) && !(err instanceof SyntaxError)) throw err;
      reason = err instanceof EventRejected ? `${err.code}: ${err.message}` : `not JSON: ${err.message}`;
    }
    if (!this.#corrupt.includes(row.seq)) {
      if (this.#corrupt.length >= corruptListMax) this.#corrupt.shift();
      this.#corrupt.push(row.seq);
      this.#opts.onCorrupt?.(row.seq, reason);
    }
    return undefined;
  }
}
