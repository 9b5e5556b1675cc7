/**
 * A counting semaphore with a FIFO of waiters, so units sharing one connection take turns fairly.
 * The waiter queue is bounded by the number of pollers (each holds at most one waiter), which the
 * device map bounds; `close()` rejects everyone waiting when the connection goes away.
 */
export class Semaphore {
  #free: number;
  readonly #waiters: { resolve: () => void; reject: (err: Error) => void }[] = [];
  #closed: Error | null = null;

  constructor(permits: number) {
    if (!Number.isInteger(permits) || permits < 1) throw new RangeError('permits must be a positive integer');
    this.#free = permits;
  }

  acquire(): Promise<void> {
    if (this.#closed) return Promise.reject(this.#closed);
    if (this.#free > 0) {
      this.#free--;
      return Promise.resolve();
    }
    return new Promise((resolve, reject) => {
      this.#waiters.push({ resolve, reject });
    });
  }

  release(): void {
    const next = this.#waiters.shift();
    if (next) next.resolve();
    else this.#free++;
  }

  close(reason: Error): void {
    this.#closed = reason;
    for (const w of this.#waiters.splice(0)) w.reject(reason);
  }

  get waiting(): number {
    return this.#waiters.length;
  }
}
