/**
 * Customer orders (issue 11, MASBC's factory-to-customer flow), recorded by the member's office
 * signer (office.ts) as events with private bodies; an order's state is what its committed
 * life-cycle events say, read back from the member's body store (nothing else is kept).
 *
 *   POST /v1/orders               {order, customer, product, quantity} → 201 {order, state, eventIds}
 *   GET  /v1/orders/<id>          {order, state, customer, product, quantity, lots, lifeCycle, summary?}
 *   POST /v1/orders/<id>/lots     {lot} → 201: a `lot_bound` event
 *   POST /v1/orders/<id>/state    {state: "in_production" | "closed"} → 200
 *
 * Life cycle: accepted → in_production → closed (accepted → closed also); closed is final. Closing
 * first binds the lots the order's own events name (the order tag the device maps read), then
 * commits `order_closed` whose values carry `eventCount` and `eventsRoot` over the order's events
 * (scope.ts `orderSummary`): what makes the order's trace provably complete.
 */
import type { FastifyInstance } from 'fastify';
import type { BodyStore } from '../../store/bodies.ts';
import { type AccessCounters, orderRefusal, refuse } from '../auth/policy.ts';
import { ScopeTooLarge } from '../proof/order-events.ts';
import { type Office, OfficeError } from './office.ts';
import { boundLots, orderEvents, orderLotsMax, orderSummary } from './scope.ts';

export type { Office } from './office.ts';

export const orderStates = ['accepted', 'in_production', 'closed'] as const;
export type OrderState = (typeof orderStates)[number];

const orderIdPattern = /^[A-Za-z0-9][A-Za-z0-9._:/-]{0,127}$/;
const textMax = 128;
export const orderQuantityMax = 1_000_000_000;

export interface OrderView {
  order: string;
  state: OrderState;
  customer: string;
  product: string;
  quantity: number;
  lots: string[];
  lifeCycle: { kind: string; id: string; height: number | null }[];
  summary?: { eventCount: number; eventsRoot: string };
}

/** The order as its committed life-cycle events say, or undefined before it is accepted. */
export function orderView(bodies: BodyStore, order: string): OrderView | undefined {
  const { lifeCycle } = orderEvents(bodies, order);
  const accepted = lifeCycle.find((e) => e.env.kind === 'order_accepted');
  if (!accepted) return undefined;
  const closed = lifeCycle.find((e) => e.env.kind === 'order_closed');
  const state: OrderState = closed
    ? 'closed'
    : lifeCycle.some((e) => e.env.kind === 'order_in_production')
      ? 'in_production'
      : 'accepted';
  const v = accepted.body.values;
  return {
    order,
    state,
    customer: String(v.customer?.v ?? ''),
    product: accepted.body.product ?? '',
    quantity: Number(v.quantity?.v ?? 0),
    lots: boundLots(bodies, order),
    lifeCycle: lifeCycle.map((e) => ({ kind: e.env.kind, id: e.id, height: e.height })),
    ...(closed
      ? {
          summary: {
            eventCount: Number(closed.body.values.eventCount?.v),
            eventsRoot: String(closed.body.values.eventsRoot?.v),
          },
        }
      : {}),
  };
}

const good = (v: number | string) => ({ v, q: 'good' as const });

export interface OrderDeps {
  bodies: BodyStore;
  counters: AccessCounters;
  office?: Office | undefined;
}

export function registerOrders(app: FastifyInstance, deps: OrderDeps): void {
  const { bodies, counters } = deps;
  const bad = (reply: import('fastify').FastifyReply, error: string) =>
    refuse(reply, counters, { status: 400, code: 'bad_order', message: error });
  const conflict = (reply: import('fastify').FastifyReply, code: string, error: string) =>
    reply.code(409).send({ code, error });
  const officeOr503 = (reply: import('fastify').FastifyReply) => {
    if (deps.office) return deps.office;
    reply.code(503).send({
      code: 'no_office',
      error: 'this validator holds no office signer (peer --office-key): it records no orders',
    });
    return undefined;
  };
  // One change of orders at a time, so two requests never both see "not yet accepted".
  let busy: Promise<unknown> = Promise.resolve();
  const serial = <T>(f: () => Promise<T>): Promise<T> => {
    const run = busy.then(f);
    busy = run.catch(() => {});
    return run;
  };
  const officeFailure = (reply: import('fastify').FastifyReply, err: unknown) => {
    if (err instanceof OfficeError) return reply.code(503).send({ code: err.code, error: err.message });
    if (err instanceof ScopeTooLarge) return conflict(reply, 'order_too_large', err.message);
    throw err;
  };

  app.post('/v1/orders', async (req, reply) => {
    const b = (req.body ?? {}) as Record<string, unknown>;
    const { order, customer, product, quantity } = b;
    if (typeof order !== 'string' || !orderIdPattern.test(order))
      return bad(reply, 'order: 1-128 of A-Z a-z 0-9 . _ : / -, starting with a letter or digit');
    if (typeof customer !== 'string' || customer.length < 1 || customer.length > textMax)
      return bad(reply, `customer: 1 to ${textMax} characters`);
    if (typeof product !== 'string' || product.length < 1 || product.length > textMax)
      return bad(reply, `product: 1 to ${textMax} characters`);
    if (
      !Number.isSafeInteger(quantity) ||
      (quantity as number) < 1 ||
      (quantity as number) > orderQuantityMax
    )
      return bad(reply, `quantity: an integer from 1 to ${orderQuantityMax}`);
    const office = officeOr503(reply);
    if (!office) return reply;
    return serial(async () => {
      if (orderView(bodies, order))
        return conflict(reply, 'order_exists', `order ${order} is already registered`);
      try {
        const { ids } = await office.record([
          {
            kind: 'order_accepted',
            order,
            product,
            values: { customer: good(customer), quantity: good(quantity as number) },
          },
        ]);
        return reply.code(201).send({ order, state: 'accepted', eventIds: ids });
      } catch (err) {
        return officeFailure(reply, err);
      }
    });
  });

  app.get<{ Params: { id: string } }>('/v1/orders/:id', async (req, reply) => {
    const r = orderRefusal(req.principal!, req.params.id);
    if (r) return refuse(reply, counters, r);
    const view = orderView(bodies, req.params.id);
    return view ?? reply.code(404).send({ code: 'not_found', error: `no order ${req.params.id} here` });
  });

  app.post<{ Params: { id: string } }>('/v1/orders/:id/lots', async (req, reply) => {
    const lot = ((req.body ?? {}) as { lot?: unknown }).lot;
    if (typeof lot !== 'string' || lot.length < 1 || lot.length > textMax)
      return bad(reply, `lot: 1 to ${textMax} characters`);
    const office = officeOr503(reply);
    if (!office) return reply;
    const order = req.params.id;
    return serial(async () => {
      const view = orderView(bodies, order);
      if (!view) return reply.code(404).send({ code: 'not_found', error: `no order ${order} here` });
      if (view.state === 'closed') return conflict(reply, 'order_closed', `order ${order} is closed`);
      if (view.lots.includes(lot)) return reply.code(200).send({ order, lot, bound: true, eventIds: [] });
      if (view.lots.length >= orderLotsMax)
        return conflict(reply, 'too_many_lots', `an order has at most ${orderLotsMax} lots`);
      try {
        const { ids } = await office.record([{ kind: 'lot_bound', order, lot, values: {} }]);
        return reply.code(201).send({ order, lot, bound: true, eventIds: ids });
      } catch (err) {
        return officeFailure(reply, err);
      }
    });
  });

  app.post<{ Params: { id: string } }>('/v1/orders/:id/state', async (req, reply) => {
    const state = ((req.body ?? {}) as { state?: unknown }).state;
    if (state !== 'in_production' && state !== 'closed')
      return bad(reply, 'state: "in_production" or "closed"');
    const office = officeOr503(reply);
    if (!office) return reply;
    const order = req.params.id;
    return serial(async () => {
      const view = orderView(bodies, order);
      if (!view) return reply.code(404).send({ code: 'not_found', error: `no order ${order} here` });
      if (view.state === 'closed') return conflict(reply, 'order_closed', `order ${order} is closed`);
      if (view.state === state) return reply.code(200).send({ order, state, eventIds: [] });
      try {
        if (state === 'in_production') {
          const { ids } = await office.record([{ kind: 'order_in_production', order, values: {} }]);
          return { order, state, eventIds: ids };
        }
        // Lots the order's own events name (their order tag) are bound first, on the chain.
        const tagged = new Set<string>();
        for (const e of orderEvents(bodies, order).events)
          if (e.body.order === order && e.body.lot && !view.lots.includes(e.body.lot)) tagged.add(e.body.lot);
        const eventIds: string[] = [];
        const toBind = [...tagged].slice(0, orderLotsMax - view.lots.length);
        if (toBind.length > 0) {
          const bound = await office.record(
            toBind.map((lot) => ({ kind: 'lot_bound' as const, order, lot, values: {} })),
          );
          eventIds.push(...bound.ids);
        }
        const { events } = orderEvents(bodies, order);
        const summary = orderSummary(events.map((e) => e.id));
        const closed = await office.record([
          {
            kind: 'order_closed',
            order,
            values: { eventCount: good(summary.eventCount), eventsRoot: good(summary.eventsRoot) },
          },
        ]);
        eventIds.push(...closed.ids);
        return { order, state, eventIds, summary };
      } catch (err) {
        return officeFailure(reply, err);
      }
    });
  });
}
