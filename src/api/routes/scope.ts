/**
 * Which of the member's events belong to an order (docs/api.md "An order's events", the issue 11
 * contract §4): its process-class events whose body names the order, or whose body's lot is bound to
 * the order by a `lot_bound` event, excluding the order's life-cycle events (`order_*`). Only
 * committed events count. The member computes the same set when it closes the order, and the
 * completeness check of a proof bundle recomputes its count and Merkle root.
 */
import { fromHex } from '../../crypto/hash.ts';
import { merkleRoot } from '../../crypto/merkle.ts';
import type { BodyStore, KeptEvent } from '../../store/bodies.ts';

/** Events read per query: an order (or lot, or product) with more is answered in part (`truncated`). */
export const scopeEventsMax = 20_000;
/** Lots bound to one order that are followed. */
export const orderLotsMax = 1_000;

export const lifeCycleKinds: ReadonlySet<string> = new Set(['order_accepted', 'order_in_production', 'order_closed']);

/** Lots bound to `order` by committed `lot_bound` events. */
export function boundLots(bodies: BodyStore, order: string): string[] {
  const lots = new Set<string>();
  for (const e of bodies.byOrder(order, scopeEventsMax)) {
    if (e.env.kind === 'lot_bound' && e.height !== null && e.body.lot && lots.size < orderLotsMax) lots.add(e.body.lot);
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

function byHeight(a: KeptEvent, b: KeptEvent): number {
  return (a.height ?? 0) - (b.height ?? 0) || a.env.sourceTimeMs - b.env.sourceTimeMs || (a.id < b.id ? -1 : 1);
}

/** The order's events (contract §4) and, apart, its life-cycle events; committed only, by height. */
export function orderEvents(
  bodies: BodyStore,
  order: string,
): { events: KeptEvent[]; lifeCycle: KeptEvent[]; truncated: boolean } {
  const seen = new Map<string, KeptEvent>();
  const lifeCycle: KeptEvent[] = [];
  let truncated = false;
  const take = (list: KeptEvent[]) => {
    if (list.length >= scopeEventsMax) truncated = true;
    for (const e of list) {
      if (e.height === null || e.env.dataClass !== 'process') continue;
      if (lifeCycleKinds.has(e.env.kind)) {
        if (e.body.order === order && !seen.has(e.id)) lifeCycle.push(e);
        seen.set(e.id, e);
        continue;
      }
      seen.set(e.id, e);
    }
  };
  take(bodies.byOrder(order, scopeEventsMax));
  for (const lot of boundLots(bodies, order)) take(bodies.byLot(lot, scopeEventsMax));
  const events = [...seen.values()].filter((e) => !lifeCycleKinds.has(e.env.kind)).sort(byHeight);
  return { events, lifeCycle: lifeCycle.sort(byHeight), truncated };
}

/** What `order_closed` commits to: the count and the Merkle root of the ids, sorted ascending by hex. */
export function orderSummary(eventIds: readonly string[]): { eventCount: number; eventsRoot: string } {
  const sorted = [...eventIds].sort();
  return {
    eventCount: sorted.length,
    eventsRoot: Buffer.from(merkleRoot(sorted.map((id) => fromHex(id)))).toString('hex'),
  };
}

export { byHeight };
