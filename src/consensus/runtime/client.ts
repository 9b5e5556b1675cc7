/**
 * The submitter's ChainClient for a validator embedded in the same process (chain role
 * `validator`): submissions go straight to the node, final blocks come from its store and its
 * committed-block events.
 */

import { fromHex, toHex } from '../../crypto/hash.ts';
import type {
  ChainClient,
  ChainReceipt,
  CommittedBlockInfo,
  SubmitVerdict,
} from '../../gateway/submitter-types.ts';
import type { Block } from '../core/types.ts';
import { blockHash } from '../wire/codec.ts';
import type { ConsensusNode } from './node.ts';

const encoder = new TextEncoder();

/** Final blocks above `afterHeight` read from the node's store, at most `limit`. */
export function committedBlocksAfter(
  node: ConsensusNode,
  afterHeight: number,
  limit: number,
): CommittedBlockInfo[] {
  const out: CommittedBlockInfo[] = [];
  for (let h = afterHeight + 1; out.length < limit; h++) {
    const cb = node.store.blockAt(h);
    if (!cb) break;
    out.push(blockInfo(cb.block, (tx) => node.txId(tx)));
  }
  return out;
}

function blockInfo(block: Block, txId: (tx: Uint8Array) => Uint8Array): CommittedBlockInfo {
  return {
    height: block.header.height,
    blockHash: toHex(blockHash(block.header)),
    txIds: block.txs.map((tx) => toHex(txId(tx))),
    timestampMs: block.header.timestampMs,
  };
}
/** Blocks replayed from the store per step, so a long replay does not block the event loop for long. */
const replayPageBlocks = 64;

/** Transaction ids are the node's application's (the event id of a transaction's bytes). */
export function localChainClient(node: ConsensusNode): ChainClient {
  const store = node.store;
  const txId = (tx: Uint8Array) => node.txId(tx);
  const hashAt = (height: number) => {
    const cb = store.blockAt(height);
    return cb ? toHex(blockHash(cb.block.header)) : '';
  };
  return {
    async submit(txs: readonly string[]): Promise<SubmitVerdict[]> {
      return node
        .submit(txs.map((t) => encoder.encode(t)))
        .map((r) =>
          r.accepted ? { accepted: true } : { accepted: false, reason: r.reason, detail: r.detail },
        );
    },

    subscribe(afterHeight: number, onBlock: (b: CommittedBlockInfo) => void): () => void {
      let delivered = afterHeight;
      let live = false;
      let stopped = false;
      const deliver = (b: CommittedBlockInfo) => {
        if (b.height !== delivered + 1) return;
        delivered = b.height;
        onBlock(b);
      };
      // Blocks that become final during the replay are buffered by height and delivered in order.
      const early: CommittedBlockInfo[] = [];
      const unsubscribe = node.onCommitted((e) => {
        const info = {
          height: e.height,
          blockHash: toHex(e.blockHash),
          txIds: e.txIds.map(toHex),
          timestampMs: e.block.header.timestampMs,
        };
        if (live) deliver(info);
        else early.push(info);
      });
      const replay = () => {
        if (stopped) return;
        for (let i = 0; i < replayPageBlocks; i++) {
          const cb = store.blockAt(delivered + 1);
          if (!cb) {
            live = true;
            for (const b of early.splice(0)) if (b.height > delivered) deliver(b);
            return;
          }
          deliver(blockInfo(cb.block, txId));
        }
        setImmediate(replay);
      };
      replay();
      return () => {
        stopped = true;
        unsubscribe();
      };
    },

    async receipts(ids: readonly string[]): Promise<(ChainReceipt | null)[]> {
      return ids.map((id) => {
        const at = store.txLocation(fromHex(id));
        return at ? { height: at.height, blockHash: hashAt(at.height), index: at.index } : null;
      });
    },
  };
}
