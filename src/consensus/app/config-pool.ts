/**
 * Pending configuration transactions (config-tx.ts): the ledger's mirror of the core's mempool for
 * them, as pool.ts is for batches. Mempool policy, not validity (liveness only): a member's
 * transactions are *ready* while they run on from its committed configuration sequence, and a
 * primary proposes ready ones first in a block, in sequence order, each checked against the registry
 * as of the block being built and the ones before it.
 *
 * Bounds: `configPendingMax` transactions in all and `configPendingPerMemberMax` of one member (a
 * member changes its gateways a few times a year); beyond either a new one is refused
 * (`config_pending_full`), what is pending stays.
 */
import type { BlockBudget } from '../core/config.ts';
import type { ConfigPayload } from './config-tx.ts';
import type { ConfigProblem, GatewayRegistry } from './registry.ts';

/** Pending configuration transactions, all members together. */
export const configPendingMax = 64;
/** Of those, one member's: so no member can crowd the others' changes out. */
export const configPendingPerMemberMax = 8;

interface Entry {
  key: string;
  id: Uint8Array;
  payload: ConfigPayload;
  bytes: number;
  order: number;
  readySinceMs: number | null;
}

export class ConfigPool {
  readonly #entries = new Map<string, Entry>();
  #arrivals = 0;

  get size(): number {
    return this.#entries.size;
  }

  has(key: string): boolean {
    return this.#entries.has(key);
  }

  /** Null if pooled, else the refusal. `committed` is the registry as of the last applied block. */
  admit(
    key: string,
    id: Uint8Array,
    payload: ConfigPayload,
    bytes: number,
    committed: GatewayRegistry,
    nowMs: number,
  ): ConfigProblem | null {
    if (this.#entries.size >= configPendingMax)
      return {
        code: 'config_pending_full',
        message: `${this.#entries.size} configuration transactions pending`,
      };
    let own = 0;
    for (const e of this.#entries.values()) if (e.payload.member === payload.member) own++;
    if (own >= configPendingPerMemberMax)
      return {
        code: 'config_pending_full',
        message: `${own} configuration transactions of ${payload.member} pending`,
      };
    const last = committed.sequence(payload.member);
    if (payload.seq <= last)
      return {
        code: 'config_replay',
        message: `seq ${payload.seq} of ${payload.member} is not after its last, ${last}`,
      };
    for (const e of this.#entries.values()) {
      if (e.payload.member === payload.member && e.payload.seq === payload.seq)
        return {
          code: 'config_replay',
          message: `another configuration transaction of ${payload.member} with seq ${payload.seq} is pending`,
        };
    }
    // The next one can be judged now against the committed registry: refuse it at once if it fails.
    if (payload.seq === last + 1) {
      const problem = committed.problem(payload);
      if (problem) return problem;
    }
    this.#entries.set(key, { key, id, payload, bytes, order: this.#arrivals++, readySinceMs: null });
    this.#markReady(committed, nowMs);
    return null;
  }

  removed(key: string): boolean {
    return this.#entries.delete(key);
  }

  isReady(key: string): boolean {
    return (this.#entries.get(key)?.readySinceMs ?? null) !== null;
  }

  /**
   * After a block was applied: drops (and returns) transactions at or below their member's committed
   * sequence, and the next one of a member if it now fails (it can never pass: a key taken stays
   * taken); marks the runs that continue a member's sequence ready.
   */
  refresh(committed: GatewayRegistry, nowMs: number): Uint8Array[] {
    const stale: Uint8Array[] = [];
    for (const e of [...this.#entries.values()]) {
      const last = committed.sequence(e.payload.member);
      if (e.payload.seq <= last || (e.payload.seq === last + 1 && committed.problem(e.payload) !== null)) {
        this.#entries.delete(e.key);
        stale.push(e.id);
      }
    }
    this.#markReady(committed, nowMs);
    return stale;
  }

  #markReady(committed: GatewayRegistry, nowMs: number): void {
    const bySeq = this.#byMemberSeq();
    const ready = new Set<Entry>();
    for (const [member, seqs] of bySeq) {
      for (let s = committed.sequence(member) + 1; seqs.has(s); s++) ready.add(seqs.get(s)!);
    }
    for (const e of this.#entries.values()) {
      if (!ready.has(e)) e.readySinceMs = null;
      else if (e.readySinceMs === null) e.readySinceMs = nowMs;
    }
  }

  readiness(): { count: number; oldestMs: number | null } {
    let count = 0;
    let oldestMs: number | null = null;
    for (const e of this.#entries.values()) {
      if (e.readySinceMs === null) continue;
      count++;
      if (oldestMs === null || e.readySinceMs < oldestMs) oldestMs = e.readySinceMs;
    }
    return { count, oldestMs };
  }

  /**
   * A block's configuration transactions, given the registry as of its parent (`view`, not changed):
   * per member in sequence order, each passing against the registry with the ones before applied;
   * members by arrival of their next one. Returns the ids and the bytes they take.
   */
  select(view: GatewayRegistry, height: number, budget: BlockBudget): { ids: Uint8Array[]; bytes: number } {
    const ids: Uint8Array[] = [];
    let bytes = 0;
    if (this.#entries.size === 0) return { ids, bytes };
    const scratch = view.clone();
    const bySeq = this.#byMemberSeq();
    const members = [...bySeq.keys()].sort(
      (a, b) =>
        Math.min(...[...bySeq.get(a)!.values()].map((e) => e.order)) -
        Math.min(...[...bySeq.get(b)!.values()].map((e) => e.order)),
    );
    for (const member of members) {
      const seqs = bySeq.get(member)!;
      for (let s = scratch.sequence(member) + 1; seqs.has(s); s++) {
        const e = seqs.get(s)!;
        if (ids.length >= budget.txsMax || bytes + e.bytes > budget.bytesMax) break;
        if (scratch.problem(e.payload) !== null) break;
        scratch.apply(e.payload, height);
        ids.push(e.id);
        bytes += e.bytes;
      }
    }
    return { ids, bytes };
  }

  #byMemberSeq(): Map<string, Map<number, Entry>> {
    const out = new Map<string, Map<number, Entry>>();
    for (const e of this.#entries.values()) {
      let m = out.get(e.payload.member);
      if (!m) {
        m = new Map();
        out.set(e.payload.member, m);
      }
      if (!m.has(e.payload.seq)) m.set(e.payload.seq, e);
    }
    return out;
  }
}
