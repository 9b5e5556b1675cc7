/**
 * Encoded sizes the chain's limits (src/consensus/core/limits.ts) imply for the wire form: the
 * largest block, VIEW-CHANGE, sync answer and message. The transport refuses longer frames before
 * decoding anything.
 */
import { quorumSize } from '../core/quorum.ts';
import type { ChainLimits } from '../core/types.ts';

const headerJsonBytesMax = 512;
const voteJsonBytesMax = 120;
const envelopeBytesMax = 256;

/** Upper bound of an encoded block under the limits (base64 is 4/3, plus quotes and commas per tx). */
export function blockBytesEncodedMax(l: ChainLimits): number {
  return headerJsonBytesMax + Math.ceil((l.blockBytesMax * 4) / 3) + 4 * l.blockTxsMax + 64;
}

export function certificateBytesMax(l: ChainLimits): number {
  return envelopeBytesMax + voteJsonBytesMax * l.validatorsMax;
}

function preparedBytesMax(l: ChainLimits): number {
  return headerJsonBytesMax + certificateBytesMax(l);
}

export function viewChangeBytesMax(l: ChainLimits): number {
  return envelopeBytesMax + certificateBytesMax(l) + l.windowHeights * preparedBytesMax(l);
}

/**
 * A sync response holds whole blocks until this size (always at least one block, which may be
 * larger). Responders pack to it; receivers accept up to `messageBytesMax`.
 */
export function syncResponseBytesTarget(l: ChainLimits): number {
  return Math.max(2 * 1024 * 1024, blockBytesEncodedMax(l) + certificateBytesMax(l));
}

/** Largest encoded message of any type; the net layer may refuse longer frames before decoding. */
export function messageBytesMax(l: ChainLimits): number {
  return Math.max(
    envelopeBytesMax + blockBytesEncodedMax(l),
    envelopeBytesMax + quorumSize(l.validatorsMax) * viewChangeBytesMax(l),
    envelopeBytesMax + syncResponseBytesTarget(l) + blockBytesEncodedMax(l) + certificateBytesMax(l),
    envelopeBytesMax + Math.ceil((l.blockBytesMax * 4) / 3) + 4 * l.forwardTxsMax,
  );
}

/** Throws if the limits allow messages the transport could never carry (above 64 MiB). */
export function assertEncodedLimits(l: ChainLimits): void {
  if (messageBytesMax(l) > 64 * 1024 * 1024) throw new RangeError('limits allow messages above 64 MiB');
}
