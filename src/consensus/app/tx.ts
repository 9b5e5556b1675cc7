/**
 * The ledger's transaction: one signed production event, as the UTF-8 bytes of its RFC 8785
 * canonical JSON — exactly what the outbox stores (`encodeEvent`, src/event/event.ts). Its id is the
 * event id (SHA-256 of the canonical envelope), read from the bytes without hashing them.
 *
 * `TxChecker.check` is the consensus validity of one transaction (docs/ledger.md, "Validity"):
 * size, strict shape (shape.ts), canonical bytes, id, body commitment, a registered gateway key
 * and the signature, per event or per batch. It is a pure function of the bytes and the genesis
 * key registry; its caches only remember results of pure functions, keyed by their exact inputs,
 * so a cache can make a check faster but never change a verdict:
 *
 * - verdicts, by event id, compared byte for byte before use (a forged copy under a real id gets
 *   a verdict of its own);
 * - batch roots whose signature verified, by (key, root, size, signature), as EventVerifier does;
 * - interior Merkle nodes of audit paths, by their two children: events of one batch share most of
 *   their paths, so a batch costs about one leaf and one node hash per event instead of 1 + log2(size).
 *
 * Every refusal carries a stable code from EventRejected (src/event/verify.ts).
 *
 * @example
 *   const checker = new TxChecker({ registry: gatewayRegistry(genesis) });
 *   const v = checker.check(bytes);       // { ok: true, event } | { ok: false, code, message }
 */
import { isAscii } from 'node:buffer';
import { hash as nodeHash } from 'node:crypto';
import { canonicalJson } from '../../crypto/canonical.ts';
import { type KeyAlgorithm, nodeVerifier, type SignatureVerifier } from '../../crypto/keys.ts';
import { leafHash, nodeHash as merkleNodeHash, walkPath } from '../../crypto/merkle.ts';
import { eventBytesMax } from '../../event/bounds.ts';
import {
  batchSignedBytes,
  type EventEnvelope,
  eventSignedBytes,
  type SignedEvent,
} from '../../event/event.ts';
import { eventShapeProblem } from '../../event/shape.ts';
import type { EventRejectionCode } from '../../event/verify.ts';

/** What a gateway key registry answers (src/event/verify.ts `KeyRegistry`). */
export interface GatewayKeyLookup {
  get(
    keyId: string,
  ): { alg: KeyAlgorithm; publicKey: Uint8Array; enterprise: string; gateway: string } | undefined;
}

/** The gateway chain an event belongs to: `<enterprise>/<gateway>` (registered names contain no `/`). */
export function chainKeyOf(enterprise: string, gateway: string): string {
  return `${enterprise}/${gateway}`;
}

/** What the ordering rule needs from a valid event. */
export interface EventTx {
  /** Event id, lower-case hex. */
  id: string;
  /** `chainKeyOf(enterprise, gateway)`. */
  chain: string;
  seq: number;
  /** Id of the gateway's previous event (64 zeros before seq 1). */
  prev: string;
  bytes: number;
}

export type TxVerdict =
  | { ok: true; event: EventTx }
  | { ok: false; code: EventRejectionCode; message: string };

export interface TxCheckerOptions {
  registry: GatewayKeyLookup;
  /** Signature checks (default node:crypto). The simulator passes its keyed-hash verifier. */
  verifier?: SignatureVerifier;
  /** Refuse events that travel without their body (docs/ledger.md: why the default is true). */
  requireBody?: boolean;
  /** Verdicts remembered (oldest forgotten first). Default 65,536. */
  verdictsMax?: number;
  /** Verified batch roots remembered. Default 4,096. */
  batchRootsMax?: number;
  /** Audit-path nodes remembered (two entries per computed node). Default 131,072. */
  pathNodesMax?: number;
}

export interface TxCheckerStats {
  checked: number;
  verdictHits: number;
  signatureVerifications: number;
  batchRootHits: number;
  pathNodeHashes: number;
  pathNodeHits: number;
}

const utf8 = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });
const idMarker = Buffer.from('"id":"');
const notAnEventDomain = Buffer.from('masbc-edge/ledger/v1/not-an-event\0');

function asBuffer(b: Uint8Array): Buffer {
  return Buffer.isBuffer(b) ? b : Buffer.from(b.buffer, b.byteOffset, b.byteLength);
}

function sha256hex(text: string): string {
  return nodeHash('sha256', text, 'hex');
}

function isLowerHex(buf: Buffer, start: number, end: number): boolean {
  for (let i = start; i < end; i++) {
    const c = buf[i]!;
    if (!((c >= 0x30 && c <= 0x39) || (c >= 0x61 && c <= 0x66))) return false;
  }
  return true;
}

/**
 * The `"id"` member of a canonical event, found without parsing: in canonical JSON the top-level
 * keys are sorted (body, env, id, sig) and no other member named "id" has a string value, so it is
 * the last `"id":"`. `null` if there is none. Only meaningful for bytes `check` accepts, which
 * confirms it against the parsed event.
 */
export function scanIdHex(tx: Uint8Array): string | null {
  const buf = asBuffer(tx);
  const at = buf.lastIndexOf(idMarker);
  if (at < 0) return null;
  const start = at + idMarker.byteLength;
  if (start + 65 > buf.byteLength || buf[start + 64] !== 0x22 || !isLowerHex(buf, start, start + 64))
    return null;
  return buf.toString('latin1', start, start + 64);
}

/**
 * `TxHooks.txId`: the event id for an event; for bytes that are not one (checkTx refuses them), a
 * hash of the bytes under a domain of its own, so it is still 32 bytes and deterministic.
 */
export function txIdOf(tx: Uint8Array): Uint8Array {
  const hex = scanIdHex(tx);
  if (hex !== null) return Buffer.from(hex, 'hex');
  return nodeHash('sha256', Buffer.concat([notAnEventDomain, asBuffer(tx)]), 'buffer');
}

const arrayIndexLike = /^(?:0|[1-9][0-9]*)$/;

/**
 * Whether `JSON.stringify(x)` is x's RFC 8785 text (`canonicalJson(x)`), for decoded JSON with finite
 * numbers. Both print numbers, strings and literals alike; they differ only in key order (JCS sorts,
 * JSON.stringify keeps property order) and lone surrogates (JCS refuses them). Property order is the
 * parsed text's order except for array-index-like keys, which engines put first. So: true when every
 * object's keys are strictly ascending, none is index-like, and every string is well-formed.
 */
function stringifyIsCanonical(x: unknown): boolean {
  if (typeof x === 'string') return x.isWellFormed();
  if (typeof x !== 'object' || x === null) return true;
  if (Array.isArray(x)) {
    for (const v of x) if (!stringifyIsCanonical(v)) return false;
    return true;
  }
  let prev: string | undefined;
  for (const k of Object.keys(x)) {
    if ((prev !== undefined && !(prev < k)) || arrayIndexLike.test(k) || !k.isWellFormed()) return false;
    if (!stringifyIsCanonical((x as Record<string, unknown>)[k])) return false;
    prev = k;
  }
  return true;
}

function refuse(code: EventRejectionCode, message: string): TxVerdict {
  return { ok: false, code, message };
}

/** Decodes bytes that must be UTF-8 JSON; `undefined` if they are not. */
function decodeJson(buf: Buffer): { text: string; value: unknown } | undefined {
  let text: string;
  if (isAscii(buf)) text = buf.toString('latin1');
  else {
    try {
      text = utf8.decode(buf);
    } catch {
      return undefined;
    }
  }
  try {
    return { text, value: JSON.parse(text) };
  } catch {
    return undefined;
  }
}

/**
 * The ordering fields of an event's bytes without verifying anything: for transactions of
 * committed blocks (certified, so checked by honest validators) and for cache misses. `undefined`
 * if the bytes are not shaped like an event.
 */
export function parseEventTx(tx: Uint8Array): EventTx | undefined {
  const d = decodeJson(asBuffer(tx));
  if (!d) return undefined;
  const e = d.value as Partial<SignedEvent> | null;
  const env = e?.env as Partial<EventEnvelope> | undefined;
  if (
    typeof e?.id !== 'string' ||
    typeof env?.enterprise !== 'string' ||
    typeof env.gateway !== 'string' ||
    !Number.isSafeInteger(env.seq) ||
    typeof env.prev !== 'string'
  )
    return undefined;
  return {
    id: e.id,
    chain: chainKeyOf(env.enterprise, env.gateway),
    seq: env.seq as number,
    prev: env.prev,
    bytes: tx.byteLength,
  };
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

/**
 * RFC 6962 interior-node hashes memoised by their inputs. `#asLeft` maps a node (canonical
 * base64url) to its right sibling and their parent H(0x01 ‖ node ‖ sibling); `#asRight` a node to
 * its left sibling and H(0x01 ‖ sibling ‖ node). A result is used only when the other input is
 * byte-equal, so the memo is exactly the hash function. Both entries are written for every node
 * computed, so the walk from either side of it finds it; each map holds at most `max / 2`.
 */
class NodeMemo {
  readonly #asLeft: Fifo<{ other: Buffer; parent: Buffer }>;
  readonly #asRight: Fifo<{ other: Buffer; parent: Buffer }>;
  /**
   * The previous walk's steps: consecutive events of a batch share their path above the lowest
   * levels, so most steps repeat the one before and skip the map (inputs compared all the same).
   */
  readonly #last: { siblingLeft: boolean; sibling: string; child: Buffer; parent: Buffer }[] = [];
  hashes = 0;
  hits = 0;
  constructor(max: number) {
    this.#asLeft = new Fifo(Math.max(1, max >> 1));
    this.#asRight = new Fifo(Math.max(1, max >> 1));
  }

  /** H(sibling ‖ child) when `siblingLeft`, else H(child ‖ sibling); `sibling` as canonical base64url. */
  parent(siblingLeft: boolean, sibling: string, child: Buffer): Buffer {
    const memo = siblingLeft ? this.#asLeft : this.#asRight;
    const hit = memo.get(sibling);
    if (hit?.other.equals(child)) {
      this.hits++;
      return hit.parent;
    }
    this.hashes++;
    const s = Buffer.from(sibling, 'base64url');
    const parent = Buffer.from(siblingLeft ? merkleNodeHash(s, child) : merkleNodeHash(child, s));
    memo.set(sibling, { other: child, parent });
    (siblingLeft ? this.#asRight : this.#asLeft).set(child.toString('base64url'), { other: s, parent });
    return parent;
  }

  /**
   * Root implied by a leaf (the event id), its index, the batch size and its audit path: the
   * walk of src/crypto/merkle.ts (`walkPath`, RFC 9162 §2.1.3.2) with memoised nodes.
   */
  root(id: Uint8Array, index: number, size: number, path: readonly string[]): Uint8Array | undefined {
    return walkPath(leafHash(id), index, size, path, (siblingLeft, sibling, child, step) => {
      const c = Buffer.from(child.buffer, child.byteOffset, child.byteLength);
      const last = this.#last[step];
      if (last && last.siblingLeft === siblingLeft && last.sibling === sibling && last.child.equals(c)) {
        this.hits++;
        return last.parent;
      }
      const parent = this.parent(siblingLeft, sibling, c);
      this.#last[step] = { siblingLeft, sibling, child: c, parent };
      return parent;
    });
  }
}

/** Consensus validity of single transactions, memoised (see the module comment). */
export class TxChecker {
  readonly #registry: GatewayKeyLookup;
  readonly #verifier: SignatureVerifier;
  readonly #requireBody: boolean;
  readonly #verdicts: Fifo<{ tx: Buffer; verdict: TxVerdict }>;
  readonly #roots: Fifo<true>;
  readonly #nodes: NodeMemo;
  #checked = 0;
  #verdictHits = 0;
  #signatureVerifications = 0;
  #batchRootHits = 0;

  constructor(o: TxCheckerOptions) {
    this.#registry = o.registry;
    this.#verifier = o.verifier ?? nodeVerifier;
    this.#requireBody = o.requireBody ?? true;
    this.#verdicts = new Fifo(o.verdictsMax ?? 65_536);
    this.#roots = new Fifo(o.batchRootsMax ?? 4096);
    this.#nodes = new NodeMemo(o.pathNodesMax ?? 131_072);
  }

  /** The verdict on one transaction. Pure in `tx` (and the registry); memoised. */
  check(tx: Uint8Array): TxVerdict {
    this.#checked++;
    const buf = asBuffer(tx);
    const idHex = scanIdHex(buf);
    if (idHex !== null) {
      const hit = this.#verdicts.get(idHex);
      if (hit?.tx.equals(buf)) {
        this.#verdictHits++;
        return hit.verdict;
      }
    }
    const verdict = this.#verify(buf, idHex);
    // Only bytes that carry an id are remembered: garbage gets no memory to fill.
    if (idHex !== null) this.#verdicts.set(idHex, { tx: buf, verdict });
    return verdict;
  }

  /** The ordering fields of a valid transaction, from the verdict cache when possible. */
  eventOf(tx: Uint8Array): EventTx | undefined {
    const buf = asBuffer(tx);
    const idHex = scanIdHex(buf);
    if (idHex !== null) {
      const hit = this.#verdicts.get(idHex);
      if (hit?.verdict.ok && hit.tx.equals(buf)) return hit.verdict.event;
    }
    return parseEventTx(buf);
  }

  stats(): TxCheckerStats {
    return {
      checked: this.#checked,
      verdictHits: this.#verdictHits,
      signatureVerifications: this.#signatureVerifications,
      batchRootHits: this.#batchRootHits,
      pathNodeHashes: this.#nodes.hashes,
      pathNodeHits: this.#nodes.hits,
    };
  }

  #verify(buf: Buffer, scannedId: string | null): TxVerdict {
    if (buf.byteLength > eventBytesMax)
      return refuse('oversize', `event is ${buf.byteLength} bytes; the limit is ${eventBytesMax}`);
    const d = decodeJson(buf);
    if (!d) return refuse('malformed', 'not UTF-8 JSON');
    const problem = eventShapeProblem(d.value);
    if (problem) return refuse('malformed', problem);
    const e = d.value as SignedEvent;
    if (this.#requireBody && e.body === undefined) return refuse('malformed', 'body: required on the ledger');
    // Canonical bytes: one byte string per event, and the envelope's and body's canonical texts are
    // then substrings of it, so hashing them needs no second encoding. The native JSON.stringify
    // gives those texts when the keys are already sorted (see stringifyIsCanonical); otherwise the
    // generic encoder does, and the comparison below refuses the unsorted input.
    const encode = stringifyIsCanonical(e) ? JSON.stringify : canonicalJson;
    let env: string;
    let body: string | undefined;
    let sig: string;
    try {
      env = encode(e.env);
      body = e.body === undefined ? undefined : encode(e.body);
      sig = encode(e.sig);
    } catch (err) {
      return refuse('malformed', `not canonical JSON: ${(err as Error).message}`);
    }
    const canonical =
      body === undefined
        ? `{"env":${env},"id":"${e.id}","sig":${sig}}`
        : `{"body":${body},"env":${env},"id":"${e.id}","sig":${sig}}`;
    if (canonical !== d.text) return refuse('malformed', 'not in canonical form (RFC 8785)');
    if (scannedId !== e.id) return refuse('malformed', 'id is not where canonical JSON puts it');
    if (sha256hex(env) !== e.id) return refuse('id_mismatch', 'id is not the hash of the envelope');
    if (body !== undefined && sha256hex(body) !== e.env.body)
      return refuse('body_mismatch', 'body does not match the commitment in the envelope');
    if (e.body?.gap && e.env.kind !== 'gap') return refuse('malformed', 'only gap events carry gap details');
    const key = this.#registry.get(e.env.keyId);
    if (!key) return refuse('unknown_key', `key ${e.env.keyId} is not registered`);
    if (key.enterprise !== e.env.enterprise || key.gateway !== e.env.gateway) {
      return refuse(
        'unknown_key',
        `key ${e.env.keyId} belongs to ${key.enterprise}/${key.gateway}, not ${e.env.enterprise}/${e.env.gateway}`,
      );
    }
    const id = Buffer.from(e.id, 'hex');
    const s = e.sig;
    if (s.t === 'event') {
      this.#signatureVerifications++;
      if (
        !this.#verifier.verify(key.alg, key.publicKey, eventSignedBytes(id), Buffer.from(s.sig, 'base64url'))
      )
        return refuse('bad_signature', 'signature does not verify');
    } else {
      if (s.index >= s.size) return refuse('malformed', `sig.index ${s.index} outside a batch of ${s.size}`);
      const root = this.#nodes.root(id, s.index, s.size, s.path);
      if (!root) return refuse('bad_signature', 'audit path does not fit the batch size and index');
      const rootKey = `${e.env.keyId}:${Buffer.from(root).toString('hex')}:${s.size}:${s.sig}`;
      if (this.#roots.get(rootKey)) this.#batchRootHits++;
      else {
        this.#signatureVerifications++;
        const signed = batchSignedBytes(root, s.size);
        if (!this.#verifier.verify(key.alg, key.publicKey, signed, Buffer.from(s.sig, 'base64url')))
          return refuse('bad_signature', 'batch signature does not verify for this event');
        this.#roots.set(rootKey, true);
      }
    }
    return {
      ok: true,
      event: {
        id: e.id,
        chain: chainKeyOf(e.env.enterprise, e.env.gateway),
        seq: e.env.seq,
        prev: e.env.prev,
        bytes: buf.byteLength,
      },
    };
  }
}
