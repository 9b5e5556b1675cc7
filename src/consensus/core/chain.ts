/**
 * The committed chain as a replica holds it: the tip (its stable checkpoint, docs/consensus.md
 * "Checkpoints") and the recently committed heights kept for late peers; delivering certified
 * blocks in height order, appending them, and dropping old heights by time. Also what is certified
 * at a height, and the chain below a fresh proposal (`parentOf`), which the normal case checks
 * proposals against and the proposer builds on.
 */
import { bytesEqual } from '../../crypto/hash.ts';
import type { ReplicaContext } from './context.ts';
import { keyOf } from './io.ts';
import type {
  CatchUpPart,
  ChainPart,
  CommittedBlock,
  FutureMessagesPart,
  NormalCasePart,
  ProposalParent,
  SlotsPart,
  TimersPart,
  TransactionsPart,
  ViewChangerPart,
} from './parts.ts';
import { blockHash } from './signing.ts';
import type { Block, CertifiedBlock, CommitCertificate } from './types.ts';
import { verifyCertifiedBlock } from './verify.ts';

export interface ChainComponents {
  context: ReplicaContext;
  slots: Pick<SlotsPart, 'get' | 'bodyFor' | 'committed'>;
  transactions: Pick<TransactionsPart, 'txId' | 'committed'>;
  timers: Pick<TimersPart, 'committed'>;
  catchUp: Pick<CatchUpPart, 'requestBody' | 'maybeSync'>;
  normalCase: Pick<NormalCasePart, 'checkPrepared'>;
  viewChanger: Pick<ViewChangerPart, 'base'>;
  future: Pick<FutureMessagesPart, 'replay'>;
}

export class Chain implements ChainPart {
  readonly #ctx: ReplicaContext;
  readonly #c: ChainComponents;
  #tip: CommittedBlock;
  readonly #retained = new Map<number, CommittedBlock>();

  constructor(components: ChainComponents) {
    this.#ctx = components.context;
    this.#c = components;
    const genesisHash = this.#ctx.config.genesisHash;
    this.#tip = {
      height: 0,
      hash: genesisHash,
      key: keyOf(genesisHash),
      certificate: null,
      timestampMs: this.#ctx.config.genesisTimestampMs,
      block: null,
    };
  }

  /** The highest committed block (the genesis at first). */
  get tip(): Readonly<CommittedBlock> {
    return this.#tip;
  }

  /**
   * Takes the block store's tip after a (re)start. Throws if it does not verify (our own storage is
   * corrupt).
   */
  restore(tip: CertifiedBlock | null): void {
    if (!tip) return;
    const { block, certificate } = tip;
    const e = verifyCertifiedBlock(this.#ctx.verify, this.#ctx.config.limits, tip);
    if (e) throw new Error(`persisted tip does not verify: ${e.detail}`);
    const hash = blockHash(block.header);
    this.#tip = {
      height: block.header.height,
      hash,
      key: keyOf(hash),
      certificate,
      timestampMs: block.header.timestampMs,
      block,
    };
    this.#retained.set(this.#tip.height, this.#tip);
  }

  retainedAt(h: number): CommittedBlock | undefined {
    return this.#retained.get(h);
  }

  /** Height of the last committed block the runtime has applied: blocks in the outbox are not yet. */
  appliedHeight(): number {
    return this.#tip.height - this.#ctx.out.committed.length;
  }

  certifiedKeyAt(h: number): string | undefined {
    if (h === this.#tip.height) return this.#tip.key;
    const base = this.#c.viewChanger.base;
    if (h === base.height) return base.key;
    const r = this.#retained.get(h);
    if (r) return r.key;
    const c = this.#c.slots.get(h)?.certificate;
    return c ? keyOf(c.blockHash) : undefined;
  }

  /**
   * Parent of a fresh proposal at h: the tip, or an accepted proposal of this view; with in-flight tx
   * ids and, for the order hooks, the chain from the runtime's last applied block up to the parent.
   */
  parentOf(h: number): ProposalParent | undefined {
    const inFlight = new Set<string>();
    const ancestors: Block[] = this.#ctx.out.committed.map((cb) => cb.block);
    let parent: { key: string; hash: Uint8Array; timestampMs: number } = this.#tip;
    for (let g = this.#tip.height + 1; g < h; g++) {
      const p = this.#c.slots.get(g)?.proposal;
      if (!p || keyOf(p.block.header.prevHash) !== parent.key) return undefined;
      for (const k of p.txKeys) inFlight.add(k);
      ancestors.push(p.block);
      parent = { key: p.key, hash: p.hash, timestampMs: p.block.header.timestampMs };
    }
    return { ...parent, inFlight, chain: { appliedHeight: this.appliedHeight(), ancestors } };
  }

  /** Delivers certified blocks in height order while bodies are at hand. */
  deliver(): void {
    let progressed = false;
    for (;;) {
      const h = this.#tip.height + 1;
      const cert = this.#c.slots.get(h)?.certificate;
      if (!cert) break;
      const body = this.#c.slots.bodyFor(h, keyOf(cert.blockHash));
      if (!body) {
        this.#c.catchUp.requestBody(h, cert.blockHash);
        break;
      }
      if (!this.commitBlock(body, cert)) break;
      progressed = true;
    }
    if (progressed) this.afterCommit();
  }

  /** The tip moved: the next heights may become prepared, and buffered messages may now apply. */
  afterCommit(): void {
    this.#c.normalCase.checkPrepared(this.#tip.height + 1);
    this.#c.catchUp.maybeSync();
    this.#c.future.replay();
  }

  /** Appends a certified block to the chain. The caller has checked the certificate. */
  commitBlock(block: Block, certificate: CommitCertificate): boolean {
    const h = block.header.height;
    if (h !== this.#tip.height + 1) throw new Error(`bug: commit of height ${h} on tip ${this.#tip.height}`);
    if (!bytesEqual(block.header.prevHash, this.#tip.hash)) {
      // A certified block that does not extend our certified chain: more than f replicas are faulty.
      this.#ctx.out.fault(
        this.#ctx.self,
        'safety-violation',
        `certified block ${h} does not extend our block ${h - 1}`,
      );
      return false;
    }
    const hash = blockHash(block.header);
    const slot = this.#c.slots.get(h);
    const txKeys =
      slot?.proposal?.key === keyOf(hash)
        ? slot.proposal.txKeys
        : block.txs.map((tx) => keyOf(this.#c.transactions.txId(tx)));
    this.#tip = {
      height: h,
      hash,
      key: keyOf(hash),
      certificate,
      timestampMs: block.header.timestampMs,
      block,
    };
    this.#retained.set(h, this.#tip);
    this.#c.slots.committed(h);
    this.#ctx.out.commit({ block, certificate });
    this.#c.transactions.committed(txKeys);
    this.#c.timers.committed();
    this.#gcRetained();
    return true;
  }

  /**
   * Drops in-memory logs of committed heights once the newest committed block is `retentionMs`
   * younger than them (or more than `retainedHeightsMax` are kept), and tells the runtime to prune
   * its vote records up to there. Only ever below the committed height.
   */
  #gcRetained(): void {
    const newest = this.#tip.timestampMs;
    let pruned = -1;
    for (const [h, e] of this.#retained) {
      if (h >= this.#tip.height) break;
      const old = newest - e.timestampMs > this.#ctx.config.timing.retentionMs;
      if (!old && this.#retained.size <= this.#ctx.config.local.retainedHeightsMax) break;
      this.#retained.delete(h);
      pruned = h;
    }
    if (pruned > 0) this.#ctx.out.persist({ kind: 'prune', heightMax: pruned });
  }
}
