/**
 * The member's office signer: the events a member's people record through its API rather than a
 * machine — an order's life cycle (`order_accepted`, `order_in_production`, `order_closed`) and lot
 * bindings (`lot_bound`). It is a gateway of the member like any other (gateway id `office` by
 * default, its key registered like any gateway key), held by the member's validator process, and
 * its events are envelopes on the chain with private bodies in the member's body store.
 *
 * Its chain head is the ledger's: taken from the block store's state at start and followed through
 * every committed block, so nothing local can disagree with the chain. Operations run one at a
 * time; each waits for its batch to be final (at most `officeCommitWaitMs`) before the next is
 * signed, so a refused or lost batch never leaves a gap: the next one is signed after the committed
 * head again.
 *
 * @example
 *   const office = new Office({ node, chain: localChainClient(node, bodies), signer: loadKeyFile(k), member: 'acme' });
 *   await office.record([{ kind: 'order_accepted', order: 'PO-1', values: { … } }]);
 */
import { chainKeyOf, parseBatchTx } from '../../consensus/app/tx.ts';
import type { ChainClient } from '../../consensus/runtime/client.ts';
import type { ConsensusNode } from '../../consensus/runtime/node.ts';
import type { Signer } from '../../crypto/keys.ts';
import type { EventValue } from '../../event/draft.ts';
import { encodeBody } from '../../event/event.ts';
import type { EventKind } from '../../event/kinds.ts';
import { type ChainHead, EventSigner, emptyHead } from '../../event/signer.ts';

/** Longest an office operation waits for its batch to be final. */
export const officeCommitWaitMs = 30_000;
export const officeGatewayId = 'office';

export interface OfficeDraft {
  kind: Extract<EventKind, 'order_accepted' | 'order_in_production' | 'order_closed' | 'lot_bound'>;
  order: string;
  lot?: string;
  product?: string;
  values: Record<string, EventValue>;
}

export class OfficeError extends Error {
  override name = 'OfficeError';
  readonly code: string;
  constructor(code: string, message: string) {
    super(message);
    this.code = code;
  }
}

export interface OfficeOptions {
  node: ConsensusNode;
  chain: ChainClient;
  member: string;
  signer: Signer;
  gateway?: string;
  nowMs?: () => number;
  commitWaitMs?: number;
}

export class Office {
  readonly member: string;
  readonly gateway: string;
  readonly #node: ConsensusNode;
  readonly #chain: ChainClient;
  readonly #signer: EventSigner;
  readonly #now: () => number;
  readonly #waitMs: number;
  #head: ChainHead;
  #queue: Promise<unknown> = Promise.resolve();
  readonly #off: () => void;
  readonly #waiting = new Map<string, () => void>();

  constructor(o: OfficeOptions) {
    this.member = o.member;
    this.gateway = o.gateway ?? officeGatewayId;
    this.#node = o.node;
    this.#chain = o.chain;
    this.#now = o.nowMs ?? Date.now;
    this.#waitMs = o.commitWaitMs ?? officeCommitWaitMs;
    this.#signer = new EventSigner(
      { enterprise: o.member, site: 'office', line: 'office', gateway: this.gateway },
      o.signer,
      { nowMs: this.#now },
    );
    const key = chainKeyOf(o.member, this.gateway);
    const row = o.node.store.loadAppState().rows.get(key);
    this.#head = row ? (JSON.parse(Buffer.from(row).toString('utf8')) as ChainHead) : emptyHead;
    this.#off = o.node.onCommitted((e) => {
      for (const tx of e.block.txs) {
        const b = parseBatchTx(tx);
        if (!b || b.chain !== key) continue;
        this.#head = { seq: b.lastSeq, id: b.lastId };
        this.#waiting.get(b.id)?.();
      }
    });
  }

  /** Signs the drafts as one batch after the committed head, submits it, and waits until it is final. */
  record(drafts: readonly OfficeDraft[]): Promise<{ ids: string[]; txId: string }> {
    const run = this.#queue.then(() => this.#record(drafts));
    this.#queue = run.catch(() => {});
    return run;
  }

  async #record(drafts: readonly OfficeDraft[]): Promise<{ ids: string[]; txId: string }> {
    const sourceTimeMs = this.#now();
    const { batch, events } = this.#signer.sign(
      drafts.map((d) => ({
        kind: d.kind,
        dataClass: 'process' as const,
        station: 'office',
        device: 'office',
        sourceTimeMs,
        order: d.order,
        ...(d.lot === undefined ? {} : { lot: d.lot }),
        ...(d.product === undefined ? {} : { product: d.product }),
        values: d.values,
      })),
      this.#head,
    );
    const final = new Promise<boolean>((resolve) => {
      const timer = setTimeout(() => resolve(false), this.#waitMs);
      this.#waiting.set(batch.txId, () => {
        clearTimeout(timer);
        resolve(true);
      });
    });
    try {
      const [verdict] = await this.#chain.submit([
        { tx: batch.tx, bodies: events.map((e) => encodeBody(e.body!)) },
      ]);
      if (!verdict?.accepted && verdict?.reason !== 'duplicate' && verdict?.reason !== 'committed')
        throw new OfficeError(
          'office_refused',
          `the alliance refused the office's batch: ${verdict?.reason ?? 'no verdict'} ${verdict && 'detail' in verdict ? (verdict.detail ?? '') : ''}`.trim(),
        );
      if (!(await final))
        throw new OfficeError('office_timeout', `the office's batch was not final within ${this.#waitMs} ms`);
    } finally {
      this.#waiting.delete(batch.txId);
    }
    return { ids: events.map((e) => e.id), txId: batch.txId };
  }

  close(): void {
    this.#off();
  }

  /** For tests: the head the office signs after. */
  get head(): ChainHead {
    return this.#head;
  }
}
