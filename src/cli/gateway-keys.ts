/**
 * `masbc-edge gateway register|revoke|keys`: a member adds or retires a production line's gateway
 * key on the running chain, with no new genesis (docs/deploy.md, "Adding a production line").
 *
 * The gateway generates its own key on its own PC (`masbc-edge keygen`); only its `.pub` file moves
 * to the member's operator. `register` and `revoke` sign a configuration transaction
 * (src/consensus/app/config-tx.ts) with the member's identity root, read here from its
 * `identity-root.key` (it never leaves the member's folder), submit it to the member's validator
 * API (POST /v1/config) and wait until it is on the chain. The member is the one whose identity
 * root the genesis lists with this key, and the next configuration sequence comes from the
 * validator (GET /v1/config/<member>).
 *
 * @example
 *   masbc-edge gateway register --genesis /etc/masbc-edge/genesis.json \
 *     --identity-root /var/lib/masbc-edge-peer/keys/identity-root.key \
 *     --gateway gw-line3 --key gw-line3.key.pub --validator http://127.0.0.1:8080
 *   masbc-edge gateway revoke … --gateway gw-line3 --key-id 3f1c…
 *   masbc-edge gateway keys --genesis … --member acme --validator http://127.0.0.1:8080
 */
import { readFileSync } from 'node:fs';
import type { Command } from 'commander';
import { issueCredential } from '../api/auth/credentials.ts';
import { type ConfigPayload, signConfigTx } from '../consensus/app/config-tx.ts';
import { type Genesis, loadGenesis } from '../consensus/genesis/genesis.ts';
import { loadPublicKeyFile } from '../consensus/genesis/members.ts';
import { loadKeyFile } from '../crypto/keys.ts';
import { integer } from './shared.ts';

interface KeyInfo {
  gateway: string;
  keyId: string;
  alg: string;
  since: number;
  revokedAt: number | null;
}
interface Registry {
  member: string;
  height: number;
  sequence: number;
  keys: KeyInfo[];
}

interface Common {
  genesis: string;
  identityRoot: string;
  validator: string;
  waitMs: number;
}

/** The member whose identity root is in `file`, by the genesis; a clear error otherwise. */
function memberOf(genesis: Genesis, file: string): { member: string; root: ReturnType<typeof loadKeyFile> } {
  const root = loadKeyFile(file);
  const v = genesis.validators.find((x) => x.identityRoot?.keyId === root.keyId);
  if (!v) {
    const listed = genesis.validators
      .map((x) => `${x.memberId}: ${x.identityRoot?.keyId ?? 'none'}`)
      .join(', ');
    throw new Error(
      `${file} (key ${root.keyId}) is not the identity root of any member of this genesis (${listed}); ` +
        "give the member's own identity-root.key",
    );
  }
  return { member: v.memberId, root };
}

/** The credential every API call carries (docs/api.md): minted from the identity root, or given. */
let authorization: string | undefined;

/** A short-lived reader credential of `member`, signed by its identity root (which this CLI holds). */
async function authenticateAs(genesis: Genesis, member: string, root: ReturnType<typeof loadKeyFile>) {
  const { token } = await issueCredential(root, {
    member,
    chainId: genesis.chainId,
    role: 'reader',
    subject: 'masbc-edge gateway',
    ttlMs: 15 * 60_000,
  });
  authorization = `Bearer ${token}`;
}

async function call<T>(url: string, init?: RequestInit): Promise<{ status: number; body: T }> {
  let res: Response;
  try {
    res = await fetch(url, {
      ...init,
      headers: { ...(init?.headers as Record<string, string>), ...(authorization ? { authorization } : {}) },
      signal: AbortSignal.timeout(10_000),
    });
  } catch (err) {
    throw new Error(`cannot reach the validator at ${url}: ${(err as Error).message}`);
  }
  const text = await res.text();
  let body: unknown;
  try {
    body = JSON.parse(text);
  } catch {
    throw new Error(`${url} answered ${res.status} with something that is not JSON: ${text.slice(0, 200)}`);
  }
  return { status: res.status, body: body as T };
}

async function registryAt(validator: string, member: string): Promise<Registry> {
  const r = await call<Registry & { error?: string }>(`${validator}/v1/config/${member}`);
  if (r.status !== 200)
    throw new Error(`the validator could not list ${member}'s keys: ${r.body.error ?? r.status}`);
  return r.body;
}

/** Submits a signed configuration transaction and waits until it is on the chain; returns its height. */
async function submitAndWait(
  validator: string,
  tx: Uint8Array,
  waitMs: number,
): Promise<{ id: string; height: number }> {
  const r = await call<{ id?: string; error?: string; code?: string }>(`${validator}/v1/config`, {
    method: 'POST',
    headers: { 'content-type': 'application/octet-stream' },
    body: tx,
  });
  if (r.status !== 202 || !r.body.id)
    throw new Error(
      `refused by the validator: ${r.body.code ?? r.status}: ${r.body.error ?? 'no reason given'}`,
    );
  const id = r.body.id;
  const deadline = Date.now() + waitMs;
  for (;;) {
    const q = await call<{ receipts?: ({ height: number } | null)[] }>(`${validator}/v1/receipts`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ ids: [id] }),
    });
    const receipt = q.body.receipts?.[0];
    if (receipt) return { id, height: receipt.height };
    if (Date.now() > deadline)
      throw new Error(
        `transaction ${id} was accepted but is not on the chain after ${waitMs} ms (is a quorum of validators up?); ` +
          'check later with `masbc-edge gateway keys`',
      );
    await new Promise((resolve) => setTimeout(resolve, 250));
  }
}

function common(c: Command): Command {
  return c
    .requiredOption('--genesis <file>', 'the alliance genesis')
    .requiredOption('--identity-root <file>', "the member's identity root private key (identity-root.key)")
    .requiredOption('--validator <url>', "the member's validator API, e.g. http://127.0.0.1:8080")
    .option(
      '--wait-ms <ms>',
      'how long to wait for the transaction to be on the chain',
      integer(0, 600_000),
      30_000,
    );
}

export function registerGatewayKeys(program: Command): void {
  const gateway = program
    .command('gateway')
    .description(
      "Register or revoke a gateway's key on the running chain (signed by the member's identity root)",
    );

  common(gateway.command('register'))
    .description("Register a gateway key: the gateway's events are accepted from the block after")
    .requiredOption('--gateway <id>', "the gateway's id (gateway.id in its gateway.yaml)")
    .requiredOption(
      '--key <pubfile>',
      "the gateway's public key file (<key>.pub, written by keygen on the gateway)",
    )
    .action(async (o: Common & { gateway: string; key: string }) => {
      const genesis = loadGenesis(o.genesis);
      const { member, root } = memberOf(genesis, o.identityRoot);
      await authenticateAs(genesis, member, root);
      const key = loadPublicKeyFile(o.key);
      const reg = await registryAt(o.validator, member);
      const held = reg.keys.find((k) => k.keyId === key.keyId);
      if (held)
        throw new Error(
          `key ${key.keyId} is already ${held.revokedAt === null ? 'registered' : 'revoked'} for ${member}/${held.gateway}: ` +
            'a key is registered once; generate a new one on the gateway',
        );
      const payload: ConfigPayload = {
        v: 1,
        chainId: genesis.chainId,
        member,
        seq: reg.sequence + 1,
        op: 'register',
        gateway: o.gateway,
        key,
      };
      const { id, height } = await submitAndWait(o.validator, signConfigTx(payload, root), o.waitMs);
      console.log(
        `registered ${member}/${o.gateway} key ${key.keyId} at height ${height} (transaction ${id}); ` +
          `its events are accepted from height ${height + 1}`,
      );
    });

  common(gateway.command('revoke'))
    .description('Revoke a gateway key: its events are refused from the block after')
    .requiredOption('--gateway <id>', "the gateway's id")
    .option('--key-id <hex>', 'the key to revoke (its keyId)')
    .option('--key <pubfile>', 'or: its public key file')
    .action(async (o: Common & { gateway: string; keyId?: string; key?: string }) => {
      const keyId = o.keyId ?? (o.key ? loadPublicKeyFile(o.key).keyId : undefined);
      if (!keyId) throw new Error('give --key-id <hex> or --key <pubfile>: which key to revoke');
      const genesis = loadGenesis(o.genesis);
      const { member, root } = memberOf(genesis, o.identityRoot);
      await authenticateAs(genesis, member, root);
      const reg = await registryAt(o.validator, member);
      const held = reg.keys.find((k) => k.keyId === keyId && k.gateway === o.gateway);
      if (!held)
        throw new Error(`${member}/${o.gateway} has no key ${keyId} (see \`masbc-edge gateway keys\`)`);
      if (held.revokedAt !== null)
        throw new Error(`key ${keyId} was revoked at height ${held.revokedAt} already`);
      const payload: ConfigPayload = {
        v: 1,
        chainId: genesis.chainId,
        member,
        seq: reg.sequence + 1,
        op: 'revoke',
        gateway: o.gateway,
        keyId,
      };
      const { id, height } = await submitAndWait(o.validator, signConfigTx(payload, root), o.waitMs);
      console.log(
        `revoked ${member}/${o.gateway} key ${keyId} at height ${height} (transaction ${id}); ` +
          `its events are refused from height ${height + 1}`,
      );
    });

  gateway
    .command('keys')
    .description("A member's gateway keys on the chain, and its configuration sequence")
    .requiredOption('--member <id>', 'member id')
    .requiredOption('--validator <url>', 'a validator API')
    .requiredOption('--credential <file>', 'a reader credential (masbc-edge credential issue --role reader)')
    .action(async (o: { member: string; validator: string; credential: string }) => {
      authorization = `Bearer ${readFileSync(o.credential, 'utf8').trim()}`;
      const reg = await registryAt(o.validator, o.member);
      console.log(`${reg.member} at height ${reg.height}: configuration sequence ${reg.sequence}`);
      for (const k of reg.keys)
        console.log(
          `  ${reg.member}/${k.gateway}: key ${k.keyId} (${k.alg}) since ${k.since === 0 ? 'the genesis' : `height ${k.since}`}` +
            (k.revokedAt === null ? '' : `, revoked at height ${k.revokedAt}`),
        );
    });
}
