/**
 * The binary form of consensus data: what validators send each other (libp2p messages and sync
 * answers) and what the block store keeps (certified blocks and the replica's records). The JSON
 * form survives only where people and HTTP clients read it (json.ts).
 *
 * Why binary: transactions are opaque byte strings of up to a few hundred KiB (gateway-signed
 * batches). As base64 inside JSON they cost a third more bytes on the wire and on disk, and every
 * validator parsed JSON for every message. Here a transaction is a length and its bytes, copied once.
 * Hashes and signatures do not depend on this form: they are computed from the typed fields over
 * the canonical JSON of core/forms.ts (core/signing.ts), so changing the encoding changed nothing
 * that is hashed or signed.
 *
 * Layout (the table is in docs/consensus.md, "Encoding"; widths in limits.ts): every message and
 * stored record opens with the format byte `wireFormat` and a type tag. Integers are big-endian and
 * fixed-width: heights, views and timestamps u64 (at most 2^53−1), replica indexes and the header
 * version u16, counts and transaction lengths u32; hashes are 32 bytes and signatures 64, with no
 * length; the chain id is a u8 length and its ASCII characters; a flag is one byte, 0 or 1. No
 * padding, no optional fields but the VIEW-CHANGE's checkpoint (after a flag).
 *
 * Decoding never throws: it returns `{ ok: false, error }` with a stable code (core/errors.ts) for
 * any input. It is strict: exact lengths, no trailing bytes, every count and length checked against
 * the chain's limits and against the bytes left BEFORE anything is allocated for it, votes sorted
 * and distinct, heights of a sync answer consecutive. There is one encoding per value, so
 * `encode(decode(b))` is `b` for every accepted `b`. Decoded byte fields are copies, never views of
 * the input: a transaction kept in the mempool holds its own bytes, not the message it came in.
 * core/verify.ts checks signatures, quorums and Merkle roots against the validator set.
 *
 * Encoding throws RangeError for a value the form cannot hold (a fractional or negative integer, one
 * above 2^53−1, a hash of another length): a bug in the caller, never peer input.
 *
 * @example
 *   const bytes = encodeMessage(prepare);
 *   const r = decodeMessage(bytes, defaultChainLimits);
 *   if (!r.ok) peerFaults.count(peer, r.error.code);
 *   else if (verifySignedMessage(ctx, r.value) === null) node.feed(peer, r.value);
 */
import { hashBytes } from '../../crypto/hash.ts';
import { signatureBytes } from '../../crypto/keys.ts';
import { type ConsensusError, type ErrorCode, err, type Result } from '../core/errors.ts';
import type { VoteKind, VoteRecord } from '../core/io.ts';
import { chainIdPattern, defaultChainLimits, integerMax } from '../core/limits.ts';
import type {
  Block,
  BlockHeader,
  CertifiedBlock,
  ChainLimits,
  CommitCertificate,
  Message,
  MessageType,
  NewView,
  PreparedCertificate,
  ViewChange,
  Vote,
} from '../core/types.ts';
import {
  blockBytesEncodedMax,
  certifiedBlockBytesMax,
  countBytes,
  envelopeBytes,
  headerBytesMin,
  integerBytes,
  messageBytesMax,
  preparedBytesMax,
  txLengthBytes,
  voteBytes,
} from './limits.ts';

/** First byte of every encoded message and record. A JSON text starts with `{` (0x7b) instead. */
export const wireFormat = 1;

/** Second byte of an encoded message: its type. */
export const messageTags: Readonly<Record<MessageType, number>> = Object.freeze({
  'pre-prepare': 0x01,
  prepare: 0x02,
  commit: 0x03,
  'view-change': 0x04,
  'new-view': 0x05,
  status: 0x06,
  'sync-request': 0x07,
  'sync-response': 0x08,
  'proposal-request': 0x09,
  'proposal-response': 0x0a,
  txs: 0x0b,
});

/** Second byte of a stored record (never sent: `decodeMessage` refuses them as unknown types). */
export const recordTags = Object.freeze({
  certifiedBlock: 0x40,
  prepared: 0x41,
  vote: 0x42,
  view: 0x43,
  stateTip: 0x44,
});

const voteKindCodes: readonly VoteKind[] = ['pre-prepare', 'prepare', 'commit'];

/** The block store's record of the block its application state is as of (height 0: the genesis). */
export interface StateTip {
  height: number;
  blockHash: Uint8Array;
}

// ---------------------------------------------------------------------------------------------
// Sizes: every encoding is sized first and written into one allocation.

const u8 = 1;
const u16 = 2;
const u64 = integerBytes;
const utf8 = new TextEncoder();
let chainIdCache = { text: '', bytes: new Uint8Array(0) };

function chainIdBytes(chainId: string): Uint8Array {
  if (chainIdCache.text !== chainId) chainIdCache = { text: chainId, bytes: utf8.encode(chainId) };
  return chainIdCache.bytes;
}

const headerSize = (h: BlockHeader) => headerBytesMin - 1 + chainIdBytes(h.chainId).byteLength;

function txsSize(txs: readonly Uint8Array[]): number {
  let n = countBytes + txs.length * txLengthBytes;
  for (const tx of txs) n += tx.byteLength;
  return n;
}

const blockSize = (b: Block) => headerSize(b.header) + txsSize(b.txs);
const votesSize = (votes: readonly Vote[]) => countBytes + votes.length * voteBytes;
const certificateSize = (c: CommitCertificate) => u64 + u64 + hashBytes + votesSize(c.commits);
const preparedSize = (p: PreparedCertificate) =>
  u64 + headerSize(p.header) + signatureBytes + votesSize(p.prepares);

function viewChangeSize(vc: ViewChange): number {
  let n = u64 + u16 + u8 + countBytes + signatureBytes;
  if (vc.checkpoint) n += certificateSize(vc.checkpoint);
  for (const p of vc.prepared) n += preparedSize(p);
  return n;
}

function messageSize(m: Message): number {
  switch (m.type) {
    case 'pre-prepare':
      return u64 + u16 + signatureBytes + blockSize(m.block);
    case 'prepare':
    case 'commit':
      return u64 + u64 + hashBytes + u16 + signatureBytes;
    case 'view-change':
      return viewChangeSize(m);
    case 'new-view': {
      let n = u64 + u16 + countBytes + signatureBytes;
      for (const vc of m.viewChanges) n += viewChangeSize(vc);
      return n;
    }
    case 'status':
      return u64 + u8 + u64;
    case 'sync-request':
      return u64 + countBytes;
    case 'sync-response': {
      let n = countBytes;
      for (const cb of m.blocks) n += blockSize(cb.block) + certificateSize(cb.certificate);
      return n;
    }
    case 'proposal-request':
      return u64 + hashBytes;
    case 'proposal-response':
      return blockSize(m.block);
    case 'txs':
      return txsSize(m.txs);
  }
}

// ---------------------------------------------------------------------------------------------
// Writing

class Writer {
  readonly out: Uint8Array;
  readonly #view: DataView;
  #at = 0;

  constructor(bodyBytes: number, tag: number) {
    this.out = new Uint8Array(envelopeBytes + bodyBytes);
    this.#view = new DataView(this.out.buffer);
    this.u8(wireFormat, 'format');
    this.u8(tag, 'tag');
  }

  #uint(v: number, max: number, what: string): void {
    if (!Number.isSafeInteger(v) || v < 0 || v > max) {
      throw new RangeError(`cannot encode ${what} = ${v}: not an integer in 0..${max}`);
    }
  }

  u8(v: number, what: string): void {
    this.#uint(v, 0xff, what);
    this.out[this.#at++] = v;
  }

  u16(v: number, what: string): void {
    this.#uint(v, 0xffff, what);
    this.#view.setUint16(this.#at, v);
    this.#at += 2;
  }

  u32(v: number, what: string): void {
    this.#uint(v, 0xffff_ffff, what);
    this.#view.setUint32(this.#at, v);
    this.#at += 4;
  }

  u64(v: number, what: string): void {
    this.#uint(v, integerMax, what);
    this.#view.setUint32(this.#at, Math.floor(v / 0x1_0000_0000));
    this.#view.setUint32(this.#at + 4, v >>> 0);
    this.#at += 8;
  }

  flag(v: boolean): void {
    this.out[this.#at++] = v ? 1 : 0;
  }

  fixed(bytes: Uint8Array, length: number, what: string): void {
    if (bytes.byteLength !== length) {
      throw new RangeError(`cannot encode ${what}: ${bytes.byteLength} bytes, the form holds ${length}`);
    }
    this.out.set(bytes, this.#at);
    this.#at += length;
  }

  raw(bytes: Uint8Array): void {
    this.out.set(bytes, this.#at);
    this.#at += bytes.byteLength;
  }

  done(): Uint8Array {
    if (this.#at !== this.out.byteLength) {
      throw new Error(`codec bug: wrote ${this.#at} bytes of ${this.out.byteLength}`);
    }
    return this.out;
  }
}

function writeHeader(w: Writer, h: BlockHeader): void {
  const chainId = chainIdBytes(h.chainId);
  w.u16(h.version, 'header.version');
  w.u8(chainId.byteLength, 'header.chainId length');
  w.raw(chainId);
  w.u64(h.height, 'header.height');
  w.u64(h.view, 'header.view');
  w.fixed(h.prevHash, hashBytes, 'header.prevHash');
  w.u64(h.timestampMs, 'header.timestampMs');
  w.fixed(h.txRoot, hashBytes, 'header.txRoot');
  w.u32(h.txCount, 'header.txCount');
  w.u16(h.proposer, 'header.proposer');
}

function writeTxs(w: Writer, txs: readonly Uint8Array[]): void {
  w.u32(txs.length, 'transaction count');
  for (const tx of txs) {
    w.u32(tx.byteLength, 'transaction length');
    w.raw(tx);
  }
}

function writeBlock(w: Writer, b: Block): void {
  writeHeader(w, b.header);
  writeTxs(w, b.txs);
}

function writeVotes(w: Writer, votes: readonly Vote[]): void {
  w.u32(votes.length, 'vote count');
  for (const v of votes) {
    w.u16(v.replica, 'vote replica');
    w.fixed(v.signature, signatureBytes, 'vote signature');
  }
}

function writeCertificate(w: Writer, c: CommitCertificate): void {
  w.u64(c.height, 'certificate.height');
  w.u64(c.view, 'certificate.view');
  w.fixed(c.blockHash, hashBytes, 'certificate.blockHash');
  writeVotes(w, c.commits);
}

function writePrepared(w: Writer, p: PreparedCertificate): void {
  w.u64(p.view, 'prepared.view');
  writeHeader(w, p.header);
  w.fixed(p.prePrepareSignature, signatureBytes, 'prepared.prePrepareSignature');
  writeVotes(w, p.prepares);
}

function writeViewChange(w: Writer, vc: ViewChange): void {
  w.u64(vc.view, 'view-change.view');
  w.u16(vc.replica, 'view-change.replica');
  w.flag(vc.checkpoint !== null);
  if (vc.checkpoint) writeCertificate(w, vc.checkpoint);
  w.u32(vc.prepared.length, 'prepared count');
  for (const p of vc.prepared) writePrepared(w, p);
  w.fixed(vc.signature, signatureBytes, 'view-change.signature');
}

function writeMessage(w: Writer, m: Message): void {
  switch (m.type) {
    case 'pre-prepare':
      w.u64(m.view, 'view');
      w.u16(m.replica, 'replica');
      w.fixed(m.signature, signatureBytes, 'signature');
      writeBlock(w, m.block);
      return;
    case 'prepare':
    case 'commit':
      w.u64(m.view, 'view');
      w.u64(m.height, 'height');
      w.fixed(m.blockHash, hashBytes, 'blockHash');
      w.u16(m.replica, 'replica');
      w.fixed(m.signature, signatureBytes, 'signature');
      return;
    case 'view-change':
      writeViewChange(w, m);
      return;
    case 'new-view':
      w.u64(m.view, 'view');
      w.u16(m.replica, 'replica');
      w.u32(m.viewChanges.length, 'view-change count');
      for (const vc of m.viewChanges) writeViewChange(w, vc);
      w.fixed(m.signature, signatureBytes, 'signature');
      return;
    case 'status':
      w.u64(m.view, 'view');
      w.flag(m.viewChanging);
      w.u64(m.committedHeight, 'committedHeight');
      return;
    case 'sync-request':
      w.u64(m.fromHeight, 'fromHeight');
      w.u32(m.count, 'count');
      return;
    case 'sync-response':
      w.u32(m.blocks.length, 'block count');
      for (const cb of m.blocks) {
        writeBlock(w, cb.block);
        writeCertificate(w, cb.certificate);
      }
      return;
    case 'proposal-request':
      w.u64(m.height, 'height');
      w.fixed(m.blockHash, hashBytes, 'blockHash');
      return;
    case 'proposal-response':
      writeBlock(w, m.block);
      return;
    case 'txs':
      writeTxs(w, m.txs);
      return;
  }
}

export function encodeMessage(m: Message): Uint8Array {
  const w = new Writer(messageSize(m), messageTags[m.type]);
  writeMessage(w, m);
  return w.done();
}

/** A committed block with its certificate, as the block store keeps it. */
export function encodeCertifiedBlock(cb: CertifiedBlock): Uint8Array {
  const w = new Writer(blockSize(cb.block) + certificateSize(cb.certificate), recordTags.certifiedBlock);
  writeBlock(w, cb.block);
  writeCertificate(w, cb.certificate);
  return w.done();
}

/** A replica's prepared certificate with its block body (the block store's `replica_prepared`). */
export function encodePrepared(r: { certificate: PreparedCertificate; block: Block }): Uint8Array {
  const w = new Writer(preparedSize(r.certificate) + blockSize(r.block), recordTags.prepared);
  writePrepared(w, r.certificate);
  writeBlock(w, r.block);
  return w.done();
}

/** A replica's vote record (the block store's `replica_votes`). */
export function encodeVoteRecord(r: VoteRecord): Uint8Array {
  const w = new Writer(u8 + u64 + u64 + hashBytes, recordTags.vote);
  w.u8(voteKindCodes.indexOf(r.vote) + 1, 'vote kind');
  w.u64(r.view, 'vote.view');
  w.u64(r.height, 'vote.height');
  w.fixed(r.blockHash, hashBytes, 'vote.blockHash');
  return w.done();
}

/** A replica's view record (the block store's `replica_slots` 'view'). */
export function encodeViewRecord(r: { view: number; viewChanging: boolean }): Uint8Array {
  const w = new Writer(u64 + u8, recordTags.view);
  w.u64(r.view, 'view');
  w.flag(r.viewChanging);
  return w.done();
}

export function encodeStateTip(t: StateTip): Uint8Array {
  const w = new Writer(u64 + hashBytes, recordTags.stateTip);
  w.u64(t.height, 'state tip height');
  w.fixed(t.blockHash, hashBytes, 'state tip blockHash');
  return w.done();
}

// ---------------------------------------------------------------------------------------------
// Reading: strict, never throws out of this file.

class Fail {
  readonly error: ConsensusError;
  constructor(code: ErrorCode, detail: string) {
    this.error = err(code, detail);
  }
}

class Reader {
  readonly limits: ChainLimits;
  readonly #b: Uint8Array;
  readonly #view: DataView;
  #at = 0;

  constructor(bytes: Uint8Array, limits: ChainLimits) {
    this.limits = limits;
    // A plain Uint8Array over the same memory: `slice` then copies (on a Buffer it would not).
    this.#b = new Uint8Array(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    this.#view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  }

  get left(): number {
    return this.#b.byteLength - this.#at;
  }

  #need(n: number, path: string): void {
    if (this.left < n) {
      throw new Fail('shape', `${path}: truncated at byte ${this.#at} (${n} needed, ${this.left} left)`);
    }
  }

  u8(path: string): number {
    this.#need(1, path);
    return this.#b[this.#at++]!;
  }

  u16(path: string): number {
    this.#need(2, path);
    const v = this.#view.getUint16(this.#at);
    this.#at += 2;
    return v;
  }

  u32(path: string): number {
    this.#need(4, path);
    const v = this.#view.getUint32(this.#at);
    this.#at += 4;
    return v;
  }

  /** A u64 within min..max (max at most 2^53−1). */
  int(path: string, min = 0, max = integerMax): number {
    this.#need(8, path);
    const hi = this.#view.getUint32(this.#at);
    const lo = this.#view.getUint32(this.#at + 4);
    this.#at += 8;
    if (hi > 0x1f_ffff) throw new Fail('limit', `${path}: above 2^53−1`);
    const v = hi * 0x1_0000_0000 + lo;
    if (v < min || v > max) throw new Fail('limit', `${path}: ${v} outside ${min}..${max}`);
    return v;
  }

  flag(path: string): boolean {
    const v = this.u8(path);
    if (v > 1) throw new Fail('shape', `${path}: flag ${v}, not 0 or 1`);
    return v === 1;
  }

  replica(path: string): number {
    const v = this.u16(path);
    if (v >= this.limits.validatorsMax) {
      throw new Fail('limit', `${path}: ${v} outside 0..${this.limits.validatorsMax - 1}`);
    }
    return v;
  }

  /** A copy of the next `n` bytes (the caller has checked `n` against its limits). */
  bytes(n: number, path: string): Uint8Array {
    this.#need(n, path);
    const out = this.#b.slice(this.#at, this.#at + n);
    this.#at += n;
    return out;
  }

  /**
   * A list's count: at most `max` (else 'limit'), and no more items than the bytes left can hold at
   * `itemBytesMin` each (else 'shape'): both before anything is allocated for them.
   */
  count(path: string, max: number, itemBytesMin: number): number {
    const n = this.u32(`${path} count`);
    if (n > max) throw new Fail('limit', `${path}: ${n} items > ${max}`);
    if (n * itemBytesMin > this.left) {
      throw new Fail('shape', `${path}: ${n} items cannot fit in the ${this.left} bytes left`);
    }
    return n;
  }

  /** Envelope: the format byte and the tag. */
  envelope(): number {
    if (this.left === 0) throw new Fail('shape', 'empty');
    const format = this.u8('format');
    if (format !== wireFormat) {
      throw new Fail(
        'shape',
        format === 0x7b
          ? 'JSON, not the binary form (written by an earlier release?)'
          : `format byte ${format}, expected ${wireFormat}`,
      );
    }
    return this.u8('type');
  }

  end(): void {
    if (this.left !== 0) throw new Fail('shape', `${this.left} trailing bytes at byte ${this.#at}`);
  }

  header(path: string): BlockHeader {
    const version = this.u16(`${path}.version`);
    const chainIdLength = this.u8(`${path}.chainId length`);
    this.#need(chainIdLength, `${path}.chainId`);
    const chainId = String.fromCharCode(...this.#b.subarray(this.#at, this.#at + chainIdLength));
    this.#at += chainIdLength;
    if (!chainIdPattern.test(chainId)) throw new Fail('shape', `${path}.chainId: not a chain id`);
    return {
      version,
      chainId,
      height: this.int(`${path}.height`, 1),
      view: this.int(`${path}.view`),
      prevHash: this.bytes(hashBytes, `${path}.prevHash`),
      timestampMs: this.int(`${path}.timestampMs`),
      txRoot: this.bytes(hashBytes, `${path}.txRoot`),
      txCount: this.#txCount(`${path}.txCount`),
      proposer: this.replica(`${path}.proposer`),
    };
  }

  #txCount(path: string): number {
    const n = this.u32(path);
    if (n > this.limits.blockTxsMax)
      throw new Fail('limit', `${path}: ${n} outside 0..${this.limits.blockTxsMax}`);
    return n;
  }

  txs(path: string, countMax: number): Uint8Array[] {
    const { txBytesMax, blockBytesMax } = this.limits;
    const n = this.count(path, countMax, txLengthBytes + 1);
    const out: Uint8Array[] = [];
    let total = 0;
    for (let i = 0; i < n; i++) {
      const length = this.u32(`${path}[${i}] length`);
      if (length === 0) throw new Fail('shape', `${path}[${i}]: empty transaction`);
      if (length > txBytesMax) throw new Fail('limit', `${path}[${i}]: ${length} bytes > ${txBytesMax}`);
      total += length;
      if (total > blockBytesMax) throw new Fail('limit', `${path}: more than ${blockBytesMax} bytes`);
      out.push(this.bytes(length, `${path}[${i}]`));
    }
    return out;
  }

  block(path: string): Block {
    const header = this.header(`${path}.header`);
    return { header, txs: this.txs(`${path}.txs`, this.limits.blockTxsMax) };
  }

  votes(path: string): Vote[] {
    const n = this.count(path, this.limits.validatorsMax, voteBytes);
    const votes: Vote[] = [];
    for (let i = 0; i < n; i++) {
      const replica = this.replica(`${path}[${i}].replica`);
      if (i > 0 && votes[i - 1]!.replica >= replica) {
        throw new Fail('votes-unsorted', `${path}: not sorted and distinct`);
      }
      votes.push({ replica, signature: this.bytes(signatureBytes, `${path}[${i}].signature`) });
    }
    return votes;
  }

  certificate(path: string): CommitCertificate {
    return {
      height: this.int(`${path}.height`, 1),
      view: this.int(`${path}.view`),
      blockHash: this.bytes(hashBytes, `${path}.blockHash`),
      commits: this.votes(`${path}.commits`),
    };
  }

  certifiedBlock(path: string): CertifiedBlock {
    const block = this.block(`${path}.block`);
    return { block, certificate: this.certificate(`${path}.certificate`) };
  }

  prepared(path: string): PreparedCertificate {
    return {
      view: this.int(`${path}.view`),
      header: this.header(`${path}.header`),
      prePrepareSignature: this.bytes(signatureBytes, `${path}.prePrepareSignature`),
      prepares: this.votes(`${path}.prepares`),
    };
  }

  viewChange(path: string): ViewChange {
    const view = this.int(`${path}.view`);
    const replica = this.replica(`${path}.replica`);
    const checkpoint = this.flag(`${path}.checkpoint flag`) ? this.certificate(`${path}.checkpoint`) : null;
    const n = this.count(`${path}.prepared`, this.limits.windowHeights, preparedBytesMin);
    const prepared: PreparedCertificate[] = [];
    for (let i = 0; i < n; i++) {
      const p = this.prepared(`${path}.prepared[${i}]`);
      // One certificate per height, ascending: keeps the selection simple and the message bounded.
      if (i > 0 && prepared[i - 1]!.header.height >= p.header.height) {
        throw new Fail('shape', `${path}.prepared: heights not ascending and distinct`);
      }
      prepared.push(p);
    }
    const signature = this.bytes(signatureBytes, `${path}.signature`);
    return { type: 'view-change', view, replica, checkpoint, prepared, signature };
  }

  message(): Message {
    const tag = this.envelope();
    const m = this.#body(tag);
    this.end();
    return m;
  }

  #body(tag: number): Message {
    switch (tag) {
      case messageTags['pre-prepare']: {
        const view = this.int('view');
        const replica = this.replica('replica');
        const signature = this.bytes(signatureBytes, 'signature');
        return { type: 'pre-prepare', view, replica, block: this.block('block'), signature };
      }
      case messageTags.prepare:
      case messageTags.commit:
        return {
          type: tag === messageTags.prepare ? 'prepare' : 'commit',
          view: this.int('view'),
          height: this.int('height', 1),
          blockHash: this.bytes(hashBytes, 'blockHash'),
          replica: this.replica('replica'),
          signature: this.bytes(signatureBytes, 'signature'),
        };
      case messageTags['view-change']:
        return this.viewChange('view-change');
      case messageTags['new-view']: {
        const view = this.int('view');
        const replica = this.replica('replica');
        const n = this.count('viewChanges', this.limits.validatorsMax, viewChangeBytesMin);
        const viewChanges: ViewChange[] = [];
        for (let i = 0; i < n; i++) {
          const vc = this.viewChange(`viewChanges[${i}]`);
          if (i > 0 && viewChanges[i - 1]!.replica >= vc.replica) {
            throw new Fail('votes-unsorted', 'viewChanges: not sorted by replica and distinct');
          }
          viewChanges.push(vc);
        }
        const signature = this.bytes(signatureBytes, 'signature');
        return { type: 'new-view', view, replica, viewChanges, signature } satisfies NewView;
      }
      case messageTags.status:
        return {
          type: 'status',
          view: this.int('view'),
          viewChanging: this.flag('viewChanging'),
          committedHeight: this.int('committedHeight'),
        };
      case messageTags['sync-request']: {
        const fromHeight = this.int('fromHeight', 1);
        const count = this.u32('count');
        if (count < 1 || count > this.limits.syncBlocksMax) {
          throw new Fail('limit', `count: ${count} outside 1..${this.limits.syncBlocksMax}`);
        }
        return { type: 'sync-request', fromHeight, count };
      }
      case messageTags['sync-response']: {
        const n = this.count('blocks', this.limits.syncBlocksMax, certifiedBlockBytesMin);
        const blocks: CertifiedBlock[] = [];
        for (let i = 0; i < n; i++) {
          const cb = this.certifiedBlock(`blocks[${i}]`);
          if (i > 0 && cb.block.header.height !== blocks[i - 1]!.block.header.height + 1) {
            throw new Fail('shape', 'blocks: heights not consecutive');
          }
          blocks.push(cb);
        }
        return { type: 'sync-response', blocks };
      }
      case messageTags['proposal-request']:
        return {
          type: 'proposal-request',
          height: this.int('height', 1),
          blockHash: this.bytes(hashBytes, 'blockHash'),
        };
      case messageTags['proposal-response']:
        return { type: 'proposal-response', block: this.block('block') };
      case messageTags.txs:
        return { type: 'txs', txs: this.txs('txs', this.limits.forwardTxsMax) };
      default:
        throw new Fail('unknown-type', `message type ${tag}`);
    }
  }

  /** A stored record: the envelope must carry `tag`, and nothing may follow the body. */
  record<T>(tag: number, what: string, body: () => T): T {
    const got = this.envelope();
    if (got !== tag) throw new Fail('unknown-type', `type ${got}, not a ${what} record (${tag})`);
    const v = body();
    this.end();
    return v;
  }
}

const votesBytesMin = countBytes;
const certificateBytesMin = u64 + u64 + hashBytes + votesBytesMin;
const preparedBytesMin = u64 + headerBytesMin + signatureBytes + votesBytesMin;
const viewChangeBytesMin = u64 + u16 + u8 + countBytes + signatureBytes;
const certifiedBlockBytesMin = headerBytesMin + countBytes + certificateBytesMin;

function run<T>(bytes: Uint8Array, max: number, limits: ChainLimits, f: (r: Reader) => T): Result<T> {
  if (bytes.byteLength > max) {
    return { ok: false, error: err('too-large', `${bytes.byteLength} bytes > ${max}`) };
  }
  try {
    return { ok: true, value: f(new Reader(bytes, limits)) };
  } catch (e) {
    if (e instanceof Fail) return { ok: false, error: e.error };
    // Anything else is a bug in this file, not bad input; still never escape to the caller.
    return { ok: false, error: err('shape', `decoder failure: ${(e as Error)?.message ?? String(e)}`) };
  }
}

/** Decodes one message from a peer. Checks shape and limits only; see `verify*` for the rest. */
export function decodeMessage(bytes: Uint8Array, limits: ChainLimits = defaultChainLimits): Result<Message> {
  return run(bytes, messageBytesMax(limits), limits, (r) => r.message());
}

/** Decodes a stored block with its certificate (`encodeCertifiedBlock`). */
export function decodeCertifiedBlock(
  bytes: Uint8Array,
  limits: ChainLimits = defaultChainLimits,
): Result<CertifiedBlock> {
  return run(bytes, envelopeBytes + certifiedBlockBytesMax(limits), limits, (r) =>
    r.record(recordTags.certifiedBlock, 'certified block', () => r.certifiedBlock('block')),
  );
}

/** Decodes a stored prepared certificate with its block (`encodePrepared`). */
export function decodePrepared(
  bytes: Uint8Array,
  limits: ChainLimits = defaultChainLimits,
): Result<{ certificate: PreparedCertificate; block: Block }> {
  return run(bytes, envelopeBytes + preparedBytesMax(limits) + blockBytesEncodedMax(limits), limits, (r) =>
    r.record(recordTags.prepared, 'prepared', () => {
      const certificate = r.prepared('prepared');
      return { certificate, block: r.block('block') };
    }),
  );
}

/** Decodes a stored vote record (`encodeVoteRecord`). */
export function decodeVoteRecord(bytes: Uint8Array): Result<VoteRecord> {
  return run(bytes, envelopeBytes + u8 + u64 + u64 + hashBytes, defaultChainLimits, (r) =>
    r.record(recordTags.vote, 'vote', () => {
      const code = r.u8('vote kind');
      const vote = voteKindCodes[code - 1];
      if (!vote) throw new Fail('shape', `vote kind ${code}`);
      return {
        kind: 'vote' as const,
        vote,
        view: r.int('view'),
        height: r.int('height', 1),
        blockHash: r.bytes(hashBytes, 'blockHash'),
      };
    }),
  );
}

/** Decodes a stored view record (`encodeViewRecord`). */
export function decodeViewRecord(bytes: Uint8Array): Result<{ view: number; viewChanging: boolean }> {
  return run(bytes, envelopeBytes + u64 + u8, defaultChainLimits, (r) =>
    r.record(recordTags.view, 'view', () => ({ view: r.int('view'), viewChanging: r.flag('viewChanging') })),
  );
}

/** Decodes the block store's state tip record (`encodeStateTip`). */
export function decodeStateTip(bytes: Uint8Array): Result<StateTip> {
  return run(bytes, envelopeBytes + u64 + hashBytes, defaultChainLimits, (r) =>
    r.record(recordTags.stateTip, 'state tip', () => ({
      height: r.int('height'),
      blockHash: r.bytes(hashBytes, 'blockHash'),
    })),
  );
}
