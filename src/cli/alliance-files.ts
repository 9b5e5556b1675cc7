/**
 * `masbc-edge alliance member|genesis|inspect`: a real alliance's genesis from its members' public
 * files (src/consensus/genesis/members.ts; docs/deploy.md walks through it).
 *
 * - `member`, on each member's own machine: writes its member file (validator public key, peer id,
 *   addresses, identity root public key, its gateways' public keys) from its private keys, which never
 *   leave the machine. The identity root (`identity-root.key` next to the validator key unless
 *   `--identity-root` names it) is created there if missing.
 * - `genesis`, anywhere: assembles the genesis from every member's file, in the order given.
 * - `inspect`: what a genesis holds and its hash, for members to compare before they start.
 *
 * @example
 *   masbc-edge keygen --out /var/lib/masbc-edge/keys/member.key
 *   masbc-edge alliance member --id acme --key /var/lib/masbc-edge/keys/member.key \
 *     --addr /dns4/validator.acme.example/tcp/4001 --gateway gw-line1=gw-line1.key.pub --out acme.pub.json
 *   masbc-edge alliance genesis --chain-id metal-alliance --member acme.pub.json --member borealis.pub.json \
 *     --member cobalt.pub.json --member dynamo.pub.json --out genesis.json
 *   masbc-edge alliance inspect --genesis genesis.json
 */
import { existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import type { Command } from 'commander';
import { encodeGenesis, loadGenesis } from '../consensus/genesis/genesis.ts';
import {
  assembleGenesis,
  encodeMemberFile,
  identityRootFileName,
  loadMemberFile,
  memberFileFor,
} from '../consensus/genesis/members.ts';
import { generateKey, writeKeyFile } from '../crypto/keys.ts';
import { integer } from './shared.ts';

/** The libp2p port the docs, the compose example and the Dockerfile use for a member's validator. */
export const validatorDefaultPort = 4001;

const collect = (value: string, previous: string[] = []) => [...previous, value];

function writeNew(file: string, text: string): void {
  if (existsSync(file)) throw new Error(`${file} already exists; refusing to overwrite it`);
  mkdirSync(dirname(file), { recursive: true });
  writeFileSync(file, text, { flag: 'wx' });
}

export function registerAllianceFiles(alliance: Command): void {
  alliance
    .command('member')
    .description("Write this member's public file for the genesis (on the member's own machine)")
    .requiredOption('--id <member>', 'member id (the enterprise id its gateways use)')
    .requiredOption('--key <file>', "this member's validator key (create with `masbc-edge keygen`)")
    .option(
      '--addr <multiaddr>',
      `where other validators reach this one, e.g. /dns4/validator.acme.example/tcp/${validatorDefaultPort} (repeatable)`,
      collect,
    )
    .option(
      '--listen <multiaddr>',
      `what it binds when not --addr, e.g. /ip4/0.0.0.0/tcp/${validatorDefaultPort}`,
      collect,
    )
    .option(
      '--identity-root <file>',
      `this member's identity root key (created if missing; default: ${identityRootFileName} next to --key)`,
    )
    .option(
      '--gateway <id=pubfile>',
      'a gateway of this member and its public key file (<key>.pub; repeatable)',
      collect,
    )
    .requiredOption('-o, --out <file>', 'member file to write, e.g. acme.pub.json (never overwritten)')
    .action(
      async (opts: {
        id: string;
        key: string;
        addr?: string[];
        listen?: string[];
        gateway?: string[];
        identityRoot?: string;
        out: string;
      }) => {
        if (!opts.addr?.length)
          throw new Error('give at least one --addr: where the other validators reach this one');
        const gateways = (opts.gateway ?? []).map((spec) => {
          const i = spec.indexOf('=');
          if (i <= 0) throw new Error(`--gateway expects <id>=<public key file>, got "${spec}"`);
          return { gateway: spec.slice(0, i), publicKeyFile: spec.slice(i + 1) };
        });
        const identityRootFile = opts.identityRoot ?? join(dirname(opts.key), identityRootFileName);
        if (!existsSync(identityRootFile)) {
          writeKeyFile(identityRootFile, generateKey('ed25519'));
          console.log(`created ${identityRootFile}: this member's identity root (keep it on this machine)`);
        }
        const file = await memberFileFor({
          memberId: opts.id,
          keyFile: opts.key,
          identityRootFile,
          addrs: opts.addr,
          listen: opts.listen,
          gateways,
        });
        writeNew(opts.out, encodeMemberFile(file));
        console.log(
          `wrote ${opts.out}: member ${file.memberId}, key ${file.publicKey.keyId}, peer id ${file.peerId}, ` +
            `identity root ${file.identityRoot?.keyId}, ${file.gateways.length} gateway key(s). ` +
            'It holds public values only: send it to the alliance.',
        );
      },
    );

  alliance
    .command('genesis')
    .description("Assemble the genesis from every member's public file (no private key needed)")
    .requiredOption(
      '--member <file>',
      "a member file (repeatable; the order is the validators' order)",
      collect,
    )
    .requiredOption('--chain-id <id>', 'the alliance chain id, e.g. metal-alliance')
    .option(
      '--genesis-time <iso>',
      'UTC start, e.g. 2026-12-01T06:00:00.000Z (default now; fix it to reproduce the file)',
    )
    .option(
      '--view-change-timeout-ms <ms>',
      'T: how long a backup waits for progress',
      integer(50, 600_000),
      2_000,
    )
    .requiredOption('-o, --out <file>', 'genesis file to write (never overwritten)')
    .action(
      (opts: {
        member: string[];
        chainId: string;
        genesisTime?: string;
        viewChangeTimeoutMs: number;
        out: string;
      }) => {
        const genesis = assembleGenesis({
          chainId: opts.chainId,
          genesisTime: opts.genesisTime,
          params: { viewChangeTimeoutMs: opts.viewChangeTimeoutMs },
          members: opts.member.map((f) => loadMemberFile(f)),
          sources: opts.member,
        });
        writeNew(opts.out, encodeGenesis(genesis));
        console.log(`wrote ${opts.out}`);
        printGenesis(genesis);
      },
    );

  alliance
    .command('inspect')
    .description('Show what a genesis holds and its hash (members compare the hash before starting)')
    .requiredOption('--genesis <file>', 'the genesis file')
    .action((opts: { genesis: string }) => printGenesis(loadGenesis(opts.genesis)));
}

function printGenesis(genesis: ReturnType<typeof loadGenesis>): void {
  console.log(
    `chain ${genesis.chainId}, genesis hash ${genesis.hash}\n` +
      `${genesis.n} validators, tolerating ${genesis.f} faulty (quorum ${genesis.quorum}); T = ${genesis.params.viewChangeTimeoutMs} ms`,
  );
  for (const v of genesis.validators)
    console.log(
      `  validator ${v.memberId}: key ${v.publicKey.keyId}, peer id ${v.peerId}, ${v.addrs.join(' ')}; identity root ${v.identityRoot?.keyId ?? 'none'}`,
    );
  for (const g of genesis.gateways)
    console.log(`  gateway ${g.memberId}/${g.gateway}: key ${g.publicKey.keyId}`);
}
