/**
 * What a replica outputs while it handles one input, until `Replica.ready()` drains it as a `Ready`
 * (io.ts): records to persist, committed blocks, messages and peer faults. It also keeps the running
 * counts the metrics report (messages sent by type, faults by peer and code), so every part of the
 * replica sends and reports through this one place.
 */
import { emptyReady, type PersistRecord, type Ready } from './io.ts';
import type { CertifiedBlock, Message } from './types.ts';

export class Outbox {
  readonly #n: number;
  #ready: Ready = emptyReady();
  readonly #faultCounts = new Map<number, Map<string, number>>();
  readonly #sentCounts = new Map<string, number>();

  /** `n`: validators, so that a message to 'all' counts as n−1 sent. */
  constructor(n: number) {
    this.#n = n;
  }

  persist(r: PersistRecord): void {
    this.#ready.persist.push(r);
  }

  send(to: number | 'all', message: Message): void {
    this.#ready.messages.push({ to, message });
    this.#sentCounts.set(
      message.type,
      (this.#sentCounts.get(message.type) ?? 0) + (to === 'all' ? this.#n - 1 : 1),
    );
  }

  broadcast(message: Message): void {
    if (this.#n > 1) this.send('all', message);
  }

  fault(peer: number, code: string, detail: string): void {
    this.#ready.faults.push({ peer, code, detail });
    let m = this.#faultCounts.get(peer);
    if (!m) {
      m = new Map();
      this.#faultCounts.set(peer, m);
    }
    m.set(code, (m.get(code) ?? 0) + 1);
  }

  /** A newly committed block, for the runtime to store and apply (height order). */
  commit(cb: CertifiedBlock): void {
    this.#ready.committed.push(cb);
  }

  /** Blocks committed since the last `drain`: the runtime has not applied them yet. */
  get committed(): readonly CertifiedBlock[] {
    return this.#ready.committed;
  }

  /** Hands over everything collected since the last call, with the time to be woken at. */
  drain(wakeAtMs: number | null): Ready {
    const rd = this.#ready;
    rd.wakeAtMs = wakeAtMs;
    this.#ready = emptyReady();
    return rd;
  }

  messagesSent(): Record<string, number> {
    return Object.fromEntries(this.#sentCounts);
  }

  faults(): Record<number, Record<string, number>> {
    const faults: Record<number, Record<string, number>> = {};
    for (const [p, m] of this.#faultCounts) faults[p] = Object.fromEntries(m);
    return faults;
  }
}
