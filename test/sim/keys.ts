/**
 * Simulated signatures: a keyed SHA-256, 64 bytes, verified by recomputing it from the "public key"
 * (which here is the secret). NOT cryptography: anyone holding the public key could forge. The
 * simulator's byzantine code only ever signs with its own key, so for the protocol this behaves like
 * an unforgeable signature, at ~1/50 the cost of Ed25519 (the simulator runs millions of checks).
 * The real Ed25519 path is exercised by test/consensus/core (and a few simulator runs with REAL_KEYS=1).
 */

import type { Validator } from '../../src/consensus/core/types.ts';
import { sha256 } from '../../src/crypto/hash.ts';
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
  const h = sha256(tag, secret, message);
  const out = new Uint8Array(64);
  out.set(h, 0);
  out.set(h, 32);
  return out;
}

export const simVerifier: SignatureVerifier = {
  verify(_alg, publicKey, message, signature) {
    if (signature.byteLength !== 64) return false;
    const expected = simSig(publicKey, message);
    for (let i = 0; i < 64; i++) if (expected[i] !== signature[i]) return false;
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
