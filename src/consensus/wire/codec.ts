/**
 * The wire and storage form of consensus data: what validators send each other, what the block
 * store keeps, and what the HTTP API serves. RFC 8785 canonical JSON of the forms in
 * src/consensus/core/forms.ts (the same bytes that are hashed and signed), byte fields as unpadded
 * base64url.
 *
 * Decoding never throws: `decodeMessage` returns `{ ok: false, error }` with a stable `code`
 * (core/errors.ts) for any input. It checks shape, ranges and size limits; core/verify.ts checks
 * signatures, quorums and Merkle roots against the validator set.
 *
 * @example
 *   const bytes = encodeMessage(prepare);
 *   const r = decodeMessage(bytes, defaultChainLimits);
 *   if (!r.ok) peerFaults.count(peer, r.error.code);
 *   else if (verifySignedMessage(ctx, r.value) === null) node.feed(peer, r.value);
 */
import { encodeCanonical } from '../../crypto/canonical.ts';
import { fromBase64Url, hashBytes, toBase64Url } from '../../crypto/hash.ts';
import { signatureBytes } from '../../crypto/keys.ts';
import { type ConsensusError, type ErrorCode, err, type Result } from '../core/errors.ts';
import {
  certificateToJson,
  headerToJson,
  type Json,
  newViewToJson,
  viewChangeToJson,
} from '../core/forms.ts';
import { chainIdPattern, defaultChainLimits, integerMax } from '../core/limits.ts';
import type {
  Block,
  BlockHeader,
  CertifiedBlock,
  ChainLimits,
  CommitCertificate,
  Message,
  PreparedCertificate,
  ViewChange,
  Vote,
} from '../core/types.ts';
import { blockBytesEncodedMax, certificateBytesMax, messageBytesMax } from './limits.ts';

const b64 = toBase64Url;

export function blockToJson(b: Block): Json {
  return { header: headerToJson(b.header), txs: b.txs.map(b64) };
}

export function certifiedBlockToJson(cb: CertifiedBlock): Json {
  return { block: blockToJson(cb.block), certificate: certificateToJson(cb.certificate) };
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
      return newViewToJson(m);
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

/** Decodes a commit certificate from its JSON form (an inclusion proof, say). */
export function certificateFromJson(
  v: unknown,
  limits: ChainLimits = defaultChainLimits,
): Result<CommitCertificate> {
  return run(() => new Reader(limits).certificate(v, 'certificate'));
}

/** Decodes a prepared certificate from its JSON form (the block store keeps a replica's). */
export function preparedFromJson(
  v: unknown,
  limits: ChainLimits = defaultChainLimits,
): Result<PreparedCertificate> {
  return run(() => new Reader(limits).prepared(v, 'prepared'));
}

/** Decodes a block header from its JSON form (e.g. from the block store). */
export function headerFromJson(v: unknown, limits: ChainLimits = defaultChainLimits): Result<BlockHeader> {
  return run(() => new Reader(limits).header(v, 'header'));
}
