/** SHA-256 and hex helpers shared by events, Merkle trees and blocks. */
import { createHash } from 'node:crypto';

export const hashBytes = 32;

export function sha256(...parts: Uint8Array[]): Uint8Array {
  const h = createHash('sha256');
  for (const p of parts) h.update(p);
  return new Uint8Array(h.digest().buffer, 0, hashBytes);
}

export function toHex(bytes: Uint8Array): string {
  return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString('hex');
}

const hexPattern = /^(?:[0-9a-f]{2})*$/;

export function fromHex(hex: string): Uint8Array {
  if (!hexPattern.test(hex)) throw new TypeError('not lower-case hex of whole bytes');
  return new Uint8Array(Buffer.from(hex, 'hex'));
}

export function toBase64Url(bytes: Uint8Array): string {
  return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString('base64url');
}

export function fromBase64Url(text: string): Uint8Array {
  return new Uint8Array(Buffer.from(text, 'base64url'));
}

export function bytesEqual(a: Uint8Array, b: Uint8Array): boolean {
  if (a.byteLength !== b.byteLength) return false;
  // Native memcmp: the replica compares every transaction of a proposal with its pooled copy
  // (batches of up to a few hundred KB), where a JavaScript loop costs a byte per iteration.
  return Buffer.from(a.buffer, a.byteOffset, a.byteLength).equals(
    Buffer.from(b.buffer, b.byteOffset, b.byteLength),
  );
}

/** 64 hex zeros: the `prev` of a gateway's first event and the parent of the genesis block. */
export const zeroHashHex = '0'.repeat(hashBytes * 2);
