/**
 * Gateway and validator keys: Ed25519 (default) and P-256 (what secure elements and TPMs hold).
 *
 * Hot paths sign and verify with node:crypto (OpenSSL); pure-JS curves are an order of magnitude
 * slower (`npm run bench crypto` measures both). A browser can verify the same signatures with @noble/curves through
 * the same {@link SignatureVerifier} interface (see noble.ts).
 *
 * Public keys travel as raw bytes: Ed25519 32 bytes, P-256 the 65-byte uncompressed point.
 * Signatures are 64 bytes for both (P-256 as r ‖ s, IEEE P1363), so wire formats never vary.
 *
 * @example
 *   const key = generateKey('ed25519');
 *   const sig = key.sign(message);
 *   nodeVerifier.verify('ed25519', key.publicKey, message, sig) === true
 */
import {
  createPrivateKey,
  createPublicKey,
  generateKeyPairSync,
  type KeyObject,
  sign as nodeSign,
  verify as nodeVerify,
} from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname } from 'node:path';
import { sha256, toBase64Url, toHex } from './hash.ts';

export const keyAlgorithms = ['ed25519', 'p256'] as const;
export type KeyAlgorithm = (typeof keyAlgorithms)[number];

export const signatureBytes = 64;
export const publicKeyBytes: Record<KeyAlgorithm, number> = { ed25519: 32, p256: 65 };

export interface SignatureVerifier {
  verify(alg: KeyAlgorithm, publicKey: Uint8Array, message: Uint8Array, signature: Uint8Array): boolean;
}

export interface Signer {
  readonly alg: KeyAlgorithm;
  readonly publicKey: Uint8Array;
  /** Short stable fingerprint of the public key, used as `keyId` in events and messages. */
  readonly keyId: string;
  sign(message: Uint8Array): Uint8Array;
}

export class KeyFileError extends Error {
  override name = 'KeyFileError';
}

/** keyId = first 16 bytes of SHA-256(alg ‖ ":" ‖ raw public key), hex. */
export function keyIdOf(alg: KeyAlgorithm, publicKey: Uint8Array): string {
  return toHex(sha256(new TextEncoder().encode(`${alg}:`), publicKey).subarray(0, 16));
}

class NodeSigner implements Signer {
  readonly keyId: string;
  readonly alg: KeyAlgorithm;
  readonly publicKey: Uint8Array;
  readonly #key: KeyObject;
  constructor(alg: KeyAlgorithm, privateKey: KeyObject) {
    this.alg = alg;
    this.#key = privateKey;
    this.publicKey = rawPublicKey(alg, createPublicKey(privateKey));
    this.keyId = keyIdOf(alg, this.publicKey);
  }
  sign(message: Uint8Array): Uint8Array {
    const sig =
      this.alg === 'ed25519'
        ? nodeSign(null, message, this.#key)
        : nodeSign('sha256', message, { key: this.#key, dsaEncoding: 'ieee-p1363' });
    return new Uint8Array(sig.buffer, sig.byteOffset, sig.byteLength);
  }
  /** PKCS#8 PEM of the private key, for writing a key file. */
  exportPem(): string {
    return this.#key.export({ type: 'pkcs8', format: 'pem' }).toString();
  }
}

export function generateKey(alg: KeyAlgorithm = 'ed25519'): Signer & { exportPem(): string } {
  const { privateKey } =
    alg === 'ed25519' ? generateKeyPairSync('ed25519') : generateKeyPairSync('ec', { namedCurve: 'P-256' });
  return new NodeSigner(alg, privateKey);
}

function algorithmOf(key: KeyObject): KeyAlgorithm {
  if (key.asymmetricKeyType === 'ed25519') return 'ed25519';
  if (key.asymmetricKeyType === 'ec' && key.asymmetricKeyDetails?.namedCurve === 'prime256v1') return 'p256';
  throw new KeyFileError(
    `unsupported key type ${key.asymmetricKeyType}${key.asymmetricKeyDetails?.namedCurve ? `/${key.asymmetricKeyDetails.namedCurve}` : ''}: use Ed25519 or P-256`,
  );
}

function rawPublicKey(alg: KeyAlgorithm, key: KeyObject): Uint8Array {
  const jwk = key.export({ format: 'jwk' });
  const x = Buffer.from(jwk.x!, 'base64url');
  if (alg === 'ed25519') return new Uint8Array(x);
  const y = Buffer.from(jwk.y!, 'base64url');
  return new Uint8Array(Buffer.concat([Buffer.of(4), x, y]));
}

/** Builds a signer from a PKCS#8 PEM private key. */
export function signerFromPem(pem: string, source = 'key'): Signer & { exportPem(): string } {
  let key: KeyObject;
  try {
    key = createPrivateKey(pem);
  } catch (err) {
    throw new KeyFileError(`${source}: not a PEM private key (${(err as Error).message})`);
  }
  return new NodeSigner(algorithmOf(key), key);
}

/** Loads a private key file written by {@link writeKeyFile} (or by openssl: PKCS#8 or SEC1 PEM). */
export function loadKeyFile(path: string): Signer & { exportPem(): string } {
  let pem: string;
  try {
    pem = readFileSync(path, 'utf8');
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    throw new KeyFileError(
      code === 'ENOENT'
        ? `key file ${path} does not exist: create one with \`masbc-edge keygen --out ${path}\``
        : `key file ${path}: ${(err as Error).message}`,
    );
  }
  return signerFromPem(pem, `key file ${path}`);
}

/**
 * Writes `<path>` (private key, mode 0600) and `<path>.pub` (public key as JSON with alg, keyId and
 * the raw key in base64url). Refuses to overwrite either file: losing a gateway key breaks its chain
 * of signed events.
 */
export function writeKeyFile(path: string, signer: Signer & { exportPem(): string }): { publicPath: string } {
  const publicPath = `${path}.pub`;
  for (const p of [path, publicPath]) {
    if (existsSync(p)) throw new KeyFileError(`${p} already exists; refusing to overwrite a key`);
  }
  mkdirSync(dirname(path), { recursive: true, mode: 0o700 });
  // 'wx' (O_EXCL) closes the race between the check above and the write.
  writeFileSync(path, signer.exportPem(), { mode: 0o600, flag: 'wx' });
  writeFileSync(publicPath, `${JSON.stringify(publicKeyRecord(signer), null, 2)}\n`, { flag: 'wx' });
  return { publicPath };
}

export interface PublicKeyRecord {
  alg: KeyAlgorithm;
  keyId: string;
  publicKey: string;
}

export function publicKeyRecord(signer: Pick<Signer, 'alg' | 'keyId' | 'publicKey'>): PublicKeyRecord {
  return { alg: signer.alg, keyId: signer.keyId, publicKey: toBase64Url(signer.publicKey) };
}

const publicKeyCacheMax = 4096;

/** Verifier on node:crypto, caching KeyObjects (building one costs more than a verify). */
class NodeVerifier implements SignatureVerifier {
  readonly #cache = new Map<string, KeyObject>();
  verify(alg: KeyAlgorithm, publicKey: Uint8Array, message: Uint8Array, signature: Uint8Array): boolean {
    if (signature.byteLength !== signatureBytes || publicKey.byteLength !== publicKeyBytes[alg]) return false;
    const key = this.#keyObject(alg, publicKey);
    if (!key) return false;
    try {
      return alg === 'ed25519'
        ? nodeVerify(null, message, key, signature)
        : nodeVerify('sha256', message, { key, dsaEncoding: 'ieee-p1363' }, signature);
    } catch {
      return false;
    }
  }
  #keyObject(alg: KeyAlgorithm, publicKey: Uint8Array): KeyObject | undefined {
    const cacheKey = `${alg}:${toBase64Url(publicKey)}`;
    let key = this.#cache.get(cacheKey);
    if (key) return key;
    try {
      const jwk =
        alg === 'ed25519'
          ? { kty: 'OKP', crv: 'Ed25519', x: toBase64Url(publicKey) }
          : {
              kty: 'EC',
              crv: 'P-256',
              x: toBase64Url(publicKey.subarray(1, 33)),
              y: toBase64Url(publicKey.subarray(33, 65)),
            };
      if (alg === 'p256' && publicKey[0] !== 4) return undefined;
      key = createPublicKey({ key: jwk, format: 'jwk' });
    } catch {
      return undefined;
    }
    if (this.#cache.size >= publicKeyCacheMax) this.#cache.delete(this.#cache.keys().next().value!);
    this.#cache.set(cacheKey, key);
    return key;
  }
}

export const nodeVerifier: SignatureVerifier = new NodeVerifier();
