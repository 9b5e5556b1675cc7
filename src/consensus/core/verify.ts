/**
 * Verification of signed consensus data against the validator set: signatures, quorums, certificates,
 * headers and block bodies. Every check returns a ConsensusError value (errors.ts) or null; none
 * throws.
 */
import { bytesEqual } from '../../crypto/hash.ts';
import type { SignatureVerifier } from '../../crypto/keys.ts';
import { type ConsensusError, err } from './errors.ts';
import { primaryOf, quorumSize } from './quorum.ts';
import { blockHash, blockTxBytes, signingBytes, txRootOf, voteSigningBytes } from './signing.ts';
import {
  type Block,
  type BlockHeader,
  blockVersion,
  type CertifiedBlock,
  type ChainLimits,
  type CommitCertificate,
  type PreparedCertificate,
  type SignedMessage,
  type Validator,
  type Vote,
} from './types.ts';

/** What verification needs to know about the chain. */
export interface VerifyContext {
  chainId: string;
  validators: readonly Validator[];
  verifier: SignatureVerifier;
  /** The application's transaction id (`TxHooks.txId`): the leaves of a block's transaction root. */
  txId: (tx: Uint8Array) => Uint8Array;
}

function checkSignature(
  ctx: VerifyContext,
  replica: number,
  message: Uint8Array,
  sig: Uint8Array,
  what: string,
) {
  const v = ctx.validators[replica];
  if (!v) return err('unknown-replica', `${what}: replica ${replica} is not a validator`);
  if (!ctx.verifier.verify(v.alg, v.publicKey, message, sig)) {
    return err('bad-signature', `${what}: signature of replica ${replica} does not verify`);
  }
  return null;
}

/** Checks sortedness, distinctness and count of votes; signatures are checked by the caller. */
function checkVoteSet(ctx: VerifyContext, votes: readonly Vote[], needed: number, what: string) {
  const n = ctx.validators.length;
  for (let i = 0; i < votes.length; i++) {
    const r = votes[i]!.replica;
    if (r >= n) return err('unknown-replica', `${what}: replica ${r} is not a validator`);
    if (i > 0 && votes[i - 1]!.replica >= r)
      return err('votes-unsorted', `${what}: votes not sorted and distinct`);
  }
  if (votes.length < needed) return err('too-few-votes', `${what}: ${votes.length} votes, ${needed} needed`);
  return null;
}

/**
 * A commit certificate is valid if a quorum of distinct validators signed COMMIT for
 * (chainId, view, height, blockHash). Only the validator set of the genesis counts.
 */
export function verifyCommitCertificate(ctx: VerifyContext, cert: CommitCertificate): ConsensusError | null {
  const q = quorumSize(ctx.validators.length);
  const bad = checkVoteSet(ctx, cert.commits, q, `certificate for height ${cert.height}`);
  if (bad) return bad;
  const bytes = voteSigningBytes('commit', ctx.chainId, cert.view, cert.height, cert.blockHash);
  for (const c of cert.commits) {
    const e = checkSignature(ctx, c.replica, bytes, c.signature, `commit for height ${cert.height}`);
    if (e) return e;
  }
  return null;
}

/** Certificate for `block`: also checks that it names the block's height and hash. */
export function verifyCertifiedBlock(
  ctx: VerifyContext,
  limits: ChainLimits,
  cb: CertifiedBlock,
): ConsensusError | null {
  const body = verifyBlockBody(ctx, limits, cb.block);
  if (body) return body;
  const h = cb.block.header;
  if (cb.certificate.height !== h.height || !bytesEqual(cb.certificate.blockHash, blockHash(h))) {
    return err('certificate-mismatch', `certificate names another block than height ${h.height}`);
  }
  return verifyCommitCertificate(ctx, cb.certificate);
}

/** Pre-prepare signed by primary(view) plus quorum−1 PREPAREs from distinct backups, all valid. */
export function verifyPreparedCertificate(
  ctx: VerifyContext,
  pc: PreparedCertificate,
): ConsensusError | null {
  const n = ctx.validators.length;
  const h = pc.header;
  const headerBad = verifyHeader(ctx, h);
  if (headerBad) return headerBad;
  if (pc.view < h.view)
    return err('certificate-mismatch', `prepared in view ${pc.view} < proposal view ${h.view}`);
  const primary = primaryOf(pc.view, n);
  const what = `prepared certificate for height ${h.height} view ${pc.view}`;
  const bad = checkVoteSet(ctx, pc.prepares, quorumSize(n) - 1, what);
  if (bad) return bad;
  if (pc.prepares.some((p) => p.replica === primary))
    return err('vote-by-primary', `${what}: prepare by primary`);
  const hash = blockHash(h);
  const pp = voteSigningBytes('pre-prepare', ctx.chainId, pc.view, h.height, hash);
  const ppBad = checkSignature(ctx, primary, pp, pc.prePrepareSignature, `${what} (pre-prepare)`);
  if (ppBad) return ppBad;
  const bytes = voteSigningBytes('prepare', ctx.chainId, pc.view, h.height, hash);
  for (const p of pc.prepares) {
    const e = checkSignature(ctx, p.replica, bytes, p.signature, what);
    if (e) return e;
  }
  return null;
}

/** Header fields that do not depend on chain state: version, chain, proposer = primary(view). */
export function verifyHeader(ctx: VerifyContext, h: BlockHeader): ConsensusError | null {
  if (h.version !== blockVersion)
    return err('block-version', `block version ${h.version}, expected ${blockVersion}`);
  if (h.chainId !== ctx.chainId) return err('wrong-chain', `block of chain ${h.chainId}`);
  if (h.proposer !== primaryOf(h.view, ctx.validators.length)) {
    return err('block-proposer', `proposer ${h.proposer} is not the primary of view ${h.view}`);
  }
  return null;
}

/** Header checks plus the body: transaction count, sizes and Merkle root. */
export function verifyBlockBody(ctx: VerifyContext, limits: ChainLimits, b: Block): ConsensusError | null {
  const h = verifyHeader(ctx, b.header);
  if (h) return h;
  if (b.txs.length !== b.header.txCount) {
    return err('tx-count', `header says ${b.header.txCount} transactions, block has ${b.txs.length}`);
  }
  if (b.txs.length > limits.blockTxsMax)
    return err('limit', `${b.txs.length} transactions > ${limits.blockTxsMax}`);
  const bytes = blockTxBytes(b.txs);
  if (bytes > limits.blockBytesMax)
    return err('limit', `${bytes} transaction bytes > ${limits.blockBytesMax}`);
  if (!bytesEqual(txRootOf(b.txs.map(ctx.txId)), b.header.txRoot))
    return err('tx-root', 'txRoot does not match the transactions');
  return null;
}

/**
 * Signature of a signed message by its `replica`, plus the role rules that need no state: a
 * PRE-PREPARE and a NEW-VIEW come from the primary of their view, a PREPARE never does. Contents
 * of VIEW-CHANGE and NEW-VIEW (certificates, quorum) are checked by the core (core/viewchange.ts).
 */
export function verifySignedMessage(ctx: VerifyContext, msg: SignedMessage): ConsensusError | null {
  const n = ctx.validators.length;
  if (msg.replica >= n) return err('unknown-replica', `replica ${msg.replica} is not a validator`);
  const primary = primaryOf(msg.view, n);
  if ((msg.type === 'pre-prepare' || msg.type === 'new-view') && msg.replica !== primary) {
    return err('not-primary', `${msg.type} for view ${msg.view} from ${msg.replica}, primary is ${primary}`);
  }
  if (msg.type === 'prepare' && msg.replica === primary) {
    return err('vote-by-primary', `prepare from the primary of view ${msg.view}`);
  }
  return checkSignature(ctx, msg.replica, signingBytes(ctx.chainId, msg), msg.signature, msg.type);
}
