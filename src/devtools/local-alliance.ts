/**
 * A local alliance for trying the chain out and for tests: one machine, every member's key in one
 * folder. A real alliance never works this way (each member generates its own key on its own
 * machine; docs/network.md); this is tooling for the demo, `masbc-edge alliance` and the tests.
 */
import { existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { type AddressInfo, createServer, type Server } from 'node:net';
import { join } from 'node:path';
import {
  encodeGenesis,
  type Genesis,
  genesisFromDocument,
  genesisVersion,
  loadGenesis,
  type ProtocolParams,
  validatorsMax,
} from '../consensus/genesis/genesis.ts';
import { loadValidatorIdentity } from '../consensus/genesis/identity.ts';
import { identityRootFileName } from '../consensus/genesis/members.ts';
import {
  generateKey,
  type KeyAlgorithm,
  loadKeyFile,
  publicKeyRecord,
  writeKeyFile,
} from '../crypto/keys.ts';

export interface LocalAllianceOptions {
  /**
   * Data folder (never inside the repository): `genesis.json`, `keys/<member>.key` and each member's
   * identity root `keys/<member>/identity-root.key` go here.
   */
  dir: string;
  /** A count (members are named member-1 … member-N) or the member ids. */
  members: number | readonly string[];
  chainId?: string;
  /** Host the validators listen on and dial; default 127.0.0.1. */
  host?: string;
  /**
   * Member i listens on basePort + i. Default: ports the OS reports free now, which another
   * process could take before the validators start; give fixed ports where that matters.
   */
  basePort?: number;
  alg?: KeyAlgorithm;
  params?: Partial<ProtocolParams>;
  /** ISO 8601 UTC; default now. */
  genesisTime?: string;
  /** An existing `genesis.json`: 'reuse' checks it against the key files and returns it; 'fail' throws. */
  ifExists?: 'reuse' | 'fail';
  /**
   * Gateways to register in the genesis (docs/ledger.md): per member id its gateway ids, or a count
   * for every member (gw-1 … gw-k). Each gets a signing key at `keys/gateways/<member>/<gateway>.key`
   * (an existing file is kept). Default none.
   */
  gateways?: number | Readonly<Record<string, readonly string[]>>;
  /** Gateway key algorithm; default `alg`. */
  gatewayAlg?: KeyAlgorithm;
}

export interface LocalAlliance {
  genesis: Genesis;
  genesisFile: string;
  /** memberId → private key file. */
  keyFiles: ReadonlyMap<string, string>;
  /** `<member>/<gateway>` → the gateway's private key file (empty without `gateways`). */
  gatewayKeyFiles: ReadonlyMap<string, string>;
  /** memberId → its identity root private key file (`keys/<member>/identity-root.key`). */
  identityRootFiles: ReadonlyMap<string, string>;
}

/** Where a local alliance keeps `memberId`'s identity root private key. */
export function identityRootFileFor(dir: string, memberId: string): string {
  return join(dir, 'keys', memberId, identityRootFileName);
}

export class GenesisMismatchError extends Error {
  override name = 'GenesisMismatchError';
}

/**
 * Creates (or, with `ifExists: 'reuse'`, reopens) a genesis for N validators on one machine: a key
 * per member under `<dir>/keys` (existing key files are kept, so an interrupted run resumes) and
 * `<dir>/genesis.json`. The demo and the tests use it.
 */
export async function createLocalAlliance(options: LocalAllianceOptions): Promise<LocalAlliance> {
  const members =
    typeof options.members === 'number'
      ? Array.from({ length: options.members }, (_, i) => `member-${i + 1}`)
      : [...options.members];
  if (members.length < 1 || members.length > validatorsMax) {
    throw new RangeError(`a local alliance has 1 to ${validatorsMax} members, got ${members.length}`);
  }
  const genesisFile = join(options.dir, 'genesis.json');
  const keyFiles = new Map(members.map((m) => [m, join(options.dir, 'keys', `${m}.key`)]));
  const identityRootFiles = new Map(members.map((m) => [m, identityRootFileFor(options.dir, m)]));
  const gatewayKeyFiles = new Map<string, string>();
  const wanted = options.gateways ?? 0;
  for (const m of members) {
    const ids =
      typeof wanted === 'number'
        ? Array.from({ length: wanted }, (_, i) => `gw-${i + 1}`)
        : (wanted[m] ?? []);
    for (const g of ids)
      gatewayKeyFiles.set(`${m}/${g}`, join(options.dir, 'keys', 'gateways', m, `${g}.key`));
  }
  if (typeof wanted === 'object') {
    const unknown = Object.keys(wanted).filter((m) => !members.includes(m));
    if (unknown.length) throw new RangeError(`gateways for unknown member(s): ${unknown.join(', ')}`);
  }
  if (existsSync(genesisFile)) {
    if ((options.ifExists ?? 'reuse') === 'fail') {
      throw new GenesisMismatchError(`${genesisFile} already exists`);
    }
    const genesis = loadGenesis(genesisFile);
    await checkKeysMatch(genesis, keyFiles, genesisFile);
    checkGatewayKeysMatch(genesis, gatewayKeyFiles, genesisFile);
    checkIdentityRootsMatch(genesis, identityRootFiles, genesisFile);
    return { genesis, genesisFile, keyFiles, gatewayKeyFiles, identityRootFiles };
  }
  const host = options.host ?? '127.0.0.1';
  const ports =
    options.basePort === undefined
      ? await freeTcpPorts(host, members.length)
      : members.map((_, i) => options.basePort! + i);
  const ipProto = host.includes(':') ? 'ip6' : /^[\d.]+$/.test(host) ? 'ip4' : 'dns';
  const validators = [];
  for (const [i, memberId] of members.entries()) {
    const keyFile = keyFiles.get(memberId)!;
    if (!existsSync(keyFile)) writeKeyFile(keyFile, generateKey(options.alg ?? 'ed25519'));
    const identity = await loadValidatorIdentity(keyFile, { separateKey: 'create' });
    const rootFile = identityRootFiles.get(memberId)!;
    // Always Ed25519, whatever `alg`: it signs EdDSA credentials.
    if (!existsSync(rootFile)) writeKeyFile(rootFile, generateKey('ed25519'));
    validators.push({
      memberId,
      publicKey: publicKeyRecord(loadKeyFile(keyFile)),
      peerId: identity.peerId.toString(),
      addrs: [`/${ipProto}/${host}/tcp/${ports[i]}`],
      identityRoot: publicKeyRecord(loadKeyFile(rootFile)),
    });
  }
  const gateways = [];
  for (const [chain, keyFile] of gatewayKeyFiles) {
    if (!existsSync(keyFile))
      writeKeyFile(keyFile, generateKey(options.gatewayAlg ?? options.alg ?? 'ed25519'));
    const [memberId, gateway] = chain.split('/') as [string, string];
    gateways.push({ memberId, gateway, publicKey: publicKeyRecord(loadKeyFile(keyFile)) });
  }
  const genesis = genesisFromDocument(
    {
      version: genesisVersion,
      chainId: options.chainId ?? 'masbc-local',
      genesisTime: options.genesisTime ?? new Date().toISOString(),
      params: options.params ?? {},
      validators,
      ...(gateways.length > 0 ? { gateways } : {}),
    },
    genesisFile,
  );
  mkdirSync(options.dir, { recursive: true });
  writeFileSync(genesisFile, encodeGenesis(genesis), { flag: 'wx' });
  return { genesis, genesisFile, keyFiles, gatewayKeyFiles, identityRootFiles };
}

function checkIdentityRootsMatch(genesis: Genesis, files: Map<string, string>, genesisFile: string) {
  for (const [memberId, file] of files) {
    const keyId = existsSync(file) ? loadKeyFile(file).keyId : undefined;
    if (genesis.identityRoot(memberId)?.keyId !== keyId || keyId === undefined)
      throw new GenesisMismatchError(
        `${genesisFile} does not list ${file} as the identity root of "${memberId}"`,
      );
  }
}

function checkGatewayKeysMatch(genesis: Genesis, gatewayKeyFiles: Map<string, string>, genesisFile: string) {
  for (const [chain, keyFile] of gatewayKeyFiles) {
    const keyId = existsSync(keyFile) ? loadKeyFile(keyFile).keyId : undefined;
    const listed = genesis.gateways.some(
      (g) => `${g.memberId}/${g.gateway}` === chain && g.publicKey.keyId === keyId,
    );
    if (!listed)
      throw new GenesisMismatchError(`${genesisFile} does not list ${keyFile} as gateway ${chain}`);
  }
}

async function checkKeysMatch(genesis: Genesis, keyFiles: Map<string, string>, genesisFile: string) {
  for (const [memberId, keyFile] of keyFiles) {
    const v = genesis.byMemberId(memberId);
    if (!v) throw new GenesisMismatchError(`${genesisFile} has no validator "${memberId}"`);
    const identity = await loadValidatorIdentity(keyFile);
    if (loadKeyFile(keyFile).keyId !== v.publicKey.keyId || identity.peerId.toString() !== v.peerId) {
      throw new GenesisMismatchError(`${keyFile} is not the key ${genesisFile} lists for "${memberId}"`);
    }
  }
}

/** Ports free right now on `host`: all are held open together so they are distinct, then released. */
async function freeTcpPorts(host: string, count: number): Promise<number[]> {
  const servers = await Promise.all(
    Array.from(
      { length: count },
      () =>
        new Promise<Server>((resolve, reject) => {
          const server = createServer();
          server.once('error', reject);
          server.listen(0, host, () => resolve(server));
        }),
    ),
  );
  const ports = servers.map((s) => (s.address() as AddressInfo).port);
  await Promise.all(servers.map((s) => new Promise((resolve) => s.close(resolve))));
  return ports;
}

/** The test gateway `alliance init` registers for each member. */
export const testGatewayId = 'gw-1';

export interface AllianceFiles {
  alliance: LocalAlliance;
  /** memberId → that member's test gateway (`testGatewayId`, registered in the genesis) and its key file. */
  gateways: Map<string, { gateway: string; keyFile: string }>;
  /** memberId → its identity root private key file. */
  identityRoots: ReadonlyMap<string, string>;
}

/** Creates (or reopens) the alliance's keys and genesis, with one test gateway per member registered in it. */
export async function initAlliance(o: {
  dir: string;
  validators: number;
  basePort?: number;
  viewChangeTimeoutMs?: number;
}): Promise<AllianceFiles> {
  let alliance: LocalAlliance;
  try {
    alliance = await createLocalAlliance({
      dir: o.dir,
      members: o.validators,
      basePort: o.basePort,
      gateways: 1,
      params:
        o.viewChangeTimeoutMs === undefined
          ? undefined
          : ({ viewChangeTimeoutMs: o.viewChangeTimeoutMs } as never),
    });
  } catch (err) {
    if (!(err instanceof GenesisMismatchError)) throw err;
    throw new GenesisMismatchError(
      `${err.message} (an alliance made by an older version, without gateways or identity roots in its genesis? remove ${o.dir} and run again)`,
    );
  }
  const gateways = new Map<string, { gateway: string; keyFile: string }>();
  for (const v of alliance.genesis.validators) {
    const keyFile = alliance.gatewayKeyFiles.get(`${v.memberId}/${testGatewayId}`)!;
    gateways.set(v.memberId, { gateway: testGatewayId, keyFile });
  }
  return { alliance, gateways, identityRoots: alliance.identityRootFiles };
}
