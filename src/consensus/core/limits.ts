/**
 * The chain's limits as consensus rules (ChainLimits, types.ts): how many validators, how large a
 * transaction and a block, how many heights in flight. Every replica of a chain must hold the same
 * values (they come from the genesis). What they imply for encoded sizes is the wire's business
 * (src/consensus/wire/limits.ts).
 */
import { toBase64Url } from '../../crypto/hash.ts';
import { keyAlgorithms } from '../../crypto/keys.ts';
import type { ChainLimits, Validator } from './types.ts';

/**
 * Defaults, sized so that the largest message (a NEW-VIEW for 64 validators, or a pre-prepare of a
 * full block) stays under 4 MiB: js-libp2p aborts a stream holding more than 4 MiB unread.
 */
export const defaultChainLimits: Readonly<ChainLimits> = Object.freeze({
  validatorsMax: 64,
  txBytesMax: 320 * 1024,
  blockTxsMax: 4096,
  blockBytesMax: 1024 * 1024,
  windowHeights: 4,
  syncBlocksMax: 64,
  forwardTxsMax: 1024,
});

/** Largest integer field (heights, views, timestamps): JSON numbers are exact up to 2^53−1. */
export const integerMax = Number.MAX_SAFE_INTEGER;
export const chainIdPattern = /^[A-Za-z0-9][A-Za-z0-9._:-]{0,63}$/;

/** Throws if the limits are inconsistent: a configuration bug, reported at start-up. */
export function assertChainLimits(l: ChainLimits): void {
  const positive = (name: keyof ChainLimits) => {
    if (!Number.isSafeInteger(l[name]) || l[name] < 1) throw new RangeError(`${name} must be an integer ≥ 1`);
  };
  for (const k of Object.keys(defaultChainLimits) as (keyof ChainLimits)[]) positive(k);
  if (l.validatorsMax > 1024) throw new RangeError('validatorsMax must be ≤ 1024');
  if (l.txBytesMax > l.blockBytesMax) throw new RangeError('txBytesMax must be ≤ blockBytesMax');
  if (l.windowHeights > 64) throw new RangeError('windowHeights must be ≤ 64');
}

/** Checks a validator list as the core needs it (src/consensus/genesis builds it from the genesis file). */
export function checkValidators(validators: readonly Validator[], limits: ChainLimits): string | null {
  if (validators.length < 1) return 'no validators';
  if (validators.length > limits.validatorsMax)
    return `${validators.length} validators > ${limits.validatorsMax}`;
  const seen = new Set<string>();
  for (const [i, v] of validators.entries()) {
    if (!keyAlgorithms.includes(v.alg)) return `validator ${i}: unknown algorithm ${v.alg}`;
    const k = `${v.alg}:${toBase64Url(v.publicKey)}`;
    if (seen.has(k)) return `validator ${i}: duplicate key`;
    seen.add(k);
  }
  return null;
}
