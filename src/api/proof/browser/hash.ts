/**
 * The browser's twin of src/crypto/hash.ts: the same exports, on @noble/hashes and plain
 * Uint8Arrays instead of node:crypto and Buffer. The trace page's bundle (../browser-build.ts) uses
 * it in place of hash.ts, so the verifier and the consensus code it reuses (block hashes,
 * certificates, Merkle paths) run unchanged in a browser. A test checks both give the same answers
 * (test/api/proof/browser-build.test.ts).
 */
import { sha256 as nobleSha256 } from '@noble/hashes/sha2.js';

export const hashBytes = 32;

export function sha256(...parts: Uint8Array[]): Uint8Array {
  const h = nobleSha256.create();
  for (const p of parts) h.update(p);
  return h.digest();
}

const hexDigits = '0123456789abcdef';

export function toHex(bytes: Uint8Array): string {
  let out = '';
  for (const b of bytes) out += hexDigits[b >> 4]! + hexDigits[b & 15]!;
  return out;
}

const hexPattern = /^(?:[0-9a-f]{2})*$/;

export function fromHex(hex: string): Uint8Array {
  if (!hexPattern.test(hex)) throw new TypeError('not lower-case hex of whole bytes');
  const out = new Uint8Array(hex.length / 2);
  for (let i = 0; i < out.length; i++) out[i] = Number.parseInt(hex.slice(2 * i, 2 * i + 2), 16);
  return out;
}

const alphabet = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_';

export function toBase64Url(bytes: Uint8Array): string {
  let out = '';
  let i = 0;
  for (; i + 2 < bytes.length; i += 3) {
    const n = (bytes[i]! << 16) | (bytes[i + 1]! << 8) | bytes[i + 2]!;
    out += alphabet[n >> 18]! + alphabet[(n >> 12) & 63]! + alphabet[(n >> 6) & 63]! + alphabet[n & 63]!;
  }
  const rest = bytes.length - i;
  if (rest === 1) {
    const n = bytes[i]! << 16;
    out += alphabet[n >> 18]! + alphabet[(n >> 12) & 63]!;
  } else if (rest === 2) {
    const n = (bytes[i]! << 16) | (bytes[i + 1]! << 8);
    out += alphabet[n >> 18]! + alphabet[(n >> 12) & 63]! + alphabet[(n >> 6) & 63]!;
  }
  return out;
}

/** As Buffer.from(text, 'base64url'): characters outside the alphabet are skipped, padding ignored. */
export function fromBase64Url(text: string): Uint8Array {
  const values: number[] = [];
  for (const c of text) {
    const v = c === '+' ? 62 : c === '/' ? 63 : alphabet.indexOf(c);
    if (c === '=') break;
    if (v >= 0) values.push(v);
  }
  const out = new Uint8Array(Math.floor((values.length * 6) / 8));
  let acc = 0;
  let bits = 0;
  let at = 0;
  for (const v of values) {
    acc = (acc << 6) | v;
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      out[at++] = (acc >> bits) & 255;
    }
  }
  return out;
}

export function bytesEqual(a: Uint8Array, b: Uint8Array): boolean {
  if (a.byteLength !== b.byteLength) return false;
  let diff = 0;
  for (let i = 0; i < a.byteLength; i++) diff |= a[i]! ^ b[i]!;
  return diff === 0;
}

export const zeroHashHex = '0'.repeat(hashBytes * 2);
