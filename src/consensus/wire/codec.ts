/**
 * Encoding, hashing, signing and validation of consensus data (types.ts).
 *
 * Wire format: RFC 8785 canonical JSON (src/crypto/canonical.ts) with byte fields as unpadded
 * base64url. Why not a binary framing: one format for the wire, the block store and the HTTP API,
 * readable in a packet dump, no second codec in a browser verifier. Measured on this machine
 * (docs/consensus.md, "Encoding cost"): encoding + decoding a 1,000-transaction block costs a few ms,
 * against ~180 ms to verify the transactions' Ed25519 signatures, so a binary framing would win
 * nothing that matters; base64 makes blocks ~34% larger on the wire, which the limits below allow for.
 *
 * Hashes and signatures never depend on the wire bytes: they are computed over canonical JSON of
 * typed fields with a domain tag per purpose (`masbc-edge/ipbft/v1/<purpose>` then a NUL byte), so
 * a signature on a PREPARE can never be replayed as a COMMIT, a NEW-VIEW or on another chain.
 *
 * Decoding never throws: `decodeMessage` returns `{ ok: false, error }` with a stable `code` for any
 * input. It checks shape, ranges and size limits; `verify*` functions check signatures, quorums and
 * Merkle roots against the validator set and also return an error value instead of throwing.
 *
 * @example
 *   const bytes = encodeMessage(prepare);
 *   const r = decodeMessage(bytes, defaultChainLimits);
 *   if (!r.ok) peerFaults.count(peer, r.error.code);
 *   else if (verifySignedMessage(ctx, r.value) === null) core.step({ type: 'message', from: peer, ... });
 */
import { encodeCanonical } from '../../crypto/canonical.ts';
import { bytesEqual, fromBase64Url, hashBytes, sha256, toBase64Url } from '../../crypto/hash.ts';
import { keyAlgorithms, type SignatureVerifier, type Signer, signatureBytes } from '../../crypto/keys.ts';
import { merkleRoot } from '../../crypto/merkle.ts';
import {
  type Block,
  type BlockHeader,
  blockVersion,
  type CertifiedBlock,
  type ChainLimits,
  type CommitCertificate,
  type Message,
  type NewView,
  type PreparedCertificate,
  type SignedMessage,
  type Validator,
  type ViewChange,
  type Vote,
} from '../core/types.ts';

// ---------------------------------------------------------------------------------------------
// Limits

/**
 * Defaults, sized so that the largest message (a NEW-VIEW for 64 validators, or a pre-prepare of a
 * full block) stays under 4 MiB: js-libp2p aborts a stream holding more than 4 MiB unread.
 */
export const defaultChainLimits: Readonly<ChainLimits> = Object.freeze({
  validatorsMax: 64,
  txBytesMax: 64 * 1024,
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
  if (messageBytesMax(l) > 64 * 1024 * 1024) throw new RangeError('limits allow messages above 64 MiB');
}

const headerJsonBytesMax = 512;
const voteJsonBytesMax = 120;
const envelopeBytesMax = 256;

/** Upper bound of an encoded block under the limits (base64 is 4/3, plus quotes and commas per tx). */
export function blockBytesEncodedMax(l: ChainLimits): number {
  return headerJsonBytesMax + Math.ceil((l.blockBytesMax * 4) / 3) + 4 * l.blockTxsMax + 64;
}

function certificateBytesMax(l: ChainLimits): number {
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

// ---------------------------------------------------------------------------------------------
// Quorums

/** f = ⌊(n−1)/3⌋: byzantine validators tolerated. */
export function faultsTolerated(n: number): number {
  return Math.floor((n - 1) / 3);
}

/**
 * ⌊(n+f)/2⌋+1: any two quorums share ≥ f+1 validators, so at least one honest one. Equals 2f+1 when
 * n = 3f+1 and is larger for other n (n=5: 4), which 2f+1 alone would get wrong.
 */
export function quorumSize(n: number): number {
  return Math.floor((n + faultsTolerated(n)) / 2) + 1;
}

export function primaryOf(view: number, n: number): number {
  return view % n;
}

// ---------------------------------------------------------------------------------------------
// Errors

/** Stable codes for everything wrong with peer input; counted per peer by the core and the net layer. */
export const errorCodes = [
  // decoding
  'too-large',
  'not-json',
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

function err(code: ErrorCode, detail: string): ConsensusError {
  return { code, detail };
}

// ---------------------------------------------------------------------------------------------
// Hashing and signing

const utf8 = new TextEncoder();
const domains = new Map<string, Uint8Array>();

function domain(purpose: string): Uint8Array {
  let d = domains.get(purpose);
  if (!d) {
    d = utf8.encode(`masbc-edge/ipbft/v${blockVersion}/${purpose}\0`);
    domains.set(purpose, d);
  }
  return d;
}

function concat(a: Uint8Array, b: Uint8Array): Uint8Array {
  const out = new Uint8Array(a.byteLength + b.byteLength);
  out.set(a, 0);
  out.set(b, a.byteLength);
  return out;
}

const blockHashes = new WeakMap<BlockHeader, Uint8Array>();

/**
 * Block hash = SHA-256(domain "block-header" ‖ canonical JSON of the header). Memoised per header
 * object: headers are immutable values everywhere in this code base (never mutate one after use).
 */
export function blockHash(header: BlockHeader): Uint8Array {
  let h = blockHashes.get(header);
  if (!h) {
    h = sha256(domain('block-header'), encodeCanonical(headerToJson(header)));
    blockHashes.set(header, h);
  }
  return h;
}

/** RFC 6962 root over the transactions' bytes (leaf = the transaction itself). */
export function txRootOf(txs: readonly Uint8Array[]): Uint8Array {
  return merkleRoot(txs);
}

export function blockTxBytes(txs: readonly Uint8Array[]): number {
  let total = 0;
  for (const tx of txs) total += tx.byteLength;
  return total;
}

export type VoteKind = 'pre-prepare' | 'prepare' | 'commit';

/** Bytes signed by a PRE-PREPARE, PREPARE or COMMIT: (chainId, view, height, blockHash) under its own domain. */
export function voteSigningBytes(
  kind: VoteKind,
  chainId: string,
  view: number,
  height: number,
  hash: Uint8Array,
): Uint8Array {
  // Exactly encodeCanonical({ blockHash, chainId, height, view }) (keys in sorted order, integers as
  // JSON prints them), written out because votes are the hottest signing path; a test pins the equality.
  const json = `{"blockHash":"${toBase64Url(hash)}","chainId":${JSON.stringify(chainId)},"height":${height},"view":${view}}`;
  return concat(domain(kind), utf8.encode(json));
}

export function viewChangeSigningBytes(chainId: string, vc: ViewChange): Uint8Array {
  const { signature: _, ...body } = viewChangeToJson(vc);
  return concat(domain('view-change'), encodeCanonical({ ...body, chainId }));
}

export function newViewSigningBytes(chainId: string, nv: NewView): Uint8Array {
  const { signature: _, ...body } = messageToJson(nv) as Record<string, unknown>;
  return concat(domain('new-view'), encodeCanonical({ ...body, chainId }));
}

/** Bytes the `signature` of a signed message covers. */
export function signingBytes(chainId: string, msg: SignedMessage): Uint8Array {
  switch (msg.type) {
    case 'pre-prepare':
      return voteSigningBytes(
        'pre-prepare',
        chainId,
        msg.view,
        msg.block.header.height,
        blockHash(msg.block.header),
      );
    case 'prepare':
    case 'commit':
      return voteSigningBytes(msg.type, chainId, msg.view, msg.height, msg.blockHash);
    case 'view-change':
      return viewChangeSigningBytes(chainId, msg);
    case 'new-view':
      return newViewSigningBytes(chainId, msg);
  }
}

/** Returns `msg` with its signature set by `signer` (which must be validators[msg.replica]). */
export function signMessage<T extends SignedMessage>(signer: Signer, chainId: string, msg: T): T {
  return { ...msg, signature: signer.sign(signingBytes(chainId, msg)) };
}

// ---------------------------------------------------------------------------------------------
// Verification

/** What verification needs to know about the chain. */
export interface VerifyContext {
  chainId: string;
  validators: readonly Validator[];
  verifier: SignatureVerifier;
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
  if (!bytesEqual(txRootOf(b.txs), b.header.txRoot))
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

// ---------------------------------------------------------------------------------------------
// JSON forms

type Json = Record<string, unknown>;
const b64 = toBase64Url;

export function headerToJson(h: BlockHeader): Json {
  return {
    chainId: h.chainId,
    height: h.height,
    prevHash: b64(h.prevHash),
    proposer: h.proposer,
    timestampMs: h.timestampMs,
    txCount: h.txCount,
    txRoot: b64(h.txRoot),
    version: h.version,
    view: h.view,
  };
}

export function blockToJson(b: Block): Json {
  return { header: headerToJson(b.header), txs: b.txs.map(b64) };
}

const votesToJson = (votes: readonly Vote[]) =>
  votes.map((v) => ({ replica: v.replica, signature: b64(v.signature) }));

export function certificateToJson(c: CommitCertificate): Json {
  return { blockHash: b64(c.blockHash), commits: votesToJson(c.commits), height: c.height, view: c.view };
}

export function certifiedBlockToJson(cb: CertifiedBlock): Json {
  return { block: blockToJson(cb.block), certificate: certificateToJson(cb.certificate) };
}

function preparedToJson(p: PreparedCertificate): Json {
  return {
    header: headerToJson(p.header),
    prePrepareSignature: b64(p.prePrepareSignature),
    prepares: votesToJson(p.prepares),
    view: p.view,
  };
}

function viewChangeToJson(vc: ViewChange): Json {
  return {
    checkpoint: vc.checkpoint ? certificateToJson(vc.checkpoint) : null,
    prepared: vc.prepared.map(preparedToJson),
    replica: vc.replica,
    signature: b64(vc.signature),
    type: vc.type,
    view: vc.view,
  };
}

export function messageToJson(m: Message): Json {
  switch (m.type) {
    case 'pre-prepare':
      return {
        block: blockToJson(m.block),
        replica: m.replica,
        signature: b64(m.signature),
        type: m.type,
        view: m.view,
      };
    case 'prepare':
    case 'commit':
      return {
        blockHash: b64(m.blockHash),
        height: m.height,
        replica: m.replica,
        signature: b64(m.signature),
        type: m.type,
        view: m.view,
      };
    case 'view-change':
      return viewChangeToJson(m);
    case 'new-view':
      return {
        replica: m.replica,
        signature: b64(m.signature),
        type: m.type,
        view: m.view,
        viewChanges: m.viewChanges.map(viewChangeToJson),
      };
    case 'status':
      return { committedHeight: m.committedHeight, type: m.type, view: m.view, viewChanging: m.viewChanging };
    case 'sync-request':
      return { count: m.count, fromHeight: m.fromHeight, type: m.type };
    case 'sync-response':
      return { blocks: m.blocks.map(certifiedBlockToJson), type: m.type };
    case 'proposal-request':
      return { blockHash: b64(m.blockHash), height: m.height, type: m.type };
    case 'proposal-response':
      return { block: blockToJson(m.block), type: m.type };
    case 'txs':
      return { txs: m.txs.map(b64), type: m.type };
  }
}

export function encodeMessage(m: Message): Uint8Array {
  return encodeCanonical(messageToJson(m));
}

export function encodeCertifiedBlock(cb: CertifiedBlock): Uint8Array {
  return encodeCanonical(certifiedBlockToJson(cb));
}

// ---------------------------------------------------------------------------------------------
// Decoding: strict (exact key sets, canonical base64url, safe integers), never throws.

class Fail {
  readonly error: ConsensusError;
  constructor(code: ErrorCode, detail: string) {
    this.error = err(code, detail);
  }
}

const b64urlPattern = /^[A-Za-z0-9_-]*$/;

/** Value of a base64url character (the pattern above has already admitted it). */
function b64urlValue(c: number): number {
  if (c >= 65 && c <= 90) return c - 65; // A-Z
  if (c >= 97 && c <= 122) return c - 71; // a-z
  if (c >= 48 && c <= 57) return c + 4; // 0-9
  return c === 45 ? 62 : 63; // - _
}

class Reader {
  readonly limits: ChainLimits;
  constructor(limits: ChainLimits) {
    this.limits = limits;
  }

  object(v: unknown, path: string, keys: readonly string[]): Json {
    if (typeof v !== 'object' || v === null || Array.isArray(v))
      throw new Fail('shape', `${path}: not an object`);
    const o = v as Json;
    const own = Object.keys(o);
    for (const k of own) if (!keys.includes(k)) throw new Fail('shape', `${path}: unknown field ${k}`);
    for (const k of keys) if (!Object.hasOwn(o, k)) throw new Fail('shape', `${path}: missing field ${k}`);
    return o;
  }

  int(v: unknown, path: string, min = 0, max = integerMax): number {
    if (typeof v !== 'number' || !Number.isSafeInteger(v))
      throw new Fail('shape', `${path}: not a safe integer`);
    if (v < min || v > max) throw new Fail('limit', `${path}: ${v} outside ${min}..${max}`);
    return v;
  }

  replica(v: unknown, path: string): number {
    return this.int(v, path, 0, this.limits.validatorsMax - 1);
  }

  bytes(v: unknown, path: string, lengthExact?: number, lengthMax = integerMax): Uint8Array {
    if (typeof v !== 'string' || !b64urlPattern.test(v) || v.length % 4 === 1) {
      throw new Fail('shape', `${path}: not base64url`);
    }
    // Non-zero unused bits in the last character would give a second text for the same bytes.
    const rest = v.length % 4;
    if (rest !== 0 && (b64urlValue(v.charCodeAt(v.length - 1)) & (rest === 2 ? 0x0f : 0x03)) !== 0) {
      throw new Fail('shape', `${path}: base64url not canonical`);
    }
    const out = fromBase64Url(v);
    if (lengthExact !== undefined && out.byteLength !== lengthExact) {
      throw new Fail('shape', `${path}: ${out.byteLength} bytes, expected ${lengthExact}`);
    }
    if (out.byteLength > lengthMax)
      throw new Fail('limit', `${path}: ${out.byteLength} bytes > ${lengthMax}`);
    return out;
  }

  array(v: unknown, path: string, max: number): unknown[] {
    if (!Array.isArray(v)) throw new Fail('shape', `${path}: not an array`);
    if (v.length > max) throw new Fail('limit', `${path}: ${v.length} items > ${max}`);
    return v;
  }

  header(v: unknown, path: string): BlockHeader {
    const o = this.object(v, path, [
      'chainId',
      'height',
      'prevHash',
      'proposer',
      'timestampMs',
      'txCount',
      'txRoot',
      'version',
      'view',
    ]);
    if (typeof o.chainId !== 'string' || !chainIdPattern.test(o.chainId)) {
      throw new Fail('shape', `${path}.chainId: not a chain id`);
    }
    return {
      version: this.int(o.version, `${path}.version`, 0, 0xffff),
      chainId: o.chainId,
      height: this.int(o.height, `${path}.height`, 1),
      view: this.int(o.view, `${path}.view`),
      prevHash: this.bytes(o.prevHash, `${path}.prevHash`, hashBytes),
      timestampMs: this.int(o.timestampMs, `${path}.timestampMs`),
      txRoot: this.bytes(o.txRoot, `${path}.txRoot`, hashBytes),
      txCount: this.int(o.txCount, `${path}.txCount`, 0, this.limits.blockTxsMax),
      proposer: this.replica(o.proposer, `${path}.proposer`),
    };
  }

  txs(v: unknown, path: string, countMax: number): Uint8Array[] {
    const arr = this.array(v, path, countMax);
    let total = 0;
    const out = arr.map((t, i) => {
      const tx = this.bytes(t, `${path}[${i}]`, undefined, this.limits.txBytesMax);
      if (tx.byteLength === 0) throw new Fail('shape', `${path}[${i}]: empty transaction`);
      total += tx.byteLength;
      return tx;
    });
    if (total > this.limits.blockBytesMax)
      throw new Fail('limit', `${path}: ${total} bytes > ${this.limits.blockBytesMax}`);
    return out;
  }

  block(v: unknown, path: string): Block {
    const o = this.object(v, path, ['header', 'txs']);
    const header = this.header(o.header, `${path}.header`);
    const txs = this.txs(o.txs, `${path}.txs`, this.limits.blockTxsMax);
    return { header, txs };
  }

  votes(v: unknown, path: string): Vote[] {
    const votes = this.array(v, path, this.limits.validatorsMax).map((x, i) => {
      const o = this.object(x, `${path}[${i}]`, ['replica', 'signature']);
      return {
        replica: this.replica(o.replica, `${path}[${i}].replica`),
        signature: this.bytes(o.signature, `${path}[${i}].signature`, signatureBytes),
      };
    });
    for (let i = 1; i < votes.length; i++) {
      if (votes[i - 1]!.replica >= votes[i]!.replica)
        throw new Fail('votes-unsorted', `${path}: not sorted and distinct`);
    }
    return votes;
  }

  certificate(v: unknown, path: string): CommitCertificate {
    const o = this.object(v, path, ['blockHash', 'commits', 'height', 'view']);
    return {
      height: this.int(o.height, `${path}.height`, 1),
      view: this.int(o.view, `${path}.view`),
      blockHash: this.bytes(o.blockHash, `${path}.blockHash`, hashBytes),
      commits: this.votes(o.commits, `${path}.commits`),
    };
  }

  certifiedBlock(v: unknown, path: string): CertifiedBlock {
    const o = this.object(v, path, ['block', 'certificate']);
    return {
      block: this.block(o.block, `${path}.block`),
      certificate: this.certificate(o.certificate, `${path}.certificate`),
    };
  }

  prepared(v: unknown, path: string): PreparedCertificate {
    const o = this.object(v, path, ['header', 'prePrepareSignature', 'prepares', 'view']);
    return {
      view: this.int(o.view, `${path}.view`),
      header: this.header(o.header, `${path}.header`),
      prePrepareSignature: this.bytes(o.prePrepareSignature, `${path}.prePrepareSignature`, signatureBytes),
      prepares: this.votes(o.prepares, `${path}.prepares`),
    };
  }

  viewChange(v: unknown, path: string): ViewChange {
    const o = this.object(v, path, ['checkpoint', 'prepared', 'replica', 'signature', 'type', 'view']);
    if (o.type !== 'view-change') throw new Fail('shape', `${path}.type: not view-change`);
    const checkpoint = o.checkpoint === null ? null : this.certificate(o.checkpoint, `${path}.checkpoint`);
    const prepared = this.array(o.prepared, `${path}.prepared`, this.limits.windowHeights).map((p, i) =>
      this.prepared(p, `${path}.prepared[${i}]`),
    );
    // One certificate per height, ascending: keeps the selection simple and the message bounded.
    for (let i = 0; i < prepared.length; i++) {
      const h = prepared[i]!.header.height;
      if (i > 0 && prepared[i - 1]!.header.height >= h) {
        throw new Fail('shape', `${path}.prepared: heights not ascending and distinct`);
      }
    }
    return {
      type: 'view-change',
      view: this.int(o.view, `${path}.view`),
      replica: this.replica(o.replica, `${path}.replica`),
      checkpoint,
      prepared,
      signature: this.bytes(o.signature, `${path}.signature`, signatureBytes),
    };
  }

  message(v: unknown): Message {
    if (typeof v !== 'object' || v === null || Array.isArray(v))
      throw new Fail('shape', 'message: not an object');
    const type = (v as Json).type;
    switch (type) {
      case 'pre-prepare': {
        const o = this.object(v, type, ['block', 'replica', 'signature', 'type', 'view']);
        return {
          type,
          view: this.int(o.view, 'view'),
          replica: this.replica(o.replica, 'replica'),
          block: this.block(o.block, 'block'),
          signature: this.bytes(o.signature, 'signature', signatureBytes),
        };
      }
      case 'prepare':
      case 'commit': {
        const o = this.object(v, type, ['blockHash', 'height', 'replica', 'signature', 'type', 'view']);
        return {
          type,
          view: this.int(o.view, 'view'),
          height: this.int(o.height, 'height', 1),
          blockHash: this.bytes(o.blockHash, 'blockHash', hashBytes),
          replica: this.replica(o.replica, 'replica'),
          signature: this.bytes(o.signature, 'signature', signatureBytes),
        };
      }
      case 'view-change':
        return this.viewChange(v, type);
      case 'new-view': {
        const o = this.object(v, type, ['replica', 'signature', 'type', 'view', 'viewChanges']);
        const viewChanges = this.array(o.viewChanges, 'viewChanges', this.limits.validatorsMax).map((x, i) =>
          this.viewChange(x, `viewChanges[${i}]`),
        );
        for (let i = 1; i < viewChanges.length; i++) {
          if (viewChanges[i - 1]!.replica >= viewChanges[i]!.replica) {
            throw new Fail('votes-unsorted', 'viewChanges: not sorted by replica and distinct');
          }
        }
        return {
          type,
          view: this.int(o.view, 'view'),
          replica: this.replica(o.replica, 'replica'),
          viewChanges,
          signature: this.bytes(o.signature, 'signature', signatureBytes),
        };
      }
      case 'status': {
        const o = this.object(v, type, ['committedHeight', 'type', 'view', 'viewChanging']);
        if (typeof o.viewChanging !== 'boolean') throw new Fail('shape', 'viewChanging: not a boolean');
        return {
          type,
          view: this.int(o.view, 'view'),
          viewChanging: o.viewChanging,
          committedHeight: this.int(o.committedHeight, 'committedHeight'),
        };
      }
      case 'sync-request': {
        const o = this.object(v, type, ['count', 'fromHeight', 'type']);
        return {
          type,
          fromHeight: this.int(o.fromHeight, 'fromHeight', 1),
          count: this.int(o.count, 'count', 1, this.limits.syncBlocksMax),
        };
      }
      case 'sync-response': {
        const o = this.object(v, type, ['blocks', 'type']);
        const blocks = this.array(o.blocks, 'blocks', this.limits.syncBlocksMax).map((b, i) =>
          this.certifiedBlock(b, `blocks[${i}]`),
        );
        for (let i = 1; i < blocks.length; i++) {
          if (blocks[i]!.block.header.height !== blocks[i - 1]!.block.header.height + 1) {
            throw new Fail('shape', 'blocks: heights not consecutive');
          }
        }
        return { type, blocks };
      }
      case 'proposal-request': {
        const o = this.object(v, type, ['blockHash', 'height', 'type']);
        return {
          type,
          height: this.int(o.height, 'height', 1),
          blockHash: this.bytes(o.blockHash, 'blockHash', hashBytes),
        };
      }
      case 'proposal-response': {
        const o = this.object(v, type, ['block', 'type']);
        return { type, block: this.block(o.block, 'block') };
      }
      case 'txs': {
        const o = this.object(v, type, ['txs', 'type']);
        return { type, txs: this.txs(o.txs, 'txs', this.limits.forwardTxsMax) };
      }
      default:
        throw new Fail(
          'unknown-type',
          `message type ${typeof type === 'string' ? type.slice(0, 32) : typeof type}`,
        );
    }
  }
}

const utf8Decoder = new TextDecoder('utf-8', { fatal: true });

function parse(bytes: Uint8Array, max: number): unknown {
  if (bytes.byteLength > max) throw new Fail('too-large', `${bytes.byteLength} bytes > ${max}`);
  let text: string;
  try {
    text = utf8Decoder.decode(bytes);
  } catch {
    throw new Fail('not-json', 'not UTF-8');
  }
  try {
    return JSON.parse(text);
  } catch {
    // Also catches RangeError from pathological nesting.
    throw new Fail('not-json', 'not JSON');
  }
}

function run<T>(f: () => T): Result<T> {
  try {
    return { ok: true, value: f() };
  } catch (e) {
    if (e instanceof Fail) return { ok: false, error: e.error };
    // Anything else is a bug in this file, not bad input; still never escape to the caller.
    return { ok: false, error: err('shape', `decoder failure: ${(e as Error)?.message ?? String(e)}`) };
  }
}

/** Decodes one message from a peer. Checks shape and limits only; see `verify*` for the rest. */
export function decodeMessage(bytes: Uint8Array, limits: ChainLimits = defaultChainLimits): Result<Message> {
  return run(() => new Reader(limits).message(parse(bytes, messageBytesMax(limits))));
}

/** Decodes a stored or exported block with its certificate. */
export function decodeCertifiedBlock(
  bytes: Uint8Array,
  limits: ChainLimits = defaultChainLimits,
): Result<CertifiedBlock> {
  return run(() =>
    new Reader(limits).certifiedBlock(
      parse(bytes, blockBytesEncodedMax(limits) + certificateBytesMax(limits)),
      'block',
    ),
  );
}

/** Decodes a block header from its JSON form (e.g. from the block store). */
export function headerFromJson(v: unknown, limits: ChainLimits = defaultChainLimits): Result<BlockHeader> {
  return run(() => new Reader(limits).header(v, 'header'));
}

/** Checks a validator list as the core needs it (genesis.ts builds it from the genesis file). */
export function checkValidators(validators: readonly Validator[], limits: ChainLimits): string | null {
  if (validators.length < 1) return 'no validators';
  if (validators.length > limits.validatorsMax)
    return `${validators.length} validators > ${limits.validatorsMax}`;
  const seen = new Set<string>();
  for (const [i, v] of validators.entries()) {
    if (!keyAlgorithms.includes(v.alg)) return `validator ${i}: unknown algorithm ${v.alg}`;
    const k = `${v.alg}:${b64(v.publicKey)}`;
    if (seen.has(k)) return `validator ${i}: duplicate key`;
    seen.add(k);
  }
  return null;
}
