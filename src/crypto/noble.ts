/**
 * Pure-JS verifier on @noble/curves, for places without node:crypto (a browser checking a proof).
 * An order of magnitude slower than {@link nodeVerifier} (`npm run bench crypto`): never use it on a
 * hot path.
 */
import { ed25519 } from '@noble/curves/ed25519.js';
import { p256 } from '@noble/curves/nist.js';
import { type KeyAlgorithm, publicKeyBytes, type SignatureVerifier, signatureBytes } from './keys.ts';

export const nobleVerifier: SignatureVerifier = {
  verify(alg: KeyAlgorithm, publicKey: Uint8Array, message: Uint8Array, signature: Uint8Array): boolean {
    if (signature.byteLength !== signatureBytes || publicKey.byteLength !== publicKeyBytes[alg]) return false;
    try {
      return alg === 'ed25519'
        ? ed25519.verify(signature, message, publicKey)
        : p256.verify(signature, message, publicKey, { lowS: false });
    } catch {
      return false;
    }
  },
};
