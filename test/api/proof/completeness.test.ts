/**
 * Completeness of a closed order (contract of issue 11, §4): its proven order_closed event counts the
 * order's events and commits to the root of their ids; a bundle verifies complete only with exactly
 * those events. Events are the order's by their order tag or through a lot bound to the order.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { ProofBundle } from '../../../src/api/proof/bundle.ts';
import { orderSummary, selectScope } from '../../../src/api/proof/order-events.ts';
import { type BundleVerification, verifyProofBundle } from '../../../src/api/proof/verify.ts';
import { nodeVerifier } from '../../../src/crypto/keys.ts';
import { tempDir } from '../../helpers/tmp.ts';
import {
  closedValues,
  officeDraft,
  partDraft,
  startTraceFixture,
  statusDraft,
  type TraceFixture,
} from './fixture.ts';

let fx: TraceFixture;
let closed: ProofBundle;
let wrongRoot: ProofBundle;

const verify = (b: unknown): BundleVerification =>
  verifyProofBundle(b, fx.validator.genesis.document, { verifier: nodeVerifier });

/** The summary the member computes at close time: the final events of the one selection. */
function summaryOf(order: string) {
  const s = selectScope(fx.validator.bodies, { order }, ['process'], 10_000);
  return orderSummary(s.events.filter((e) => e.height !== null).map((e) => e.id));
}

beforeAll(async () => {
  fx = await startTraceFixture(tempDir('proof-complete'));
  // gw-2 stands for the member's office signer (a gateway key of the member, contract §3).
  await fx.commit(2, [officeDraft('order_accepted', 'ORD-C')]);
  await fx.commit(1, [
    partDraft({ order: 'ORD-C', lot: 'L-C1', product: 'SN-1' }),
    partDraft({ lot: 'L-C2', product: 'SN-3' }),
    partDraft({ order: 'ORD-X', lot: 'L-X', product: 'SN-8' }),
    statusDraft('ORD-C', 'L-C1'),
    partDraft({ order: 'ORD-C', lot: 'L-C1', product: 'SN-2' }),
    partDraft({ lot: 'L-C2', product: 'SN-4' }),
  ]);
  await fx.commit(2, [officeDraft('lot_bound', 'ORD-C', { lot: 'L-C2' })]);
  await fx.commit(2, [officeDraft('order_closed', 'ORD-C', { values: closedValues(summaryOf('ORD-C')) })]);
  closed = fx.bundle({ scope: { order: 'ORD-C' } });

  // A member closing ORD-D with a summary of the right size over another set of events.
  await fx.commit(1, [
    partDraft({ order: 'ORD-D', lot: 'L-D', product: 'SN-5' }),
    partDraft({ order: 'ORD-D', lot: 'L-D', product: 'SN-6' }),
  ]);
  const ids = selectScope(fx.validator.bodies, { order: 'ORD-D' }, ['process'], 100).events.map((e) => e.id);
  const other = closed.events[0]!.id;
  await fx.commit(2, [
    officeDraft('order_closed', 'ORD-D', { values: closedValues(orderSummary([ids[0]!, other])) }),
  ]);
  wrongRoot = fx.bundle({ scope: { order: 'ORD-D' } });
}, 120_000);

afterAll(async () => {
  await fx?.stop();
});

describe('completeness of a closed order', () => {
  it("holds the order's tagged events and its bound lot's, and proves them complete", () => {
    expect(closed.events.map((e) => e.body.product ?? e.envelope.kind).sort()).toEqual([
      'SN-1',
      'SN-2',
      'SN-3',
      'SN-4',
      'lot_bound',
    ]);
    expect(closed.lifecycle.map((e) => e.envelope.kind)).toEqual(['order_accepted', 'order_closed']);
    const r = verify(closed);
    expect(r.ok, r.ok ? '' : `${r.first.code}: ${r.first.detail}`).toBe(true);
    if (r.ok) expect(r.summary).toMatchObject({ events: 5, lifecycle: 2, closed: true, complete: true });
    expect(verifyProofBundle(closed, fx.validator.genesis.document).ok).toBe(true);
  });

  it('a withheld event fails on the count; a withheld lot binding leaves its lot out of scope', () => {
    const kinds = closed.events.map((e) => e.envelope.kind);
    expect(kinds.at(-1)).toBe('lot_bound');
    for (const i of [0, 1, 2, 3]) {
      const b = structuredClone(closed);
      b.events.splice(i, 1);
      const r = verify(b);
      expect(r.ok).toBe(false);
      if (!r.ok) expect(r.first.code, r.first.detail).toBe('completeness_count');
    }
    const b = structuredClone(closed);
    b.events.pop();
    const r = verify(b);
    expect(r.ok).toBe(false);
    if (!r.ok) expect(r.first.code, r.first.detail).toBe('out_of_scope');
  });

  it('a summary over another set of the same size fails on the root', () => {
    const r = verify(wrongRoot);
    expect(r.ok).toBe(false);
    if (!r.ok) expect(r.first.code, r.first.detail).toBe('completeness_root');
  });

  it("the summary's count and root cannot be edited: they are in the proven body", () => {
    for (const field of ['eventCount', 'eventsRoot'] as const) {
      const b = structuredClone(closed);
      const close = b.lifecycle.find((e) => e.envelope.kind === 'order_closed')!;
      const values = close.body.values as Record<string, { v: number | string }>;
      values[field]!.v = field === 'eventCount' ? 4 : `${'0'.repeat(64)}`;
      b.events.splice(0, 1);
      const r = verify(b);
      expect(r.ok).toBe(false);
      if (!r.ok) expect(r.first).toMatchObject({ code: 'body_mismatch', eventId: close.id });
    }
  });

  it('without its order_closed event a bundle verifies but does not claim completeness', () => {
    const b = structuredClone(closed);
    b.lifecycle = b.lifecycle.filter((e) => e.envelope.kind !== 'order_closed');
    b.events.splice(0, 1);
    const r = verify(b);
    expect(r.ok).toBe(true);
    if (r.ok) expect(r.summary).toMatchObject({ closed: false, complete: false });
  });

  it('an event of an unbound lot, or a life-cycle event of another order, is out of scope', () => {
    const lot = fx.bundle({ scope: { lot: 'L-X' } });
    const b = structuredClone(closed);
    b.asOf = lot.asOf;
    b.batches.push(lot.batches[0]!);
    b.blocks.push(...lot.blocks);
    b.events.push({ ...lot.events[0]!, batch: b.batches.length - 1 });
    const r = verify(b);
    expect(r.ok).toBe(false);
    if (!r.ok) expect(r.first.code).toBe('out_of_scope');
    const d = structuredClone(closed);
    d.asOf = lot.asOf;
    const dClose = wrongRoot.lifecycle[0]!;
    d.batches.push(wrongRoot.batches[dClose.batch]!);
    d.blocks.push(...wrongRoot.blocks);
    d.lifecycle.push({ ...dClose, batch: d.batches.length - 1 });
    const rd = verify(d);
    expect(rd.ok).toBe(false);
    if (!rd.ok) expect(rd.first.code).toBe('out_of_scope');
  });
});
