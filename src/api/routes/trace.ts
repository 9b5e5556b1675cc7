/**
 * The read side of the member's bodies: one event, and traces by order, lot or product, each
 * answering only what the caller may read (src/api/auth/policy.ts), and following new events by
 * long polling.
 *
 *   GET /v1/events/<id>                       {id, height, env, body}
 *   GET /v1/trace?order=…|lot=…|product=…     the scope's proof bundle (src/api/proof/, docs/trace.md):
 *       [&after=H&waitMs=W]                    every event with its body, envelope, batch signature,
 *                                              both Merkle paths, block header and certificate
 *
 * With `after`, the answer waits (up to `waitMs` ≤ `traceWaitMaxMs`) until the scope holds an event
 * final above height H, then gives the whole bundle again (so it stays checkable as a whole, and a
 * closed order's completeness with it); at the deadline it answers the bundle as it is. At most
 * `traceWaitersMax` requests wait at once (beyond, 503). A scope above the bundle limit is refused
 * (413 `too_many_events`) rather than cut short.
 *
 * A customer: `order` must be one its credential names; a `lot` must be bound to one of them; a
 * `product` lists only its orders' events. It never sees equipment-class events. Each refusal is the
 * same whether the order or lot exists or not.
 */
import type { FastifyInstance, FastifyRequest } from 'fastify';
import type { ConsensusNode } from '../../consensus/runtime/node.ts';
import type { BodyStore, KeptEvent } from '../../store/bodies.ts';
import type { Principal } from '../auth/credentials.ts';
import { type AccessCounters, bodyRefusal, orderRefusal, type Refusal, refuse } from '../auth/policy.ts';
import { type BundleEvent, type BundleScope, type ProofBundle, proofBundleLimits } from '../proof/bundle.ts';
import { buildProofBundle, buildProofBundleOf, ProofRequestError } from '../proof/produce.ts';
import { ordersOfEvent, ordersOfLot } from './scope.ts';

export const traceWaitMaxMs = 30_000;
export const traceWaitersMax = 256;
const scopeCharsMax = 128;

export type TraceScope = BundleScope;

export interface TraceDeps {
  node: ConsensusNode;
  bodies: BodyStore;
  counters: AccessCounters;
  member: string;
  /**
   * A long-poll slot of the API's per-address and total bounds (admission.ts `ClientGate.waiter`,
   * shared with GET /v1/commits); throws the refusal (429, 503) when none is free.
   */
  waiter?: (req: FastifyRequest) => () => void;
}

const view = (e: KeptEvent) => ({ id: e.id, height: e.height, env: e.env, body: e.body });

/**
 * The scope's proof bundle as `p` may read it: a refusal when the scope is not its (the same
 * whether it exists or not); for a customer, equipment data left out and, for a product, only the
 * events of its own orders.
 */
export function traceBundle(
  deps: Pick<TraceDeps, 'node' | 'bodies' | 'member'>,
  p: Principal,
  scope: TraceScope,
): ProofBundle | Refusal {
  const { node, bodies, member } = deps;
  if ('order' in scope) {
    const r = orderRefusal(p, scope.order);
    if (r) return r;
  } else if (
    'lot' in scope &&
    p.role === 'customer' &&
    !ordersOfLot(bodies, scope.lot).some((o) => p.orders.includes(o))
  )
    return { status: 403, code: 'not_your_order', message: 'your credential does not cover this lot' };
  const source = {
    chain: node.store,
    bodies,
    chainId: node.genesis.chainId,
    genesisHash: node.genesis.hash,
    genesisKeyIds: new Set(node.genesis.gateways.map((g) => g.publicKey.keyId)),
  };
  if (p.role === 'customer' && 'product' in scope) {
    // Only the product's events that belong to the customer's orders (process data only).
    const events = bodies
      .byProduct(scope.product, proofBundleLimits.eventsMax + 1)
      .filter((e) => !bodyRefusal(p, member, e.env.enterprise, e.env.dataClass, ordersOfEvent(bodies, e)));
    return buildProofBundleOf(source, scope, { events, lifecycle: [] });
  }
  const bundle = buildProofBundle(source, {
    scope,
    classes: p.role === 'reader' ? ['process', 'equipment'] : ['process'],
  });
  return bundle;
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
    const hidden = {
      status: 403 as const,
      code: 'not_your_order' as const,
      message: 'your credential does not cover this event',
    };
    if (!/^[0-9a-f]{64}$/.test(id))
      return refuse(reply, counters, { status: 400, code: 'bad_query', message: 'expected a hex event id' });
    const e = bodies.get(id);
    if (!e || e.height === null) {
      if (p.role === 'reader')
        return reply.code(404).send({ code: 'not_found', error: 'no committed event with this id here' });
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
    if (
      given.length !== 1 ||
      value.length < 1 ||
      value.length > scopeCharsMax ||
      Number.isNaN(after) ||
      Number.isNaN(waitMs)
    )
      return refuse(reply, counters, {
        status: 400,
        code: 'bad_query',
        message: `expected exactly one of order, lot or product (1 to ${scopeCharsMax} characters), and after/waitMs as non-negative integers`,
      });
    const scope = { [key!]: value } as TraceScope;
    const p = req.principal!;
    const deadline = Date.now() + Math.min(waitMs, traceWaitMaxMs);
    for (;;) {
      let bundle: ProofBundle | Refusal;
      try {
        bundle = traceBundle(deps, p, scope);
      } catch (err) {
        if (err instanceof ProofRequestError)
          return reply
            .code(err.code === 'too_many_events' ? 413 : 500)
            .send({ code: err.code, error: err.message });
        throw err;
      }
      if ('status' in bundle) return refuse(reply, counters, bundle);
      const fresh = (e: BundleEvent) => bundle.batches[e.batch]!.height > after;
      const remaining = deadline - Date.now();
      if (after === 0 || bundle.events.some(fresh) || bundle.lifecycle.some(fresh) || remaining <= 0)
        return bundle;
      if (waiters.size >= traceWaitersMax)
        return reply.code(503).send({ code: 'busy', error: `more than ${traceWaitersMax} traces waiting` });
      const release = deps.waiter?.(req);
      await new Promise<void>((resolve) => {
        const done = () => {
          clearTimeout(timer);
          waiters.delete(done);
          req.raw.off('close', done);
          release?.();
          resolve();
        };
        const timer = setTimeout(done, remaining);
        waiters.add(done);
        // A client that hangs up gives its slot back at once.
        req.raw.once('close', done);
      });
      if (req.raw.destroyed) return reply.code(499).send();
    }
  });
}
