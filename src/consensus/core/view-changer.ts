/**
 * The view-change protocol of one replica (docs/consensus.md, "View change"): which view it is in
 * and whether it is changing view, leaving a view with VIEW-CHANGE, joining f+1 others, the new
 * primary's NEW-VIEW, and entering a view from a NEW-VIEW with the checkpoint and re-proposals it
 * starts from (the view's base). The checks and the selection themselves are pure functions in
 * viewchange.ts.
 */

import type { ReplicaContext } from './context.ts';
import { keyOf, type PersistedState } from './io.ts';
import type {
  CatchUpPart,
  ChainPart,
  FutureMessagesPart,
  NormalCasePart,
  PeersPart,
  ProposerPart,
  SlotsPart,
  TimersPart,
  TransactionsPart,
  ViewBase,
  ViewChangeCause,
  ViewChangerPart,
} from './parts.ts';
import { primaryOf } from './quorum.ts';
import type { NewView, PreparedCertificate, ViewChange } from './types.ts';
import {
  checkNewView,
  checkViewChange,
  type Selection,
  selectReproposals,
  viewChangeKey,
} from './viewchange.ts';

export interface ViewChangerComponents {
  context: ReplicaContext;
  slots: Pick<SlotsPart, 'get' | 'leaveView' | 'bodyFor'>;
  chain: Pick<ChainPart, 'tip' | 'certifiedKeyAt'>;
  future: Pick<FutureMessagesPart, 'dropBelowView' | 'replay'>;
  timers: Pick<TimersPart, 'viewChangeStarted' | 'viewChangeResumed' | 'viewEntered'>;
  proposer: Pick<ProposerPart, 'cancel' | 'prePrepare'>;
  normalCase: Pick<NormalCasePart, 'learnCertificate'>;
  catchUp: Pick<CatchUpPart, 'requestBody' | 'maybeSync'>;
  transactions: Pick<TransactionsPart, 'txId'>;
  peers: Pick<PeersPart, 'get' | 'known'>;
}

export class ViewChanger implements ViewChangerPart {
  readonly #ctx: ReplicaContext;
  readonly #c: ViewChangerComponents;
  #view = 0;
  #viewChanging = false;
  #viewEnteredMs = 0;
  #base: ViewBase;
  readonly #latestVc = new Map<number, ViewChange>();
  readonly #verifiedVcs = new Set<string>();
  /** `${peer}:${view}` that sent an invalid NEW-VIEW: checking one costs up to q·(1+W)·q signatures. */
  readonly #badNewViews = new Set<string>();
  #viewChangesStarted = 0;
  readonly #viewChangeCauses = new Map<ViewChangeCause, number>();

  constructor(components: ViewChangerComponents) {
    this.#ctx = components.context;
    this.#c = components;
    const genesisKey = keyOf(this.#ctx.config.genesisHash);
    this.#base = { height: 0, key: genesisKey, reproposals: new Map(), newView: null };
  }

  get view(): number {
    return this.#view;
  }
  get viewChanging(): boolean {
    return this.#viewChanging;
  }
  /** When we entered the current view (or started). */
  get viewEnteredMs(): number {
    return this.#viewEnteredMs;
  }
  get base(): Readonly<ViewBase> {
    return this.#base;
  }
  get isPrimary(): boolean {
    return primaryOf(this.#view, this.#ctx.n) === this.#ctx.self;
  }
  get viewChangesStarted(): number {
    return this.#viewChangesStarted;
  }
  viewChangeCauses(): Partial<Record<ViewChangeCause, number>> {
    return Object.fromEntries(this.#viewChangeCauses);
  }

  /** Takes up the persisted view after a (re)start, once the chain and our votes are loaded. */
  restore(state: PersistedState): void {
    this.#viewEnteredMs = this.#ctx.nowMs();
    this.#view = state.view;
    this.#viewChanging = state.viewChanging;
    if (!this.#viewChanging && this.#view > 0) {
      const nv = state.newView;
      if (!nv || nv.view !== this.#view) {
        // We cannot validate re-proposals of this view without its NEW-VIEW: leave the view.
        this.startViewChange(this.#view + 1, 'restart');
      } else {
        const c = this.#ctx.config;
        const r = checkNewView(this.#ctx.verify, c.limits, c.genesisHash, nv, new Set());
        if (!r.ok) throw new Error(`persisted new-view does not verify: ${r.error.detail}`);
        this.#installView(nv, r.selection, false);
      }
    } else if (this.#viewChanging) {
      // Re-send our VIEW-CHANGE: the one sent before the crash may be lost.
      const vc = this.#buildViewChange();
      this.#latestVc.set(this.#ctx.self, vc);
      this.#ctx.out.broadcast(vc);
      this.#c.timers.viewChangeResumed();
    }
  }

  /** Leaves the current view for `target` (> view): persist the view, then send VIEW-CHANGE. */
  startViewChange(target: number, cause: ViewChangeCause): void {
    if (target <= this.#view) return;
    this.#viewChangeCauses.set(cause, (this.#viewChangeCauses.get(cause) ?? 0) + 1);
    this.#view = target;
    this.#viewChanging = true;
    this.#viewChangesStarted++;
    this.#leaveViewState();
    this.#ctx.out.persist({ kind: 'view', view: target, viewChanging: true });
    const vc = this.#buildViewChange();
    this.#latestVc.set(this.#ctx.self, vc);
    this.#verifiedVcs.add(viewChangeKey(this.#ctx.config.chainId, vc));
    this.#ctx.out.broadcast(vc);
    this.#c.timers.viewChangeStarted();
    this.#c.proposer.cancel();
    this.maybeSendNewView();
    this.#joinCheck();
  }

  /** Forgets the current view's proposals and prepares; keeps bodies, prepared certificates, commits. */
  #leaveViewState(): void {
    this.#c.slots.leaveView();
    this.#c.future.dropBelowView(this.#view);
  }

  #buildViewChange(): ViewChange {
    // The stable checkpoint is our tip: that block and all below are in our store with certificates,
    // so a replica that adopts it as a NEW-VIEW's base can sync them. Blocks certified above the tip
    // are reported by their prepared certificates and re-proposed (docs: "Checkpoints").
    const cp = this.#c.chain.tip;
    const prepared: PreparedCertificate[] = [];
    for (let h = cp.height + 1; h <= cp.height + this.#ctx.windowHeights; h++) {
      const p = this.#c.slots.get(h)?.prepared;
      if (p) prepared.push(p.certificate);
    }
    return this.#ctx.sign<ViewChange>({
      type: 'view-change',
      view: this.#view,
      replica: this.#ctx.self,
      checkpoint: cp.certificate,
      prepared,
      signature: new Uint8Array(64),
    });
  }

  /** While changing view: our VIEW-CHANGE again (heartbeat). */
  resendViewChange(): void {
    const vc = this.#latestVc.get(this.#ctx.self);
    if (vc) this.#ctx.out.broadcast(vc);
  }

  onViewChange(from: number, vc: ViewChange): void {
    if (vc.view < this.#view || (vc.view === this.#view && !this.#viewChanging)) {
      this.helpPeer(from);
      return;
    }
    const prev = this.#latestVc.get(vc.replica);
    if (prev && prev.view >= vc.view) return;
    const e = checkViewChange(this.#ctx.verify, this.#ctx.config.limits, vc);
    if (e) {
      this.#ctx.out.fault(from, e.code, e.detail);
      return;
    }
    // Re-inserted so that iteration follows arrival: a new primary uses the first quorum to arrive.
    this.#latestVc.delete(vc.replica);
    this.#latestVc.set(vc.replica, vc);
    if (this.#verifiedVcs.size > 4 * this.#ctx.n) this.#verifiedVcs.clear();
    this.#verifiedVcs.add(viewChangeKey(this.#ctx.config.chainId, vc));
    if (vc.checkpoint) this.#c.normalCase.learnCertificate(vc.checkpoint);
    this.#joinCheck();
    this.maybeSendNewView();
  }

  /**
   * f+1 replicas asking for views above ours include an honest one: join, at the highest view that
   * f+1 of them reached (never on fewer: one faulty replica must not be able to force a view change).
   */
  #joinCheck(): void {
    const views: number[] = [];
    for (const [r, vc] of this.#latestVc)
      if (r !== this.#ctx.self && vc.view > this.#view) views.push(vc.view);
    if (views.length < this.#ctx.f + 1) return;
    views.sort((a, b) => b - a);
    this.startViewChange(views[this.#ctx.f]!, 'joined');
  }

  /** Other replicas whose latest VIEW-CHANGE or STATUS puts them at `view` or above. */
  othersAtOrAbove(view: number): number {
    let count = 0;
    for (let r = 0; r < this.#ctx.n; r++) {
      if (r === this.#ctx.self) continue;
      const known = Math.max(this.#latestVc.get(r)?.view ?? -1, this.#c.peers.known(r)?.view ?? -1);
      if (known >= view) count++;
    }
    return count;
  }

  /** Hands our current view's NEW-VIEW to a peer that is behind (rate-limited). */
  helpPeer(from: number): void {
    const nv = this.#base.newView;
    if (this.#viewChanging || !nv) return;
    const p = this.#c.peers.get(from);
    const now = this.#ctx.nowMs();
    if (now - p.newViewSentMs < this.#ctx.config.timing.statusIntervalMs) return;
    p.newViewSentMs = now;
    this.#ctx.out.send(from, nv);
  }

  maybeSendNewView(): void {
    if (!this.#viewChanging || !this.isPrimary) return;
    // The first quorum to arrive (any quorum is safe), listed by replica as the decoder requires.
    const vcs = [...this.#latestVc.values()].filter((vc) => vc.view === this.#view);
    if (vcs.length < this.#ctx.q) return;
    const chosen = vcs.slice(0, this.#ctx.q).sort((a, b) => a.replica - b.replica);
    const selection = selectReproposals(chosen, this.#ctx.config.genesisHash);
    let missing = false;
    for (const r of selection.reproposals) {
      if (r.height <= this.#c.chain.tip.height || this.#c.slots.bodyFor(r.height, keyOf(r.hash))) continue;
      this.#c.catchUp.requestBody(r.height, r.hash);
      missing = true;
    }
    if (missing) return; // retried when a body arrives and on every heartbeat
    const nv = this.#ctx.sign<NewView>({
      type: 'new-view',
      view: this.#view,
      replica: this.#ctx.self,
      viewChanges: chosen,
      signature: new Uint8Array(64),
    });
    this.#ctx.out.broadcast(nv);
    this.#installView(nv, selection, true);
  }

  onNewView(from: number, nv: NewView): void {
    if (nv.view < this.#view || (nv.view === this.#view && !this.#viewChanging)) return;
    const bad = `${from}:${nv.view}`;
    if (this.#badNewViews.has(bad)) return;
    const c = this.#ctx.config;
    const r = checkNewView(this.#ctx.verify, c.limits, c.genesisHash, nv, this.#verifiedVcs);
    if (!r.ok) {
      if (this.#badNewViews.size >= 4 * this.#ctx.n) this.#badNewViews.clear();
      this.#badNewViews.add(bad);
      this.#ctx.out.fault(from, r.error.code, r.error.detail);
      return;
    }
    this.#installView(nv, r.selection, true);
  }

  /** Enters the view a NEW-VIEW starts; the primary then re-proposes the selection. */
  #installView(nv: NewView, selection: Selection, persist: boolean): void {
    const out = this.#ctx.out;
    if (persist) {
      out.persist({ kind: 'view', view: nv.view, viewChanging: false });
      out.persist({ kind: 'new-view', message: nv });
    }
    if (this.#view !== nv.view || !this.#viewChanging) this.#leaveViewState();
    this.#view = nv.view;
    this.#viewChanging = false;
    this.#viewEnteredMs = this.#ctx.nowMs();
    this.#c.timers.viewEntered();
    this.#base = {
      height: selection.base.height,
      key: keyOf(selection.base.hash),
      reproposals: new Map(selection.reproposals.map((r) => [r.height, keyOf(r.hash)])),
      newView: nv,
    };
    for (const r of selection.reproposals) {
      const committed = this.#c.chain.certifiedKeyAt(r.height);
      if (committed !== undefined && committed !== keyOf(r.hash)) {
        out.fault(
          this.#ctx.self,
          'safety-violation',
          `new view ${nv.view} re-proposes another block at height ${r.height}`,
        );
      }
    }
    if (selection.base.certificate) this.#c.normalCase.learnCertificate(selection.base.certificate);
    for (const [r, vc] of [...this.#latestVc])
      if (vc.view <= nv.view && r !== this.#ctx.self) this.#latestVc.delete(r);
    this.#latestVc.delete(this.#ctx.self);
    this.#verifiedVcs.clear();
    if (this.isPrimary) {
      for (const r of selection.reproposals) {
        if (r.height <= this.#c.chain.tip.height) continue;
        const body = this.#c.slots.bodyFor(r.height, keyOf(r.hash));
        if (!body) break; // only after a restart; the view then times out
        this.#c.proposer.prePrepare(
          body,
          new Set(body.txs.map((tx) => keyOf(this.#c.transactions.txId(tx)))),
        );
      }
    }
    if (this.#base.height > this.#c.chain.tip.height) this.#c.catchUp.maybeSync();
    this.#c.future.replay();
  }
}
