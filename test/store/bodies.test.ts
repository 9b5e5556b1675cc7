/**
 * The member's private body store (src/store/bodies.ts): bodies of its own batches only, all or
 * none, checked against their commitments; final heights; retention per data class; the budget.
 */
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { generateKey } from '../../src/crypto/keys.ts';
import { decodeBatchTx } from '../../src/event/batch.ts';
import type { EventDraft } from '../../src/event/draft.ts';
import { encodeBody } from '../../src/event/event.ts';
import { EventSigner, emptyHead } from '../../src/event/signer.ts';
import { BatchVerifier, keyRegistry } from '../../src/event/verify.ts';
import { BodiesRefused, BodyStore, type BodyStoreOptions } from '../../src/store/bodies.ts';
import { StoreError } from '../../src/store/db.ts';
import { Outbox } from '../../src/store/outbox.ts';
import { tempDir } from '../helpers/tmp.ts';

const day = 86_400_000;

function draft(i: number, over: Partial<EventDraft> = {}): EventDraft {
  return {
    kind: 'part_completed',
    dataClass: 'process',
    station: 'ST-10',
    device: 'cnc1',
    sourceTimeMs: 1_700_000_000_000 + i,
    lot: `LOT-${Math.floor(i / 3)}`,
    order: 'ORD-7',
    product: `SN-${i}`,
    values: { diameter: { v: 25 + i / 1000, unit: 'mm', q: 'good' } },
    ...over,
  };
}

function gateway(enterprise: string) {
  const signer = new EventSigner({ enterprise, site: 's', line: 'l', gateway: 'gw-1' }, generateKey());
  let head = emptyHead;
  let n = 0;
  return (count: number, over: Partial<EventDraft> = {}) => {
    const r = signer.sign(
      Array.from({ length: count }, () => draft(n++, over)),
      head,
    );
    head = r.head;
    const d = decodeBatchTx(r.batch.tx);
    if (!d.ok) throw new Error(d.message);
    return {
      decoded: d.batch,
      txId: r.batch.txId,
      events: r.events,
      bodies: r.events.map((e) => encodeBody(e.body!)),
    };
  };
}

const open: BodyStore[] = [];
function openStore(over: Partial<BodyStoreOptions> = {}, path = join(tempDir('bodies'), 'bodies.db')) {
  const s = BodyStore.open({ path, member: 'acme', maxBytes: 1 << 30, ...over });
  open.push(s);
  return { s, path };
}
afterEach(() => {
  for (const s of open.splice(0)) s.close();
});

function refusal(fn: () => unknown): string {
  try {
    fn();
  } catch (err) {
    if (err instanceof BodiesRefused) return err.code;
    throw err;
  }
  return 'kept';
}

describe('the body store', () => {
  it('keeps the bodies of several batches at once; a refused one leaves the others kept', () => {
    const { s } = openStore();
    const acme = gateway('acme');
    const bolt = gateway('bolt');
    const a = acme(3);
    const b = acme(2);
    const c = acme(4);
    const foreign = bolt(1);
    const wrong = [...c.bodies];
    wrong[1] = b.bodies[0]!;
    const answers = s.keepAll([
      { batch: a.decoded, bodies: a.bodies },
      { batch: foreign.decoded, bodies: foreign.bodies },
      { batch: b.decoded, bodies: b.bodies },
      { batch: c.decoded, bodies: wrong },
      { batch: a.decoded, bodies: a.bodies }, // already kept within this call: nothing changes
    ]);
    expect(answers.map((r) => r?.code ?? 'kept')).toEqual([
      'kept',
      'foreign_body',
      'kept',
      'body_mismatch',
      'kept',
    ]);
    expect(s.stats()).toMatchObject({ bodies: 5 });
    expect([s.holds(a.txId, 3), s.holds(b.txId, 2), s.holds(c.txId, 4)]).toEqual([true, true, false]);
    expect(s.stats().refused).toMatchObject({ foreign_body: 1, body_mismatch: 1 });
    // A block's batches are marked final together.
    expect(s.markCommitted([a.txId, b.txId, c.txId], 3)).toBe(5);
  });

  it("keeps its member's bodies, idempotently, finds them by lot, order and product, and records final heights", () => {
    const { s } = openStore();
    const acme = gateway('acme');
    const a = acme(5);
    s.keep(a.decoded, a.bodies, 1_000);
    s.keep(a.decoded, a.bodies, 2_000); // a resubmission changes nothing
    expect(s.stats()).toMatchObject({ bodies: 5, committed: 0 });
    expect(s.holds(a.txId, 5)).toBe(true);
    expect(s.byLot('LOT-1', 10).map((e) => e.body.product)).toEqual(['SN-3', 'SN-4']);
    expect(s.byOrder('ORD-7', 10)).toHaveLength(5);
    expect(s.byProduct('SN-2', 10).map((e) => e.id)).toEqual([a.events[2]!.id]);
    expect(s.get(a.events[0]!.id)).toMatchObject({
      env: a.events[0]!.env,
      body: JSON.parse(a.bodies[0]!),
      height: null,
    });
    expect(s.get(a.events[0]!.id)!.bodyText).toBe(a.bodies[0]);
    expect(s.markCommitted(a.txId, 12)).toBe(5);
    expect(s.markCommitted(a.txId, 13)).toBe(0);
    expect(s.byTx(a.txId).map((e) => e.height)).toEqual([12, 12, 12, 12, 12]);
    const b = acme(2);
    s.keep(b.decoded, b.bodies);
    expect(s.reconcile((txId) => (txId === b.txId ? 20 : null))).toBe(2);
    expect(s.stats()).toMatchObject({ bodies: 7, committed: 7 });
  });

  it('refuses, keeping nothing: another member, a body that does not match, a missing body, a malformed one', () => {
    const { s } = openStore();
    const bolt = gateway('bolt')(2);
    expect(refusal(() => s.keep(bolt.decoded, bolt.bodies))).toBe('foreign_body');
    const a = gateway('acme')(3);
    const tampered = [...a.bodies];
    tampered[2] = tampered[2]!.replace('"lot":"LOT-0"', '"lot":"LOT-9"');
    expect(refusal(() => s.keep(a.decoded, tampered))).toBe('body_mismatch');
    expect(refusal(() => s.keep(a.decoded, a.bodies.slice(0, 2)))).toBe('malformed');
    const broken = [...a.bodies];
    broken[1] = '{';
    expect(refusal(() => s.keep(a.decoded, broken))).toBe('malformed');
    expect(s.stats()).toMatchObject({
      bodies: 0,
      refused: { foreign_body: 1, body_mismatch: 1, malformed: 2, oversize: 0, body_store_full: 0 },
    });
  });

  it('refuses new bodies once its budget is reached, and keeps what it has', () => {
    const { s } = openStore({ maxBytes: 96 * 1024 });
    const acme = gateway('acme');
    let kept = 0;
    let code = 'kept';
    for (let i = 0; i < 200 && code === 'kept'; i++) {
      const b = acme(10);
      code = refusal(() => s.keep(b.decoded, b.bodies));
      if (code === 'kept') kept += 10;
    }
    expect(code).toBe('body_store_full');
    expect(kept).toBeGreaterThan(20);
    expect(s.stats().bodies).toBe(kept);
    expect(s.stats().usedBytes).toBeLessThanOrEqual(96 * 1024);
  });

  it('deletes bodies past their class retention by source time, and never-final ones as old', () => {
    const { s } = openStore({ retention: { process: 0, equipment: 30 * day } });
    const acme = gateway('acme');
    const t0 = 1_700_000_000_000;
    const process = acme(3, { sourceTimeMs: t0 });
    const equipment = acme(2, { kind: 'equipment_status', dataClass: 'equipment', sourceTimeMs: t0 });
    const unfinal = acme(1, { sourceTimeMs: t0 + 40 * day });
    for (const b of [process, equipment]) s.keep(b.decoded, b.bodies, t0);
    s.keep(unfinal.decoded, unfinal.bodies, t0);
    s.markCommitted(process.txId, 1);
    s.markCommitted(equipment.txId, 1);
    expect(s.prune(t0 + 29 * day)).toBe(0);
    // Equipment bodies older than 30 days go; process bodies are kept forever; the never-final one
    // was stored 31 days ago.
    expect(s.prune(t0 + 31 * day)).toBe(3);
    expect(s.stats()).toMatchObject({ bodies: 3, committed: 3, pruned: 3 });
    expect(s.byTx(equipment.txId)).toEqual([]);
  });

  it('belongs to one member, and refuses another format', () => {
    const { s, path } = openStore();
    s.close();
    expect(BodyStore.memberAt(path)).toBe('acme');
    expect(BodyStore.memberAt(join(tempDir('bodies-none'), 'bodies.db'))).toBeUndefined();
    expect(() => openStore({ member: 'bolt' }, path)).toThrow(/holds the bodies of acme, not of bolt/);
    // An outbox is not a body store: refused, naming both formats.
    const other = join(tempDir('bodies-other'), 'outbox.db');
    Outbox.open({
      path: other,
      verifier: new BatchVerifier(keyRegistry([])),
      maxBytes: 1 << 20,
      maxRows: 10,
    }).close();
    expect(() => openStore({}, other)).toThrow(StoreError);
    expect(() => openStore({}, other)).toThrow(
      /format masbc-edge outbox 2; this release reads masbc-edge body store 1/,
    );
  });
});
