/**
 * Catching up with the other replicas: their STATUS, syncing committed blocks from one peer at a
 * time (each accepted only with a valid certificate that extends our chain, docs/consensus.md
 * "Catch-up"), and fetching block bodies we hold a certificate or a selection for (proposal
 * requests), answering peers' requests in turn. Sync requests are answered by the runtime (io.ts).
 */
import { bytesEqual } from '../../crypto/hash.ts';
import type { ReplicaContext } from './context.ts';
import { keyOf } from './io.ts';
import type {
  CatchUpPart,
  ChainPart,
  FutureMessagesPart,
  PeersPart,
  SlotsPart,
  ViewChangerPart,
} from './parts.ts';
import { blockHash } from './signing.ts';
import type { ProposalRequest, ProposalResponse, Status, SyncResponse } from './types.ts';
import { verifyBlockBody, verifyCertifiedBlock } from './verify.ts';

export interface CatchUpComponents {
  context: ReplicaContext;
  peers: Pick<PeersPart, 'get' | 'entries'>;
  chain: Pick<ChainPart, 'tip' | 'commitBlock' | 'deliver' | 'afterCommit'>;
  slots: Pick<SlotsPart, 'bodyFor' | 'keepBody'>;
  viewChanger: Pick<ViewChangerPart, 'view' | 'helpPeer' | 'maybeSendNewView'>;
  future: Pick<FutureMessagesPart, 'replay'>;
}

export class CatchUp implements CatchUpPart {
  readonly #ctx: ReplicaContext;
  readonly #c: CatchUpComponents;
  #sync: { peer: number; untilMs: number } | null = null;
  #syncAttempts = 0;
  readonly #fetching = new Map<string, { height: number; hash: Uint8Array; askedMs: number }>();

  constructor(components: CatchUpComponents) {
    this.#ctx = components.context;
    this.#c = components;
  }

  onStatus(from: number, st: Status): void {
    const p = this.#c.peers.get(from);
    p.view = st.view;
    p.viewChanging = st.viewChanging;
    p.committedHeight = st.committedHeight;
    if (st.committedHeight > this.#c.chain.tip.height) this.maybeSync();
    const view = this.#c.viewChanger.view;
    if (st.view < view || (st.view === view && st.viewChanging)) this.#c.viewChanger.helpPeer(from);
  }

  /** Asks one peer that claims more committed blocks; rotates through them on every retry. */
  maybeSync(): void {
    const now = this.#ctx.nowMs();
    if (this.#sync && now < this.#sync.untilMs) return;
    this.#sync = null;
    const target = this.#c.chain.tip.height;
    const candidates = [...this.#c.peers.entries()]
      .filter(([, p]) => p.committedHeight > target)
      .sort((a, b) => a[0] - b[0]);
    if (candidates.length === 0) return;
    const [peer, info] = candidates[this.#syncAttempts++ % candidates.length]!;
    const count = Math.min(this.#ctx.config.limits.syncBlocksMax, info.committedHeight - target);
    this.#ctx.out.send(peer, { type: 'sync-request', fromHeight: target + 1, count });
    this.#sync = { peer, untilMs: now + 2 * this.#ctx.config.timing.statusIntervalMs };
  }

  onSyncResponse(from: number, m: SyncResponse): void {
    const chain = this.#c.chain;
    if (this.#sync?.peer === from) this.#sync = null;
    let progressed = false;
    for (const cb of m.blocks) {
      const h = cb.block.header.height;
      if (h <= chain.tip.height) continue;
      if (h !== chain.tip.height + 1) break;
      const e = verifyCertifiedBlock(this.#ctx.verify, this.#ctx.config.limits, cb);
      if (e) {
        this.#ctx.out.fault(from, e.code, e.detail);
        break;
      }
      if (!bytesEqual(cb.block.header.prevHash, chain.tip.hash)) {
        this.#ctx.out.fault(from, 'sync-mismatch', `block ${h} does not extend our block ${h - 1}`);
        break;
      }
      if (!chain.commitBlock(cb.block, cb.certificate)) break;
      progressed = true;
    }
    if (progressed) {
      chain.deliver();
      chain.afterCommit();
      this.maybeSync();
    }
  }

  onProposalRequest(from: number, m: ProposalRequest): void {
    const body = this.#c.slots.bodyFor(m.height, keyOf(m.blockHash));
    if (!body) return;
    const p = this.#c.peers.get(from);
    // Per heartbeat: bounds what one peer can make us send.
    if (p.proposalAnswers >= 2 * this.#ctx.windowHeights) return;
    p.proposalAnswers++;
    this.#ctx.out.send(from, { type: 'proposal-response', block: body });
  }

  onProposalResponse(from: number, m: ProposalResponse): void {
    const hash = blockHash(m.block.header);
    const key = keyOf(hash);
    const f = this.#fetching.get(key);
    if (!f) return; // not asked for, or already here
    const e = verifyBlockBody(this.#ctx.verify, this.#ctx.config.limits, m.block);
    if (e) {
      this.#ctx.out.fault(from, e.code, e.detail);
      return;
    }
    this.#fetching.delete(key);
    this.#c.slots.keepBody(key, m.block);
    this.#c.chain.deliver();
    this.#c.viewChanger.maybeSendNewView();
    this.#c.future.replay();
  }

  /** Asks every peer for the body of the block at h with this hash (bounded; retried on the heartbeat). */
  requestBody(h: number, hash: Uint8Array): void {
    const key = keyOf(hash);
    if (this.#fetching.has(key)) return;
    if (this.#fetching.size >= 4 * this.#ctx.windowHeights) return; // retried from the heartbeat once others finish
    this.#fetching.set(key, { height: h, hash, askedMs: this.#ctx.nowMs() });
    this.#ctx.out.broadcast({ type: 'proposal-request', height: h, blockHash: hash });
  }

  /** Heartbeat: asks again for bodies still missing, forgets those committed meanwhile. */
  retryFetches(): void {
    const now = this.#ctx.nowMs();
    for (const [key, f] of this.#fetching) {
      if (f.height <= this.#c.chain.tip.height) this.#fetching.delete(key);
      else if (now - f.askedMs >= this.#ctx.config.timing.statusIntervalMs) {
        f.askedMs = now;
        this.#ctx.out.broadcast({ type: 'proposal-request', height: f.height, blockHash: f.hash });
      }
    }
  }
}
