import { join } from 'node:path';
import Database from 'better-sqlite3';
import { afterEach, describe, expect, it } from 'vitest';
import { generateKey } from '../../src/crypto/keys.ts';
import type { EventDraft } from '../../src/event/draft.ts';
import { EventSigner } from '../../src/event/signer.ts';
import { EventVerifier, keyRegistry } from '../../src/event/verify.ts';
import { deadLettersStoredMax, Outbox, type OutboxOptions } from '../../src/store/outbox.ts';
import { tempDir } from '../helpers/tmp.ts';

const identity = { enterprise: 'acme', site: 'plant1', line: 'line1', gateway: 'gw1' };
const key = generateKey();
const verifier = new EventVerifier(
  keyRegistry([
    { keyId: key.keyId, alg: key.alg, publicKey: key.publicKey, enterprise: 'acme', gateway: 'gw1' },
  ]),
);
const signer = new EventSigner(identity, key, { mode: 'batch' });

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
  it('appends, takes pending in seq order, marks committed, queries by lot and seq', () => {
    const { o } = openOutbox();
    const r = o.append(drafts(0, 25), signer);
    expect(r.stored.map((e) => e.env.seq)).toEqual(Array.from({ length: 25 }, (_, i) => i + 1));
    o.append(drafts(25, 5), signer);
    expect(o.head.seq).toBe(30);
    const batch = o.pending({ limit: 10 });
    expect(batch.map((e) => e.seq)).toEqual([1, 2, 3, 4, 5, 6, 7, 8, 9, 10]);
    expect(o.pending({ afterSeq: 28, limit: 10 }).map((e) => e.seq)).toEqual([29, 30]);
    expect(
      o.markCommitted(batch.map((b) => ({ id: b.event.id, height: 7, blockHash: 'ab'.repeat(32) }))),
    ).toBe(10);
    // Repeating a receipt changes nothing: commit is idempotent.
    expect(o.markCommitted([{ id: batch[0]!.event.id, height: 8, blockHash: 'cd'.repeat(32) }])).toBe(0);
    expect(o.pending({ limit: 100 }).map((e) => e.seq)[0]).toBe(11);
    expect(o.get(3)).toMatchObject({ seq: 3, committed: true, height: 7 });
    expect(o.getById(batch[4]!.event.id)?.seq).toBe(5);
    expect(o.byLot('LOT-1').map((e) => e.seq)).toEqual([11, 12, 13, 14, 15, 16, 17, 18, 19, 20]);
    expect(o.last(2).map((e) => e.seq)).toEqual([30, 29]);
    expect(o.stats()).toMatchObject({ rows: 30, pending: 20, committed: 10, head: { seq: 30 } });
  });

  it('signs a large append in several batches and saves application state in the same transaction', () => {
    const { o, path } = openOutbox();
    const r = o.append(drafts(0, 10), signer, { signBatchMax: 4, meta: { normaliser: { counter: 10 } } });
    expect(r.stored.map((e) => (e.sig.t === 'batch' ? e.sig.size : 1))).toEqual([
      4, 4, 4, 4, 4, 4, 4, 4, 2, 2,
    ]);
    for (let i = 1; i < r.stored.length; i++) expect(r.stored[i]!.env.prev).toBe(r.stored[i - 1]!.id);
    o.close();
    const { o: again } = openOutbox({}, path);
    expect(again.loadMeta('normaliser')).toEqual({ counter: 10 });
    expect(again.loadMeta('nothing')).toBeUndefined();
    expect(again.pending({ limit: 20 })).toHaveLength(10);
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
    expect(again.stats()).toMatchObject({ rows: 4, pending: 4 });
  });

  it('prunes committed events past retention, never pending ones', () => {
    const { o } = openOutbox();
    o.append(drafts(0, 10), signer);
    const firstFive = o.pending({ limit: 5 });
    o.markCommitted(
      firstFive.map((e) => ({ id: e.event.id, height: 1, blockHash: '00'.repeat(32) })),
      1_000,
    );
    expect(o.prune(500, 1_400)).toBe(0);
    expect(o.prune(500, 1_600)).toBe(5);
    expect(o.stats()).toMatchObject({ rows: 5, pending: 5 });
    expect(o.pending({ limit: 100 }).map((e) => e.seq)).toEqual([6, 7, 8, 9, 10]);
  });

  it('detects a flipped byte on read and reports it instead of passing it on', () => {
    const { o, path } = openOutbox();
    o.append(drafts(0, 5), signer);
    const corrupt: number[] = [];
    o.close();
    // Flip one character inside seq 3's stored JSON (a value digit), as a bad sector would.
    const raw = new Database(path);
    const json = raw.prepare('SELECT json FROM events WHERE seq = 3').pluck().get() as string;
    const at = json.indexOf('"v":25.') + 6;
    const flipped = json.slice(0, at) + (json[at] === '5' ? '6' : '5') + json.slice(at + 1);
    raw.prepare('UPDATE events SET json = ? WHERE seq = 3').run(flipped);
    raw.close();
    const { o: again } = openOutbox({ onCorrupt: (seq) => corrupt.push(seq) }, path);
    expect(again.pending({ limit: 10 }).map((e) => e.seq)).toEqual([1, 2]);
    expect(again.get(3)).toBeUndefined();
    expect(corrupt).toEqual([3]);
    expect(again.stats().corrupt).toEqual([3]);
  });

  it('verifies in full a row this process wrote if its bytes changed since (the fresh-event fast path)', () => {
    const { o, path } = openOutbox({ onCorrupt: (seq) => corrupt.push(seq) });
    const corrupt: number[] = [];
    o.append(drafts(0, 5), signer);
    // Unchanged rows come back as written (and verify).
    expect(o.pending({ limit: 10 }).map((e) => e.seq)).toEqual([1, 2, 3, 4, 5]);
    const raw = new Database(path);
    const json = raw.prepare('SELECT json FROM events WHERE seq = 4').pluck().get() as string;
    const at = json.indexOf('"v":25.') + 6;
    raw
      .prepare('UPDATE events SET json = ? WHERE seq = 4')
      .run(json.slice(0, at) + (json[at] === '5' ? '6' : '5') + json.slice(at + 1));
    raw.close();
    expect(o.pending({ limit: 10 }).map((e) => e.seq)).toEqual([1, 2, 3]);
    expect(corrupt).toEqual([4]);
  });

  it('when the budget is full: keeps everything stored, refuses new drafts, then appends one signed gap event', () => {
    const drops: number[] = [];
    const { o } = openOutbox({ maxRows: 20, onDrop: (n) => drops.push(n) });
    o.append(drafts(0, 20), signer);
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
    // Space returns once events are final on chain: committed rows are pruned under pressure.
    const done = o.pending({ limit: 10 });
    o.markCommitted(done.map((e) => ({ id: e.event.id, height: 1, blockHash: '00'.repeat(32) })));
    const r3 = o.append(drafts(24, 2), signer);
    expect(r3.dropped).toBe(0);
    expect(r3.stored.map((e) => e.env.kind)).toEqual(['gap', 'part_completed', 'part_completed']);
    const gap = r3.stored[0]!;
    expect(gap.env.seq).toBe(21);
    expect(gap.body?.gap).toMatchObject({ droppedCount: 4, afterSeq: 20 });
    verifier.verify(JSON.parse(JSON.stringify(gap)));
    expect(o.stats()).toMatchObject({ pendingGap: null, gapsAppended: 1 });
    // Nothing that was stored was lost: seq 11..20 still pending, chain continuous.
    const rest = o.pending({ limit: 100 });
    expect(rest.map((e) => e.seq)).toEqual([11, 12, 13, 14, 15, 16, 17, 18, 19, 20, 21, 22, 23]);
    for (let i = 1; i < rest.length; i++) expect(rest[i]!.event.env.prev).toBe(rest[i - 1]!.event.id);
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

  it('enforces the byte budget from the real database size', () => {
    const { o } = openOutbox({ maxBytes: 256 * 1024 });
    let dropped = 0;
    for (let i = 0; i < 200 && dropped === 0; i++) dropped = o.append(drafts(i * 10, 10), signer).dropped;
    expect(dropped).toBe(10);
    const s = o.stats();
    expect(s.usedBytes).toBeLessThanOrEqual(256 * 1024);
    expect(s.rows).toBeGreaterThan(50);
  });
});
