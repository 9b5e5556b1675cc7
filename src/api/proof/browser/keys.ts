/**
 * The browser's twin of the parts of src/crypto/keys.ts that the verifier's modules use (constants,
 * key ids and types), without node:crypto and node:fs; the trace page's bundle
 * (../browser-build.ts) uses it in place of keys.ts. Signing and key files stay in node.
 */
import { sha256, toHex } from './hash.ts';

export const keyAlgorithms = ['ed25519', 'p256'] as const;
export type KeyAlgorithm = (typeof keyAlgorithms)[number];

export const signatureBytes = 64;
export const publicKeyBytes: Record<KeyAlgorithm, number> = { ed25519: 32, p256: 65 };

export interface SignatureVerifier {
  verify(alg: KeyAlgorithm, publicKey: Uint8Array, message: Uint8Array, signature: Uint8Array): boolean;
}

export interface PublicKeyRecord {
  alg: KeyAlgorithm;
  keyId: string;
  publicKey: string;
}

/** keyId = first 16 bytes of SHA-256(alg ‖ ":" ‖ raw public key), hex. */
export function keyIdOf(alg: KeyAlgorithm, publicKey: Uint8Array): string {
  return toHex(sha256(new TextEncoder().encode(`${alg}:`), publicKey).subarray(0, 16));
}
