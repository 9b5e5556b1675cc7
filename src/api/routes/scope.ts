/**
 * Which orders an event or a lot belongs to (for the policy's body checks), and an order's committed
 * events (docs/api.md "An order's events", the issue 11 contract §4), through the one selection the
 * proof bundles use (src/api/proof/order-events.ts). Only committed events count. The member
 * computes the same set when it closes the order; a bundle's completeness check recomputes its
 * count and Merkle root.
 */
import type { BodyStore, KeptEvent } from '../../store/bodies.ts';
import { proofBundleLimits } from '../proof/bundle.ts';
import { orderSummary, selectScope } from '../proof/order-events.ts';

/** Events read per query: an order (or lot, or product) with more is answered in part (`truncated`). */
export const scopeEventsMax = 20_000;
/** Lots bound to one order that are followed. */
export const orderLotsMax = 1_000;

/** Lots bound to `order` by committed `lot_bound` events. */
export function boundLots(bodies: BodyStore, order: string): string[] {
  const lots = new Set<string>();
  for (const e of bodies.byOrder(order, scopeEventsMax)) {
    if (e.env.kind === 'lot_bound' && e.height !== null && e.body.lot && lots.size < orderLotsMax)
      lots.add(e.body.lot);
  }
  return [...lots];
}

/** Orders `lot` is bound to by committed `lot_bound` events. */
export function ordersOfLot(bodies: BodyStore, lot: string): string[] {
  const orders = new Set<string>();
  for (const e of bodies.byLot(lot, scopeEventsMax)) {
    if (e.env.kind === 'lot_bound' && e.height !== null && e.body.order) orders.add(e.body.order);
  }
  return [...orders];
}

/** The orders an event belongs to (by its order tag, or by its lot's bindings). */
export function ordersOfEvent(bodies: BodyStore, e: KeptEvent): string[] {
  const orders = new Set<string>();
  if (e.body.order) orders.add(e.body.order);
  if (e.body.lot) for (const o of ordersOfLot(bodies, e.body.lot)) orders.add(o);
  return [...orders];
}

export function byHeight(a: KeptEvent, b: KeptEvent): number {
  return (
    (a.height ?? 0) - (b.height ?? 0) || a.env.sourceTimeMs - b.env.sourceTimeMs || (a.id < b.id ? -1 : 1)
  );
}

/**
 * The order's committed events and life-cycle events, by the one selection the proof bundles and
 * the close-time summary use (src/api/proof/order-events.ts `selectScope`). Throws ScopeTooLarge.
 */
export function orderEvents(
  bodies: BodyStore,
  order: string,
): { events: KeptEvent[]; lifeCycle: KeptEvent[] } {
  const s = selectScope(bodies, { order }, ['process'], proofBundleLimits.eventsMax);
  return {
    events: s.events.filter((e) => e.height !== null).sort(byHeight),
    lifeCycle: s.lifecycle.filter((e) => e.height !== null && e.body.order === order).sort(byHeight),
  };
}

export { orderSummary };
