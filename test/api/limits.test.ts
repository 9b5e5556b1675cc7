/**
 * The validator HTTP API's bounds (src/api/limits.ts, src/api/admission.ts) against a real node of
 * an in-memory alliance: bodies refused by route before they are parsed, per-address long-polls and
 * submissions, the work budget's share of the event loop, and the sizes derived from the event
 * model's bounds.
 */
import type { FastifyInstance } from 'fastify';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { WorkBudget } from '../../src/api/admission.ts';
import { JsonBodyError, parseBoundedJson } from '../../src/api/json.ts';
import { defaultValidatorApiLimits, submissionBytesMax, submissionEventsMax } from '../../src/api/limits.ts';
import { buildValidatorApi } from '../../src/api/validator-api.ts';
import { localChainClient } from '../../src/consensus/runtime/client.ts';
import { submitter } from '../../src/gateway/bounds.ts';
import { deepJson, nestedJson } from '../adversarial/tools.ts';
import { type MemoryAlliance, memoryAlliance } from '../consensus/runtime/cluster-fixture.ts';
import { bearer, tokenFor } from './credentials-fixture.ts';

let alliance: MemoryAlliance;
let api: FastifyInstance;
/** A reader's credential of member-1: every route but /health needs one, and the bounds hold for callers who have one. */
let auth: Record<string, string>;
/** The gateway gw-1's credential (member-1): only gateways submit batches. */
let gatewayAuth: Record<string, string>;

beforeAll(async () => {
  alliance = await memoryAlliance(4, { gateways: 1 });
  const nodes = await Promise.all(alliance.members.map((m) => alliance.start(m)));
  const node = nodes[0]!;
  const bodies = alliance.bodies.get(alliance.members[0]!)!;
  api = buildValidatorApi({
    node,
    chain: localChainClient(node, bodies),
    bodies,
    limits: { commitWaitersPerAddressMax: 2, submitsPerAddressMax: 1 },
  });
  await api.ready();
  auth = bearer(await tokenFor(alliance.alliance, alliance.members[0]!));
  gatewayAuth = bearer(await tokenFor(alliance.alliance, 'member-1', { role: 'gateway', gateway: 'gw-1' }));
}, 60_000);

afterAll(async () => {
  await api?.close();
  await alliance?.stopAll();
});

describe('validator API bounds', () => {
  it('sizes the submission body from the largest legitimate request', () => {
    // A gateway's submitter sends at most batchMax events per call; the API's bound assumes as much.
    expect(submissionEventsMax).toBe(submitter.batchMax);
    expect(defaultValidatorApiLimits.bodyBytesMax).toBe(submissionBytesMax);
    expect(submissionBytesMax).toBeLessThan(18 * 1024 * 1024);
    expect(defaultValidatorApiLimits.jsonBodyBytesMax).toBeLessThan(1024 * 1024);
  });

  it('refuses JSON on /v1/batches before reading it, and JSON above its bound elsewhere', async () => {
    // The attack: a 32 MiB [[{},{},…]] parsed as JSON blocked the loop for 13.5 s.
    const deep = deepJson(2 * 1024 * 1024);
    const asJson = await api.inject({
      method: 'POST',
      url: '/v1/batches',
      headers: { ...gatewayAuth, 'content-type': 'application/json' },
      payload: deep,
    });
    expect(asJson.statusCode).toBe(415);
    const receipts = await api.inject({
      method: 'POST',
      url: '/v1/receipts',
      headers: { ...auth, 'content-type': 'application/json' },
      payload: deep,
    });
    expect(receipts.statusCode).toBe(413);
    const other = await api.inject({
      method: 'POST',
      url: '/v1/status',
      headers: { ...auth, 'content-type': 'application/json' },
      payload: nestedJson(64 * 1024),
    });
    expect([404, 405, 413]).toContain(other.statusCode);
    // Nested JSON within the receipts bound is parsed and refused with a reason, not a crash.
    const nested = await api.inject({
      method: 'POST',
      url: '/v1/receipts',
      headers: { ...auth, 'content-type': 'application/json' },
      payload: nestedJson(200_000),
    });
    expect(nested.statusCode).toBe(400);
    expect(nested.json().code).toBe('json_too_deep');
    // Wide JSON within the byte bound is refused from one linear scan, before JSON.parse builds it.
    const wide = await api.inject({
      method: 'POST',
      url: '/v1/receipts',
      headers: { ...auth, 'content-type': 'application/json' },
      payload: deepJson(600 * 1024),
    });
    expect(wide.statusCode).toBe(400);
    expect(wide.json().code).toBe('json_too_many_values');
  });

  it('parses legitimate JSON, brackets inside strings included', () => {
    const bounds = { jsonDepthMax: 2, jsonContainersMax: 2 };
    expect(parseBoundedJson(String.raw`{"ids": ["[[[{{{", "a\\", "b\"]"]}`, bounds)).toEqual({
      ids: ['[[[{{{', 'a\\', 'b"]'],
    });
    expect(() => parseBoundedJson('[[[]]]', bounds)).toThrow(JsonBodyError);
    expect(() => parseBoundedJson('[{},{}]', bounds)).toThrow(/more than 2/);
    expect(() => parseBoundedJson('{"__proto__": {}}', { jsonDepthMax: 4, jsonContainersMax: 4 })).toThrow(
      /__proto__/,
    );
    expect(() => parseBoundedJson('{"ids": [', bounds)).toThrow(JsonBodyError);
  });

  it('bounds trace long-polls per address, in the same slots as commit long-polls', async () => {
    const url = '/v1/trace?lot=LOT-THAT-NEVER-COMES&after=1&waitMs=20000';
    const t1 = api.inject({ url, headers: auth, remoteAddress: '10.0.0.3' });
    const t2 = api.inject({ url, headers: auth, remoteAddress: '10.0.0.3' });
    await new Promise((r) => setTimeout(r, 50));
    const t3 = await api.inject({ url, headers: auth, remoteAddress: '10.0.0.3' });
    expect(t3.statusCode).toBe(429);
    expect(t3.json().code).toBe('too_many_waiters');
    // The same slots as GET /v1/commits: the address has none left for a commit long-poll either.
    const c = await api.inject({
      url: '/v1/commits?after=1000000&waitMs=20000',
      headers: auth,
      remoteAddress: '10.0.0.3',
    });
    expect(c.statusCode).toBe(429);
    // Another address is not affected.
    const other = await api.inject({
      url: '/v1/trace?lot=LOT-THAT-NEVER-COMES&after=1&waitMs=100',
      headers: auth,
      remoteAddress: '10.0.0.4',
    });
    expect(other.statusCode).toBe(200);
    void t1;
    void t2;
  });

  it('bounds long-polls per address; another address still gets one', async () => {
    const url = '/v1/commits?after=1000000&waitMs=20000';
    const a1 = api.inject({ url, headers: auth, remoteAddress: '10.0.0.1' });
    const a2 = api.inject({ url, headers: auth, remoteAddress: '10.0.0.1' });
    await new Promise((r) => setTimeout(r, 50));
    const a3 = await api.inject({ url, headers: auth, remoteAddress: '10.0.0.1' });
    expect(a3.statusCode).toBe(429);
    expect(a3.json().code).toBe('too_many_waiters');
    const other = api.inject({
      url: '/v1/commits?after=1000000&waitMs=100',
      headers: auth,
      remoteAddress: '10.0.0.2',
    });
    expect((await other).statusCode).toBe(200);
    await api.close();
    expect((await a1).statusCode).toBe(200);
    expect((await a2).statusCode).toBe(200);
    const m = (await api.inject({ url: '/v1/metrics', headers: auth }).catch(() => undefined)) ?? undefined;
    expect(m === undefined || m.statusCode >= 200).toBe(true);
  });
});

describe('WorkBudget', () => {
  it('runs work one piece at a time and never above its share of the time, plus one burst and one piece', async () => {
    const share = 0.25;
    const burstMs = 20;
    const pieceMs = 5;
    const budget = new WorkBudget(share, burstMs, 100);
    const t0 = performance.now();
    let running = 0;
    let overlap = false;
    let longestMs = 0;
    const busy = () => {
      running++;
      if (running > 1) overlap = true;
      const start = performance.now();
      while (performance.now() < start + pieceMs) {}
      longestMs = Math.max(longestMs, performance.now() - start);
      running--;
    };
    await Promise.all(Array.from({ length: 40 }, () => budget.run(busy)));
    const elapsed = performance.now() - t0;
    expect(overlap).toBe(false);
    expect(budget.workMs).toBeGreaterThanOrEqual(40 * pieceMs);
    // However loaded the machine, the budget refills only with time: work ≤ share × elapsed + burst
    // + one piece (each is charged after it ran; on a loaded machine a piece may overrun its 5 ms).
    expect(budget.workMs).toBeLessThanOrEqual(share * elapsed + burstMs + longestMs + 1);
  });

  it('refuses beyond its queue bound with 503', async () => {
    const budget = new WorkBudget(0.01, 1, 2);
    const slow = () => {
      const end = performance.now() + 5;
      while (performance.now() < end) {}
    };
    // The first runs at once; two wait; the fourth finds the queue full.
    const runs = [budget.run(slow), budget.run(slow), budget.run(slow), budget.run(slow)];
    const results = await Promise.allSettled(runs);
    expect(results.filter((r) => r.status === 'rejected')).toHaveLength(1);
    budget.stop();
  });
});

describe('WorkBudget fairness', () => {
  it('takes waiting clients round-robin: a client waits for at most one piece of another', async () => {
    const budget = new WorkBudget(1, 1_000, 100);
    const order: string[] = [];
    const piece = (who: string) => () => {
      order.push(who);
    };
    // The flooder queues ten pieces first; the client's one comes after, and runs second.
    const runs = Array.from({ length: 10 }, () => budget.run(piece('flood'), '10.0.0.9'));
    runs.push(budget.run(piece('client'), '10.0.0.1'));
    await Promise.all(runs);
    expect(order.indexOf('client')).toBeLessThanOrEqual(2);
  });
});
