/**
 * The read side of the member's bodies: one event, and traces by order, lot or product, each
 * answering only what the caller may read (src/api/auth/policy.ts), and following new events by
 * long polling.
 *
 *   GET /v1/events/<id>                       {id, height, env, body}
 *   GET /v1/trace?order=…|lot=…|product=…     {scope, asOfHeight, events: [{id, height, env, body}],
 *       [&after=H&waitMs=W]                    lifeCycle, truncated, bundle?}
 *
 * With `after`, only events committed above height H are listed; when there are none yet, the
 * request waits up to `waitMs` (≤ `traceWaitMaxMs`) for the next final block. At most
 * `traceWaitersMax` requests wait at once (beyond, 503). With a proof-bundle producer (`bundle`
 * option), the answer carries the scope's proof bundle (src/api/proof/).
 *
 * A customer: `order` must be one its credential names; a `lot` must be bound to one of them; a
 * `product` lists only its orders' events. It never sees equipment-class events. Each refusal is the
 * same whether the order or lot exists or not.
 */
import type { FastifyInstance } from 'fastify';
import type { ConsensusNode } from '../../consensus/runtime/node.ts';
import type { BodyStore, KeptEvent } from '../../store/bodies.ts';
import type { Principal } from '../auth/credentials.ts';
import { type AccessCounters, bodyRefusal, orderRefusal, type Refusal, refuse } from '../auth/policy.ts';
import { byHeight, orderEvents, ordersOfEvent, ordersOfLot, scopeEventsMax } from './scope.ts';

export const traceWaitMaxMs = 30_000;
export const traceWaitersMax = 256;
const scopeCharsMax = 128;

export type TraceScope = { order: string } | { lot: string } | { product: string };

/** What a scope's proof bundle is built from (the proofs helper's producer plugs in here). */
export type BundleProducer = (scope: TraceScope, events: readonly KeptEvent[], lifeCycle: readonly KeptEvent[]) =>
  | unknown
  | Promise<unknown>;

export interface TraceDeps {
  node: ConsensusNode;
  bodies: BodyStore;
  counters: AccessCounters;
  member: string;
  bundle?: BundleProducer | undefined;
}

const view = (e: KeptEvent) => ({ id: e.id, height: e.height, env: e.env, body: e.body });

/** The events of `scope` that `p` may read, committed, by height; a refusal if the scope is not its. */
export function traceEvents(
  deps: Pick<TraceDeps, 'bodies' | 'member'>,
  p: Principal,
  scope: TraceScope,
): { events: KeptEvent[]; lifeCycle: KeptEvent[]; truncated: boolean } | Refusal {
  const { bodies, member } = deps;
  if ('order' in scope) {
    const r = orderRefusal(p, scope.order);
    if (r) return r;
    return orderEvents(bodies, scope.order);
  }
  let list: KeptEvent[];
  if ('lot' in scope) {
    if (p.role === 'customer' && !ordersOfLot(bodies, scope.lot).some((o) => p.orders.includes(o)))
      return { status: 403, code: 'not_your_order', message: 'your credential does not cover this lot' };
    list = bodies.byLot(scope.lot, scopeEventsMax);
  } else list = bodies.byProduct(scope.product, scopeEventsMax);
  const truncated = list.length >= scopeEventsMax;
  const events = list
    .filter((e) => e.height !== null)
    .filter((e) => p.role === 'reader' || !bodyRefusal(p, member, e.env.enterprise, e.env.dataClass, ordersOfEvent(bodies, e)))
    .sort(byHeight);
  return { events, lifeCycle: [], truncated };
}

export function registerTrace(app: FastifyInstance, deps: TraceDeps): void {
  const { node, bodies, counters, member } = deps;
  const waiters = new Set<() => void>();
  const off = node.onCommitted(() => {
    for (const w of [...waiters]) w();
  });
  app.addHook('onClose', async () => {
    off();
    for (const w of [...waiters]) w();
  });

  app.get<{ Params: { id: string } }>('/v1/events/:id', async (req, reply) => {
    const p = req.principal!;
    const id = req.params.id;
    // The same refusal for an event that does not exist and one the caller may not read.
    const hidden = { status: 403 as const, code: 'not_your_order' as const, message: 'your credential does not cover this event' };
    if (!/^[0-9a-f]{64}$/.test(id)) return reply.code(400).send({ code: 'bad_query', error: 'expected a hex event id' });
    const e = bodies.get(id);
    if (!e || e.height === null) {
      if (p.role === 'reader') return reply.code(404).send({ code: 'not_found', error: 'no committed event with this id here' });
      return refuse(reply, counters, hidden);
    }
    const r = bodyRefusal(p, member, e.env.enterprise, e.env.dataClass, ordersOfEvent(bodies, e));
    if (r) return refuse(reply, counters, p.role === 'customer' ? hidden : r);
    return view(e);
  });

  app.get<{ Querystring: Record<string, string | undefined> }>('/v1/trace', async (req, reply) => {
    const q = req.query;
    const given = (['order', 'lot', 'product'] as const).filter((k) => q[k] !== undefined);
    const after = q.after === undefined ? 0 : /^\d{1,15}$/.test(q.after) ? Number(q.after) : Number.NaN;
    const waitMs = q.waitMs === undefined ? 0 : /^\d{1,9}$/.test(q.waitMs) ? Number(q.waitMs) : Number.NaN;
    const key = given[0];
    const value = key ? q[key]! : '';
    if (given.length !== 1 || value.length < 1 || value.length > scopeCharsMax || Number.isNaN(after) || Number.isNaN(waitMs))
      return reply.code(400).send({
        code: 'bad_query',
        error: `expected exactly one of order, lot or product (1 to ${scopeCharsMax} characters), and after/waitMs as non-negative integers`,
      });
    const scope = { [key!]: value } as TraceScope;
    const p = req.principal!;
    const deadline = Date.now() + Math.min(waitMs, traceWaitMaxMs);
    for (;;) {
      const asOfHeight = node.store.height;
      const got = traceEvents(deps, p, scope);
      if ('status' in got) return refuse(reply, counters, got);
      const events = got.events.filter((e) => (e.height ?? 0) > after);
      const lifeCycle = got.lifeCycle.filter((e) => (e.height ?? 0) > after);
      const remaining = deadline - Date.now();
      if (events.length > 0 || lifeCycle.length > 0 || remaining <= 0) {
        const bundle = deps.bundle ? await deps.bundle(scope, events, lifeCycle) : undefined;
        return {
          scope,
          asOfHeight,
          truncated: got.truncated,
          events: events.map(view),
          lifeCycle: lifeCycle.map(view),
          ...(bundle === undefined ? {} : { bundle }),
        };
      }
      if (waiters.size >= traceWaitersMax)
        return reply.code(503).send({ code: 'busy', error: `more than ${traceWaitersMax} traces waiting` });
      await new Promise<void>((resolve) => {
        const done = () => {
          clearTimeout(timer);
          waiters.delete(done);
          resolve();
        };
        const timer = setTimeout(done, remaining);
        waiters.add(done);
      });
      if (req.raw.destroyed) return reply.code(499).send();
    }
  });
}
