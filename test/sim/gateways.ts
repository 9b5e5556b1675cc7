/**
 * Simulated gateways for the ledger scenarios: each signs production events with the real signer
 * (keyed-hash keys like the validators', test/sim/keys.ts) and submits them to its member's
 * validator the way the outbox's submitter does: in seq order, resubmitting whatever is not yet
 * committed, to another validator when its own is down. Faults drawn per gateway: duplicates to
 * several validators, batches submitted in shuffled order, one event submitted late, one event
 * lost for good (`lossy`: its later events must stay off the ledger), and a second event signed for
 * a seq (`equivocating`: a faulty gateway; only one of the two may ever be on the ledger).
 */
import { type GatewayEntry, GatewayRegistry } from '../../src/consensus/app/registry.ts';
import { chainKeyOf } from '../../src/consensus/app/tx.ts';
import { publicKeyRecord, type Signer } from '../../src/crypto/keys.ts';
import type { EventDraft } from '../../src/event/draft.ts';
import { encodeEvent, type SignedEvent } from '../../src/event/event.ts';
import { type ChainHead, EventSigner, emptyHead, type SigningMode } from '../../src/event/signer.ts';
import type { Rng } from './rng.ts';

const encoder = new TextEncoder();

export interface GatewayFaults {
  /** Chance that a submission also goes to a second validator. */
  duplicateP: number;
  /** Chance that a batch is submitted in shuffled order. */
  shuffleP: number;
  /** Chance that one event of a batch is held back and submitted 50–500 ms later. */
  lateP: number;
  /** Never submits one of its events (drawn at that event's seq). */
  lossy: boolean;
  /** Signs a second event for one of its seqs and submits it too. */
  equivocating: boolean;
}

export interface SimEvent {
  seq: number;
  id: string;
  /** The core's key for it (base64url of the id), as in a replica's committed index. */
  key: string;
  tx: Uint8Array;
  /** Submitting has started (late events are not yet). */
  released: boolean;
}

export class SimGateway {
  readonly enterprise: string;
  readonly gateway: string;
  readonly home: number;
  readonly signer: Signer;
  readonly mode: SigningMode;
  readonly faults: GatewayFaults;
  /** Every event of its chain, by seq − 1. */
  readonly events: SimEvent[] = [];
  /** A second event for some seq, if equivocating. */
  fork: SimEvent | null = null;
  /** The event never submitted, if lossy. */
  lostSeq: number | null = null;
  readonly #rng: Rng;
  readonly #signer: EventSigner;
  #head: ChainHead = emptyHead;
  #now: () => number;

  constructor(o: {
    enterprise: string;
    gateway: string;
    home: number;
    signer: Signer;
    mode: SigningMode;
    faults: GatewayFaults;
    rng: Rng;
    nowMs: () => number;
  }) {
    this.enterprise = o.enterprise;
    this.gateway = o.gateway;
    this.home = o.home;
    this.signer = o.signer;
    this.mode = o.mode;
    this.faults = o.faults;
    this.#rng = o.rng;
    this.#now = o.nowMs;
    this.#signer = this.#makeSigner();
  }

  get chain(): string {
    return chainKeyOf(this.enterprise, this.gateway);
  }

  entry(): GatewayEntry {
    return { memberId: this.enterprise, gateway: this.gateway, publicKey: publicKeyRecord(this.signer) };
  }

  #makeSigner(): EventSigner {
    const identity = { enterprise: this.enterprise, site: 's', line: 'l', gateway: this.gateway };
    return new EventSigner(identity, this.signer, {
      mode: this.mode,
      nowMs: () => Math.floor(this.#now()),
      salt: () => this.#rng.bytes(16),
    });
  }

  #draft(kind: 'part_completed' | 'gap' = 'part_completed'): EventDraft {
    const t = Math.floor(this.#now());
    if (kind === 'gap') {
      return {
        kind,
        dataClass: 'equipment',
        station: 'st',
        device: 'd',
        sourceTimeMs: t,
        values: {},
        gap: {
          droppedCount: this.#rng.int(1, 9),
          firstSourceTimeMs: t,
          lastSourceTimeMs: t,
          afterSeq: this.#head.seq,
          byKind: { part_completed: 1 },
          reason: 'outbox full',
        },
      };
    }
    return {
      kind,
      dataClass: 'process',
      station: 'st',
      device: 'd',
      sourceTimeMs: t,
      values: { n: { v: this.#rng.int(0, 999), q: 'good' } },
    };
  }

  /** Signs a batch of `count` new events (one signature batch in batch mode) and returns them. */
  produce(count: number): SimEvent[] {
    const drafts = Array.from({ length: count }, () =>
      this.#draft(this.#rng.chance(0.05) ? 'gap' : 'part_completed'),
    );
    const { events, head } = this.#signer.sign(drafts, this.#head);
    const out = events.map((e) => this.#record(e));
    if (this.faults.equivocating && !this.fork && this.#rng.chance(0.3)) {
      // A second event for the first seq of this batch, linked to the same predecessor.
      const alt = new EventSigner(
        { enterprise: this.enterprise, site: 's', line: 'l', gateway: this.gateway },
        this.signer,
        { mode: 'event', nowMs: () => Math.floor(this.#now()) + 1, salt: () => this.#rng.bytes(16) },
      ).sign([this.#draft()], this.#head).events[0]!;
      this.fork = {
        seq: alt.env.seq,
        id: alt.id,
        key: Buffer.from(alt.id, 'hex').toString('base64url'),
        tx: encoder.encode(encodeEvent(alt)),
        released: true,
      };
    }
    this.#head = head;
    if (this.faults.lossy && this.lostSeq === null && this.#rng.chance(0.2)) {
      this.lostSeq = out[this.#rng.int(0, out.length - 1)]!.seq;
    }
    return out;
  }

  #record(e: SignedEvent): SimEvent {
    const ev = {
      seq: e.env.seq,
      id: e.id,
      key: Buffer.from(e.id, 'hex').toString('base64url'),
      tx: encoder.encode(encodeEvent(e)),
      released: false,
    };
    this.events.push(ev);
    return ev;
  }

  /** Events it would submit: released, not lost, not yet committed (by `committed(key)`). Oldest first. */
  unsent(committed: (key: string) => boolean, max: number): SimEvent[] {
    const out: SimEvent[] = [];
    for (const e of this.events) {
      if (out.length >= max) break;
      if (!e.released || e.seq === this.lostSeq || committed(e.key)) continue;
      out.push(e);
    }
    return out;
  }

  /**
   * Events that must reach every correct validator: all, up to (not including) the lost one, or up
   * to the fork's seq (past it, which of the two is on the ledger is up to the primaries).
   */
  mustCommit(): SimEvent[] {
    let end = this.events.length;
    if (this.lostSeq !== null) end = Math.min(end, this.lostSeq - 1);
    if (this.fork) end = Math.min(end, this.fork.seq - 1);
    return this.events.slice(0, end);
  }
}

export function registryOf(gateways: readonly SimGateway[]): GatewayRegistry {
  return new GatewayRegistry(gateways.map((g) => g.entry()));
}
