/**
 * Configuration transactions: a member registers or revokes one of its gateways' keys on the
 * chain, signed by its identity root (the genesis's `validators[].identityRoot`), so a new
 * production line joins without a new genesis (docs/ledger.md, "Configuration transactions").
 *
 * **Bytes**: `u8 tag (0xC1) ‖ u16be payload length ‖ payload ‖ 64-byte signature`, nothing after.
 * The tag can never start a batch (whose first byte is its version, 2). The payload is canonical
 * JSON (RFC 8785):
 *
 *   { v: 1, chainId, member, seq, op: "register", gateway, key: {alg, keyId, publicKey} }
 *   { v: 1, chainId, member, seq, op: "revoke",   gateway, keyId }
 *
 * `seq` is the member's configuration sequence: 1 for its first configuration transaction, then one
 * more each time (replays and reorders are refused). The signature is Ed25519 by the member's
 * identity root over `"masbc-edge/config/v1\n" ‖ payload` (a domain of its own: no batch, consensus
 * message or Noise handshake signs bytes that start so). The id is SHA-256(`"masbc-edge/config-tx/v1\0"`
 * ‖ every byte).
 *
 * Everything here is pure: decoding checks what the bytes say about themselves; whether the member
 * may do it (its identity root, its sequence, who holds the key) is registry.ts's business.
 *
 * @example
 *   const tx = signConfigTx({ v: 1, chainId, member: 'acme', seq: 1, op: 'register', gateway: 'gw-line3', key }, root);
 *   const d = decodeConfigTx(tx);   // { ok: true, config } | { ok: false, code: 'config_malformed', message }
 */
import { canonicalJson } from '../../crypto/canonical.ts';
import { fromBase64Url, sha256, toHex } from '../../crypto/hash.ts';
import {
  keyAlgorithms,
  keyIdOf,
  type PublicKeyRecord,
  publicKeyBytes,
  type Signer,
} from '../../crypto/keys.ts';

/** First byte of a configuration transaction. */
export const configTxTag = 0xc1;
export const configTxVersion = 1;
/** Largest payload (a register with a P-256 key is under 400 bytes). */
export const configPayloadBytesMax = 1024;
export const configSignatureBytes = 64;
/** Largest configuration transaction. */
export const configTxBytesMax = 3 + configPayloadBytesMax + configSignatureBytes;

const signingDomain = new TextEncoder().encode('masbc-edge/config/v1\n');
const idDomain = new TextEncoder().encode('masbc-edge/config-tx/v1\0');

interface ConfigBase {
  v: typeof configTxVersion;
  chainId: string;
  /** The member whose identity root signs it, and whose gateway it names. */
  member: string;
  /** The member's configuration sequence: 1, 2, 3, … */
  seq: number;
  gateway: string;
}
export interface RegisterGatewayKey extends ConfigBase {
  op: 'register';
  key: PublicKeyRecord;
}
export interface RevokeGatewayKey extends ConfigBase {
  op: 'revoke';
  keyId: string;
}
export type ConfigPayload = RegisterGatewayKey | RevokeGatewayKey;

/** A configuration transaction whose bytes decoded (signature not yet checked). */
export interface ConfigTx {
  payload: ConfigPayload;
  payloadBytes: Uint8Array;
  signature: Uint8Array;
  /** Transaction id, lower-case hex. */
  id: string;
  idBytes: Uint8Array;
  bytes: number;
}

export type ConfigDecoding =
  | { ok: true; config: ConfigTx }
  | { ok: false; code: 'config_malformed'; message: string };

/** Whether the bytes claim to be a configuration transaction (as opposed to a batch). */
export function isConfigTx(tx: Uint8Array): boolean {
  return tx.byteLength > 0 && tx[0] === configTxTag;
}

/** The id of any bytes with the configuration tag (well-formed or not): it covers every byte. */
export function configTxId(tx: Uint8Array): Uint8Array {
  return sha256(idDomain, tx);
}

export function configSigningBytes(payloadBytes: Uint8Array): Uint8Array {
  const out = new Uint8Array(signingDomain.byteLength + payloadBytes.byteLength);
  out.set(signingDomain, 0);
  out.set(payloadBytes, signingDomain.byteLength);
  return out;
}

/** Encodes and signs a payload with the member's identity root. Throws RangeError on a payload that would not decode. */
export function signConfigTx(payload: ConfigPayload, root: Pick<Signer, 'sign'>): Uint8Array {
  const problem = payloadProblem(payload);
  if (problem) throw new RangeError(`configuration payload: ${problem}`);
  const payloadBytes = new TextEncoder().encode(canonicalJson(payload));
  if (payloadBytes.byteLength > configPayloadBytesMax)
    throw new RangeError(`configuration payload of ${payloadBytes.byteLength} bytes`);
  return encodeConfigTx(payloadBytes, root.sign(configSigningBytes(payloadBytes)));
}

export function encodeConfigTx(payloadBytes: Uint8Array, signature: Uint8Array): Uint8Array {
  const out = new Uint8Array(3 + payloadBytes.byteLength + signature.byteLength);
  out[0] = configTxTag;
  out[1] = payloadBytes.byteLength >> 8;
  out[2] = payloadBytes.byteLength & 0xff;
  out.set(payloadBytes, 3);
  out.set(signature, 3 + payloadBytes.byteLength);
  return out;
}

/** Reads a configuration transaction; never throws on bad input. */
export function decodeConfigTx(tx: Uint8Array): ConfigDecoding {
  const bad = (message: string): ConfigDecoding => ({ ok: false, code: 'config_malformed', message });
  if (!isConfigTx(tx)) return bad('not a configuration transaction');
  if (tx.byteLength > configTxBytesMax) return bad(`${tx.byteLength} bytes, more than ${configTxBytesMax}`);
  if (tx.byteLength < 3) return bad('truncated');
  const length = (tx[1]! << 8) | tx[2]!;
  if (length > configPayloadBytesMax) return bad(`payload of ${length} bytes`);
  if (tx.byteLength !== 3 + length + configSignatureBytes)
    return bad(`expected ${3 + length + configSignatureBytes} bytes, got ${tx.byteLength}`);
  const payloadBytes = tx.subarray(3, 3 + length);
  let text: string;
  let value: unknown;
  try {
    text = new TextDecoder('utf-8', { fatal: true }).decode(payloadBytes);
    value = JSON.parse(text);
  } catch {
    return bad('payload is not UTF-8 JSON');
  }
  const problem = payloadProblem(value);
  if (problem) return bad(problem);
  if (canonicalJson(value) !== text) return bad('payload is not in canonical form');
  const idBytes = configTxId(tx);
  return {
    ok: true,
    config: {
      payload: value as ConfigPayload,
      payloadBytes,
      signature: tx.subarray(3 + length),
      id: toHex(idBytes),
      idBytes,
      bytes: tx.byteLength,
    },
  };
}

const identifier = /^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/;
const memberPattern = /^[a-z0-9][a-z0-9._-]{0,62}$/;
const keyIdPattern = /^[0-9a-f]{32}$/;
const base64url = /^[A-Za-z0-9_-]+$/;

function exactKeys(value: object, keys: string[]): boolean {
  const own = Object.keys(value);
  return own.length === keys.length && keys.every((k) => own.includes(k));
}

/** Why a value is not a configuration payload, or null. Written out, for the reason shape.ts gives. */
export function payloadProblem(value: unknown): string | null {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) return 'not an object';
  const p = value as Record<string, unknown>;
  const common = ['v', 'chainId', 'member', 'seq', 'op', 'gateway'];
  if (p.op === 'register') {
    if (!exactKeys(p, [...common, 'key'])) return `a register payload has exactly ${[...common, 'key']}`;
  } else if (p.op === 'revoke') {
    if (!exactKeys(p, [...common, 'keyId'])) return `a revoke payload has exactly ${[...common, 'keyId']}`;
  } else return 'op must be "register" or "revoke"';
  if (p.v !== configTxVersion) return `v must be ${configTxVersion}`;
  if (typeof p.chainId !== 'string' || !memberPattern.test(p.chainId)) return 'chainId';
  if (typeof p.member !== 'string' || !memberPattern.test(p.member)) return 'member';
  if (typeof p.gateway !== 'string' || !identifier.test(p.gateway)) return 'gateway';
  if (!Number.isSafeInteger(p.seq) || (p.seq as number) < 1) return 'seq must be an integer ≥ 1';
  if (p.op === 'revoke') return typeof p.keyId === 'string' && keyIdPattern.test(p.keyId) ? null : 'keyId';
  return keyProblem(p.key);
}

function keyProblem(value: unknown): string | null {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) return 'key must be an object';
  const k = value as Record<string, unknown>;
  if (!exactKeys(k, ['alg', 'keyId', 'publicKey'])) return 'key has exactly alg, keyId, publicKey';
  if (!(keyAlgorithms as readonly unknown[]).includes(k.alg))
    return `key.alg must be one of ${keyAlgorithms}`;
  if (typeof k.keyId !== 'string' || !keyIdPattern.test(k.keyId)) return 'key.keyId';
  if (typeof k.publicKey !== 'string' || !base64url.test(k.publicKey)) return 'key.publicKey';
  const alg = k.alg as PublicKeyRecord['alg'];
  const raw = fromBase64Url(k.publicKey);
  if (raw.byteLength !== publicKeyBytes[alg])
    return `key.publicKey: a ${alg} key is ${publicKeyBytes[alg]} bytes`;
  if (keyIdOf(alg, raw) !== k.keyId) return 'key.keyId does not match the public key';
  return null;
}
