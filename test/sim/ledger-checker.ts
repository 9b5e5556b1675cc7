/**
 * The simulator's ledger checker (cluster.ts runs it on every commit of a counted replica), written
 * independently of src/consensus/app: every batch verifies with the reference BatchVerifier
 * (src/event/verify.ts) and continues its gateway's chain on this replica; a gateway added during the
 * run (its key registered by a configuration transaction) has batches only in blocks after the one
 * that registered it.
 */
import { decodeConfigTx, isConfigTx } from '../../src/consensus/app/config-tx.ts';
import { chainKeyOf } from '../../src/consensus/app/tx.ts';
import type { CertifiedBlock } from '../../src/consensus/core/types.ts';
import { zeroHashHex } from '../../src/crypto/hash.ts';
import type { BatchVerifier } from '../../src/event/verify.ts';

/** What the checker keeps per replica. */
export interface LedgerView {
  /** Each gateway's last event on this replica's chain. */
  heads: Map<string, { seq: number; id: string }>;
  /** Height of the block registering a gateway not in the genesis, per chain. */
  registeredAt: Map<string, number>;
}

/**
 * The ledger checker, independent of src/consensus/app: every batch verifies with the reference
 * BatchVerifier (src/event/verify.ts), and continues its gateway's chain on this replica (first seq
 * = head seq + 1, prev = the head's id; the batch itself runs on without a gap).
 */
export function checkLedgerBlock(
  verifier: BatchVerifier,
  lateChains: ReadonlySet<string>,
  h: LedgerView,
  cb: CertifiedBlock,
  fail: (why: string) => never,
): void {
  const height = cb.block.header.height;
  for (const [i, tx] of cb.block.txs.entries()) {
    if (isConfigTx(tx)) {
      // A registration (the only kind the scenario signs): from the next block, its key may sign.
      const d = decodeConfigTx(tx);
      if (!d.ok || d.config.payload.op !== 'register')
        fail(`LEDGER: committed transaction ${i} of block ${height} is not a registration`);
      const chain = chainKeyOf(d.config.payload.member, d.config.payload.gateway);
      if (h.registeredAt.has(chain)) fail(`LEDGER: ${chain} registered twice`);
      h.registeredAt.set(chain, height);
      continue;
    }
    let header: { enterprise: string; gateway: string; firstSeq: number; count: number; prev: string };
    let lastId: string;
    try {
      const b = verifier.verify(tx);
      header = b.header;
      lastId = Buffer.from(b.ids[b.ids.length - 1]!).toString('hex');
    } catch (err) {
      fail(
        `LEDGER: committed transaction ${i} of block ${cb.block.header.height} does not verify: ${(err as Error).message}`,
      );
    }
    const chain = chainKeyOf(header.enterprise, header.gateway);
    if (lateChains.has(chain) && !((h.registeredAt.get(chain) ?? height) < height))
      fail(`LEDGER: ${chain} has a batch in block ${height}, not after its key's registration`);
    const head = h.heads.get(chain) ?? { seq: 0, id: zeroHashHex };
    if (header.firstSeq !== head.seq + 1 || header.prev !== head.id) {
      fail(
        `LEDGER ORDER VIOLATED: ${chain} seq ${header.firstSeq} (prev ${header.prev.slice(0, 8)}) after seq ${head.seq} (${head.id.slice(0, 8)})`,
      );
    }
    h.heads.set(chain, { seq: header.firstSeq + header.count - 1, id: lastId });
  }
}
