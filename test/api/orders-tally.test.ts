/**
 * Orders and the tally over real ConsensusNodes (n = 4, in-memory transport) with their members'
 * body stores and APIs: an order's life cycle and lot bindings recorded by member-1's office signer
 * (its registered gateway gw-5), closed with a summary whose completeness the customer's bundle
 * proves with the pure verifier; the tally identical, byte for byte, at every validator.
 */
import type { FastifyInstance } from 'fastify';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { verifyProofBundle } from '../../src/api/proof/verify.ts';
import { Office } from '../../src/api/routes/office.ts';
import { buildValidatorApi } from '../../src/api/validator-api.ts';
import { localChainClient } from '../../src/consensus/runtime/client.ts';
import { loadKeyFile } from '../../src/crypto/keys.ts';
import { encodeBody } from '../../src/event/event.ts';
import { type MemoryAlliance, memoryAlliance, until } from '../consensus/runtime/cluster-fixture.ts';
import { bearer, tokenFor } from './credentials-fixture.ts';

let alliance: MemoryAlliance;
const apis = new Map<string, FastifyInstance>();
const day = Date.UTC(2026, 11, 5);

beforeAll(async () => {
  alliance = await memoryAlliance(4, { gateways: 5 }); // member-1: gw-1, gw-5
  for (const m of alliance.members) await alliance.start(m);
  for (const m of alliance.members) {
    const node = alliance.nodes.get(m)!;
    const bodies = alliance.bodies.get(m)!;
    const chain = localChainClient(node, bodies);
    const office =
      m === 'member-1'
        ? new Office({
            node,
            chain,
            member: m,
            gateway: 'gw-5',
            signer: loadKeyFile(alliance.alliance.gatewayKeyFiles.get('member-1/gw-5')!),
          })
        : undefined;
    const api = buildValidatorApi({ node, chain, bodies, access: { office } });
    await api.ready();
    apis.set(m, api);
  }
}, 60_000);

afterAll(async () => {
  for (const a of apis.values()) await a.close();
  await alliance?.stopAll();
});

/** Device events of member `m`'s gw-N, final with their bodies at member m. */
async function produce(
  chainKey: string,
  drafts: {
    kind: 'part_completed' | 'equipment_status' | 'lot_started';
    lot: string;
    order?: string;
    atMs: number;
  }[],
) {
  const gw = alliance.gateways.gateways.find((g) => g.chain === chainKey)!;
  const member = chainKey.split('/')[0]!;
  const node = alliance.nodes.get(member)!;
  const bodies = alliance.bodies.get(member)!;
  const { batch, events, head } = gw.signer.sign(
    drafts.map((d) => ({
      kind: d.kind,
      dataClass: d.kind === 'equipment_status' ? ('equipment' as const) : ('process' as const),
      station: 'ST-1',
      device: 'press-1',
      sourceTimeMs: d.atMs,
      lot: d.lot,
      ...(d.order ? { order: d.order } : {}),
      values: { force: { v: 40, unit: 'kN', q: 'good' as const } },
    })),
    gw.head,
  );
  gw.head = head;
  const [v] = await localChainClient(node, bodies).submit([
    { tx: batch.tx, bodies: events.map((e) => encodeBody(e.body!)) },
  ]);
  expect(v).toMatchObject({ accepted: true });
  await until(() => bodies.get(events.at(-1)!.id)?.height != null, 'events final');
  return events.map((e) => e.id);
}

describe('orders', () => {
  it('accepted, in production, lots bound (by tag and explicitly), closed: the customer proves completeness', async () => {
    const api = apis.get('member-1')!;
    const a = alliance.alliance;
    const reader = bearer(await tokenFor(a, 'member-1'));
    const customer = bearer(await tokenFor(a, 'member-1', { role: 'customer', orders: ['PO-7'] }));
    const post = (url: string, payload: Record<string, unknown>) =>
      api.inject({ method: 'POST', url, headers: reader, payload });

    expect(
      (await post('/v1/orders', { order: 'PO-7', customer: 'globex', product: 'valve' })).json(),
    ).toMatchObject({
      code: 'bad_order',
    });
    const created = await post('/v1/orders', {
      order: 'PO-7',
      customer: 'globex',
      product: 'valve',
      quantity: 3,
    });
    expect(created.statusCode, created.body).toBe(201);
    expect(
      (await post('/v1/orders', { order: 'PO-7', customer: 'x', product: 'y', quantity: 1 })).statusCode,
    ).toBe(409);
    expect((await post('/v1/orders/PO-7/state', { state: 'in_production' })).statusCode).toBe(200);

    // LOT-1 carries the order tag (as the device maps read it); LOT-2 does not and is bound explicitly.
    const tagged = await produce('member-1/gw-1', [
      { kind: 'lot_started', lot: 'LOT-1', order: 'PO-7', atMs: day + 1 },
      { kind: 'part_completed', lot: 'LOT-1', order: 'PO-7', atMs: day + 2 },
      { kind: 'equipment_status', lot: 'LOT-1', order: 'PO-7', atMs: day + 3 },
    ]);
    const untagged = await produce('member-1/gw-1', [
      { kind: 'part_completed', lot: 'LOT-2', atMs: day + 4 },
    ]);
    const unrelated = await produce('member-1/gw-1', [
      { kind: 'part_completed', lot: 'LOT-9', order: 'PO-8', atMs: day + 5 },
    ]);
    expect((await post('/v1/orders/PO-7/lots', { lot: 'LOT-2' })).statusCode).toBe(201);
    expect((await post('/v1/orders/PO-7/lots', { lot: 'LOT-2' })).statusCode).toBe(200); // already bound

    const closed = await post('/v1/orders/PO-7/state', { state: 'closed' });
    expect(closed.statusCode, closed.body).toBe(200);
    const view = (await api.inject({ url: '/v1/orders/PO-7', headers: customer })).json();
    expect(view).toMatchObject({
      order: 'PO-7',
      state: 'closed',
      customer: 'globex',
      product: 'valve',
      quantity: 3,
    });
    expect(view.lots.sort()).toEqual(['LOT-1', 'LOT-2']);
    expect(view.lifeCycle.map((e: { kind: string }) => e.kind)).toEqual([
      'order_accepted',
      'order_in_production',
      'order_closed',
    ]);
    // Closed is final.
    expect((await post('/v1/orders/PO-7/lots', { lot: 'LOT-3' })).json().code).toBe('order_closed');
    expect((await post('/v1/orders/PO-7/state', { state: 'in_production' })).json().code).toBe(
      'order_closed',
    );

    const bundle = (await api.inject({ url: '/v1/trace?order=PO-7', headers: customer })).json();
    const ids = bundle.events.map((e: { id: string }) => e.id);
    // The process events of both lots (equipment data left out), the two lot bindings; nothing else.
    expect(ids).toEqual(expect.arrayContaining([tagged[0], tagged[1], untagged[0]]));
    expect(ids).not.toContain(tagged[2]);
    expect(ids).not.toContain(unrelated[0]);
    expect(view.summary.eventCount).toBe(ids.length);
    const verdict = verifyProofBundle(bundle, a.genesis.document);
    expect(verdict.ok && verdict.summary).toMatchObject({ closed: true, complete: true, events: ids.length });
    // Withholding one event breaks the completeness proof.
    const withheld = { ...bundle, events: bundle.events.slice(1) };
    const broken = verifyProofBundle(withheld, a.genesis.document);
    expect(broken.ok).toBe(false);
  });

  it('answers 503 no_office where the validator holds no office signer', async () => {
    const r = await apis.get('member-2')!.inject({
      method: 'POST',
      url: '/v1/orders',
      headers: bearer(await tokenFor(alliance.alliance, 'member-2')),
      payload: { order: 'PO-1', customer: 'c', product: 'p', quantity: 1 },
    });
    expect([r.statusCode, r.json().code]).toEqual([503, 'no_office']);
  });
});

describe('a live trace', () => {
  it('long-polls: answers when an event of the scope becomes final above the given height, or at the deadline', async () => {
    const api = apis.get('member-1')!;
    const headers = bearer(await tokenFor(alliance.alliance, 'member-1'));
    const before = await produce('member-1/gw-1', [
      { kind: 'part_completed', lot: 'LOT-LIVE', atMs: day + 20 },
    ]);
    const first = (await api.inject({ url: '/v1/trace?lot=LOT-LIVE', headers })).json();
    expect(first.events.map((e: { id: string }) => e.id)).toEqual(before);
    const after = first.asOf.height;
    // Nothing new: the answer comes at the deadline, as it is.
    const started = Date.now();
    const quiet = (
      await api.inject({ url: `/v1/trace?lot=LOT-LIVE&after=${after}&waitMs=300`, headers })
    ).json();
    expect(Date.now() - started).toBeGreaterThanOrEqual(250);
    expect(quiet.events).toHaveLength(1);
    // A new event while the request waits: it answers with it, before its deadline.
    let answeredAtMs = 0;
    const waiting = api
      .inject({ url: `/v1/trace?lot=LOT-LIVE&after=${after}&waitMs=25000`, headers })
      .then((r) => {
        answeredAtMs = Date.now();
        return r;
      });
    await new Promise((r) => setTimeout(r, 100));
    expect(answeredAtMs).toBe(0);
    const next = await produce('member-1/gw-1', [
      { kind: 'part_completed', lot: 'LOT-LIVE', atMs: day + 21 },
    ]);
    const live = (await waiting).json();
    expect(live.events.map((e: { id: string }) => e.id)).toEqual([...before, ...next]);
    expect(answeredAtMs - started).toBeLessThan(20_000);
  });
});

describe('the tally', () => {
  it('counts per member, kind and period from envelopes, identical byte for byte at all four validators', async () => {
    await produce('member-2/gw-2', [
      { kind: 'part_completed', lot: 'B-1', atMs: day + 10 },
      { kind: 'part_completed', lot: 'B-1', atMs: day + 11 },
      { kind: 'lot_started', lot: 'B-1', atMs: Date.UTC(2026, 10, 30) },
    ]);
    await produce('member-3/gw-3', [{ kind: 'part_completed', lot: 'C-1', atMs: day + 12 }]);
    const nodes = [...alliance.nodes.values()];
    await until(
      () => new Set(nodes.map((n) => n.store.height)).size === 1,
      'every validator at the same height',
    );
    const at = nodes[0]!.store.height;
    const answers: string[] = [];
    for (const [i, m] of alliance.members.entries()) {
      // Any member's reader may ask any member's API.
      const asker = alliance.members[(i + 1) % 4]!;
      const r = await apis.get(m)!.inject({
        url: `/v1/tally?from=2026-11-01&to=2027-01-01&period=month&at=${at}`,
        headers: bearer(await tokenFor(alliance.alliance, asker)),
      });
      expect(r.statusCode, r.body).toBe(200);
      answers.push(r.body);
    }
    expect(new Set(answers).size).toBe(1);
    const t = JSON.parse(answers[0]!);
    expect(t.asOfHeight).toBe(at);
    const row = (member: string, period: string, kind: string) =>
      t.rows.find(
        (r: { member: string; period: string; kind: string }) =>
          r.member === member && r.period === period && r.kind === kind,
      )?.count;
    expect(row('member-2', '2026-12', 'part_completed')).toBe(2);
    expect(row('member-2', '2026-11', 'lot_started')).toBe(1);
    expect(row('member-3', '2026-12', 'part_completed')).toBe(1);
    // member-1: LOT-1, LOT-2, LOT-9 and the live trace's two, counted from envelopes.
    expect(row('member-1', '2026-12', 'part_completed')).toBe(5);
    expect(row('member-1', '2026-12', 'equipment_status')).toBe(1);
    // By day; a range that excludes November; and as of an earlier height, the earlier counts.
    const byDay = (
      await apis.get('member-4')!.inject({
        url: `/v1/tally?from=2026-12-01&to=2026-12-31&at=${at}`,
        headers: bearer(await tokenFor(alliance.alliance, 'member-4')),
      })
    ).json();
    expect(byDay.rows.some((r: { period: string }) => r.period.startsWith('2026-11'))).toBe(false);
    expect(
      byDay.rows.find(
        (r: { member: string; kind: string }) => r.member === 'member-2' && r.kind === 'part_completed',
      ),
    ).toMatchObject({ period: '2026-12-05', count: 2 });
    const bad = await apis.get('member-4')!.inject({
      url: '/v1/tally?from=2027-01-01&to=2026-01-01',
      headers: bearer(await tokenFor(alliance.alliance, 'member-4')),
    });
    expect([bad.statusCode, bad.json().code]).toEqual([400, 'bad_query']);
    const future = await apis.get('member-4')!.inject({
      url: `/v1/tally?from=2026-01-01&to=2027-01-01&at=${at + 1000}`,
      headers: bearer(await tokenFor(alliance.alliance, 'member-4')),
    });
    expect(future.statusCode).toBe(400);
  });
});
