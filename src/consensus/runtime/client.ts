/**
 * What a gateway's submitter needs of the chain (ChainClient), and its implementation for a
 * validator in the same process or thread: submissions go straight to the node, final blocks come
 * from its store and its committed-block events. The validator HTTP API serves the same calls to
 * gateways whose validator runs elsewhere (src/gateway/http-chain.ts is the client side).
 */

import { fromHex, toHex } from '../../crypto/hash.ts';
import { blockHash } from '../core/signing.ts';
import type { Block } from '../core/types.ts';
import type { ConsensusNode } from './node.ts';

/** The validator's verdict on one submitted event. */
export type SubmitVerdict =
  | { accepted: true }
  | {
      accepted: false;
      /**
       * 'duplicate' (already pending there) and 'committed' (already final) are normal after a
       * restart or a resubmission; anything else (mempool full, invalid, unknown key …) is counted.
       */
      reason: string;
      detail?: string;
    };

export interface CommittedBlockInfo {
  height: number;
  blockHash: string;
  /** Hex ids of the block's transactions, in block order. */
  txIds: string[];
  timestampMs: number;
}

export interface ChainReceipt {
  height: number;
  blockHash: string;
  index: number;
}

export interface ChainClient {
  /** Submits events (their canonical JSON bytes as stored); one verdict per event, in order. */
  submit(txs: readonly string[]): Promise<SubmitVerdict[]>;
  /**
   * Calls `onBlock` for every final block above `afterHeight`, in height order: first those already
   * final, then new ones as they become final. Returns an unsubscribe function.
   */
  subscribe(afterHeight: number, onBlock: (block: CommittedBlockInfo) => void): () => void;
  /** Where events already final are (null when not on chain). */
  receipts(ids: readonly string[]): Promise<(ChainReceipt | null)[]>;
}

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
