/**
 * The ledger's view of the core's mempool: pending batches grouped by gateway chain, each either
 * *ready* (its chain from the gateway's committed head up to it is all pending, so an honest primary
 * can propose it) or *held* (it waits for a predecessor that may never come).
 *
 * This is mempool policy, not validity: it decides what a primary proposes and what the view-change
 * and censorship timers wait for, so it affects liveness only (docs/ledger.md, "Liveness"). It is
 * still deterministic (arrival order from a counter, no clocks or randomness of its own).
 *
 * Bounds, per gateway chain: `pendingPerGatewayMax` batches in all, of which at most
 * `heldPerGatewayMax` held. Over either, a new batch is refused (the core answers 'refused'); what is
 * pending stays, as the core's mempool does when full. The gateway's outbox resubmits later.
 */
import type { BlockBudget } from '../core/config.ts';
import type { GatewayHead } from './state.ts';
import type { BatchTx } from './tx.ts';

export interface PoolLimits {
  /** Pending batches of one gateway chain (ready + held). */
  pendingPerGatewayMax: number;
  /** Of those, batches waiting for a predecessor. Less than pendingPerGatewayMax (asserted by Ledger). */
  heldPerGatewayMax: number;
}

interface Entry {
  /** Transaction id, hex: the pool's key. */
  key: string;
  /** The id bytes the core gave (handed back by `select` and `refresh`). */
  id: Uint8Array;
  chain: Chain;
  /** First seq of the batch (its key in `bySeq`). */
  seq: number;
  lastSeq: number;
  prev: string;
  lastId: string;
  /** The batch's signing key (a revocation makes it unusable). */
  keyId: string;
  bytes: number;
  /** Arrival counter: FIFO order across gateways. */
  order: number;
  /** When it became proposable (core clock), or null while held. */
  readySinceMs: number | null;
}

interface Chain {
  key: string;
  /** Pending batches by first seq; several per seq only if the gateway signed two (first arrival first). */
  bySeq: Map<number, Entry[]>;
  count: number;
  ready: number;
  /** Last ready batch's end (or the committed head): the next ready one starts at tipSeq+1 after tipId. */
  tipSeq: number;
  tipId: string;
  /** Lowest first seq of a ready batch (its readySinceMs is the chain's oldest); Infinity if none. */
  readyLow: number;
}

/** A binary min-heap of entries by arrival order. */
class EntryHeap {
  readonly #items: Entry[] = [];
  get size(): number {
    return this.#items.length;
  }
  push(e: Entry): void {
    const a = this.#items;
    a.push(e);
    let i = a.length - 1;
    while (i > 0) {
      const p = (i - 1) >> 1;
      if (a[p]!.order <= e.order) break;
      a[i] = a[p]!;
      i = p;
    }
    a[i] = e;
  }
  pop(): Entry | undefined {
    const a = this.#items;
    const top = a[0];
    const last = a.pop();
    if (a.length > 0 && last) {
      let i = 0;
      for (;;) {
        const l = 2 * i + 1;
        if (l >= a.length) break;
        const c = l + 1 < a.length && a[l + 1]!.order < a[l]!.order ? l + 1 : l;
        if (a[c]!.order >= last.order) break;
        a[i] = a[c]!;
        i = c;
      }
      a[i] = last;
    }
    return top;
  }
}

export class OrderedPool {
  readonly #limits: PoolLimits;
  readonly #committed: (chain: string) => GatewayHead;
  readonly #entries = new Map<string, Entry>();
  readonly #chains = new Map<string, Chain>();
  /** Chains whose committed head moved or that lost an event: recomputed by `refresh`. */
  readonly #dirty = new Set<Chain>();
  #ready = 0;
  #arrivals = 0;

  /** `committed` answers a chain's head as of the last block the runtime applied. */
  constructor(limits: PoolLimits, committed: (chain: string) => GatewayHead) {
    this.#limits = limits;
    this.#committed = committed;
  }

  get size(): number {
    return this.#entries.size;
  }

  get readyCount(): number {
    return this.#ready;
  }

  /** `null` if pooled, else a refusal `code: message`. */
  admit(id: Uint8Array, e: BatchTx, nowMs: number): string | null {
    if (this.#entries.has(e.id)) throw new Error(`bug: batch ${e.id} admitted twice`);
    const head = this.#committed(e.chain);
    if (e.firstSeq <= head.seq) {
      return `non_monotonic_seq: seq ${e.firstSeq} is not after the gateway's last seq ${head.seq} on the ledger (replay, or a second event signed for one seq)`;
    }
    let chain = this.#chains.get(e.chain);
    if (!chain) {
      chain = {
        key: e.chain,
        bySeq: new Map(),
        count: 0,
        ready: 0,
        tipSeq: head.seq,
        tipId: head.id,
        readyLow: Number.POSITIVE_INFINITY,
      };
      this.#chains.set(e.chain, chain);
    }
    if (chain.count >= this.#limits.pendingPerGatewayMax) {
      return `pending_full: ${chain.count} batches of ${e.chain} are pending already`;
    }
    const ready = e.firstSeq === chain.tipSeq + 1 && e.prev === chain.tipId;
    if (!ready && chain.count - chain.ready >= this.#limits.heldPerGatewayMax) {
      return `held_full: ${chain.count - chain.ready} batches of ${e.chain} already wait for a predecessor (next expected seq ${chain.tipSeq + 1})`;
    }
    const entry: Entry = {
      key: e.id,
      id,
      chain,
      seq: e.firstSeq,
      lastSeq: e.lastSeq,
      prev: e.prev,
      lastId: e.lastId,
      keyId: e.keyId,
      bytes: e.bytes,
      order: this.#arrivals++,
      readySinceMs: null,
    };
    this.#entries.set(entry.key, entry);
    const list = chain.bySeq.get(e.firstSeq);
    if (list) list.push(entry);
    else chain.bySeq.set(e.firstSeq, [entry]);
    chain.count++;
    if (ready) this.#extend(chain, nowMs);
    return null;
  }

  /** The core dropped a pooled batch (committed, or stale after `refresh`). Idempotent. */
  removed(idHex: string): void {
    const e = this.#entries.get(idHex);
    if (!e) return;
    this.#drop(e);
    this.#dirty.add(e.chain);
  }

  /** The committed head of `chain` moved (a block was applied). */
  headMoved(chain: string): void {
    const c = this.#chains.get(chain);
    if (c) this.#dirty.add(c);
  }

  /**
   * Recomputes the chains that changed: batches starting at or below the committed head are stale
   * (returned, for the core to drop), and the ready prefix is walked again from the head. A batch
   * that stays ready keeps its readySinceMs.
   */
  refresh(nowMs: number): Uint8Array[] {
    const stale: Uint8Array[] = [];
    for (const chain of this.#dirty) {
      const head = this.#committed(chain.key);
      for (const [seq, list] of [...chain.bySeq]) {
        if (seq > head.seq) continue;
        for (const e of [...list]) {
          this.#drop(e);
          stale.push(e.id);
        }
      }
      const onPath = new Set<Entry>();
      let tipSeq = head.seq;
      let tipId = head.id;
      for (;;) {
        const next = this.#pick(chain, tipSeq + 1, tipId);
        if (!next) break;
        onPath.add(next);
        tipSeq = next.lastSeq;
        tipId = next.lastId;
      }
      for (const list of chain.bySeq.values()) {
        for (const e of list) {
          const ready = onPath.has(e);
          if (ready && e.readySinceMs === null) {
            e.readySinceMs = nowMs;
            chain.ready++;
            this.#ready++;
          } else if (!ready && e.readySinceMs !== null) {
            e.readySinceMs = null;
            chain.ready--;
            this.#ready--;
          }
        }
      }
      chain.tipSeq = tipSeq;
      chain.tipId = tipId;
      chain.readyLow = onPath.size > 0 ? head.seq + 1 : Number.POSITIVE_INFINITY;
      if (chain.count === 0) this.#chains.delete(chain.key);
    }
    this.#dirty.clear();
    return stale;
  }

  isReady(idHex: string): boolean {
    const e = this.#entries.get(idHex);
    return e !== undefined && e.readySinceMs !== null;
  }

  /** Ready batches, and since when the longest-ready one has been ready. O(chains). */
  readiness(): { count: number; oldestMs: number | null } {
    let oldestMs: number | null = null;
    if (this.#ready > 0) {
      for (const chain of this.#chains.values()) {
        if (chain.ready === 0) continue;
        const e = this.#readyAt(chain, chain.readyLow);
        if (e && (oldestMs === null || e.readySinceMs! < oldestMs)) oldestMs = e.readySinceMs;
      }
    }
    return { count: this.#ready, oldestMs };
  }

  /**
   * A block's batches after the chain heads `head` (the committed heads plus the ancestors of the
   * block being built): per gateway, its pending batches continuing the head in seq order; across
   * gateways, merged by arrival, so a gateway's backlog cannot push later gateways' batches out
   * further than their turn. Within `budget`; a gateway whose next batch does not fit stops there.
   */
  select(
    head: (chain: string) => GatewayHead,
    budget: BlockBudget,
    usable: (keyId: string, chain: string) => boolean = () => true,
  ): Uint8Array[] {
    const heap = new EntryHeap();
    // A batch whose key may not sign in this block (revoked in an ancestor) stops its gateway there.
    const next = (chain: Chain, seq: number, prev: string) => {
      const e = this.#pick(chain, seq, prev);
      return e && usable(e.keyId, chain.key) ? e : undefined;
    };
    for (const chain of this.#chains.values()) {
      const h = head(chain.key);
      const e = next(chain, h.seq + 1, h.id);
      if (e) heap.push(e);
    }
    const out: Uint8Array[] = [];
    let bytes = 0;
    while (heap.size > 0 && out.length < budget.txsMax) {
      const e = heap.pop()!;
      if (bytes + e.bytes > budget.bytesMax) continue;
      out.push(e.id);
      bytes += e.bytes;
      const after = next(e.chain, e.lastSeq + 1, e.lastId);
      if (after) heap.push(after);
    }
    return out;
  }

  /**
   * Drops every pooled batch signed by a key for which `unusable` holds (revoked: it can never
   * become valid) and returns their ids, for the core to drop too. O(pooled batches).
   */
  dropWhere(unusable: (keyId: string, chain: string) => boolean): Uint8Array[] {
    const dropped: Uint8Array[] = [];
    for (const e of [...this.#entries.values()]) {
      if (!unusable(e.keyId, e.chain.key)) continue;
      this.#drop(e);
      this.#dirty.add(e.chain);
      dropped.push(e.id);
    }
    return dropped;
  }

  /** The first-arrived pending batch of `chain` starting at `seq` and linking to `prev`. */
  #pick(chain: Chain, seq: number, prev: string): Entry | undefined {
    const list = chain.bySeq.get(seq);
    if (!list) return undefined;
    for (const e of list) if (e.prev === prev) return e;
    return undefined;
  }

  #readyAt(chain: Chain, seq: number): Entry | undefined {
    const list = chain.bySeq.get(seq);
    if (!list) return undefined;
    for (const e of list) if (e.readySinceMs !== null) return e;
    return undefined;
  }

  /** Marks the chain's next batches ready while they link on from its tip. */
  #extend(chain: Chain, nowMs: number): void {
    for (;;) {
      const next = this.#pick(chain, chain.tipSeq + 1, chain.tipId);
      if (!next) return;
      next.readySinceMs = nowMs;
      chain.ready++;
      this.#ready++;
      if (next.seq < chain.readyLow) chain.readyLow = next.seq;
      chain.tipSeq = next.lastSeq;
      chain.tipId = next.lastId;
    }
  }

  #drop(e: Entry): void {
    this.#entries.delete(e.key);
    const chain = e.chain;
    const list = chain.bySeq.get(e.seq)!;
    const i = list.indexOf(e);
    list.splice(i, 1);
    if (list.length === 0) chain.bySeq.delete(e.seq);
    chain.count--;
    if (e.readySinceMs !== null) {
      e.readySinceMs = null;
      chain.ready--;
      this.#ready--;
      // Ready batches are contiguous from readyLow: the next one up is now the oldest.
      if (e.seq === chain.readyLow) {
        const s = e.lastSeq + 1;
        chain.readyLow = s <= chain.tipSeq && this.#readyAt(chain, s) ? s : Number.POSITIVE_INFINITY;
      }
    }
  }
}
