/**
 * What a gateway's submitter needs of its member's validator (ChainClient), and its implementation
 * for a validator in the same process or thread: submissions go to the member's body store and then
 * to the node, final blocks come from its store and its committed-block events. The validator HTTP
 * API serves the same calls to gateways whose validator runs elsewhere (src/gateway/http-chain.ts is
 * the client side; `encodeSubmission` is the request body both use).
 *
 * A submission is a signed batch (the chain's transaction) with its events' bodies. The bodies go to
 * the member's body store only, before the transaction is submitted: nothing becomes final on the
 * chain without its bodies kept by the member (docs/store.md). They never reach the node, the
 * transport or another member.
 */
import { bytesEqual, fromHex, toHex } from '../../crypto/hash.ts';
import { merkleRoot } from '../../crypto/merkle.ts';
import type { DecodedBatch } from '../../event/batch.ts';
import { batchEventsMax, batchTxBytesMax, bodyBytesMax } from '../../event/bounds.ts';
import type { BodyStore } from '../../store/bodies.ts';
import { decodeTx } from '../app/tx.ts';
import { certificateToJson, headerToJson, type Json } from '../core/forms.ts';
import { blockHash } from '../core/signing.ts';
import type { Block, CommitCertificate } from '../core/types.ts';
import { type VerifyContext, verifyCommitCertificate } from '../core/verify.ts';
import { certificateFromJson, headerFromJson } from '../wire/json.ts';
import type { ConsensusNode } from './node.ts';

/** One signed batch and its events' bodies (canonical JSON, in seq order). */
export interface SubmitBatch {
  tx: Uint8Array;
  bodies: readonly string[];
}

/** The validator's verdict on one submitted batch. */
export type SubmitVerdict = { bodiesKept: boolean } & (
  | { accepted: true }
  | {
      accepted: false;
      /**
       * 'duplicate' (already pending there) and 'committed' (already final) are normal after a
       * restart or a resubmission; anything else (mempool full, invalid, unknown key, the body
       * store full …) is counted.
       */
      reason: string;
      detail?: string;
    }
);

export interface CommittedBlockInfo {
  height: number;
  blockHash: string;
  /** Hex ids of the block's transactions, in block order. */
  txIds: string[];
  timestampMs: number;
  /**
   * The block header and its commit certificate in their JSON forms (core/forms.ts), so a client
   * that does not trust its link checks the block against the genesis validators before it believes
   * it final (src/gateway/http-chain.ts).
   */
  header: Json;
  certificate: Json;
}

export interface ChainReceipt {
  height: number;
  blockHash: string;
  index: number;
}

export interface ChainClient {
  /** Submits batches with their bodies; one verdict per batch, in order. */
  submit(batches: readonly SubmitBatch[]): Promise<SubmitVerdict[]>;
  /**
   * Calls `onBlock` for every final block above `afterHeight`, in height order: first those already
   * final, then new ones as they become final. Returns an unsubscribe function.
   */
  subscribe(afterHeight: number, onBlock: (block: CommittedBlockInfo) => void): () => void;
  /** Where transactions already final are (null when not on chain). */
  receipts(txIds: readonly string[]): Promise<(ChainReceipt | null)[]>;
}

/** Batches per submission (a request of the HTTP API, or one call). */
export const submitBatchesMax = 64;

/** The JSON-carriable summary of a final block (`header` and `certificate` in their JSON forms). */
export function blockInfo(
  block: Block,
  certificate: CommitCertificate,
  txId: (tx: Uint8Array) => Uint8Array,
): CommittedBlockInfo {
  return {
    height: block.header.height,
    blockHash: toHex(blockHash(block.header)),
    txIds: block.txs.map((tx) => toHex(txId(tx))),
    timestampMs: block.header.timestampMs,
    header: headerToJson(block.header),
    certificate: certificateToJson(certificate),
  };
}

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
    out.push(blockInfo(cb.block, cb.certificate, (tx) => node.txId(tx)));
  }
  return out;
}

/**
 * The request body of a submission: per batch `u32be tx length ‖ tx ‖ u16be body count ‖` then per
 * body `u32be length ‖ UTF-8`. Binary, because a transaction is binary and a body is JSON text:
 * neither needs re-encoding.
 */
export function encodeSubmission(batches: readonly SubmitBatch[]): Uint8Array {
  const parts: Buffer[] = [];
  for (const b of batches) {
    const head = Buffer.allocUnsafe(4);
    head.writeUInt32BE(b.tx.byteLength);
    parts.push(head, Buffer.from(b.tx.buffer, b.tx.byteOffset, b.tx.byteLength));
    const count = Buffer.allocUnsafe(2);
    count.writeUInt16BE(b.bodies.length);
    parts.push(count);
    for (const body of b.bodies) {
      const bytes = Buffer.from(body, 'utf8');
      const len = Buffer.allocUnsafe(4);
      len.writeUInt32BE(bytes.byteLength);
      parts.push(len, bytes);
    }
  }
  return Buffer.concat(parts);
}

/** Reads `encodeSubmission`'s bytes within the bounds; never throws. */
export function decodeSubmission(
  bytes: Uint8Array,
): { ok: true; batches: SubmitBatch[] } | { ok: false; error: string } {
  const buf = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const batches: SubmitBatch[] = [];
  const utf8 = new TextDecoder('utf-8', { fatal: true });
  let at = 0;
  try {
    while (at < buf.byteLength) {
      if (batches.length >= submitBatchesMax)
        return { ok: false, error: `at most ${submitBatchesMax} batches per submission` };
      const txLength = buf.readUInt32BE(at);
      at += 4;
      if (txLength > batchTxBytesMax)
        return { ok: false, error: `a batch of ${txLength} bytes is too large` };
      if (at + txLength > buf.byteLength) return { ok: false, error: 'truncated batch' };
      const tx = new Uint8Array(buf.subarray(at, at + txLength));
      at += txLength;
      const count = buf.readUInt16BE(at);
      at += 2;
      if (count > batchEventsMax) return { ok: false, error: `${count} bodies is more than a batch holds` };
      const bodies: string[] = [];
      for (let i = 0; i < count; i++) {
        const length = buf.readUInt32BE(at);
        at += 4;
        if (length > bodyBytesMax) return { ok: false, error: `a body of ${length} bytes is too large` };
        if (at + length > buf.byteLength) return { ok: false, error: 'truncated body' };
        bodies.push(utf8.decode(buf.subarray(at, at + length)));
        at += length;
      }
      batches.push({ tx, bodies });
    }
  } catch (err) {
    return {
      ok: false,
      error: err instanceof RangeError ? 'truncated submission' : `not UTF-8 text: ${(err as Error).message}`,
    };
  }
  return { ok: true, batches };
}

/** Blocks replayed from the store per step, so a long replay does not block the event loop for long. */
const replayPageBlocks = 64;

/**
 * The in-process client of a validator with its member's body store. Transaction ids are the
 * node's application's.
 */
export function localChainClient(node: ConsensusNode, bodies: BodyStore): ChainClient {
  const store = node.store;
  const txId = (tx: Uint8Array) => node.txId(tx);
  const hashAt = (height: number) => {
    const cb = store.blockAt(height);
    return cb ? toHex(blockHash(cb.block.header)) : '';
  };

  /**
   * Each batch is checked (key, signature) before its bodies are kept; the bodies of all the valid
   * batches of one submission are kept in one transaction of the body store (one disk sync), and
   * only then are the batches submitted, in the order given. The decoded batch and its verdict are
   * remembered with the bytes, so the node's own checks cost no second decode.
   */
  function submitAll(batches: readonly SubmitBatch[]): SubmitVerdict[] {
    const verdicts: (SubmitVerdict | undefined)[] = batches.map(() => undefined);
    const toKeep: { at: number; batch: DecodedBatch; bodies: readonly string[] }[] = [];
    for (const [at, b] of batches.entries()) {
      const d = decodeTx(b.tx);
      // An invalid batch is still submitted, for the node to refuse and count like any other. A batch
      // sent without bodies (a benchmark, or a gateway reaching another member's validator) is
      // submitted as it is: the envelopes are the alliance's anyway, and the gateway keeps the bodies
      // until its own member's store confirms them.
      if (!d.ok || b.bodies.length === 0 || node.check(b.tx) !== null) continue;
      toKeep.push({ at, batch: d.batch, bodies: b.bodies });
    }
    const kept = new Set<number>();
    const refusals = bodies.keepAll(toKeep);
    for (const [k, item] of toKeep.entries()) {
      const refused = refusals[k];
      if (refused)
        verdicts[item.at] = {
          accepted: false,
          reason: refused.code,
          detail: refused.message,
          bodiesKept: false,
        };
      else kept.add(item.at);
    }
    const submitted = batches.flatMap((_b, at) => (verdicts[at] ? [] : [at]));
    const results = node.submit(submitted.map((at) => batches[at]!.tx));
    for (const [k, at] of submitted.entries()) {
      const r = results[k]!;
      const bodiesKept = kept.has(at);
      verdicts[at] = r.accepted
        ? { accepted: true, bodiesKept }
        : { accepted: false, reason: r.reason, detail: r.detail, bodiesKept };
    }
    return verdicts as SubmitVerdict[];
  }

  return {
    async submit(batches: readonly SubmitBatch[]): Promise<SubmitVerdict[]> {
      if (batches.length > submitBatchesMax)
        throw new RangeError(`at most ${submitBatchesMax} batches per submission`);
      return submitAll(batches);
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
        const info = blockInfo(e.block, e.certificate, txId);
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
          deliver(blockInfo(cb.block, cb.certificate, txId));
        }
        setImmediate(replay);
      };
      replay();
      return () => {
        stopped = true;
        unsubscribe();
      };
    },

    async receipts(txIds: readonly string[]): Promise<(ChainReceipt | null)[]> {
      return txIds.map((id) => {
        const at = store.txLocation(fromHex(id));
        return at ? { height: at.height, blockHash: hashAt(at.height), index: at.index } : null;
      });
    },
  };
}

/** Why a block from the API cannot be believed, or null when it checks out against the genesis. */
export function blockInfoProblem(ctx: VerifyContext, info: CommittedBlockInfo): string | null {
  const header = headerFromJson(info.header);
  if (!header.ok) return `block ${info.height}: header: ${header.error.detail}`;
  const cert = certificateFromJson(info.certificate);
  if (!cert.ok) return `block ${info.height}: certificate: ${cert.error.detail}`;
  const h = header.value;
  const hash = blockHash(h);
  if (h.height !== info.height || toHex(hash) !== info.blockHash)
    return `block ${info.height}: the header is not the block named`;
  if (cert.value.height !== h.height || !bytesEqual(cert.value.blockHash, hash))
    return `block ${info.height}: the certificate names another block`;
  const bad = verifyCommitCertificate(ctx, cert.value);
  if (bad) return `block ${info.height}: certificate: ${bad.code}: ${bad.detail}`;
  if (
    info.txIds.length !== h.txCount ||
    !bytesEqual(merkleRoot(info.txIds.map((id) => fromHex(id))), h.txRoot)
  )
    return `block ${info.height}: its transaction ids do not give the header's root`;
  return null;
}
