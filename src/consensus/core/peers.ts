/**
 * What a replica knows of the other validators: each one's view and committed height (from its
 * STATUS, or a commit certificate it signed), and the per-peer rate limits on what we hand it
 * (our NEW-VIEW, proposal answers). Catch-up, the view changer and the primary's retransmissions
 * read it.
 */
import type { PeerInfo, PeersPart } from './parts.ts';

export class Peers implements PeersPart {
  readonly #peers = new Map<number, PeerInfo>();

  /** Peer `r`'s record, created on first use. */
  get(r: number): PeerInfo {
    let p = this.#peers.get(r);
    if (!p) {
      p = { view: 0, viewChanging: false, committedHeight: 0, newViewSentMs: -Infinity, proposalAnswers: 0 };
      this.#peers.set(r, p);
    }
    return p;
  }

  /** Peer `r`'s record if we have heard of it (never creates one). */
  known(r: number): PeerInfo | undefined {
    return this.#peers.get(r);
  }

  entries(): MapIterator<[number, PeerInfo]> {
    return this.#peers.entries();
  }

  /** A heartbeat started: every peer may ask for proposals again. */
  newHeartbeat(): void {
    for (const p of this.#peers.values()) p.proposalAnswers = 0;
  }
}
