/**
 * A real alliance's genesis, assembled from what each member publishes and nothing else.
 *
 * Each member generates its keys on its own machine (`masbc-edge keygen`) and writes its **member
 * file** (`masbc-edge alliance member`): its member id, its validator's public key and libp2p peer id,
 * the addresses the other validators dial, its identity root's public key (`identity-root.key`, which
 * signs its credentials and gateway registrations), and the public keys of its gateways (their `.pub`
 * files).
 * Only public values: the file can be mailed. One member (or each of them: the result is the same)
 * assembles the genesis from every member's file (`masbc-edge alliance genesis --member a.pub.json
 * …`), in the order given, which fixes the replica order. No tool needs another member's private key.
 *
 * The genesis is validated as any genesis is (genesis.ts): a peer id that is not the member key's,
 * a key given twice, an address that is not TCP — each is reported with its file and field. Its hash
 * (printed by `alliance genesis` and `alliance inspect`) is what members compare out of band before
 * they start.
 *
 * @example
 *   const mine = await memberFileFor({ memberId: 'acme', keyFile: 'keys/acme.key',
 *     addrs: ['/dns4/validator.acme.example/tcp/4001'], gateways: [{ gateway: 'gw-line1', publicKeyFile: 'gw-line1.key.pub' }] });
 *   const genesis = assembleGenesis({ chainId: 'metal-alliance', members: [mine, ...theirs] });
 */
import { z } from 'zod';
import { ConfigError, fieldPath } from '../../config/errors.ts';
import { loadYaml } from '../../config/load.ts';
import { loadKeyFile, type PublicKeyRecord, publicKeyRecord } from '../../crypto/keys.ts';
import {
  type Genesis,
  genesisFromDocument,
  genesisSchema,
  genesisVersion,
  type ProtocolParams,
} from './genesis.ts';
import { loadValidatorIdentity } from './identity.ts';

export const memberFileVersion = 1;
/** The file name of a member's identity root private key, in the member's own folder (next to its validator key). */
export const identityRootFileName = 'identity-root.key';
/** What a member file says it is (a genesis or a key file passed by mistake is refused by name). */
export const memberFileKind = 'masbc-edge member';
/** Gateways one member file may register (the genesis bounds all of them together). */
export const memberGatewaysMax = 1_024;

const publicKey = z.strictObject({
  alg: z.enum(['ed25519', 'p256']),
  keyId: z.string().regex(/^[0-9a-f]{32}$/),
  publicKey: z.string().regex(/^[A-Za-z0-9_-]+$/),
});

export const memberFileSchema = z.strictObject({
  kind: z.literal(memberFileKind),
  version: z.literal(memberFileVersion),
  memberId: z.string().min(1).max(63),
  publicKey,
  peerId: z.string().min(1),
  addrs: z.array(z.string()).min(1).max(8),
  listen: z.array(z.string()).min(1).max(8).optional(),
  identityRoot: publicKey.optional(),
  gateways: z
    .array(z.strictObject({ gateway: z.string().min(1).max(64), publicKey }))
    .max(memberGatewaysMax)
    .default([]),
});

export type MemberFile = z.output<typeof memberFileSchema>;

export interface MemberFileInput {
  memberId: string;
  /** This member's private validator key, on this machine. */
  keyFile: string;
  /** Where the other validators reach this one, e.g. /dns4/validator.acme.example/tcp/4001. */
  addrs: string[];
  /** What this validator binds, when not its addrs (e.g. /ip4/0.0.0.0/tcp/4001 behind NAT). */
  listen?: string[] | undefined;
  /**
   * This member's identity root private key (`identity-root.key`, on this machine); only its public
   * half goes into the file. Without it the member can issue no credentials and register no gateways.
   */
  identityRootFile?: string | undefined;
  /** This member's gateways and their public key files (`<key>.pub`, written by keygen). */
  gateways?: { gateway: string; publicKeyFile: string }[];
}

/**
 * The member file of the validator whose key is `keyFile` (read here, on the member's machine; only
 * its public half goes into the file). A P-256 member key gets its libp2p key beside it
 * (`<key>.libp2p`) if it has none yet, as its peer id must be in the genesis.
 */
export async function memberFileFor(input: MemberFileInput): Promise<MemberFile> {
  const signer = loadKeyFile(input.keyFile);
  const identity = await loadValidatorIdentity(input.keyFile, { separateKey: 'create' });
  const gateways = (input.gateways ?? []).map((g) => ({
    gateway: g.gateway,
    publicKey: loadPublicKeyFile(g.publicKeyFile),
  }));
  const file: MemberFile = {
    kind: memberFileKind,
    version: memberFileVersion,
    memberId: input.memberId,
    publicKey: publicKeyRecord(signer),
    peerId: identity.peerId.toString(),
    addrs: input.addrs,
    ...(input.listen?.length ? { listen: input.listen } : {}),
    ...(input.identityRootFile ? { identityRoot: publicKeyRecord(loadKeyFile(input.identityRootFile)) } : {}),
    gateways,
  };
  // Checked as the genesis will check it, so a mistake is found on this machine, not at assembly.
  assembleGenesis({ chainId: 'check', genesisTime: new Date(0).toISOString(), members: [file] });
  return file;
}

/** A public key file (`<key>.pub`, JSON {alg, keyId, publicKey}); the key's own id is checked by the genesis. */
export function loadPublicKeyFile(file: string): PublicKeyRecord {
  const loaded = loadYaml(file, publicKey, { env: {} });
  if (!loaded.value) throw new ConfigError(loaded.issues);
  return loaded.value;
}

/** Reads and checks a member file (JSON or YAML). Throws ConfigError with file, line and field. */
export function loadMemberFile(file: string): MemberFile {
  const loaded = loadYaml(file, memberFileSchema, { env: {} });
  if (!loaded.value) throw new ConfigError(loaded.issues);
  return loaded.value;
}

export function encodeMemberFile(file: MemberFile): string {
  return `${JSON.stringify(file, null, 2)}\n`;
}

export interface AssembleOptions {
  chainId: string;
  /** In replica order (the order of `--member` flags). */
  members: MemberFile[];
  /** ISO 8601 UTC; default now. Give it to make every member's assembly byte-identical. */
  genesisTime?: string;
  params?: Partial<ProtocolParams>;
  /** Names the inputs in errors (member file paths, in the same order). */
  sources?: string[];
}

/**
 * The genesis of an alliance from its members' files. Throws ConfigError naming the member file
 * (and field) of every problem: a duplicate member id, key, peer id or address; a peer id that does
 * not belong to the member's key; an address the transport cannot dial.
 */
export function assembleGenesis(o: AssembleOptions): Genesis {
  const document = {
    version: genesisVersion,
    chainId: o.chainId,
    genesisTime: o.genesisTime ?? new Date().toISOString(),
    params: o.params ?? {},
    validators: o.members.map((m) => ({
      memberId: m.memberId,
      publicKey: m.publicKey,
      peerId: m.peerId,
      addrs: m.addrs,
      ...(m.listen ? { listen: m.listen } : {}),
      ...(m.identityRoot ? { identityRoot: m.identityRoot } : {}),
    })),
    gateways: o.members.flatMap((m) =>
      m.gateways.map((g) => ({ memberId: m.memberId, gateway: g.gateway, publicKey: g.publicKey })),
    ),
  };
  const checked = genesisSchema.safeParse(document);
  if (!checked.success && o.sources) {
    // Name the member file and its field of each problem: validators[i] is member i's file, and
    // gateways[j] is an entry of its owner's `gateways`.
    const owner = o.members.flatMap((m, i) => m.gateways.map((_, k) => ({ member: i, index: k })));
    throw new ConfigError(
      checked.error.issues.map((issue) => {
        const [list, index, ...rest] = issue.path;
        let member: number | undefined;
        let path: PropertyKey[] = issue.path;
        if (list === 'validators') {
          member = Number(index);
          path = rest;
        } else if (list === 'gateways') {
          const g = owner[Number(index)];
          member = g?.member;
          path = ['gateways', g?.index ?? Number(index), ...rest];
        }
        const file = member === undefined ? 'genesis' : (o.sources![member] ?? 'genesis');
        return { file, line: 0, col: 0, field: fieldPath(path), message: issue.message };
      }),
    );
  }
  return genesisFromDocument(document, 'genesis');
}
