/**
 * Which of a member's events belong to an order, a lot or a product (contract of issue 11, §4), and
 * the order summary a closed order commits to. One selection for the member's close-time summary, the
 * trace and the proof bundle, so that what the member counts at close is exactly what a bundle proves.
 *
 * An order's events are the member's process-class events whose body names the order, or whose body
 * names a lot bound to the order by a `lot_bound` event, excluding the order's life-cycle events
 * (order_accepted, order_in_production, order_closed), which are listed apart. The summary is their
 * count and the RFC 6962 Merkle root over their 32-byte ids sorted ascending by hex.
 *
 * @example
 *   const { events, lifecycle } = selectScope(bodies, { order: 'ORD-7' }, ['process'], limit);
 *   const { eventCount, eventsRoot } = orderSummary(events.map((e) => e.id));
 */
import { fromHex, toHex } from '../../crypto/hash.ts';
import { merkleRoot } from '../../crypto/merkle.ts';
import type { DataClass } from '../../event/kinds.ts';
import type { BodyStore, KeptEvent } from '../../store/bodies.ts';
import { type BundleScope, isLifecycleKind } from './bundle.ts';

/** The kind of the event binding a lot to an order (its body carries both). */
export const lotBoundKind = 'lot_bound';

export type ScopeReader = Pick<BodyStore, 'byOrder' | 'byLot' | 'byProduct'>;

export interface ScopeSelection {
  /** The scope's events, each once, in the body store's order (gateway, seq). */
  events: KeptEvent[];
  /** The order's life-cycle events (order scope only). */
  lifecycle: KeptEvent[];
  /** Lots bound to the order by its lot_bound events (order scope only). */
  boundLots: string[];
}

/**
 * Rows one body-store query may return, per event of the limit: a scope's rows include events it
 * leaves out (equipment data, life-cycle events), so the row bound is looser than the event bound.
 */
export const scopeRowsPerEvent = 4;

/** The scope has more than `limit` events: refused rather than cut short. */
export class ScopeTooLarge extends Error {
  override name = 'ScopeTooLarge';
  readonly code = 'too_many_events';
}

/**
 * The events of a scope in the member's body store (kept ones, final or not: the caller keeps the
 * final ones). `classes` filters by data class (an order's events are process-class by definition).
 * Throws {@link ScopeTooLarge} past `limit` events.
 */
export function selectScope(
  bodies: ScopeReader,
  scope: BundleScope,
  classes: readonly DataClass[],
  limit: number,
): ScopeSelection {
  const events = new Map<string, KeptEvent>();
  const lifecycle: KeptEvent[] = [];
  const boundLots: string[] = [];
  const tooMany = () => new ScopeTooLarge(`more than ${limit} events in this scope`);
  const rowsMax = limit * scopeRowsPerEvent;
  /** One query's rows, refused past the row bound (asking for one more tells "exactly" from "more"). */
  const rows = (found: KeptEvent[]) => {
    if (found.length > rowsMax) throw new ScopeTooLarge(`more than ${rowsMax} stored events in this scope`);
    return found;
  };
  const add = (e: KeptEvent, allowed: readonly DataClass[]) => {
    if (!allowed.includes(e.env.dataClass) || events.has(e.id)) return;
    if (events.size >= limit) throw tooMany();
    events.set(e.id, e);
  };
  if ('order' in scope) {
    const named = rows(bodies.byOrder(scope.order, rowsMax + 1));
    for (const e of named) {
      if (isLifecycleKind(e.env.kind)) {
        lifecycle.push(e);
        continue;
      }
      if (
        (e.env.kind as string) === lotBoundKind &&
        e.body.lot !== undefined &&
        !boundLots.includes(e.body.lot)
      ) {
        boundLots.push(e.body.lot);
      }
      add(e, ['process']);
    }
    for (const lot of boundLots) {
      for (const e of rows(bodies.byLot(lot, rowsMax + 1)))
        if (!isLifecycleKind(e.env.kind)) add(e, ['process']);
    }
  } else {
    const found = rows(
      'lot' in scope ? bodies.byLot(scope.lot, rowsMax + 1) : bodies.byProduct(scope.product, rowsMax + 1),
    );
    for (const e of found) add(e, classes);
  }
  return { events: [...events.values()], lifecycle, boundLots };
}

/** An order's summary as its order_closed event carries it: the count and root of its event ids. */
export function orderSummary(eventIds: readonly string[]): { eventCount: number; eventsRoot: string } {
  const sorted = [...eventIds].sort();
  return { eventCount: sorted.length, eventsRoot: toHex(merkleRoot(sorted.map(fromHex))) };
}
