/**
 * Hashing and signing of consensus data. Hashes and signatures never depend on wire bytes: they are
 * computed over canonical JSON of typed fields (forms.ts) with a domain tag per purpose
 * (`masbc-edge/ipbft/v<blockVersion>/<purpose>` then a NUL byte; v2 today), so a signature on a PREPARE can never be
 * replayed as a COMMIT, a NEW-VIEW or on another chain.
 */
import { encodeCanonical } from '../../crypto/canonical.ts';
import { sha256, toBase64Url } from '../../crypto/hash.ts';
import type { Signer } from '../../crypto/keys.ts';
import { merkleRoot } from '../../crypto/merkle.ts';
import { headerToJson, newViewToJson, viewChangeToJson } from './forms.ts';
import {
  type BlockHeader,
  blockVersion,
  type NewView,
  type SignedMessage,
  type ViewChange,
} from './types.ts';

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

/**
 * RFC 6962 root over the transactions' ids (`TxHooks.txId`), in block order. An id must commit to
 * every byte of its transaction (the ledger's do), so the root covers the block's contents while an
 * inclusion proof needs only the transaction's id, not its bytes.
 */
export function txRootOf(txIds: readonly Uint8Array[]): Uint8Array {
  return merkleRoot(txIds);
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

/**
 * Signing bytes of VIEW-CHANGEs and NEW-VIEWs, memoised per message object and chain id, like block
 * hashes: messages are immutable values (a changed one is a new object), and one VIEW-CHANGE's bytes
 * are needed several times (its signature check, its key in the verified set, inside NEW-VIEWs).
 */
const viewSigningBytes = new WeakMap<ViewChange | NewView, { chainId: string; bytes: Uint8Array }>();

function memoised(chainId: string, msg: ViewChange | NewView, make: () => Uint8Array): Uint8Array {
  const m = viewSigningBytes.get(msg);
  if (m && m.chainId === chainId) return m.bytes;
  const bytes = make();
  viewSigningBytes.set(msg, { chainId, bytes });
  return bytes;
}

export function viewChangeSigningBytes(chainId: string, vc: ViewChange): Uint8Array {
  return memoised(chainId, vc, () => {
    const { signature: _, ...body } = viewChangeToJson(vc);
    return concat(domain('view-change'), encodeCanonical({ ...body, chainId }));
  });
}

export function newViewSigningBytes(chainId: string, nv: NewView): Uint8Array {
  return memoised(chainId, nv, () => {
    const { signature: _, ...body } = newViewToJson(nv);
    return concat(domain('new-view'), encodeCanonical({ ...body, chainId }));
  });
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
