/**
 * The authorisation matrix of docs/api.md, checked cell by cell against a running API: the test reads
 * the table from the document, so the document and the policy cannot drift apart. Then the bad
 * credentials (each with its 401 code, counted), and the finer checks a customer and a gateway meet.
 * Real ConsensusNodes (n = 4, in-memory transport) with their body stores; member-1's office signer
 * is its registered gateway gw-5.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { FastifyInstance } from 'fastify';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { issueCredential } from '../../src/api/auth/credentials.ts';
import { routeAccess } from '../../src/api/auth/policy.ts';
import { RevocationList, revokeCredential } from '../../src/api/auth/revocations.ts';
import { Office } from '../../src/api/routes/office.ts';
import { buildValidatorApi } from '../../src/api/validator-api.ts';
import { encodeSubmission, localChainClient } from '../../src/consensus/runtime/client.ts';
import { loadKeyFile } from '../../src/crypto/keys.ts';
import { encodeBody } from '../../src/event/event.ts';
import { type MemoryAlliance, memoryAlliance, until } from '../consensus/runtime/cluster-fixture.ts';
import type { TestGateway } from '../consensus/runtime/events-fixture.ts';
import { tempDir } from '../helpers/tmp.ts';
import { bearer, tokenFor } from './credentials-fixture.ts';

let alliance: MemoryAlliance;
let api: FastifyInstance;
let dataDir: string;
const tokens: Record<string, string | undefined> = {};
const ids: { deviceEvent: string; equipmentEvent: string; otherOrderEvent: string; tx: string } = {
  deviceEvent: '',
  equipmentEvent: '',
  otherOrderEvent: '',
  tx: '',
};

/** Signs device events of member-1's gw-1 and waits until they are final with their bodies. */
async function produce(
  gw: TestGateway,
  drafts: { kind: 'part_completed' | 'equipment_status'; lot: string; order?: string; product?: string }[],
) {
  const node = alliance.nodes.get('member-1')!;
  const client = localChainClient(node, alliance.bodies.get('member-1')!);
  const { batch, events, head } = gw.signer.sign(
    drafts.map((d, i) => ({
      kind: d.kind,
      dataClass: d.kind === 'equipment_status' ? ('equipment' as const) : ('process' as const),
      station: 'ST-1',
      device: 'cnc-1',
      sourceTimeMs: Date.UTC(2026, 11, 5, 8, 0, i),
      lot: d.lot,
      ...(d.order ? { order: d.order } : {}),
      ...(d.product ? { product: d.product } : {}),
      values: { d: { v: 12 + i / 100, unit: 'mm', q: 'good' as const } },
    })),
    gw.head,
  );
  gw.head = head;
  const [v] = await client.submit([{ tx: batch.tx, bodies: events.map((e) => encodeBody(e.body!)) }]);
  expect(v).toMatchObject({ accepted: true });
  await until(() => alliance.bodies.get('member-1')!.get(events.at(-1)!.id)?.height != null, 'events final');
  return { events, txId: batch.txId };
}

beforeAll(async () => {
  // gw-1 and gw-5 are member-1's, gw-2 member-2's …
  alliance = await memoryAlliance(4, { gateways: 5 });
  for (const m of alliance.members) await alliance.start(m);
  const node = alliance.nodes.get('member-1')!;
  const bodies = alliance.bodies.get('member-1')!;
  const chain = localChainClient(node, bodies);
  dataDir = tempDir('matrix');
  const office = new Office({
    node,
    chain,
    member: 'member-1',
    gateway: 'gw-5',
    signer: loadKeyFile(alliance.alliance.gatewayKeyFiles.get('member-1/gw-5')!),
  });
  api = buildValidatorApi({
    node,
    chain,
    bodies,
    access: { office, revocations: new RevocationList(dataDir) },
  });
  await api.ready();
  const a = alliance.alliance;
  tokens['reader (own)'] = await tokenFor(a, 'member-1');
  tokens['reader (other member)'] = await tokenFor(a, 'member-2');
  tokens['customer (own)'] = await tokenFor(a, 'member-1', { role: 'customer', orders: ['PO-A'] });
  tokens['customer (other member)'] = await tokenFor(a, 'member-2', { role: 'customer', orders: ['PO-A'] });
  tokens['gateway (own)'] = await tokenFor(a, 'member-1', { role: 'gateway', gateway: 'gw-1' });
  tokens['gateway (other member)'] = await tokenFor(a, 'member-2', { role: 'gateway', gateway: 'gw-2' });
  tokens.anonymous = undefined;

  const reader = bearer(tokens['reader (own)']!);
  for (const order of ['PO-A', 'PO-B']) {
    const r = await api.inject({
      method: 'POST',
      url: '/v1/orders',
      headers: reader,
      payload: { order, customer: order === 'PO-A' ? 'globex' : 'initech', product: 'valve', quantity: 10 },
    });
    expect(r.statusCode, r.body).toBe(201);
  }
  const gw1 = alliance.gateways.gateways.find((g) => g.chain === 'member-1/gw-1')!;
  const made = await produce(gw1, [
    { kind: 'part_completed', lot: 'LOT-A', order: 'PO-A', product: 'SN-1' },
    { kind: 'equipment_status', lot: 'LOT-A' },
    { kind: 'part_completed', lot: 'LOT-B', order: 'PO-B', product: 'SN-2' },
    { kind: 'part_completed', lot: 'LOT-B2', product: 'SN-1' },
  ]);
  ids.deviceEvent = made.events[0]!.id;
  ids.equipmentEvent = made.events[1]!.id;
  ids.otherOrderEvent = made.events[2]!.id;
  ids.tx = made.txId;
  const bind = await api.inject({
    method: 'POST',
    url: '/v1/orders/PO-B/lots',
    headers: reader,
    payload: { lot: 'LOT-B' },
  });
  expect(bind.statusCode, bind.body).toBe(201);
}, 60_000);

afterAll(async () => {
  await api?.close();
  await alliance?.stopAll();
});

/** The matrix table of docs/api.md: header cells and rows of cells. */
function matrixFromDocs(): { columns: string[]; rows: string[][] } {
  const text = readFileSync(join(import.meta.dirname, '../../docs/api.md'), 'utf8');
  const lines = text.split('\n');
  const start = lines.findIndex((l) => /^\|\s*route\s*\|\s*anonymous\s*\|/.test(l));
  expect(start).toBeGreaterThan(0);
  const cells = (l: string) =>
    l
      .split('|')
      .slice(1, -1)
      .map((c) => c.trim());
  const columns = cells(lines[start]!).slice(1);
  const rows: string[][] = [];
  for (const l of lines.slice(start + 2)) {
    if (!l.startsWith('|')) break;
    rows.push(cells(l));
  }
  return { columns, rows };
}

let orderSerial = 0;
/** A request that exercises `route` (params filled with things that exist). */
function requestFor(route: string): {
  method: 'GET' | 'POST';
  url: string;
  payload?: unknown;
  headers?: Record<string, string>;
} {
  const [method, path] = route.split(' ') as ['GET' | 'POST', string];
  switch (path) {
    case '/v1/batches':
      return {
        method,
        url: path,
        payload: Buffer.alloc(0),
        headers: { 'content-type': 'application/octet-stream' },
      };
    case '/v1/config':
      return {
        method,
        url: path,
        payload: Buffer.from('x'),
        headers: { 'content-type': 'application/octet-stream' },
      };
    case '/v1/config/:member':
      return { method, url: '/v1/config/member-1' };
    case '/v1/commits':
      return { method, url: '/v1/commits?after=0&limit=1' };
    case '/v1/receipts':
      return { method, url: path, payload: { ids: [ids.tx] } };
    case '/v1/blocks/:height':
      return { method, url: '/v1/blocks/1' };
    case '/v1/proofs/:id':
      return { method, url: `/v1/proofs/${ids.tx}` };
    case '/v1/tally':
      return { method, url: '/v1/tally?from=2026-12-01&to=2027-01-01' };
    case '/v1/events/:id':
      return { method, url: `/v1/events/${ids.deviceEvent}` };
    case '/v1/trace':
      return { method, url: '/v1/trace?order=PO-A' };
    case '/v1/orders':
      return {
        method,
        url: path,
        payload: { order: `PO-M${++orderSerial}`, customer: 'c', product: 'p', quantity: 1 },
      };
    case '/v1/orders/:id':
      return { method, url: '/v1/orders/PO-A' };
    case '/v1/orders/:id/lots':
      return { method, url: '/v1/orders/PO-A/lots', payload: { lot: 'LOT-A' } };
    case '/v1/orders/:id/state':
      return { method, url: '/v1/orders/PO-A/state', payload: { state: 'in_production' } };
    default:
      return { method, url: path };
  }
}

describe('the authorisation matrix of docs/api.md', () => {
  it('lists every route the policy has, and only those', () => {
    const { rows } = matrixFromDocs();
    expect(rows.map((r) => r[0]).sort()).toEqual(Object.keys(routeAccess).sort());
  });

  it('holds cell by cell against a running API', async () => {
    const { columns, rows } = matrixFromDocs();
    expect(columns).toEqual(Object.keys(tokens).sort((a, b) => columns.indexOf(a) - columns.indexOf(b)));
    const failures: string[] = [];
    for (const [route, ...cells] of rows) {
      for (const [i, cell] of cells.entries()) {
        const who = columns[i]!;
        const req = requestFor(route!);
        const token = tokens[who];
        const res = await api.inject({
          ...req,
          headers: { ...req.headers, ...(token ? bearer(token) : {}) },
        } as never);
        const got =
          res.statusCode === 401 || res.statusCode === 403 ? `${res.statusCode} ${res.json().code}` : '✓';
        if (got !== cell)
          failures.push(
            `${route} as ${who}: expected ${cell}, got ${got} (${res.statusCode} ${res.body.slice(0, 120)})`,
          );
        else if (got === '✓' && res.statusCode >= 500 && res.statusCode !== 503)
          failures.push(`${route} as ${who}: ${res.statusCode} ${res.body}`);
      }
    }
    expect(failures).toEqual([]);
  }, 60_000);

  it('refuses to build an API with a route that has no rule', async () => {
    const node = alliance.nodes.get('member-3')!;
    const bodies = alliance.bodies.get('member-3')!;
    const extra = buildValidatorApi({ node, chain: localChainClient(node, bodies), bodies });
    extra.get('/v1/secret', async () => 'no');
    await expect(extra.ready()).rejects.toThrow(/GET \/v1\/secret/);
  });
});

describe('credentials refused, each with its code, and counted', () => {
  it('missing, malformed, unknown issuer, wrong audience, forged, expired, not yet valid, revoked', async () => {
    const a = alliance.alliance;
    const root2 = loadKeyFile(a.identityRootFiles.get('member-2')!);
    const root1 = loadKeyFile(a.identityRootFiles.get('member-1')!);
    const base = { chainId: a.genesis.chainId, role: 'reader' as const, subject: 'x', ttlMs: 3_600_000 };
    const forged = (await issueCredential(root2, { ...base, member: 'member-1' })).token;
    const unknown = (await issueCredential(root1, { ...base, member: 'zeta' })).token;
    const otherChain = (await issueCredential(root1, { ...base, member: 'member-1', chainId: 'other-chain' }))
      .token;
    const expired = (
      await issueCredential(root1, {
        ...base,
        member: 'member-1',
        ttlMs: 1000,
        nowMs: Date.now() - 3_600_000,
      })
    ).token;
    const future = (
      await issueCredential(root1, { ...base, member: 'member-1', nowMs: Date.now() + 3_600_000 })
    ).token;
    const revoked = await issueCredential(root1, { ...base, member: 'member-1' });
    // A payload edited after signing (the role raised to another subject): the signature fails.
    const good = tokens['reader (own)']!;
    const [h, p, s] = good.split('.') as [string, string, string];
    const payload = JSON.parse(Buffer.from(p, 'base64url').toString());
    const edited = `${h}.${Buffer.from(JSON.stringify({ ...payload, sub: 'admin' })).toString('base64url')}.${s}`;
    const cases: [Record<string, string>, string][] = [
      [{}, 'credential_missing'],
      [{ authorization: 'Basic YWxhZGRpbjpvcGVu' }, 'credential_malformed'],
      [bearer('not-a-jwt'), 'credential_malformed'],
      [bearer(`${'a'.repeat(9000)}.b.c`), 'credential_malformed'],
      [bearer(unknown), 'credential_unknown_issuer'],
      [bearer(otherChain), 'credential_wrong_audience'],
      [bearer(forged), 'credential_forged'],
      [bearer(edited), 'credential_forged'],
      [bearer(expired), 'credential_expired'],
      [bearer(future), 'credential_not_yet_valid'],
    ];
    const metricsBefore = (await api.inject({ url: '/v1/metrics', headers: bearer(good) })).json().access
      .refused;
    for (const [headers, code] of cases) {
      const r = await api.inject({ url: '/v1/status', headers });
      expect([r.statusCode, r.json().code], JSON.stringify(headers).slice(0, 80)).toEqual([401, code]);
      expect(r.json().error).toEqual(expect.any(String));
    }
    // Revoked: accepted, then refused from the next request once the member's list names it.
    expect((await api.inject({ url: '/v1/status', headers: bearer(revoked.token) })).statusCode).toBe(200);
    revokeCredential(dataDir, { jti: revoked.jti, expMs: revoked.expMs });
    const r = await api.inject({ url: '/v1/status', headers: bearer(revoked.token) });
    expect([r.statusCode, r.json().code]).toEqual([401, 'credential_revoked']);
    const after = (await api.inject({ url: '/v1/metrics', headers: bearer(good) })).json().access.refused;
    for (const code of new Set([...cases.map((c) => c[1]), 'credential_revoked']))
      expect(after[code] - metricsBefore[code], code).toBe(
        cases.filter((c) => c[1] === code).length + (code === 'credential_revoked' ? 1 : 0),
      );
    // The server is still up and answers the good credential.
    expect((await api.inject({ url: '/v1/status', headers: bearer(good) })).statusCode).toBe(200);
  });
});

describe('what a customer may read', () => {
  const customer = () => bearer(tokens['customer (own)']!);

  it('another order, existing or not, and a lot of another order: the same refusal, which says nothing of existence', async () => {
    const answers = [];
    for (const url of [
      '/v1/trace?order=PO-B',
      '/v1/trace?order=PO-NOPE',
      '/v1/orders/PO-B',
      '/v1/orders/PO-NOPE',
    ]) {
      const r = await api.inject({ url, headers: customer() });
      answers.push([r.statusCode, r.json().code]);
      expect(r.json().error).not.toMatch(/exist|initech/);
    }
    expect(answers).toEqual(Array(4).fill([403, 'not_your_order']));
    for (const url of ['/v1/trace?lot=LOT-B', '/v1/trace?lot=LOT-NOPE']) {
      const r = await api.inject({ url, headers: customer() });
      expect([r.statusCode, r.json().code, r.json().error]).toEqual([
        403,
        'not_your_order',
        'your credential does not cover this lot',
      ]);
    }
    const equipment = await api.inject({ url: `/v1/events/${ids.equipmentEvent}`, headers: customer() });
    const missing = await api.inject({ url: `/v1/events/${'0'.repeat(64)}`, headers: customer() });
    const other = await api.inject({ url: `/v1/events/${ids.otherOrderEvent}`, headers: customer() });
    expect([equipment.statusCode, equipment.body]).toEqual([missing.statusCode, missing.body]);
    expect([other.statusCode, other.body]).toEqual([missing.statusCode, missing.body]);
    expect(missing.json().code).toBe('not_your_order');
  });

  it("its own order: the process events with their proofs, never equipment data, never another order's", async () => {
    const r = await api.inject({ url: '/v1/trace?order=PO-A', headers: customer() });
    expect(r.statusCode, r.body).toBe(200);
    const bundle = r.json();
    // Its device event, and the binding of its lot (the matrix bound LOT-A to PO-A).
    type E = { id: string; envelope: { kind: string; dataClass: string } };
    expect(bundle.events.filter((e: E) => e.envelope.kind !== 'lot_bound').map((e: E) => e.id)).toEqual([
      ids.deviceEvent,
    ]);
    expect(bundle.events.every((e: E) => e.envelope.dataClass === 'process')).toBe(true);
    expect(bundle.lifecycle.map((e: { envelope: { kind: string } }) => e.envelope.kind)).toContain(
      'order_accepted',
    );
    expect(r.body).not.toContain('equipment_status');
    expect(r.body).not.toContain('PO-B');
    // A product: only its order's events (SN-1 also names an event of a lot of no order of its own).
    const p = (await api.inject({ url: '/v1/trace?product=SN-1', headers: customer() })).json();
    expect(p.events.map((e: { id: string }) => e.id)).toEqual([ids.deviceEvent]);
    // The member's reader sees the lot's equipment data too.
    const lot = (
      await api.inject({ url: '/v1/trace?lot=LOT-A', headers: bearer(tokens['reader (own)']!) })
    ).json();
    expect(
      lot.events
        .filter((e: E) => e.envelope.kind !== 'lot_bound')
        .map((e: E) => e.id)
        .sort(),
    ).toEqual([ids.deviceEvent, ids.equipmentEvent].sort());
  });

  it('bad queries get 400 with a code', async () => {
    const refused = async () =>
      (await api.inject({ url: '/v1/metrics', headers: bearer(tokens['reader (own)']!) })).json().access
        .refused.bad_query as number;
    const before = await refused();
    for (const url of [
      '/v1/trace',
      '/v1/trace?order=A&lot=B',
      `/v1/trace?order=${'x'.repeat(200)}`,
      '/v1/trace?order=A&after=-1',
    ]) {
      const r = await api.inject({ url, headers: customer() });
      expect([r.statusCode, r.json().code], url).toEqual([400, 'bad_query']);
    }
    expect((await refused()) - before).toBe(4);
  });
});

describe('what a gateway may submit', () => {
  it("only its own member's batches under its own gateway id", async () => {
    const gw1 = alliance.gateways.gateways.find((g) => g.chain === 'member-1/gw-1')!;
    const { batch, events } = gw1.signer.sign(
      [
        {
          kind: 'part_completed',
          dataClass: 'process',
          station: 'S',
          device: 'd',
          sourceTimeMs: 1,
          values: {},
        },
      ],
      gw1.head,
    );
    const payload = Buffer.from(
      encodeSubmission([{ tx: batch.tx, bodies: events.map((e) => encodeBody(e.body!)) }]),
    );
    const headers = { 'content-type': 'application/octet-stream' };
    const as = async (token: string) =>
      (
        await api.inject({
          method: 'POST',
          url: '/v1/batches',
          payload,
          headers: { ...headers, ...bearer(token) },
        })
      ).json();
    const a = alliance.alliance;
    expect((await as(await tokenFor(a, 'member-1', { role: 'gateway', gateway: 'gw-5' }))).code).toBe(
      'other_gateway',
    );
    expect((await as(tokens['gateway (other member)']!)).code).toBe('other_member_batch');
    expect(alliance.bodies.get('member-1')!.get(events[0]!.id)).toBeUndefined();
  });
});
