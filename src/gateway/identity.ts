/** The gateway's signing identity from its config: key file, public record, verifier of its own batches. */
import { readFileSync } from 'node:fs';
import { fromBase64Url } from '../crypto/hash.ts';
import { KeyFileError, loadKeyFile, type PublicKeyRecord, type Signer } from '../crypto/keys.ts';
import type { GatewayIdentity } from '../event/signer.ts';
import { BatchVerifier, type GatewayKey, keyRegistry } from '../event/verify.ts';
import type { LoadedConfig } from './config/config.ts';

export function gatewayIdentity(config: LoadedConfig): GatewayIdentity {
  const g = config.gateway.gateway;
  return { enterprise: g.enterprise, site: g.site, line: g.line, gateway: g.id };
}

/** Loads the private key named by the config (clear error if missing). */
export function loadGatewayKey(config: LoadedConfig): Signer {
  return loadKeyFile(config.paths.keyFile);
}

/** The registered form of a gateway's public key. */
export function gatewayKeyOf(
  identity: GatewayIdentity,
  key: Pick<Signer, 'alg' | 'keyId' | 'publicKey'>,
): GatewayKey {
  return {
    keyId: key.keyId,
    alg: key.alg,
    publicKey: key.publicKey,
    enterprise: identity.enterprise,
    gateway: identity.gateway,
  };
}

/** Verifier of this gateway's own batches from its public key file (`<keyFile>.pub`): no private key needed. */
export function ownBatchVerifier(config: LoadedConfig): BatchVerifier {
  const path = `${config.paths.keyFile}.pub`;
  let record: PublicKeyRecord;
  try {
    record = JSON.parse(readFileSync(path, 'utf8')) as PublicKeyRecord;
  } catch (err) {
    throw new KeyFileError(`cannot read public key ${path}: ${(err as Error).message}`);
  }
  const identity = gatewayIdentity(config);
  return new BatchVerifier(
    keyRegistry([
      gatewayKeyOf(identity, {
        alg: record.alg,
        keyId: record.keyId,
        publicKey: fromBase64Url(record.publicKey),
      }),
    ]),
  );
}
