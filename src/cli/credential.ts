/**
 * `masbc-edge credential issue|revoke`: a member issues credentials with its identity root (the
 * private key in its own folder, never anywhere else) and revokes them in its validator's data folder.
 *
 * @example
 *   masbc-edge credential issue --genesis genesis.json --identity-root keys/acme/identity-root.key \
 *     --role customer --subject globex --order PO-1 --days 30 > globex.jwt
 *   masbc-edge credential revoke <jti or token> --data data/acme
 */
import { join } from 'node:path';
import type { Command } from 'commander';
import {
  type CredentialRole,
  credentialRoles,
  issueCredential,
  unverifiedJtiOf,
} from '../api/auth/credentials.ts';
import { revokeCredential } from '../api/auth/revocations.ts';
import { loadGenesis } from '../consensus/genesis/genesis.ts';
import { loadKeyFile } from '../crypto/keys.ts';
import { integer } from './shared.ts';

const day = 86_400_000;

interface IssueOptions {
  genesis: string;
  identityRoot?: string;
  memberDir?: string;
  member?: string;
  role: string;
  subject: string;
  order: string[];
  gateway?: string;
  days: number;
  json?: boolean;
}

/** Issues a credential as the CLI does; returns the token and its id. */
export async function issueFromFiles(
  o: Omit<IssueOptions, 'json'>,
): Promise<{ token: string; jti: string; expMs: number; member: string }> {
  if (!(credentialRoles as readonly string[]).includes(o.role))
    throw new Error(`unknown role "${o.role}": use ${credentialRoles.join(', ')}`);
  const keyFile = o.identityRoot ?? (o.memberDir ? join(o.memberDir, 'identity-root.key') : undefined);
  if (!keyFile)
    throw new Error('give --identity-root <file> or --member-dir <folder holding identity-root.key>');
  const genesis = loadGenesis(o.genesis);
  const root = loadKeyFile(keyFile);
  const member = o.member ?? genesis.validators.find((v) => v.identityRoot?.keyId === root.keyId)?.memberId;
  if (!member) throw new Error(`${keyFile} is the identity root of no member of ${o.genesis}`);
  const listed = genesis.requireIdentityRoot(member);
  if (listed.keyId !== root.keyId)
    throw new Error(
      `${keyFile} is not ${member}'s identity root in ${o.genesis} (keyId ${root.keyId}, genesis ${listed.keyId})`,
    );
  const issued = await issueCredential(root, {
    member,
    chainId: genesis.chainId,
    role: o.role as CredentialRole,
    subject: o.subject,
    ...(o.order.length > 0 ? { orders: o.order } : {}),
    ...(o.gateway ? { gateway: o.gateway } : {}),
    ttlMs: o.days * day,
  });
  return { ...issued, member };
}

export function registerCredential(program: Command): void {
  const cmd = program
    .command('credential')
    .description("Issue and revoke credentials with a member's identity root");
  cmd
    .command('issue')
    .description('Print a new credential (a JWT signed by the identity root) on standard output')
    .requiredOption('--genesis <file>', 'the alliance genesis (its chain id is the audience)')
    .option('--identity-root <file>', "the member's identity-root.key")
    .option('--member-dir <dir>', 'the member folder holding identity-root.key (instead of --identity-root)')
    .option('--member <id>', 'member id (default: the one whose identity root the key is)')
    .requiredOption('--role <role>', `${credentialRoles.join(' | ')}`)
    .requiredOption('--subject <name>', 'who holds it: a person, a system, a customer, a gateway')
    .option(
      '--order <id>',
      'customer: an order it may follow (repeat for more)',
      (v: string, acc: string[]) => [...acc, v],
      [],
    )
    .option('--gateway <id>', 'gateway: its gateway id')
    .option('--days <n>', 'days it is valid (at most 366)', integer(1, 366), 30)
    .option('--json', 'print {token, jti, exp, member} as JSON instead of the bare token')
    .action(async (o: IssueOptions) => {
      const r = await issueFromFiles(o);
      if (o.json)
        console.log(
          JSON.stringify({
            token: r.token,
            jti: r.jti,
            exp: new Date(r.expMs).toISOString(),
            member: r.member,
          }),
        );
      else console.log(r.token);
      console.error(
        `issued ${o.role} credential ${r.jti} of ${r.member} for ${o.subject}, valid until ${new Date(r.expMs).toISOString()}`,
      );
    });
  cmd
    .command('revoke <jti-or-token>')
    .description(
      "Add a credential to the member's revocation list (its API refuses it from the next request)",
    )
    .requiredOption('--data <dir>', "the member validator's data folder")
    .action((what: string, o: { data: string }) => {
      const fromToken = what.includes('.') ? unverifiedJtiOf(what) : undefined;
      if (what.includes('.') && !fromToken) throw new Error('that token has no jti/exp to revoke');
      const entry = fromToken ?? { jti: what };
      const { entries } = revokeCredential(o.data, entry);
      console.log(`revoked ${entry.jti} (${entries} live revocations in ${o.data})`);
    });
}
