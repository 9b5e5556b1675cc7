/**
 * The normal case of one replica (Castro & Liskov §4.2; docs/consensus.md, "Normal case"): the
 * primary of view v sends PRE-PREPARE for height h; a backup that accepts it sends PREPARE; a replica
 * is *prepared* at (v, h, X) when it holds the pre-prepare (the primary's vote) plus quorum−1
 * matching PREPAREs from distinct backups AND X's parent is anchored: certified, or prepared by this
 * replica in view v too (docs: "Chained heights"). It then sends COMMIT; a quorum of COMMITs for
 * (v, h, X) is X's commit certificate. Blocks are delivered in height order, each with its
 * certificate (chain.ts). The primary's side, proposing and resending blocks, is proposer.ts.
 */

import type { ReplicaContext } from './context.ts';
import { keyOf } from './io.ts';
import type {
  CatchUpPart,
  ChainPart,
  FutureMessagesPart,
  NormalCasePart,
  PeersPart,
  Proposal,
  ProposerPart,
  Slot,
  SlotsPart,
  TimersPart,
  TransactionsPart,
  ViewChangerPart,
} from './parts.ts';
import { primaryOf } from './quorum.ts';
import { blockHash, blockTxBytes } from './signing.ts';
import type { Commit, CommitCertificate, PrePrepare, Prepare, PreparedCertificate, Vote } from './types.ts';
import { verifyBlockBody, verifySignedMessage } from './verify.ts';

export interface NormalCaseComponents {
  context: ReplicaContext;
  viewChanger: Pick<ViewChangerPart, 'view' | 'viewChanging' | 'base' | 'startViewChange'>;
  slots: Pick<SlotsPart, 'get' | 'at' | 'values' | 'inWindow' | 'votedOther' | 'castVote'>;
  chain: Pick<ChainPart, 'tip' | 'parentOf' | 'certifiedKeyAt' | 'deliver'>;
  transactions: Pick<TransactionsPart, 'txId' | 'checkTxs'>;
  proposer: Pick<ProposerPart, 'ackProposal' | 'resendProposal'>;
  future: Pick<FutureMessagesPart, 'add' | 'replay'>;
  catchUp: Pick<CatchUpPart, 'maybeSync'>;
  timers: Pick<TimersPart, 'deferUntil'>;
  peers: Pick<PeersPart, 'get'>;
}

export class NormalCase implements NormalCasePart {
  readonly #ctx: ReplicaContext;
  readonly #c: NormalCaseComponents;

  constructor(components: NormalCaseComponents) {
    this.#ctx = components.context;
    this.#c = components;
  }

  onPrePrepare(from: number, m: PrePrepare): void {
    const { viewChanger: vc, slots, chain } = this.#c;
    const header = m.block.header;
    const h = header.height;
    if (m.view < vc.view || h <= chain.tip.height) return;
    if (m.view > vc.view || vc.viewChanging) {
      this.#c.future.add(from, m);
      return;
    }
    if (!slots.inWindow(h)) {
      this.#c.future.add(from, m);
      return;
    }
    const sigErr = verifySignedMessage(this.#ctx.verify, m);
    if (sigErr) {
      this.#ctx.out.fault(from, sigErr.code, sigErr.detail);
      return;
    }
    const hash = blockHash(header);
    const key = keyOf(hash);
    const slot = slots.at(h)!;
    if (slot.proposal) {
      if (slot.proposal.key === key) return;
      // Two signed pre-prepares for one (view, height): proof that the primary equivocates.
      this.#invalidProposal(from, 'equivocation', `two pre-prepares for view ${m.view} height ${h}`);
      return;
    }
    if (slots.votedOther(m.view, h, key)) {
      this.#invalidProposal(
        from,
        'equivocation',
        `pre-prepare for view ${m.view} height ${h} differs from our vote`,
      );
      return;
    }
    const bodyErr = verifyBlockBody(this.#ctx.verify, this.#ctx.config.limits, m.block);
    if (bodyErr) {
      // A body that does not match the signed header may have been garbled for us alone: count it,
      // but only a header that every replica sees alike justifies an immediate view change.
      if (bodyErr.code === 'tx-root' || bodyErr.code === 'tx-count') {
        this.#ctx.out.fault(from, bodyErr.code, bodyErr.detail);
        return;
      }
      this.#invalidProposal(from, 'invalid-proposal', bodyErr.detail);
      return;
    }
    let txKeys: Set<string>;
    const selected = vc.base.reproposals.get(h);
    if (selected !== undefined) {
      if (selected !== key) {
        this.#invalidProposal(from, 'invalid-proposal', `height ${h} must re-propose the selected block`);
        return;
      }
      txKeys = new Set(m.block.txs.map((tx) => keyOf(this.#c.transactions.txId(tx))));
    } else {
      if (h <= vc.base.height) {
        this.#invalidProposal(from, 'invalid-proposal', `height ${h} is at or below the view's checkpoint`);
        return;
      }
      if (header.view !== m.view) {
        this.#invalidProposal(
          from,
          'invalid-proposal',
          `fresh block of view ${header.view} in view ${m.view}`,
        );
        return;
      }
      const parent = chain.parentOf(h);
      if (!parent) {
        // Missing ancestors: wait for their pre-prepares or for sync.
        this.#c.future.add(from, m);
        if (vc.base.height > chain.tip.height) this.#c.catchUp.maybeSync();
        return;
      }
      if (parent.key !== keyOf(header.prevHash)) {
        this.#invalidProposal(from, 'invalid-proposal', `height ${h} does not extend height ${h - 1}`);
        return;
      }
      if (header.timestampMs < parent.timestampMs) {
        this.#invalidProposal(from, 'invalid-proposal', `timestamp goes backwards at height ${h}`);
        return;
      }
      const clockDriftMs = this.#ctx.config.timing.clockDriftMs;
      if (header.timestampMs > this.#ctx.nowMs() + clockDriftMs) {
        // Ahead of our clock: not provably invalid (clocks differ), so wait instead of complaining.
        // If most replicas see it so, the proposal times out and the view changes.
        this.#c.timers.deferUntil(header.timestampMs - clockDriftMs);
        this.#c.future.add(from, m);
        return;
      }
      const checked = this.#c.transactions.checkTxs(m.block.txs, parent.inFlight, parent.chain);
      if (typeof checked === 'string') {
        this.#invalidProposal(from, 'invalid-proposal', `height ${h}: ${checked}`);
        return;
      }
      txKeys = checked;
    }
    this.accept(slot, { view: m.view, block: m.block, hash, key, signature: m.signature, txKeys });
  }

  #invalidProposal(from: number, code: 'equivocation' | 'invalid-proposal', detail: string): void {
    this.#ctx.out.fault(from, code, detail);
    this.#c.viewChanger.startViewChange(this.#c.viewChanger.view + 1, code);
  }

  /** Takes a proposal as the slot's (a backup then votes PREPARE for it). */
  accept(slot: Slot, accepted: Omit<Proposal, 'txBytes'>): void {
    const p: Proposal = { ...accepted, txBytes: blockTxBytes(accepted.block.txs) };
    slot.proposal = p;
    const h = slot.height;
    const self = this.#ctx.self;
    if (primaryOf(p.view, this.#ctx.n) !== self) {
      this.#c.slots.castVote('prepare', p.view, h, p.hash, p.key);
      const prepare = this.#ctx.sign<Prepare>({
        type: 'prepare',
        view: p.view,
        height: h,
        blockHash: p.hash,
        replica: self,
        signature: new Uint8Array(64),
      });
      slot.sent.prepare = prepare;
      slot.prepares.set(self, { key: p.key, signature: prepare.signature });
      this.#ctx.out.broadcast(prepare);
    }
    this.checkPrepared(h);
    this.#c.future.replay();
  }

  onPrepare(from: number, m: Prepare): void {
    const vc = this.#c.viewChanger;
    if (m.view < vc.view || m.height <= this.#c.chain.tip.height) return;
    if (m.view > vc.view || vc.viewChanging) {
      this.#c.future.add(from, m);
      return;
    }
    const slot = this.#c.slots.at(m.height);
    if (!slot) return; // beyond the window: the sender retransmits
    const sigErr = verifySignedMessage(this.#ctx.verify, m);
    if (sigErr) {
      this.#ctx.out.fault(from, sigErr.code, sigErr.detail);
      return;
    }
    const key = keyOf(m.blockHash);
    const prev = slot.prepares.get(m.replica);
    if (prev) {
      if (prev.key !== key) {
        this.#ctx.out.fault(from, 'equivocation', `two prepares for view ${m.view} height ${m.height}`);
      }
      return;
    }
    slot.prepares.set(m.replica, { key, signature: m.signature });
    this.#c.proposer.ackProposal(slot, from, m.view, key);
    this.checkPrepared(m.height);
  }

  /** Tries to become prepared at h and above (a new prepared height may anchor the next one). */
  checkPrepared(from: number): void {
    // The tip is read on every step: a height that becomes prepared may get committed and move it.
    const chain = this.#c.chain;
    for (let h = Math.max(from, chain.tip.height + 1); h <= chain.tip.height + this.#ctx.windowHeights; h++)
      this.#tryPrepare(h);
  }

  #tryPrepare(h: number): void {
    const vc = this.#c.viewChanger;
    const slot = this.#c.slots.get(h);
    const p = slot?.proposal;
    if (!slot || !p || p.view !== vc.view || vc.viewChanging) return;
    if (slot.prepared && slot.prepared.certificate.view === p.view && slot.prepared.key === p.key) return;
    const primary = primaryOf(p.view, this.#ctx.n);
    const q = this.#ctx.q;
    const votes: Vote[] = [];
    for (const [r, v] of slot.prepares)
      if (v.key === p.key && r !== primary) votes.push({ replica: r, signature: v.signature });
    if (votes.length < q - 1) return;
    if (!this.#anchored(h, p)) return;
    votes.sort((a, b) => a.replica - b.replica);
    const certificate: PreparedCertificate = {
      view: p.view,
      header: p.block.header,
      prePrepareSignature: p.signature,
      prepares: votes.slice(0, q - 1),
    };
    slot.prepared = { certificate, block: p.block, key: p.key };
    this.#ctx.out.persist({ kind: 'prepared', certificate, block: p.block });
    this.#c.slots.castVote('commit', p.view, h, p.hash, p.key);
    const commit = this.#ctx.sign<Commit>({
      type: 'commit',
      view: p.view,
      height: h,
      blockHash: p.hash,
      replica: this.#ctx.self,
      signature: new Uint8Array(64),
    });
    slot.sent.commit = commit;
    this.#ctx.out.broadcast(commit);
    this.#addCommit(slot, this.#ctx.self, commit);
  }

  /**
   * The block's parent is certified, or prepared by us in the same view. Without this rule a replica
   * could be prepared at h+1 on a parent it never prepared, and the view-change selection (which
   * follows prevHash) could miss a committed block. docs/consensus.md, "Chained heights".
   */
  #anchored(h: number, p: Proposal): boolean {
    const parentKey = keyOf(p.block.header.prevHash);
    const g = h - 1;
    const certified = this.#c.chain.certifiedKeyAt(g);
    if (certified !== undefined) return certified === parentKey;
    const s = this.#c.slots.get(g);
    return !!s?.prepared && s.prepared.certificate.view === p.view && s.prepared.key === parentKey;
  }

  onCommit(from: number, m: Commit): void {
    if (m.height <= this.#c.chain.tip.height) return;
    const slot = this.#c.slots.at(m.height);
    if (!slot) return;
    const prev = slot.commits.get(m.replica);
    const key = keyOf(m.blockHash);
    if (prev && prev.view > m.view) return;
    if (prev && prev.view === m.view) {
      if (prev.key !== key) {
        this.#ctx.out.fault(from, 'equivocation', `two commits for view ${m.view} height ${m.height}`);
      }
      return;
    }
    const sigErr = verifySignedMessage(this.#ctx.verify, m);
    if (sigErr) {
      this.#ctx.out.fault(from, sigErr.code, sigErr.detail);
      return;
    }
    this.#c.proposer.ackProposal(slot, from, m.view, key);
    this.#addCommit(slot, m.replica, m);
  }

  #addCommit(slot: Slot, replica: number, m: Commit): void {
    slot.commits.set(replica, {
      view: m.view,
      key: keyOf(m.blockHash),
      hash: m.blockHash,
      signature: m.signature,
    });
    if (slot.certificate) return;
    const q = this.#ctx.q;
    const groups = new Map<string, Vote[]>();
    for (const [r, c] of slot.commits) {
      const g = `${c.view}:${c.key}`;
      let list = groups.get(g);
      if (!list) {
        list = [];
        groups.set(g, list);
      }
      list.push({ replica: r, signature: c.signature });
    }
    for (const list of groups.values()) {
      if (list.length < q) continue;
      const any = slot.commits.get(list[0]!.replica)!;
      list.sort((a, b) => a.replica - b.replica);
      slot.certificate = {
        height: slot.height,
        view: any.view,
        blockHash: any.hash,
        commits: list.slice(0, q),
      };
      this.learnCertificate(slot.certificate);
      return;
    }
  }

  /**
   * Takes note of a valid commit certificate however it arrived (our COMMITs, a VIEW-CHANGE's or
   * NEW-VIEW's checkpoint): in the window it lets the block be delivered once its body is at hand,
   * even if we never saw its COMMITs; above it, it names peers to sync from.
   */
  learnCertificate(cert: CommitCertificate): void {
    const h = cert.height;
    if (h <= this.#c.chain.tip.height) return;
    // Its signers have the block, or will soon: candidates to sync the heights below from.
    for (const v of cert.commits) {
      if (v.replica === this.#ctx.self) continue;
      const p = this.#c.peers.get(v.replica);
      p.committedHeight = Math.max(p.committedHeight, h - 1);
    }
    const slot = this.#c.slots.at(h);
    if (!slot) return;
    if (!slot.certificate) slot.certificate = cert;
    this.#c.chain.deliver();
  }

  /** Heartbeat: our PRE-PREPAREs (to those that lack them), PREPAREs and COMMITs above the tip again. */
  retransmit(): void {
    for (const s of [...this.#c.slots.values()].sort((a, b) => a.height - b.height)) {
      if (s.height <= this.#c.chain.tip.height) continue;
      const pp = s.sent['pre-prepare'];
      if (pp) this.#c.proposer.resendProposal(s, pp);
      for (const m of [s.sent.prepare, s.sent.commit]) if (m) this.#ctx.out.broadcast(m);
    }
  }
}
