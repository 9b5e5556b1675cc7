/**
 * Per-height bookkeeping of the normal case, in the window of `windowHeights` above the committed
 * tip: for each height the accepted proposal, the PREPAREs and COMMITs by replica, the prepared and
 * commit certificates and our own signed messages (a `Slot`, declared in parts.ts); our own votes,
 * which must never differ within one view and height (they are persisted and reloaded after a
 * restart); and spare block bodies kept across view changes for re-proposals and delivery.
 */
import type { ReplicaContext } from './context.ts';
import { keyOf, type PersistedState, type VoteKind } from './io.ts';
import type { ChainPart, Slot, SlotsPart } from './parts.ts';
import { blockHash } from './signing.ts';
import type { Block } from './types.ts';

export interface SlotsComponents {
  context: ReplicaContext;
  chain: Pick<ChainPart, 'tip' | 'retainedAt'>;
}

export class Slots implements SlotsPart {
  readonly #ctx: ReplicaContext;
  readonly #c: SlotsComponents;
  readonly #slots = new Map<number, Slot>();
  /** Own votes above the tip: never vote twice in one view at one height with different digests. */
  readonly #votes = new Map<string, { view: number; key: string }>();
  readonly #bodies = new Map<string, Block>();

  constructor(components: SlotsComponents) {
    this.#ctx = components.context;
    this.#c = components;
  }

  /** Reloads our votes and prepared certificates above the persisted tip after a (re)start. */
  restore(state: PersistedState): void {
    const tipHeight = this.#c.chain.tip.height;
    for (const v of state.votes) {
      if (v.height > tipHeight)
        this.#votes.set(`${v.vote}:${v.height}`, { view: v.view, key: keyOf(v.blockHash) });
    }
    for (const p of state.prepared) {
      const h = p.certificate.header.height;
      if (h <= tipHeight) continue;
      const key = keyOf(blockHash(p.certificate.header));
      const slot = this.at(h, true)!;
      slot.prepared = { certificate: p.certificate, block: p.block, key };
    }
  }

  get(h: number): Slot | undefined {
    return this.#slots.get(h);
  }

  /** In insertion order. */
  values(): MapIterator<Slot> {
    return this.#slots.values();
  }

  /** Heights a replica works on: the window of `windowHeights` above its committed tip. */
  inWindow(h: number): boolean {
    const tip = this.#c.chain.tip;
    return h > tip.height && h <= tip.height + this.#ctx.windowHeights;
  }

  /** The slot at h, created if h is in the window (or `force`); undefined outside the window. */
  at(h: number, force = false): Slot | undefined {
    let s = this.#slots.get(h);
    if (s) return s;
    if (!force && !this.inWindow(h)) return undefined;
    s = {
      height: h,
      proposal: null,
      prepares: new Map(),
      commits: new Map(),
      prepared: null,
      certificate: null,
      sent: {},
      proposalAcks: new Set(),
      proposalResendAtMs: 0,
      proposalResends: 0,
    };
    this.#slots.set(h, s);
    return s;
  }

  vote(kind: VoteKind, h: number): { view: number; key: string } | undefined {
    return this.#votes.get(`${kind}:${h}`);
  }

  /** Records a vote (persisted before the message leaves, see io.ts). */
  castVote(kind: VoteKind, view: number, h: number, hash: Uint8Array, key: string): void {
    const prev = this.vote(kind, h);
    if (prev && prev.view === view) {
      if (prev.key !== key) throw new Error(`bug: second ${kind} vote at view ${view} height ${h}`);
      return;
    }
    this.#votes.set(`${kind}:${h}`, { view, key });
    this.#ctx.out.persist({ kind: 'vote', vote: kind, view, height: h, blockHash: hash });
  }

  /** Did we vote anything else than `key` at (view, h)? (After a restart the proposal itself is gone.) */
  votedOther(view: number, h: number, key: string): boolean {
    for (const kind of ['pre-prepare', 'prepare', 'commit'] as const) {
      const v = this.vote(kind, h);
      if (v && v.view === view && v.key !== key) return true;
    }
    return false;
  }

  /** Is the transaction in a proposal accepted in this view (uncommitted)? */
  inFlight(key: string): boolean {
    for (const s of this.#slots.values()) if (s.proposal?.txKeys.has(key)) return true;
    return false;
  }

  bodyFor(h: number, key: string): Block | undefined {
    const s = this.#slots.get(h);
    if (s?.proposal?.key === key) return s.proposal.block;
    if (s?.prepared?.key === key) return s.prepared.block;
    const r = this.#c.chain.retainedAt(h);
    if (r?.key === key && r.block) return r.block;
    const b = this.#bodies.get(key);
    return b && b.header.height === h ? b : undefined;
  }

  keepBody(key: string, block: Block): void {
    if (this.#bodies.has(key)) return;
    const max = this.#ctx.config.local.bodiesPerHeightMax * 2 * this.#ctx.windowHeights;
    while (this.#bodies.size >= max) this.#bodies.delete(this.#bodies.keys().next().value!);
    this.#bodies.set(key, block);
  }

  /** Forgets the current view's proposals and prepares; keeps bodies, prepared certificates, commits. */
  leaveView(): void {
    for (const s of this.#slots.values()) {
      if (s.proposal) this.keepBody(s.proposal.key, s.proposal.block);
      s.proposal = null;
      s.prepares.clear();
      s.sent = {};
      s.proposalAcks.clear();
    }
  }

  /** Height h is committed: its slot and our votes up to it are no longer needed. */
  committed(h: number): void {
    this.#slots.delete(h);
    for (const k of [...this.#votes.keys()])
      if (Number(k.slice(k.indexOf(':') + 1)) <= h) this.#votes.delete(k);
  }
}
