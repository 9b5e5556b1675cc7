/**
 * Pending transactions, in arrival order, bounded by count and bytes.
 *
 * Overflow policy: a full mempool refuses the new transaction (reason 'mempool-full') and keeps what
 * it has. Evicting old ones instead would let a flood of new transactions push out a transaction a
 * gateway is waiting on; refusing pushes back on the submitter, whose outbox keeps it and retries.
 */
import { keyOf } from './io.ts';

export interface PendingTx {
  key: string;
  id: Uint8Array;
  tx: Uint8Array;
  arrivalMs: number;
  /** Submitted to this replica by a client (else forwarded by a peer): only the origin re-forwards it. */
  origin: boolean;
  /** Last time it was forwarded to the other replicas. */
  forwardedMs: number;
  /** Re-forwards in `forwardView` (the interval doubles with each, and starts again in a new view). */
  reforwards: number;
  forwardView: number;
}

export class Mempool {
  readonly #txs = new Map<string, PendingTx>();
  readonly #txsMax: number;
  readonly #bytesMax: number;
  #bytes = 0;

  constructor(txsMax: number, bytesMax: number) {
    this.#txsMax = txsMax;
    this.#bytesMax = bytesMax;
  }

  get size(): number {
    return this.#txs.size;
  }

  get bytes(): number {
    return this.#bytes;
  }

  has(key: string): boolean {
    return this.#txs.has(key);
  }

  get(key: string): PendingTx | undefined {
    return this.#txs.get(key);
  }

  /** Whether one more transaction of `bytes` fits. */
  fits(bytes: number): boolean {
    return this.#txs.size < this.#txsMax && this.#bytes + bytes <= this.#bytesMax;
  }

  /** Adds a transaction the caller checked; returns false if it does not fit. */
  add(id: Uint8Array, tx: Uint8Array, nowMs: number, origin: boolean, view: number): boolean {
    const key = keyOf(id);
    if (this.#txs.has(key) || !this.fits(tx.byteLength)) return false;
    this.#txs.set(key, {
      key,
      id,
      tx,
      arrivalMs: nowMs,
      origin,
      forwardedMs: nowMs,
      reforwards: 0,
      forwardView: view,
    });
    this.#bytes += tx.byteLength;
    return true;
  }

  remove(key: string): void {
    const t = this.#txs.get(key);
    if (!t) return;
    this.#txs.delete(key);
    this.#bytes -= t.tx.byteLength;
  }

  /** Arrival order (oldest first). */
  values(): IterableIterator<PendingTx> {
    return this.#txs.values();
  }

  oldest(): PendingTx | undefined {
    return this.#txs.values().next().value;
  }
}
