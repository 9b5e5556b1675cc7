/**
 * Credentials (issue 11, docs/api.md "Identities"): compact JWS (JWT) signed by a member's identity
 * root, through `jose` (no home-made token format). A member issues them to its readers (its own
 * people and systems), its customers (bound to orders) and its gateways; any API of the alliance
 * checks one against the genesis alone (`genesis.identityRoot(iss)`).
 *
 * Claims: `iss` the member id, `aud` the chain id, `sub` the holder, `jti` unique, `iat`, `exp`
 * (required, at most `credentialLifetimeMaxMs` after `iat`), and `role`:
 *   - `reader`   the member's own people and systems;
 *   - `customer` with `orders: [orderId, …]` (1 to `credentialOrdersMax`);
 *   - `gateway`  with `gateway: <gateway id>`.
 * The algorithm is EdDSA for Ed25519 roots (ES256 for P-256 ones), taken from the root's record,
 * never from the token's header.
 *
 * Verification never throws on bad input: it answers a stable code (`CredentialCode`).
 *
 * @example
 *   const token = await issueCredential(loadKeyFile('identity-root.key'), { member: 'acme', chainId,
 *     role: 'customer', subject: 'globex', orders: ['PO-1'], ttlMs: 30 * 86_400_000 });
 *   const v = await verifyCredential(token, { chainId, identityRoot: (m) => genesis.identityRoot(m) });
 *   if (v.ok) v.principal.orders;   // ['PO-1']
 */
import { createPrivateKey, createPublicKey, type KeyObject, randomUUID } from 'node:crypto';
import { decodeJwt, errors as joseErrors, jwtVerify, SignJWT } from 'jose';
import { z } from 'zod';
import { fromBase64Url, toBase64Url } from '../../crypto/hash.ts';
import type { KeyAlgorithm, PublicKeyRecord, Signer } from '../../crypto/keys.ts';

export const credentialRoles = ['reader', 'customer', 'gateway'] as const;
export type CredentialRole = (typeof credentialRoles)[number];

/** Longest life of a credential: bounds how long a revoked `jti` must be remembered. */
export const credentialLifetimeMaxMs = 366 * 86_400_000;
/** Orders one customer credential may name. */
export const credentialOrdersMax = 64;
/** Largest token accepted (an Authorization header above it is refused unread). */
export const credentialCharsMax = 8192;
/** Clock skew tolerated on `iat`/`nbf`/`exp`. */
export const clockToleranceS = 60;

const identifier = /^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/;
const orderIdSchema = z.string().min(1).max(128);

export const claimsSchema = z.object({
  iss: z.string().regex(/^[a-z0-9][a-z0-9._-]{0,62}$/),
  aud: z.union([z.string(), z.array(z.string()).length(1)]),
  sub: z.string().min(1).max(128),
  jti: z.string().min(8).max(128),
  iat: z.number().int(),
  exp: z.number().int(),
  role: z.enum(credentialRoles),
  orders: z.array(orderIdSchema).min(1).max(credentialOrdersMax).optional(),
  gateway: z.string().regex(identifier).optional(),
});

/** Who a verified credential speaks for. */
export interface Principal {
  role: CredentialRole;
  /** The issuing member (`iss`). */
  member: string;
  subject: string;
  jti: string;
  /** Expiry, ms since the epoch. */
  expMs: number;
  /** Customer: the orders it may follow (empty otherwise). */
  orders: readonly string[];
  /** Gateway: its gateway id. */
  gateway?: string;
}

/** Why a request carries no usable credential (HTTP 401). Stable: documented in docs/api.md. */
export const credentialCodes = [
  'credential_missing',
  'credential_malformed',
  'credential_unknown_issuer',
  'credential_wrong_audience',
  'credential_forged',
  'credential_expired',
  'credential_not_yet_valid',
  'credential_revoked',
] as const;
export type CredentialCode = (typeof credentialCodes)[number];

export type CredentialVerdict =
  | { ok: true; principal: Principal }
  | { ok: false; code: CredentialCode; message: string };

export interface IssueRequest {
  member: string;
  chainId: string;
  role: CredentialRole;
  subject: string;
  /** Customer: the orders it may follow. */
  orders?: readonly string[];
  /** Gateway: its gateway id. */
  gateway?: string;
  ttlMs: number;
  nowMs?: number;
  /** Default: a random UUID. */
  jti?: string;
}

const jwsAlg: Record<KeyAlgorithm, string> = { ed25519: 'EdDSA', p256: 'ES256' };

/** Signs a credential with the member's identity root (a Signer loaded from identity-root.key). */
export async function issueCredential(
  root: Signer & { exportPem(): string },
  req: IssueRequest,
): Promise<{ token: string; jti: string; expMs: number }> {
  if (!(req.ttlMs > 0 && req.ttlMs <= credentialLifetimeMaxMs))
    throw new RangeError(`a credential lives 1 ms to ${credentialLifetimeMaxMs / 86_400_000} days`);
  if (req.role === 'customer' && !(req.orders && req.orders.length >= 1))
    throw new RangeError('a customer credential names at least one order (--order)');
  if ((req.orders?.length ?? 0) > credentialOrdersMax)
    throw new RangeError(`a customer credential names at most ${credentialOrdersMax} orders`);
  if (req.role !== 'customer' && req.orders?.length)
    throw new RangeError('only a customer credential names orders');
  if (req.role === 'gateway' && !(req.gateway && identifier.test(req.gateway)))
    throw new RangeError('a gateway credential names its gateway id (--gateway)');
  if (req.role !== 'gateway' && req.gateway)
    throw new RangeError('only a gateway credential names a gateway');
  const nowS = Math.floor((req.nowMs ?? Date.now()) / 1000);
  const expS = nowS + Math.max(1, Math.floor(req.ttlMs / 1000));
  const jti = req.jti ?? randomUUID();
  const claims: Record<string, unknown> = { role: req.role };
  if (req.orders) claims.orders = [...req.orders];
  if (req.gateway) claims.gateway = req.gateway;
  const key: KeyObject = createPrivateKey(root.exportPem());
  const token = await new SignJWT(claims)
    .setProtectedHeader({ alg: jwsAlg[root.alg], typ: 'JWT', kid: root.keyId })
    .setIssuer(req.member)
    .setAudience(req.chainId)
    .setSubject(req.subject)
    .setJti(jti)
    .setIssuedAt(nowS)
    .setExpirationTime(expS)
    .sign(key);
  return { token, jti, expMs: expS * 1000 };
}

export interface VerifyOptions {
  chainId: string;
  /** The member's identity root from the genesis (undefined: that member issues no credentials). */
  identityRoot: (member: string) => PublicKeyRecord | undefined;
  /** Is this `jti` of this member revoked? (Each API knows its own member's list.) */
  isRevoked?: (member: string, jti: string) => boolean;
  nowMs?: number;
}

const publicKeyCacheMax = 256;
const publicKeys = new Map<string, KeyObject>();

function publicKeyOf(record: PublicKeyRecord): KeyObject {
  const cacheKey = `${record.alg}:${record.publicKey}`;
  let key = publicKeys.get(cacheKey);
  if (key) return key;
  const raw = fromBase64Url(record.publicKey);
  const jwk =
    record.alg === 'ed25519'
      ? { kty: 'OKP', crv: 'Ed25519', x: record.publicKey }
      : {
          kty: 'EC',
          crv: 'P-256',
          x: toBase64Url(raw.subarray(1, 33)),
          y: toBase64Url(raw.subarray(33, 65)),
        };
  key = createPublicKey({ key: jwk, format: 'jwk' });
  if (publicKeys.size >= publicKeyCacheMax) publicKeys.delete(publicKeys.keys().next().value!);
  publicKeys.set(cacheKey, key);
  return key;
}

const refuse = (code: CredentialCode, message: string): CredentialVerdict => ({ ok: false, code, message });

/** Checks a token against the genesis; never throws. */
export async function verifyCredential(token: string, options: VerifyOptions): Promise<CredentialVerdict> {
  if (token.length === 0) return refuse('credential_missing', 'no credential');
  if (token.length > credentialCharsMax || !/^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+$/.test(token))
    return refuse('credential_malformed', 'the credential is not a compact JWS (header.payload.signature)');
  let unverified: z.output<typeof claimsSchema>;
  try {
    const parsed = claimsSchema.safeParse(decodeJwt(token));
    if (!parsed.success)
      return refuse(
        'credential_malformed',
        `the credential's claims are not those of a masbc-edge credential: ${parsed.error.issues[0]?.path.join('.') || ''} ${parsed.error.issues[0]?.message ?? ''}`.trim(),
      );
    unverified = parsed.data;
  } catch {
    return refuse('credential_malformed', 'the credential does not decode as a JWT');
  }
  const root = options.identityRoot(unverified.iss);
  if (!root)
    return refuse(
      'credential_unknown_issuer',
      `"${unverified.iss}" has no identity root in the genesis, so it issues no credentials`,
    );
  const nowS = Math.floor((options.nowMs ?? Date.now()) / 1000);
  let claims: z.output<typeof claimsSchema>;
  try {
    const { payload } = await jwtVerify(token, publicKeyOf(root), {
      algorithms: [jwsAlg[root.alg]],
      issuer: unverified.iss,
      audience: options.chainId,
      requiredClaims: ['exp', 'jti', 'sub', 'iat'],
      clockTolerance: clockToleranceS,
      currentDate: new Date(nowS * 1000),
    });
    claims = claimsSchema.parse(payload);
  } catch (err) {
    if (err instanceof joseErrors.JWTExpired)
      return refuse('credential_expired', 'the credential has expired');
    if (err instanceof joseErrors.JWTClaimValidationFailed) {
      if (err.claim === 'aud')
        return refuse('credential_wrong_audience', `the credential is not for chain ${options.chainId}`);
      if (err.claim === 'nbf' || err.claim === 'iat')
        return refuse('credential_not_yet_valid', 'the credential is not valid yet');
      return refuse('credential_malformed', `the credential's ${err.claim} claim is not acceptable`);
    }
    if (
      err instanceof joseErrors.JWSSignatureVerificationFailed ||
      err instanceof joseErrors.JOSEAlgNotAllowed
    )
      return refuse('credential_forged', `the credential is not signed by ${unverified.iss}'s identity root`);
    return refuse('credential_malformed', `the credential does not verify (${(err as Error).name})`);
  }
  if (claims.iat > nowS + clockToleranceS)
    return refuse('credential_not_yet_valid', 'the credential is issued in the future');
  if ((claims.exp - claims.iat) * 1000 > credentialLifetimeMaxMs + clockToleranceS * 1000)
    return refuse('credential_malformed', 'the credential lives longer than a credential may');
  if (claims.role === 'customer' && !claims.orders)
    return refuse('credential_malformed', 'a customer credential names its orders');
  if (claims.role === 'gateway' && !claims.gateway)
    return refuse('credential_malformed', 'a gateway credential names its gateway');
  if (options.isRevoked?.(claims.iss, claims.jti))
    return refuse('credential_revoked', 'the credential has been revoked by its issuer');
  return {
    ok: true,
    principal: {
      role: claims.role,
      member: claims.iss,
      subject: claims.sub,
      jti: claims.jti,
      expMs: claims.exp * 1000,
      orders: claims.role === 'customer' ? (claims.orders ?? []) : [],
      ...(claims.role === 'gateway' ? { gateway: claims.gateway } : {}),
    },
  };
}

/** The `jti` and expiry a token claims, unverified (what `credential revoke <token>` records). */
export function unverifiedJtiOf(token: string): { jti: string; expMs: number } | undefined {
  try {
    const c = decodeJwt(token);
    if (typeof c.jti === 'string' && typeof c.exp === 'number') return { jti: c.jti, expMs: c.exp * 1000 };
  } catch {}
  return undefined;
}
