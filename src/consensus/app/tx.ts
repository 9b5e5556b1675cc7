/**
 * The ledger's transaction: one gateway-signed batch of event envelopes, in the binary form of
 * src/event/batch.ts. Bodies are never in it. Its id is the batch's transaction id, which commits to
 * every byte of it, so a block's Merkle root over transaction ids covers the envelopes too.
 *
 * `TxChecker.check` is the consensus validity of one transaction (docs/ledger.md, "Validity"): what
 * the batch says about itself (`decodeBatchTx`: framing, shapes, canonical envelopes, their seq/prev
 * chain, the root), a registered key of the header's gateway, and the one signature. It is a pure
 * function of the bytes and the key bindings (a key id's member, gateway and public key, which never
 * change once made: registry.ts); its caches only remember results of pure functions, so they can
 * make a check faster but never change a verdict (an unknown key is not remembered: it may be
 * registered later):
 *
 * - the structural scan of a transaction object (its id and ordering fields), by the object itself
 *   (a WeakMap: gone with the bytes), since the core asks for the id of the same bytes several times;
 * - verdicts, by transaction id. Two byte strings with one id are the same bytes: for a batch the
 *   id covers the header and signature, whose root covers the envelopes; for anything else the id
 *   hashes all the bytes. So no copy of the bytes is kept for a comparison.
 *
 * Verdicts and scans hold ordering fields only, never parsed envelopes: memory per pending batch is
 * a few hundred bytes whatever its size.
 *
 * Every refusal carries a stable code (src/event/errors.ts).
 *
 * @example
 *   const checker = new TxChecker({ registry: gatewayRegistryOf(genesis) });
 *   const v = checker.check(bytes);       // { ok: true, batch } | { ok: false, code, message }
 */
import { hash as nodeHash } from 'node:crypto';
import { bytesEqual } from '../../crypto/hash.ts';
import { type KeyAlgorithm, nodeVerifier, type SignatureVerifier } from '../../crypto/keys.ts';
import {
  type BatchDecoding,
  batchSigningBytes,
  batchTxId,
  batchVersion,
  type DecodedBatch,
  decodeBatchTx,
} from '../../event/batch.ts';
import { batchSignatureBytes } from '../../event/bounds.ts';
import type { EventRejectionCode } from '../../event/errors.ts';
import { configTxId, isConfigTx } from './config-tx.ts';

/**
 * What a gateway key registry answers (src/event/verify.ts `KeyRegistry`). The ledger also passes
 * the chain a batch claims, to find a binding made by a configuration transaction not yet committed.
 */
export interface GatewayKeyLookup {
  get(
    keyId: string,
    enterprise?: string,
    gateway?: string,
  ): { alg: KeyAlgorithm; publicKey: Uint8Array; enterprise: string; gateway: string } | undefined;
}

/** The gateway chain a batch belongs to: `<enterprise>/<gateway>` (registered names contain no `/`). */
export function chainKeyOf(enterprise: string, gateway: string): string {
  return `${enterprise}/${gateway}`;
}

/** What the ordering rule needs from a valid batch. */
export interface BatchTx {
  /** Transaction id, lower-case hex. */
  id: string;
  /** `chainKeyOf(enterprise, gateway)`. */
  chain: string;
  firstSeq: number;
  lastSeq: number;
  /** Id of the gateway's event before `firstSeq` (64 zeros before seq 1). */
  prev: string;
  /** Id of its last event: the `prev` of the gateway's next batch. */
  lastId: string;
  /** The signing key's id (its registration decides whether the batch may go in a block). */
  keyId: string;
  count: number;
  /** The transaction's length. */
  bytes: number;
}

export type TxVerdict =
  | { ok: true; batch: BatchTx }
  | { ok: false; code: EventRejectionCode; message: string };

export interface TxCheckerOptions {
  registry: GatewayKeyLookup;
  /** Signature checks (default node:crypto). The simulator passes its keyed-hash verifier. */
  verifier?: SignatureVerifier;
  /** Verdicts remembered (oldest forgotten first). Default 16,384. */
  verdictsMax?: number;
}

export interface TxCheckerStats {
  checked: number;
  verdictHits: number;
  signatureVerifications: number;
}

/** The structural reading of one transaction object, remembered with it. */
interface Scan {
  txId: Uint8Array;
  idHex: string;
  /** Ordering fields and what the signature check needs, or why the bytes are not a batch. */
  result:
    | {
        ok: true;
        batch: BatchTx;
        keyId: string;
        enterprise: string;
        gateway: string;
        headerBytes: Uint8Array;
        signature: Uint8Array;
      }
    | { ok: false; code: EventRejectionCode; message: string };
}

const notABatchDomain = Buffer.from('masbc-edge/tx/v2/not-a-batch\0');
const scans = new WeakMap<Uint8Array, Scan>();
/**
 * Batches decoded lately, by the hash of their header and signature (what their id would be), each a
 * weak reference to the bytes it was decoded from. A copy of the same bytes (a proposal's or a
 * forwarded copy of a batch this validator already holds) then costs a hash of its framing and one
 * byte comparison instead of a second decode: equal bytes have the same scan. Bound: the newest
 * `recentBatchesMax` entries (a few hundred bytes each; the references keep no bytes alive); older
 * ones are forgotten, and a copy of such a batch is decoded again.
 */
export const recentBatchesMax = 16_384;
const recent = new Map<string, WeakRef<Uint8Array>>();

/** Hex hash of a batch's framing (header and signature), or undefined if the bytes have none. */
function framingKey(tx: Uint8Array): string | undefined {
  if (tx.byteLength < 3 + batchSignatureBytes || tx[0] !== batchVersion) return undefined;
  const headerLength = (tx[1]! << 8) | tx[2]!;
  const end = 3 + headerLength + batchSignatureBytes;
  if (end > tx.byteLength) return undefined;
  const id = batchTxId(tx.subarray(3, 3 + headerLength), tx.subarray(3 + headerLength, end));
  return Buffer.from(id.buffer, id.byteOffset, id.byteLength).toString('hex');
}

/** The scan of an earlier copy of the same bytes, if one is still known. */
function scanOfCopy(tx: Uint8Array, key: string | undefined): Scan | undefined {
  if (key === undefined) return undefined;
  const earlier = recent.get(key)?.deref();
  if (!earlier || earlier === tx || !bytesEqual(earlier, tx)) return undefined;
  return scans.get(earlier);
}

function remember(tx: Uint8Array, key: string | undefined, s: Scan): void {
  scans.set(tx, s);
  if (key === undefined || !s.result.ok) return;
  if (recent.has(key)) recent.delete(key);
  else if (recent.size >= recentBatchesMax) recent.delete(recent.keys().next().value!);
  recent.set(key, new WeakRef(tx));
}

function asBuffer(b: Uint8Array): Buffer {
  return Buffer.isBuffer(b) ? b : Buffer.from(b.buffer, b.byteOffset, b.byteLength);
}

/** The scan of a batch that decoded. */
function scanOfBatch(b: DecodedBatch): Scan {
  const h = b.header;
  const idHex = Buffer.from(b.txId).toString('hex');
  return {
    txId: b.txId,
    idHex,
    result: {
      ok: true,
      batch: {
        id: idHex,
        chain: chainKeyOf(h.enterprise, h.gateway),
        firstSeq: h.firstSeq,
        lastSeq: h.firstSeq + h.count - 1,
        prev: h.prev,
        lastId: Buffer.from(b.ids[b.ids.length - 1]!).toString('hex'),
        keyId: h.keyId,
        count: h.count,
        bytes: b.bytes,
      },
      keyId: h.keyId,
      enterprise: h.enterprise,
      gateway: h.gateway,
      headerBytes: b.headerBytes,
      signature: b.signature,
    },
  };
}

/** Decodes once per transaction (see the module comment and `recent`). */
function scan(tx: Uint8Array): Scan {
  let s = scans.get(tx);
  if (s) return s;
  if (isConfigTx(tx)) {
    // Not a batch: a configuration transaction (config-tx.ts), with an id of its own.
    const txId = configTxId(tx);
    s = {
      txId,
      idHex: Buffer.from(txId).toString('hex'),
      result: { ok: false, code: 'malformed', message: 'a configuration transaction, not a batch' },
    };
    scans.set(tx, s);
    return s;
  }
  const key = framingKey(tx);
  s = scanOfCopy(tx, key);
  if (s) {
    scans.set(tx, s);
    return s;
  }
  const d = decodeBatchTx(tx);
  if (d.ok) s = scanOfBatch(d.batch);
  else {
    const txId = nodeHash('sha256', Buffer.concat([notABatchDomain, asBuffer(tx)]), 'buffer');
    s = { txId, idHex: txId.toString('hex'), result: { ok: false, code: d.code, message: d.message } };
  }
  remember(tx, key, s);
  return s;
}

/**
 * Decodes a transaction and remembers the result with its bytes, so the checks that follow
 * (`txIdOf`, `TxChecker.check`) do not decode it again: for a caller that needs the decoded batch
 * itself (its envelopes, to keep their bodies).
 */
export function decodeTx(tx: Uint8Array): BatchDecoding {
  const d = decodeBatchTx(tx);
  if (d.ok && !scans.has(tx)) remember(tx, framingKey(tx), scanOfBatch(d.batch));
  return d;
}

/**
 * `TxHooks.txId`: the batch's transaction id; for bytes that are not a well-formed batch (checkTx
 * refuses them), a hash of all the bytes under a domain of their own. Either way it commits to every
 * byte, so a block root over transaction ids covers the block's contents.
 */
export function txIdOf(tx: Uint8Array): Uint8Array {
  return scan(tx).txId;
}

/**
 * The ordering fields of a batch's bytes, checking its structure but not its signature: for
 * transactions of committed blocks (certified, so checked by honest validators). `undefined` if the
 * bytes are not a well-formed batch.
 */
export function parseBatchTx(tx: Uint8Array): BatchTx | undefined {
  const r = scan(tx).result;
  return r.ok ? r.batch : undefined;
}

/** Bounded map, oldest entry evicted first. */
class Fifo<V> {
  readonly #map = new Map<string, V>();
  readonly #max: number;
  constructor(max: number) {
    this.#max = max;
  }
  get(key: string): V | undefined {
    return this.#map.get(key);
  }
  set(key: string, value: V): void {
    if (this.#map.has(key)) this.#map.delete(key);
    else if (this.#map.size >= this.#max) this.#map.delete(this.#map.keys().next().value!);
    this.#map.set(key, value);
  }
  get size(): number {
    return this.#map.size;
  }
}

/** Consensus validity of single transactions, memoised (see the module comment). */
export class TxChecker {
  readonly #registry: GatewayKeyLookup;
  readonly #verifier: SignatureVerifier;
  readonly #verdicts: Fifo<TxVerdict>;
  #checked = 0;
  #verdictHits = 0;
  #signatureVerifications = 0;

  constructor(o: TxCheckerOptions) {
    this.#registry = o.registry;
    this.#verifier = o.verifier ?? nodeVerifier;
    this.#verdicts = new Fifo(o.verdictsMax ?? 16_384);
  }

  /** The validity of one transaction (see the module comment). */
  check(tx: Uint8Array): TxVerdict {
    this.#checked++;
    const s = scan(tx);
    const hit = this.#verdicts.get(s.idHex);
    if (hit) {
      this.#verdictHits++;
      return hit;
    }
    const verdict = this.#verify(s);
    // An unknown key may be registered later (a configuration transaction): not remembered.
    if (verdict.ok || verdict.code !== 'unknown_key') this.#verdicts.set(s.idHex, verdict);
    return verdict;
  }

  /** Verdicts answered from the cache so far. */
  get verdictHits(): number {
    return this.#verdictHits;
  }

  /** The ordering fields of a valid transaction, from the scan (structure only). */
  batchOf(tx: Uint8Array): BatchTx | undefined {
    return parseBatchTx(tx);
  }

  stats(): TxCheckerStats {
    return {
      checked: this.#checked,
      verdictHits: this.#verdictHits,
      signatureVerifications: this.#signatureVerifications,
    };
  }

  #verify(s: Scan): TxVerdict {
    const r = s.result;
    if (!r.ok) return { ok: false, code: r.code, message: r.message };
    const key = this.#registry.get(r.keyId, r.enterprise, r.gateway);
    if (!key) return { ok: false, code: 'unknown_key', message: `key ${r.keyId} is not registered` };
    if (key.enterprise !== r.enterprise || key.gateway !== r.gateway) {
      return {
        ok: false,
        code: 'unknown_key',
        message: `key ${r.keyId} belongs to ${key.enterprise}/${key.gateway}, not ${r.enterprise}/${r.gateway}`,
      };
    }
    this.#signatureVerifications++;
    if (!this.#verifier.verify(key.alg, key.publicKey, batchSigningBytes(r.headerBytes), r.signature))
      return { ok: false, code: 'bad_signature', message: 'batch signature does not verify' };
    return { ok: true, batch: r.batch };
  }
}
