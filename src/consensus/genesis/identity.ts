/**
 * A validator's libp2p identity: the key its Noise handshakes are signed with, and the peer id
 * derived from it.
 *
 * Choice: one key file per member. An Ed25519 member key (the default, written by
 * `masbc-edge keygen`) *is* the libp2p identity: its 32-byte seed becomes a libp2p Ed25519 private
 * key, so the peer id is a function of the signing public key listed in the genesis, and the
 * genesis loader checks that the two agree. Nothing else to back up, nothing to drift apart.
 *
 * libp2p cannot make a peer id from a P-256 key (`peerIdFromPublicKey` rejects ECDSA keys), so a
 * member whose key is P-256 (say, held in a TPM) keeps a separate libp2p Ed25519 key beside it,
 * in `<key file>.libp2p` (protobuf-encoded, mode 0600). Its peer id is not tied to the signing key;
 * the genesis, which every member checks by hash, binds the two.
 *
 * Using the same Ed25519 key for Noise and for consensus signatures is safe only because the
 * signed bytes never collide: Noise signs `"noise-libp2p-static-key:" ‖ static key`, so every
 * consensus signature must be over bytes that start with its own domain tag (see docs/network.md).
 *
 * @example
 *   const id = await loadValidatorIdentity('data/keys/acme.key');
 *   id.peerId.toString() === genesis.byMemberId('acme')!.peerId
 */
import { createPrivateKey } from 'node:crypto';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import {
  generateKeyPair,
  generateKeyPairFromSeed,
  privateKeyFromProtobuf,
  privateKeyToProtobuf,
  publicKeyFromRaw,
} from '@libp2p/crypto/keys';
import type { PeerId, PrivateKey } from '@libp2p/interface';
import { peerIdFromPrivateKey, peerIdFromPublicKey } from '@libp2p/peer-id';
import { fromBase64Url } from '../../crypto/hash.ts';
import { KeyFileError, loadKeyFile, type PublicKeyRecord } from '../../crypto/keys.ts';

export interface ValidatorIdentity {
  /** libp2p private key (always Ed25519). */
  readonly privateKey: PrivateKey;
  readonly peerId: PeerId;
  /** 'member-key': derived from the Ed25519 member key; 'separate-file': read from `<key>.libp2p`. */
  readonly source: 'member-key' | 'separate-file';
}

/** Where the libp2p key of a member whose signing key is not Ed25519 is kept. */
export function libp2pKeyPathFor(memberKeyPath: string): string {
  return `${memberKeyPath}.libp2p`;
}

/**
 * Loads the libp2p identity of the member whose signing key is at `memberKeyPath`.
 * `separateKey: 'create'` writes `<key>.libp2p` if a non-Ed25519 member has none yet (only the
 * genesis generator should do this: the peer id must be in the genesis before the node starts).
 */
export async function loadValidatorIdentity(
  memberKeyPath: string,
  options: { separateKey?: 'create' | 'require' } = {},
): Promise<ValidatorIdentity> {
  const signer = loadKeyFile(memberKeyPath);
  if (signer.alg === 'ed25519') {
    const jwk = createPrivateKey(signer.exportPem()).export({ format: 'jwk' });
    const privateKey = await generateKeyPairFromSeed('Ed25519', fromBase64Url(jwk.d!));
    return { privateKey, peerId: peerIdFromPrivateKey(privateKey), source: 'member-key' };
  }
  const path = libp2pKeyPathFor(memberKeyPath);
  if (!existsSync(path)) {
    if (options.separateKey !== 'create') {
      throw new KeyFileError(
        `${memberKeyPath} is a ${signer.alg} key, which cannot be a libp2p identity, and ${path} (its libp2p key) does not exist`,
      );
    }
    const privateKey = await generateKeyPair('Ed25519');
    // 'wx' refuses to overwrite: a new libp2p key would change the peer id named in the genesis.
    writeFileSync(path, privateKeyToProtobuf(privateKey), { mode: 0o600, flag: 'wx' });
    return { privateKey, peerId: peerIdFromPrivateKey(privateKey), source: 'separate-file' };
  }
  let privateKey: PrivateKey;
  try {
    privateKey = privateKeyFromProtobuf(readFileSync(path));
  } catch (err) {
    throw new KeyFileError(`libp2p key file ${path}: ${(err as Error).message}`);
  }
  if (privateKey.type !== 'Ed25519') {
    throw new KeyFileError(`libp2p key file ${path}: expected an Ed25519 key, found ${privateKey.type}`);
  }
  return { privateKey, peerId: peerIdFromPrivateKey(privateKey), source: 'separate-file' };
}

/**
 * The peer id a member's signing key implies, or `undefined` when the key cannot be a libp2p
 * identity (P-256) and the member therefore has a separate libp2p key.
 */
export function derivedPeerId(record: PublicKeyRecord): string | undefined {
  if (record.alg !== 'ed25519') return undefined;
  return peerIdFromPublicKey(publicKeyFromRaw(fromBase64Url(record.publicKey))).toString();
}
