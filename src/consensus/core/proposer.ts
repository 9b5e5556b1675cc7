/**
 * The primary's side of the normal case: when to propose a block and with what (the batching policy,
 * docs/consensus.md "Known limitations"), signing and sending the PRE-PREPARE (fresh blocks, and the
 * re-proposals a new view starts with), and resending it, with backoff, to the peers that have not
 * shown they hold it.
 */
import type { ReplicaContext } from './context.ts';
import { keyOf } from './io.ts';
import type {
  ChainPart,
  NormalCasePart,
  PeersPart,
  ProposerPart,
  Slot,
  SlotsPart,
  TransactionsPart,
  ViewChangerPart,
} from './parts.ts';
import { blockHash, txRootOf } from './signing.ts';
import { type Block, blockVersion, type PrePrepare } from './types.ts';

export interface ProposerComponents {
  context: ReplicaContext;
  viewChanger: Pick<ViewChangerPart, 'view' | 'viewChanging' | 'isPrimary' | 'base'>;
  chain: Pick<ChainPart, 'tip' | 'parentOf'>;
  slots: Pick<SlotsPart, 'get' | 'at' | 'vote' | 'votedOther' | 'castVote'>;
  transactions: Pick<TransactionsPart, 'couldFillBlock' | 'oldestArrivalMs' | 'selectForBlock'>;
  normalCase: Pick<NormalCasePart, 'accept'>;
  peers: Pick<PeersPart, 'known'>;
}

export class Proposer implements ProposerPart {
  readonly #ctx: ReplicaContext;
  readonly #c: ProposerComponents;
  /** A partial block is due then (null: nothing waits). */
  #proposeAtMs: number | null = null;

  constructor(components: ProposerComponents) {
    this.#ctx = components.context;
    this.#c = components;
  }

  /** When the primary wants to be woken to propose a partial block (null: not waiting for one). */
  get wakeAtMs(): number | null {
    return this.#proposeAtMs;
  }

  /** We left the view: nothing to propose in it. */
  cancel(): void {
    this.#proposeAtMs = null;
  }

  /** Proposes fresh blocks at the next free heights of the window while there is something to propose. */
  maybePropose(): void {
    this.#proposeAtMs = null;
    const { viewChanger: vc, chain, slots, transactions } = this.#c;
    if (vc.viewChanging || !vc.isPrimary) return;
    if (chain.tip.height < vc.base.height) return;
    const limits = this.#ctx.config.limits;
    const delayMs = this.#ctx.config.timing.proposeDelayMs;
    const partialDepthMax = this.#ctx.config.timing.partialProposalsInFlightMax;
    for (;;) {
      let h = chain.tip.height + 1;
      let inFlightTxs = 0;
      let inFlightBytes = 0;
      for (let p = slots.get(h)?.proposal; p; p = slots.get(h)?.proposal) {
        inFlightTxs += p.block.txs.length;
        inFlightBytes += p.txBytes;
        h++;
      }
      if (h > chain.tip.height + this.#ctx.windowHeights) return;
      if (vc.base.reproposals.has(h)) return; // a re-proposal still lacks its body: wait for the timeout
      if (slots.vote('pre-prepare', h)?.view === vc.view) return; // proposed before a restart
      // Cheap test before selecting: could the pending transactions that are not in flight fill a
      // block? If not, a partial block waits (see below); no need to build one on every input.
      const inFlight = h - chain.tip.height - 1;
      const canFill = transactions.couldFillBlock(inFlightTxs, inFlightBytes);
      const now = this.#ctx.nowMs();
      if (!canFill) {
        if (inFlight >= partialDepthMax) return; // re-evaluated when a block commits
        const oldestMs = transactions.oldestArrivalMs();
        if (oldestMs === undefined) return;
        if (now < oldestMs + delayMs) {
          this.#proposeAtMs = oldestMs + delayMs;
          return;
        }
      }
      const parent = chain.parentOf(h);
      if (!parent) return;
      const { txs, keys, bytes, oldestMs } = transactions.selectForBlock(parent);
      if (txs.length === 0) return;
      // Batching policy (liveness only): a full block goes at once, pipelined up to the window. A
      // partial one waits proposeDelayMs after its oldest transaction arrived, and only while fewer
      // than partialProposalsInFlightMax proposals are uncommitted; otherwise it waits for a commit,
      // collecting what arrives meanwhile. Block size then follows the load (self-clocking, like
      // Nagle's algorithm): tiny blocks no longer fill the window ahead of full ones, and each
      // block's fixed cost (votes, signatures, fsyncs) is shared by more transactions.
      const full = txs.length >= limits.blockTxsMax || bytes + limits.txBytesMax > limits.blockBytesMax;
      const dueMs = oldestMs + delayMs;
      if (!full && inFlight >= partialDepthMax) return;
      if (!full && now < dueMs) {
        this.#proposeAtMs = dueMs;
        return;
      }
      const block: Block = {
        header: {
          version: blockVersion,
          chainId: this.#ctx.config.chainId,
          height: h,
          view: vc.view,
          prevHash: parent.hash,
          timestampMs: Math.max(Math.floor(now), parent.timestampMs),
          txRoot: txRootOf(txs.map(this.#ctx.config.tx.txId)),
          txCount: txs.length,
          proposer: this.#ctx.self,
        },
        txs,
      };
      this.prePrepare(block, keys);
    }
  }

  /** Signs and sends a pre-prepare in the current view and accepts it as our own proposal. */
  prePrepare(block: Block, txKeys: Set<string>): void {
    const { slots } = this.#c;
    const view = this.#c.viewChanger.view;
    const h = block.header.height;
    const hash = blockHash(block.header);
    const key = keyOf(hash);
    if (slots.votedOther(view, h, key)) return;
    slots.castVote('pre-prepare', view, h, hash, key);
    const pp = this.#ctx.sign<PrePrepare>({
      type: 'pre-prepare',
      view,
      replica: this.#ctx.self,
      block,
      signature: new Uint8Array(64),
    });
    const slot = slots.at(h, true)!;
    slot.sent['pre-prepare'] = pp;
    slot.proposalAcks.clear();
    slot.proposalResends = 0;
    slot.proposalResendAtMs = this.#ctx.nowMs() + this.#ctx.config.timing.statusIntervalMs;
    this.#ctx.out.broadcast(pp);
    this.#c.normalCase.accept(slot, { view, block, hash, key, signature: pp.signature, txKeys });
  }

  /**
   * Retransmits our PRE-PREPARE to the peers that have not shown they hold it (no PREPARE or COMMIT
   * for it from them in this view, and not committed that height), with an interval that doubles up
   * to 8 heartbeats. Votes are small and go to everyone every heartbeat; a block is not. A peer that
   * acknowledged and then lost it (a restart) gets the body by a proposal request once the block is
   * certified, or the block is re-proposed after a view change.
   */
  resendProposal(s: Slot, pp: PrePrepare): void {
    const now = this.#ctx.nowMs();
    if (now < s.proposalResendAtMs) return;
    s.proposalResends++;
    s.proposalResendAtMs =
      now + this.#ctx.config.timing.statusIntervalMs * 2 ** Math.min(s.proposalResends, 3);
    for (let r = 0; r < this.#ctx.n; r++) {
      if (r === this.#ctx.self || s.proposalAcks.has(r)) continue;
      if ((this.#c.peers.known(r)?.committedHeight ?? 0) >= s.height) continue;
      this.#ctx.out.send(r, pp);
    }
  }

  /** Notes that `from` holds the proposal it voted for, if it is our current one at that height. */
  ackProposal(slot: Slot, from: number, view: number, key: string): void {
    const p = slot.proposal;
    if (p && p.view === view && p.key === key && slot.sent['pre-prepare']) slot.proposalAcks.add(from);
  }
}
