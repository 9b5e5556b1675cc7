import { join } from 'node:path';
import Database from 'better-sqlite3';
import { afterEach, describe, expect, it } from 'vitest';
import { canonicalJson } from '../../src/crypto/canonical.ts';
import { generateKey } from '../../src/crypto/keys.ts';
import type { EventDraft } from '../../src/event/draft.ts';
import { EventSigner } from '../../src/event/signer.ts';
import { BatchVerifier, keyRegistry } from '../../src/event/verify.ts';
import { StoreError } from '../../src/store/db.ts';
import {
  deadLettersStoredMax,
  Outbox,
  type OutboxOptions,
  type StoredBatch,
} from '../../src/store/outbox.ts';
import { tempDir } from '../helpers/tmp.ts';

const identity = { enterprise: 'acme', site: 'plant1', line: 'line1', gateway: 'gw1' };
const key = generateKey();
const verifier = new BatchVerifier(
  keyRegistry([
    { keyId: key.keyId, alg: key.alg, publicKey: key.publicKey, enterprise: 'acme', gateway: 'gw1' },
  ]),
);
const signer = new EventSigner(identity, key);
const receipt = (b: StoredBatch, height = 7) => ({ txId: b.txId, height, blockHash: 'ab'.repeat(32) });
const seqs = (batches: StoredBatch[]) =>
  batches.flatMap((b) => Array.from({ length: b.count }, (_, i) => b.firstSeq + i));

function draft(i: number, lot = `LOT-${Math.floor(i / 10)}`): EventDraft {
  return {
    kind: 'part_completed',
    dataClass: 'process',
    station: 'ST-10',
    device: 'cnc1',
    sourceTimeMs: 1_700_000_000_000 + i,
    lot,
    product: `SN-${i}`,
    values: { diameter: { v: 25 + i / 1000, unit: 'mm', q: 'good' } },
  };
}
const drafts = (from: number, n: number) => Array.from({ length: n }, (_, i) => draft(from + i));

const open: Outbox[] = [];
function openOutbox(over: Partial<OutboxOptions> = {}, path = join(tempDir('outbox'), 'outbox.db')) {
  const o = Outbox.open({ path, verifier, maxBytes: 1 << 30, maxRows: 1_000_000, ...over });
  open.push(o);
  return { o, path };
}
afterEach(() => {
  for (const o of open.splice(0)) o.close();
});

describe('outbox', () => {
  it('appends batches, takes pending ones in seq order, marks them committed, queries events by lot and seq', () => {
    const { o } = openOutbox();
    const r = o.append(drafts(0, 25), signer, { batchEventsMax: 5 });
    expect(r.stored.map((e) => e.env.seq)).toEqual(Array.from({ length: 25 }, (_, i) => i + 1));
    expect(r.batches.map((b) => [b.header.firstSeq, b.header.count])).toEqual([
      [1, 5],
      [6, 5],
      [11, 5],
      [16, 5],
      [21, 5],
    ]);
    o.append(drafts(25, 5), signer);
    expect(o.head.seq).toBe(30);
    const first = o.pending({ eventsMax: 10 });
    expect(first.map((b) => b.firstSeq)).toEqual([1, 6]);
    expect(first[0]!.bodies).toHaveLength(5);
    expect(first[0]!.events.map((e) => e.id)).toEqual(r.stored.slice(0, 5).map((e) => e.id));
    // At least one batch, even when it is larger than asked.
    expect(o.pending({ afterSeq: 21, eventsMax: 1 }).map((b) => [b.firstSeq, b.count])).toEqual([[26, 5]]);
    expect(o.markCommitted(first.map((b) => receipt(b)))).toBe(10);
    // Repeating a receipt changes nothing: commit is idempotent.
    expect(o.markCommitted([receipt(first[0]!, 8)])).toBe(0);
    expect(o.isOwnPending(first[0]!.txId)).toBe(false);
    expect(o.isOwnPending(r.batches[2]!.txId)).toBe(true);
    // Final but its bodies not confirmed kept by the member: the submitter sends them again.
    expect(o.pending({ eventsMax: 100 }).map((b) => b.firstSeq)).toEqual([11, 16, 21, 26]);
    expect(o.unconfirmed({ eventsMax: 100 }).map((b) => [b.firstSeq, b.committed])).toEqual([
      [1, true],
      [6, true],
    ]);
    expect(o.markBodiesKept(first.map((b) => b.txId))).toBe(2);
    expect(o.unconfirmed({ eventsMax: 100 })).toEqual([]);
    expect(o.get(3)).toMatchObject({ seq: 3, committed: true, height: 7, txId: first[0]!.txId });
    expect(o.getById(r.stored[4]!.id)?.seq).toBe(5);
    expect(o.byLot('LOT-1').map((e) => e.seq)).toEqual([11, 12, 13, 14, 15, 16, 17, 18, 19, 20]);
    expect(o.byLot('LOT-1')[0]!.event.body).toMatchObject({ lot: 'LOT-1', product: 'SN-10' });
    expect(o.last(2).map((e) => e.seq)).toEqual([30, 29]);
    expect(o.stats()).toMatchObject({ rows: 30, pending: 20, committed: 10, head: { seq: 30 } });
  });

  it('signs a large append in several batches and saves application state in the same transaction', () => {
    const { o, path } = openOutbox();
    const r = o.append(drafts(0, 10), signer, { batchEventsMax: 4, meta: { normaliser: { counter: 10 } } });
    expect(r.batches.map((b) => b.header.count)).toEqual([4, 4, 2]);
    for (let i = 1; i < r.stored.length; i++) expect(r.stored[i]!.env.prev).toBe(r.stored[i - 1]!.id);
    for (let i = 1; i < r.batches.length; i++)
      expect(r.batches[i]!.header.prev).toBe(r.stored[r.batches[i]!.header.firstSeq - 2]!.id);
    o.close();
    const { o: again } = openOutbox({}, path);
    expect(again.loadMeta('normaliser')).toEqual({ counter: 10 });
    expect(again.loadMeta('nothing')).toBeUndefined();
    expect(seqs(again.pending({ eventsMax: 20 }))).toHaveLength(10);
  });

  it('keeps dead letters for inspection, bounded, newest first', () => {
    const { o } = openOutbox();
    const letter = (i: number) => ({
      device: 'oven1',
      source: 't/x',
      reason: `bad ${i}`,
      payload: '{',
      payloadBytes: 1,
      receivedMs: i,
    });
    expect(o.addDeadLetters([letter(1), letter(2)])).toBe(0);
    expect(o.deadLetters(10).map((d) => d.reason)).toEqual(['bad 2', 'bad 1']);
    const many = Array.from({ length: deadLettersStoredMax }, (_, i) => letter(i + 3));
    expect(o.addDeadLetters(many)).toBe(2);
    expect(o.deadLetters(1)[0]).toMatchObject({ reason: `bad ${deadLettersStoredMax + 2}`, payloadBytes: 1 });
  });

  it('keeps the chain across reopen and continues it', () => {
    const { o, path } = openOutbox();
    o.append(drafts(0, 3), signer);
    const head = o.head;
    o.close();
    const { o: again } = openOutbox({}, path);
    expect(again.head).toEqual(head);
    const r = again.append(drafts(3, 1), signer);
    expect(r.stored[0]!.env).toMatchObject({ seq: 4, prev: head.id });
    expect(r.batches[0]!.header).toMatchObject({ firstSeq: 4, prev: head.id });
    expect(again.stats()).toMatchObject({ rows: 4, pending: 4 });
  });

  it('prunes batches final and with their bodies kept past retention, never others', () => {
    const { o } = openOutbox();
    o.append(drafts(0, 10), signer, { batchEventsMax: 5 });
    const [a, b] = o.pending({ eventsMax: 100 });
    o.markCommitted([receipt(a!), receipt(b!)], 1_000);
    o.markBodiesKept([a!.txId]);
    expect(o.prune(500, 1_400)).toBe(0);
    // b is final but its bodies live nowhere else: it stays.
    expect(o.prune(500, 1_600)).toBe(5);
    expect(o.stats()).toMatchObject({ rows: 5, pending: 0, bodiesUnconfirmed: 1 });
    expect(o.unconfirmed({ eventsMax: 100 }).map((x) => x.firstSeq)).toEqual([6]);
    expect(o.get(1)).toBeUndefined();
    expect(o.get(6)?.event.body?.product).toBe('SN-5');
  });

  it('detects a flipped byte in a stored batch or body and reports it instead of passing it on', () => {
    const { o, path } = openOutbox();
    o.append(drafts(0, 6), signer, { batchEventsMax: 2 });
    const corrupt: number[] = [];
    o.close();
    // Flip one digit inside seq 3's stored body (a value), as a bad sector would.
    const raw = new Database(path);
    const body = raw.prepare('SELECT body FROM events WHERE seq = 3').pluck().get() as string;
    const at = body.indexOf('"v":25.') + 6;
    raw
      .prepare('UPDATE events SET body = ? WHERE seq = 3')
      .run(body.slice(0, at) + (body[at] === '5' ? '6' : '5') + body.slice(at + 1));
    // And one byte of the batch holding seqs 5-6.
    const tx = raw.prepare('SELECT tx FROM batches WHERE first_seq = 5').pluck().get() as Buffer;
    tx[tx.length - 3] = tx[tx.length - 3]! ^ 1;
    raw.prepare('UPDATE batches SET tx = ? WHERE first_seq = 5').run(tx);
    raw.close();
    const { o: again } = openOutbox({ onCorrupt: (seq) => corrupt.push(seq) }, path);
    // Submission stops before the first corrupt batch (seqs 3-4).
    expect(again.pending({ eventsMax: 10 }).map((b) => b.firstSeq)).toEqual([1]);
    expect(again.get(3)).toBeUndefined();
    expect(again.get(4)?.seq).toBe(4);
    expect(again.pending({ afterSeq: 3, eventsMax: 10 })).toEqual([]);
    expect(corrupt).toEqual([3, 5]);
    expect(again.stats().corrupt).toEqual([3, 5]);
  });

  it('verifies in full a batch this process wrote if its bytes changed since (the fresh-batch fast path)', () => {
    const { o, path } = openOutbox({ onCorrupt: (seq) => corrupt.push(seq) });
    const corrupt: number[] = [];
    o.append(drafts(0, 6), signer, { batchEventsMax: 2 });
    // Unchanged rows come back as written (and verify).
    expect(o.pending({ eventsMax: 10 }).map((b) => b.firstSeq)).toEqual([1, 3, 5]);
    const raw = new Database(path);
    const tx = raw.prepare('SELECT tx FROM batches WHERE first_seq = 3').pluck().get() as Buffer;
    tx[10] = tx[10]! ^ 1;
    raw.prepare('UPDATE batches SET tx = ? WHERE first_seq = 3').run(tx);
    raw.close();
    expect(o.pending({ eventsMax: 10 }).map((b) => b.firstSeq)).toEqual([1]);
    expect(corrupt).toEqual([3]);
  });

  it('when the budget is full: keeps everything stored, refuses new drafts, then appends one signed gap event', () => {
    const drops: number[] = [];
    const { o } = openOutbox({ maxRows: 20, onDrop: (n) => drops.push(n) });
    o.append(drafts(0, 20), signer, { batchEventsMax: 10 });
    const r1 = o.append(drafts(20, 3), signer);
    const r2 = o.append([{ ...draft(23), kind: 'measurement' }], signer);
    expect([r1.dropped, r2.dropped]).toEqual([3, 1]);
    expect(drops).toEqual([3, 1]);
    expect(o.stats()).toMatchObject({ rows: 20, pending: 20, droppedTotal: 4 });
    expect(o.stats().pendingGap).toMatchObject({
      droppedCount: 4,
      afterSeq: 20,
      firstSourceTimeMs: 1_700_000_000_020,
      lastSourceTimeMs: 1_700_000_000_023,
      byKind: { part_completed: 3, measurement: 1 },
    });
    const [done] = o.pending({ eventsMax: 10 });
    // Final is not enough: the member must hold the bodies before the batch may leave.
    o.markCommitted([receipt(done!)]);
    expect(o.append(drafts(24, 2), signer).dropped).toBe(2);
    o.markBodiesKept([done!.txId]);
    const r3 = o.append(drafts(26, 2), signer);
    expect(r3.dropped).toBe(0);
    expect(r3.stored.map((e) => e.env.kind)).toEqual(['gap', 'part_completed', 'part_completed']);
    const gap = r3.stored[0]!;
    expect(gap.env.seq).toBe(21);
    expect(gap.body?.gap).toMatchObject({ droppedCount: 6, afterSeq: 20 });
    verifier.checkBodies(
      verifier.verify(r3.batches[0]!.tx),
      r3.stored.map((e) => JSON.stringify(e.body)).map((t) => canonical(t)),
    );
    expect(o.stats()).toMatchObject({ pendingGap: null, gapsAppended: 1 });
    // Nothing that was stored was lost: seq 11..20 still pending, chain continuous.
    const rest = o.pending({ eventsMax: 100 });
    expect(seqs(rest)).toEqual([11, 12, 13, 14, 15, 16, 17, 18, 19, 20, 21, 22, 23]);
  });

  it('the pending gap survives a restart', () => {
    const { o, path } = openOutbox({ maxRows: 5 });
    o.append(drafts(0, 5), signer);
    o.append(drafts(5, 2), signer);
    o.close();
    const { o: again } = openOutbox({ maxRows: 10 }, path);
    expect(again.stats().pendingGap?.droppedCount).toBe(2);
    const r = again.append(drafts(7, 1), signer);
    expect(r.stored.map((e) => e.env.kind)).toEqual(['gap', 'part_completed']);
  });

  it('enforces the byte budget from the real database size, then appends the gap event once there is room', () => {
    const { o } = openOutbox({ maxBytes: 256 * 1024 });
    let dropped = 0;
    let i = 0;
    for (; i < 200 && dropped === 0; i++) dropped = o.append(drafts(i * 10, 10), signer).dropped;
    expect(dropped).toBe(10);
    const s = o.stats();
    expect(s.usedBytes).toBeLessThanOrEqual(256 * 1024);
    expect(s.rows).toBeGreaterThan(50);
    // What the refused append held, and where it belongs in the chain.
    const head = o.head.seq;
    const first = (i - 1) * 10;
    const gap = { droppedCount: 10, afterSeq: head, byKind: { part_completed: 10 } };
    expect(s.pendingGap).toMatchObject({
      ...gap,
      firstSourceTimeMs: draft(first).sourceTimeMs,
      lastSourceTimeMs: draft(first + 9).sourceTimeMs,
    });
    // Room again once the stored events are final and their bodies kept by the member.
    for (let batches = o.pending({ eventsMax: 1_000 }); batches.length > 0; ) {
      o.markCommitted(batches.map((b) => receipt(b)));
      o.markBodiesKept(batches.map((b) => b.txId));
      batches = o.pending({ eventsMax: 1_000 });
    }
    const r = o.append(drafts(5_000, 1), signer);
    expect(r.dropped).toBe(0);
    expect(r.stored.map((e) => [e.env.kind, e.env.seq])).toEqual([
      ['gap', head + 1],
      ['part_completed', head + 2],
    ]);
    expect(r.stored[0]!.body?.gap).toMatchObject(gap);
    expect(o.stats()).toMatchObject({ pendingGap: null, gapsAppended: 1, droppedTotal: 10 });
  });

  it('refuses a store of the earlier event format, naming both formats, and leaves it as it was', () => {
    const path = join(tempDir('outbox-old'), 'outbox.db');
    const raw = new Database(path);
    raw.exec(
      "CREATE TABLE schema_migrations (version INTEGER PRIMARY KEY, description TEXT NOT NULL, applied_ms INTEGER NOT NULL); INSERT INTO schema_migrations VALUES (1, 'events, meta', 0); CREATE TABLE events (seq INTEGER PRIMARY KEY, json TEXT NOT NULL); INSERT INTO events VALUES (1, '{}');",
    );
    raw.close();
    expect(() => openOutbox({}, path)).toThrow(StoreError);
    expect(() => openOutbox({}, path)).toThrow(
      /written by an earlier release .* masbc-edge outbox 2 .* move the file aside/,
    );
    const again = new Database(path);
    expect(again.prepare('SELECT count(*) FROM events').pluck().get()).toBe(1);
    again.close();
  });
});

function canonical(text: string): string {
  return canonicalJson(JSON.parse(text));
}
