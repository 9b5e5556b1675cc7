/**
 * Messages that arrived before the replica could use them (a later view, a height beyond the
 * window, a proposal whose parent is missing or whose timestamp is ahead of our clock), bounded per
 * peer, and their replay once the state has moved (a view entered, a block accepted or committed).
 */
import type { ReplicaContext } from './context.ts';
import type { FutureMessagesPart } from './parts.ts';
import type { Message } from './types.ts';

export interface FutureMessagesComponents {
  context: ReplicaContext;
  /** Hands a message to the replica as if it had just arrived from `from`. */
  dispatch(from: number, m: Message): void;
}

export class FutureMessages implements FutureMessagesPart {
  readonly #ctx: ReplicaContext;
  readonly #c: FutureMessagesComponents;
  readonly #future = new Map<number, Message[]>();
  #dropped = 0;
  #replaying = false;
  #replayAgain = false;

  constructor(components: FutureMessagesComponents) {
    this.#ctx = components.context;
    this.#c = components;
  }

  /** Messages dropped because their peer's buffer was full. */
  get dropped(): number {
    return this.#dropped;
  }

  /** Keeps a message for later; a full buffer drops the peer's oldest. */
  add(from: number, m: Message): void {
    let list = this.#future.get(from);
    if (!list) {
      list = [];
      this.#future.set(from, list);
    }
    if (list.length >= this.#ctx.config.local.futureMessagesPerPeerMax) {
      list.shift();
      this.#dropped++;
    }
    list.push(m);
  }

  /** Re-dispatches buffered messages after the state moved (view entered, block accepted or committed). */
  replay(): void {
    if (this.#replaying) {
      this.#replayAgain = true;
      return;
    }
    this.#replaying = true;
    try {
      do {
        this.#replayAgain = false;
        const pending = [...this.#future];
        this.#future.clear();
        for (const [from, list] of pending) for (const m of list) this.#c.dispatch(from, m);
      } while (this.#replayAgain);
    } finally {
      this.#replaying = false;
    }
  }

  /** Drops buffered messages of views below `view` (we left them). */
  dropBelowView(view: number): void {
    for (const [from, list] of this.#future) {
      const keep = list.filter((m) => !('view' in m) || m.view >= view);
      if (keep.length > 0) this.#future.set(from, keep);
      else this.#future.delete(from);
    }
  }
}
