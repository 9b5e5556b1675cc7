/**
 * Simulated signatures: a keyed SHA-256, 64 bytes, verified by recomputing it from the "public key"
 * (which here is the secret). NOT cryptography: anyone holding the public key could forge. The
 * simulator's byzantine code only ever signs with its own key, so for the protocol this behaves like
 * an unforgeable signature, at ~1/50 the cost of Ed25519 (the simulator runs millions of checks).
 * The real Ed25519 path is exercised by test/consensus/core (and a few simulator runs with REAL_KEYS=1).
 *
 * Two economies, neither changing a verdict: one-shot hashing (`crypto.hash`, no Hash object per
 * call), and a memo of verified signatures. A decoded message is shared by all its recipients (the
 * cluster decodes a broadcast once), so n−1 replicas check the same signature object over equal
 * bytes; the memo keeps, per signature object, the key and the bytes it verified, and answers a
 * later check of that object with the same key over equal bytes without hashing. Nothing in the
 * simulator mutates bytes it has handed over (a corrupted message is a copy), and a signature object
 * checked against other bytes or another key is hashed again.
 */

import { hash } from 'node:crypto';
import type { Validator } from '../../src/consensus/core/types.ts';
import { bytesEqual } from '../../src/crypto/hash.ts';
import {
  generateKey,
  keyIdOf,
  nodeVerifier,
  type SignatureVerifier,
  type Signer,
} from '../../src/crypto/keys.ts';
import type { Rng } from './rng.ts';

const tag = new TextEncoder().encode('sim-signature');

function simSig(secret: Uint8Array, message: Uint8Array): Uint8Array {
  const input = new Uint8Array(tag.byteLength + secret.byteLength + message.byteLength);
  input.set(tag, 0);
  input.set(secret, tag.byteLength);
  input.set(message, tag.byteLength + secret.byteLength);
  const h = hash('sha256', input, 'buffer');
  const out = new Uint8Array(64);
  out.set(h, 0);
  out.set(h, 32);
  return out;
}

/** Per signature object: the key and bytes it was found valid for. */
const verified = new WeakMap<Uint8Array, { publicKey: Uint8Array; message: Uint8Array }>();

export const simVerifier: SignatureVerifier = {
  verify(_alg, publicKey, message, signature) {
    if (signature.byteLength !== 64) return false;
    const seen = verified.get(signature);
    if (seen && seen.publicKey === publicKey && bytesEqual(seen.message, message)) return true;
    const expected = simSig(publicKey, message);
    if (!bytesEqual(expected, signature)) return false;
    verified.set(signature, { publicKey, message });
    return true;
  },
};

export function simKeys(
  rng: Rng,
  n: number,
  real = false,
): { signers: Signer[]; validators: Validator[]; verifier: SignatureVerifier } {
  const signers: Signer[] = [];
  for (let i = 0; i < n; i++) {
    if (real) {
      signers.push(generateKey('ed25519'));
      continue;
    }
    const secret = rng.bytes(32);
    signers.push({
      alg: 'ed25519',
      publicKey: secret,
      keyId: keyIdOf('ed25519', secret),
      sign: (m) => simSig(secret, m),
    });
  }
  const validators = signers.map((s) => ({ keyId: s.keyId, alg: s.alg, publicKey: s.publicKey }));
  return { signers, validators, verifier: real ? nodeVerifier : simVerifier };
}
