/**
 * Simulated gateways for the ledger scenarios: each signs production events into batches (the
 * chain's transactions) with the real signer (keyed-hash keys like the validators',
 * test/sim/keys.ts) and submits them to its member's validator the way the outbox's submitter does:
 * in seq order, resubmitting whatever is not yet committed, to another validator when its own is
 * down. A gateway signs a batch per production round (`batch`) or a batch per event (`event`).
 * Faults drawn per gateway: duplicates to several validators, a round's batches submitted in
 * shuffled order, one batch submitted late, one batch lost for good (`lossy`: its later batches must
 * stay off the ledger), and a second batch signed for a seq (`equivocating`: a faulty gateway; only
 * one of the two may ever be on the ledger).
 */
import { type GatewayEntry, GatewayRegistry } from '../../src/consensus/app/registry.ts';
import { chainKeyOf } from '../../src/consensus/app/tx.ts';
import { publicKeyRecord, type Signer } from '../../src/crypto/keys.ts';
import type { EventDraft } from '../../src/event/draft.ts';
import { type ChainHead, EventSigner, emptyHead, type SignedBatch } from '../../src/event/signer.ts';
import type { Rng } from './rng.ts';

/** A batch per production round, or a batch per event. */
export type SigningMode = 'batch' | 'event';

export interface GatewayFaults {
  /** Chance that a submission also goes to a second validator. */
  duplicateP: number;
  /** Chance that a round's batches are submitted in shuffled order. */
  shuffleP: number;
  /** Chance that one batch of a round is held back and submitted 50–500 ms later. */
  lateP: number;
  /** Never submits one of its batches (drawn at that batch's first seq). */
  lossy: boolean;
  /** Signs a second batch for one of its seqs and submits it too. */
  equivocating: boolean;
}

/** One signed batch: a transaction of the chain. */
export interface SimEvent {
  /** Its first seq. */
  seq: number;
  lastSeq: number;
  /** Transaction id, hex. */
  id: string;
  /** The core's key for it (base64url of the transaction id), as in a replica's committed index. */
  key: string;
  tx: Uint8Array;
  /** Submitting has started (late batches are not yet). */
  released: boolean;
}

export class SimGateway {
  readonly enterprise: string;
  readonly gateway: string;
  readonly home: number;
  readonly signer: Signer;
  readonly mode: SigningMode;
  readonly faults: GatewayFaults;
  /** Every batch of its chain, in seq order. */
  readonly events: SimEvent[] = [];
  /** A second batch for some seq, if equivocating. */
  fork: SimEvent | null = null;
  /**
   * A gateway added during the run: its key is not in the genesis, and this configuration
   * transaction (signed by its member's identity root) registers it; submitted with its batches.
   */
  registration: { tx: Uint8Array; key: string } | null = null;
  /** The first seq of the batch never submitted, if lossy. */
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

  /** Signs `count` new events (one batch, or one batch per event) and returns the batches. */
  produce(count: number): SimEvent[] {
    const drafts = Array.from({ length: count }, () =>
      this.#draft(this.#rng.chance(0.05) ? 'gap' : 'part_completed'),
    );
    const firstSeq = this.#head.seq + 1;
    const headBefore = this.#head;
    const per = this.mode === 'batch' ? count : 1;
    const out: SimEvent[] = [];
    for (let i = 0; i < drafts.length; i += per) {
      const { batch, head } = this.#signer.sign(drafts.slice(i, i + per), this.#head);
      this.#head = head;
      out.push(this.#record(batch));
    }
    if (this.faults.equivocating && !this.fork && this.#rng.chance(0.3)) {
      // A second batch starting at the first seq of this round, linked to the same predecessor.
      const alt = new EventSigner(
        { enterprise: this.enterprise, site: 's', line: 'l', gateway: this.gateway },
        this.signer,
        { nowMs: () => Math.floor(this.#now()) + 1, salt: () => this.#rng.bytes(16) },
      ).sign([this.#draft()], headBefore).batch;
      this.fork = { ...simBatch(alt), released: true };
      if (this.fork.seq !== firstSeq) throw new Error('bug: the fork must start where the round did');
    }
    if (this.faults.lossy && this.lostSeq === null && this.#rng.chance(0.2)) {
      this.lostSeq = out[this.#rng.int(0, out.length - 1)]!.seq;
    }
    return out;
  }

  #record(b: SignedBatch): SimEvent {
    const ev = { ...simBatch(b), released: false };
    this.events.push(ev);
    return ev;
  }

  /** Batches it would submit: released, not lost, not yet committed (by `committed(key)`). Oldest first. */
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
   * Batches that must reach every correct validator: all, up to (not including) the lost one, or up
   * to the fork's seq (past it, which of the two is on the ledger is up to the primaries).
   */
  mustCommit(): SimEvent[] {
    const end = Math.min(
      this.lostSeq ?? Number.POSITIVE_INFINITY,
      this.fork?.seq ?? Number.POSITIVE_INFINITY,
    );
    return this.events.filter((b) => b.lastSeq < end);
  }
}

export function registryOf(gateways: readonly SimGateway[]): GatewayRegistry {
  return new GatewayRegistry(gateways.map((g) => g.entry()));
}

function simBatch(b: SignedBatch): Omit<SimEvent, 'released'> {
  return {
    seq: b.header.firstSeq,
    lastSeq: b.header.firstSeq + b.header.count - 1,
    id: b.txId,
    key: Buffer.from(b.txId, 'hex').toString('base64url'),
    tx: b.tx,
  };
}
