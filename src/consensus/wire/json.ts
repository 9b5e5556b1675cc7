/**
 * The JSON form of blocks, headers and certificates, for people and HTTP clients only: the validator
 * API's `GET /v1/blocks/<h>` and inclusion proofs (runtime/block-store.ts `inclusionProofToJson`).
 * Validators never send or store it: messages, stored blocks and replica records are binary
 * (codec.ts). It is the canonical JSON of core/forms.ts, the forms that are hashed and signed, with
 * byte fields as unpadded base64url, so a client can recompute a block hash from what it read.
 *
 * Reading is as strict as the binary decoder: exact key sets, safe integers within range,
 * canonical base64url only (a second text for the same bytes is refused), limits checked, votes
 * sorted and distinct. It returns `{ ok: false, error }` with a stable code, never throws.
 *
 * @example
 *   const r = certifiedBlockFromJson(await (await fetch(`${url}/v1/blocks/7`)).json(), genesis.chainLimits);
 *   if (r.ok && verifyCertifiedBlock(ctx, limits, r.value) === null) use(r.value);
 */
import { fromBase64Url, hashBytes, toBase64Url } from '../../crypto/hash.ts';
import { signatureBytes } from '../../crypto/keys.ts';
import { type ConsensusError, type ErrorCode, err, type Result } from '../core/errors.ts';
import { certificateToJson, headerToJson, type Json } from '../core/forms.ts';
import { chainIdPattern, defaultChainLimits, integerMax } from '../core/limits.ts';
import type {
  Block,
  BlockHeader,
  CertifiedBlock,
  ChainLimits,
  CommitCertificate,
  Vote,
} from '../core/types.ts';

export function blockToJson(b: Block): Json {
  return { header: headerToJson(b.header), txs: b.txs.map(toBase64Url) };
}

export function certifiedBlockToJson(cb: CertifiedBlock): Json {
  return { block: blockToJson(cb.block), certificate: certificateToJson(cb.certificate) };
}

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
    // Checked on the text before decoding it: a declared length costs nothing until it passes.
    if (Math.floor((v.length * 3) / 4) > lengthMax)
      throw new Fail('limit', `${path}: more than ${lengthMax} bytes`);
    const out = fromBase64Url(v);
    if (lengthExact !== undefined && out.byteLength !== lengthExact) {
      throw new Fail('shape', `${path}: ${out.byteLength} bytes, expected ${lengthExact}`);
    }
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

  block(v: unknown, path: string): Block {
    const o = this.object(v, path, ['header', 'txs']);
    const header = this.header(o.header, `${path}.header`);
    const arr = this.array(o.txs, `${path}.txs`, this.limits.blockTxsMax);
    let total = 0;
    const txs = arr.map((t, i) => {
      const tx = this.bytes(t, `${path}.txs[${i}]`, undefined, this.limits.txBytesMax);
      if (tx.byteLength === 0) throw new Fail('shape', `${path}.txs[${i}]: empty transaction`);
      total += tx.byteLength;
      return tx;
    });
    if (total > this.limits.blockBytesMax)
      throw new Fail('limit', `${path}.txs: ${total} bytes > ${this.limits.blockBytesMax}`);
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
}

function run<T>(f: () => T): Result<T> {
  try {
    return { ok: true, value: f() };
  } catch (e) {
    if (e instanceof Fail) return { ok: false, error: e.error };
    return { ok: false, error: err('shape', `decoder failure: ${(e as Error)?.message ?? String(e)}`) };
  }
}

/** Reads `certifiedBlockToJson` back (e.g. the answer of `GET /v1/blocks/<h>`). */
export function certifiedBlockFromJson(
  v: unknown,
  limits: ChainLimits = defaultChainLimits,
): Result<CertifiedBlock> {
  return run(() => new Reader(limits).certifiedBlock(v, 'block'));
}

/** Reads a commit certificate's JSON form (an inclusion proof's, say). */
export function certificateFromJson(
  v: unknown,
  limits: ChainLimits = defaultChainLimits,
): Result<CommitCertificate> {
  return run(() => new Reader(limits).certificate(v, 'certificate'));
}

/** Reads a block header's JSON form (an inclusion proof's, say). */
export function headerFromJson(v: unknown, limits: ChainLimits = defaultChainLimits): Result<BlockHeader> {
  return run(() => new Reader(limits).header(v, 'header'));
}
