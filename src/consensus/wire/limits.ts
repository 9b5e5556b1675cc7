/**
 * Encoded sizes the chain's limits (src/consensus/core/limits.ts) imply for the binary form
 * (codec.ts): the largest block, VIEW-CHANGE, sync answer and message. The transport refuses longer
 * frames before decoding anything (src/consensus/net/limits.ts), and the genesis refuses a
 * `messageBytesMax` below what the limits allow.
 *
 * The widths below are the codec's layout: codec.ts writes exactly these fields, so the bounds are
 * exact maxima, not estimates (test/consensus/wire/codec.test.ts encodes values at the limits and
 * compares). Lists carry a u32 count, transactions a u32 length; hashes and signatures have fixed
 * widths and no length.
 */
import { hashBytes } from '../../crypto/hash.ts';
import { signatureBytes } from '../../crypto/keys.ts';
import { quorumSize } from '../core/quorum.ts';
import type { ChainLimits } from '../core/types.ts';

const u8 = 1;
const u16 = 2;
const u32 = 4;
const u64 = 8;

/** Format byte and type tag that open every encoded message and stored record. */
export const envelopeBytes = u8 + u8;
/** The longest chain id core/limits.ts `chainIdPattern` admits (one leading character and 63 more). */
export const chainIdBytesMax = 64;
/** version, chain id (u8 length + ASCII), height, view, prevHash, timestampMs, txRoot, txCount, proposer. */
const headerFixedBytes = u16 + u8 + u64 + u64 + hashBytes + u64 + hashBytes + u32 + u16;
export const headerBytesMax = headerFixedBytes + chainIdBytesMax;
/** The shortest header (a one-character chain id): what a count of headers must leave room for. */
export const headerBytesMin = headerFixedBytes + 1;
/** replica (u16) and signature. */
export const voteBytes = u16 + signatureBytes;
/** A transaction's length prefix; a transaction has at least one byte. */
export const txLengthBytes = u32;
export const countBytes = u32;
/** Each a u64 in the form, at most 2^53 − 1 (core/limits.ts `integerMax`). */
export const integerBytes = u64;

/**
 * A list of transactions: count, then each length-prefixed. Exact maximum: as many transactions as
 * allowed (each at least one byte), together as many bytes as allowed.
 */
export function txsBytesMax(l: ChainLimits, countMax: number): number {
  const count = Math.min(countMax, l.blockBytesMax);
  return countBytes + count * txLengthBytes + Math.min(l.blockBytesMax, count * l.txBytesMax);
}

/** Largest encoded block (header and transactions) under the limits. */
export function blockBytesEncodedMax(l: ChainLimits): number {
  return headerBytesMax + txsBytesMax(l, l.blockTxsMax);
}

function votesBytesMax(l: ChainLimits): number {
  return countBytes + voteBytes * l.validatorsMax;
}

/** height, view, blockHash, commits. */
export function certificateBytesMax(l: ChainLimits): number {
  return u64 + u64 + hashBytes + votesBytesMax(l);
}

/** A block with its certificate (a sync response's item, or a stored block without its envelope). */
export function certifiedBlockBytesMax(l: ChainLimits): number {
  return blockBytesEncodedMax(l) + certificateBytesMax(l);
}

/** view, header, pre-prepare signature, prepares. */
export function preparedBytesMax(l: ChainLimits): number {
  return u64 + headerBytesMax + signatureBytes + votesBytesMax(l);
}

/** A VIEW-CHANGE's body: view, replica, checkpoint flag and certificate, prepared list, signature. */
export function viewChangeBytesMax(l: ChainLimits): number {
  return (
    u64 +
    u16 +
    u8 +
    certificateBytesMax(l) +
    countBytes +
    l.windowHeights * preparedBytesMax(l) +
    signatureBytes
  );
}

/** A sync response's bytes beyond its blocks: envelope and count. */
export const syncResponseEnvelopeBytes = envelopeBytes + countBytes;

/**
 * A sync response holds whole blocks until this size (always at least one block, which this
 * target always holds). Responders pack to it, counting each block at no less than its encoded
 * size (`ChainStore.encodedBytesOf` is the stored record, two bytes more); receivers accept up to
 * `messageBytesMax`.
 */
export function syncResponseBytesTarget(l: ChainLimits): number {
  return Math.max(2 * 1024 * 1024, certifiedBlockBytesMax(l));
}

/**
 * Largest encoded message of any type an honest validator sends; the net layer refuses longer
 * frames before decoding. A NEW-VIEW carries exactly a quorum of VIEW-CHANGEs; a sync response at
 * most `syncResponseBytesTarget` of blocks.
 */
export function messageBytesMax(l: ChainLimits): number {
  const prePrepare = envelopeBytes + u64 + u16 + signatureBytes + blockBytesEncodedMax(l);
  const newView =
    envelopeBytes +
    u64 +
    u16 +
    countBytes +
    quorumSize(l.validatorsMax) * viewChangeBytesMax(l) +
    signatureBytes;
  const syncResponse = syncResponseEnvelopeBytes + syncResponseBytesTarget(l);
  const txs = envelopeBytes + txsBytesMax(l, l.forwardTxsMax);
  return Math.max(prePrepare, newView, syncResponse, txs);
}

/** Throws if the limits allow messages the transport could never carry (above 64 MiB). */
export function assertEncodedLimits(l: ChainLimits): void {
  if (messageBytesMax(l) > 64 * 1024 * 1024) throw new RangeError('limits allow messages above 64 MiB');
}
