/**
 * Stable codes for everything wrong with peer input, shared by the decoder (src/consensus/wire),
 * verification (verify.ts) and the core, which count them per peer. Checks return a
 * ConsensusError value instead of throwing.
 */

/** Stable codes for everything wrong with peer input; counted per peer by the core and the net layer. */
export const errorCodes = [
  // decoding
  'too-large',
  'shape',
  'unknown-type',
  'limit',
  // verification
  'wrong-chain',
  'unknown-replica',
  'bad-signature',
  'not-primary',
  'vote-by-primary',
  'too-few-votes',
  'votes-unsorted',
  'tx-root',
  'tx-count',
  'block-version',
  'block-proposer',
  'certificate-mismatch',
  'view-change-invalid',
  'new-view-invalid',
] as const;
export type ErrorCode = (typeof errorCodes)[number];

export interface ConsensusError {
  code: ErrorCode;
  /** Human-readable: which field and why. Never parsed. */
  detail: string;
}

export type Result<T> = { ok: true; value: T } | { ok: false; error: ConsensusError };

export function err(code: ErrorCode, detail: string): ConsensusError {
  return { code, detail };
}
