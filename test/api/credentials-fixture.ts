/**
 * Credentials for tests, issued with the members' identity roots of a local alliance (which holds
 * every member's folder, as the demo does).
 */
import { type CredentialRole, issueCredential } from '../../src/api/auth/credentials.ts';
import { loadKeyFile } from '../../src/crypto/keys.ts';
import type { LocalAlliance } from '../../src/devtools/local-alliance.ts';

export interface TokenRequest {
  role?: CredentialRole;
  subject?: string;
  orders?: string[];
  gateway?: string;
  ttlMs?: number;
  nowMs?: number;
  jti?: string;
}

export async function tokenFor(
  alliance: LocalAlliance,
  member: string,
  req: TokenRequest = {},
): Promise<string> {
  const file = alliance.identityRootFiles.get(member);
  if (!file) throw new Error(`no identity root for ${member}`);
  const role = req.role ?? 'reader';
  const { token } = await issueCredential(loadKeyFile(file), {
    member,
    chainId: alliance.genesis.chainId,
    role,
    subject: req.subject ?? `${role}-of-${member}`,
    ...(req.orders ? { orders: req.orders } : {}),
    ...(req.gateway ? { gateway: req.gateway } : {}),
    ttlMs: req.ttlMs ?? 3_600_000,
    ...(req.nowMs === undefined ? {} : { nowMs: req.nowMs }),
    ...(req.jti === undefined ? {} : { jti: req.jti }),
  });
  return token;
}

export const bearer = (token: string) => ({ authorization: `Bearer ${token}` });
