import { readFileSync, rmSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { ConfigError } from '../../../src/config/errors.ts';
import {
  genesisFromDocument,
  loadGenesis,
  MissingIdentityRootError,
  parseGenesis,
} from '../../../src/consensus/genesis/genesis.ts';
import { assembleGenesis, memberFileFor } from '../../../src/consensus/genesis/members.ts';
import { generateKey, loadKeyFile, publicKeyRecord, writeKeyFile } from '../../../src/crypto/keys.ts';
import {
  createLocalAlliance,
  GenesisMismatchError,
  identityRootFileFor,
} from '../../../src/devtools/local-alliance.ts';
import { allianceFixture, type Fixture } from '../net/helpers.ts';

const fixtures: Fixture[] = [];
afterEach(() => {
  for (const f of fixtures.splice(0)) f.cleanup();
});

const members = ['acme', 'bolt', 'cast', 'dyna'];

async function alliance(alg: 'ed25519' | 'p256' = 'ed25519') {
  const f = await allianceFixture({
    members,
    alg,
    basePort: 47_200,
    genesisTime: '2026-11-23T06:00:00.000Z',
  });
  fixtures.push(f);
  return f;
}

type Doc = {
  validators: {
    memberId: string;
    publicKey: Record<string, string>;
    identityRoot?: Record<string, string>;
  }[];
};

function problems(fn: () => unknown): string[] {
  try {
    fn();
  } catch (err) {
    if (err instanceof ConfigError) return err.issues.map((i) => `${i.field}: ${i.message}`);
    throw err;
  }
  throw new Error('expected a ConfigError');
}

describe('identity roots in the genesis', () => {
  it("the local alliance writes each member's identity-root.key in its own folder; the genesis lists its public key", async () => {
    const f = await alliance();
    const g = f.alliance.genesis;
    for (const m of members) {
      const file = f.alliance.identityRootFiles.get(m)!;
      expect(file).toBe(join(f.dir, 'keys', m, 'identity-root.key'));
      expect(file).toBe(identityRootFileFor(f.dir, m));
      expect(statSync(file).mode & 0o777).toBe(0o600);
      const root = g.identityRoot(m)!;
      expect(root).toEqual(publicKeyRecord(loadKeyFile(file)));
      expect(root.alg).toBe('ed25519');
      expect(root.keyId).not.toBe(g.byMemberId(m)!.publicKey.keyId);
      expect(g.requireIdentityRoot(m)).toBe(root);
    }
    // Loaded from disk, the same roots; covered by the hash.
    const loaded = loadGenesis(f.alliance.genesisFile);
    expect(loaded.identityRoot('bolt')).toEqual(g.identityRoot('bolt'));
    const doc = structuredClone(g.document) as unknown as Doc;
    delete doc.validators[1]!.identityRoot;
    expect(genesisFromDocument(doc).hash).not.toBe(g.hash);
    // Reopening checks the roots against the files.
    expect((await createLocalAlliance({ dir: f.dir, members })).genesis.hash).toBe(g.hash);
  });

  it('a reopened local alliance whose identity root file changed is refused', async () => {
    const f = await alliance();
    const file = f.alliance.identityRootFiles.get('cast')!;
    rmSync(file);
    rmSync(`${file}.pub`);
    writeKeyFile(file, generateKey('ed25519'));
    await expect(createLocalAlliance({ dir: f.dir, members })).rejects.toThrow(GenesisMismatchError);
  });

  it('is Ed25519 even in a P-256 alliance (it signs EdDSA credentials)', async () => {
    const f = await alliance('p256');
    expect(f.alliance.genesis.byMemberId('acme')!.publicKey.alg).toBe('p256');
    expect(f.alliance.genesis.identityRoot('acme')!.alg).toBe('ed25519');
  });

  it('a genesis without a root loads; that member can register nothing, and the error says so', async () => {
    const f = await alliance();
    const doc = structuredClone(f.alliance.genesis.document) as unknown as Doc;
    delete doc.validators[2]!.identityRoot;
    const g = genesisFromDocument(doc);
    expect(g.identityRoot('cast')).toBeUndefined();
    expect(g.identityRoot('acme')).toEqual(f.alliance.genesis.identityRoot('acme'));
    expect(g.identityRoot('zeta')).toBeUndefined();
    const missing = (() => {
      try {
        g.requireIdentityRoot('cast');
      } catch (err) {
        return err as MissingIdentityRootError;
      }
    })();
    expect(missing).toBeInstanceOf(MissingIdentityRootError);
    expect(missing!.code).toBe('identity_root_missing');
    expect(missing!.message).toMatch(
      /member "cast" has no identityRoot in the genesis: it can issue no credentials and register no gateways/,
    );
    expect(() => g.requireIdentityRoot('zeta')).toThrow(/"zeta" is not a member of this alliance/);
  });

  it('refuses a malformed, mismatched, non-Ed25519 or reused root, naming the field', async () => {
    const f = await alliance();
    const g = f.alliance.genesis;
    const doc = structuredClone(g.document) as unknown as Doc;
    const v = doc.validators;
    v[0]!.identityRoot!.publicKey = 'not base64url!';
    v[1]!.identityRoot!.keyId = '0'.repeat(32);
    v[2]!.identityRoot = publicKeyRecord(generateKey('p256')) as unknown as Record<string, string>;
    v[3]!.identityRoot = { ...v[3]!.publicKey };
    expect(problems(() => parseGenesis(JSON.stringify(doc, null, 2), 'g.json'))).toEqual(
      expect.arrayContaining([
        'validators[0].identityRoot.publicKey: expected base64url without padding',
        'validators[1].identityRoot.keyId: does not match the public key',
        'validators[2].identityRoot.alg: an identity root is an ed25519 key (it signs EdDSA credentials)',
        "validators[3].identityRoot.keyId: key is validators[3]'s signing key: an identity root is a key of its own",
      ]),
    );
    const shared = structuredClone(g.document) as unknown as Doc;
    shared.validators[1]!.identityRoot = { ...shared.validators[0]!.identityRoot! };
    expect(problems(() => genesisFromDocument(shared))).toEqual([
      "validators[1].identityRoot.keyId: identity root is also validators[0]'s",
    ]);
    const extra = structuredClone(g.document) as unknown as Doc;
    (extra.validators[0]!.identityRoot as Record<string, string>).extra = 'x';
    expect(problems(() => genesisFromDocument(extra))[0]).toMatch(/^validators\[0\]\.identityRoot/);
  });

  it("goes from a member's file into the assembled genesis; a gateway may not use a root as its key", async () => {
    const f = await alliance();
    const file = await memberFileFor({
      memberId: 'acme',
      keyFile: f.alliance.keyFiles.get('acme')!,
      identityRootFile: f.alliance.identityRootFiles.get('acme')!,
      addrs: ['/ip4/127.0.0.1/tcp/4001'],
      gateways: [{ gateway: 'gw-x', publicKeyFile: `${f.alliance.identityRootFiles.get('bolt')!}.pub` }],
    });
    expect(file.identityRoot).toEqual(f.alliance.genesis.identityRoot('acme'));
    expect(JSON.stringify(file)).not.toMatch(/PRIVATE/);
    const bolt = await memberFileFor({
      memberId: 'bolt',
      keyFile: f.alliance.keyFiles.get('bolt')!,
      identityRootFile: f.alliance.identityRootFiles.get('bolt')!,
      addrs: ['/ip4/127.0.0.1/tcp/4002'],
    });
    expect(() =>
      assembleGenesis({ chainId: 'x', members: [file, bolt], sources: ['acme.pub.json', 'bolt.pub.json'] }),
    ).toThrow(/gateways\[0\]\.publicKey\.keyId: key is validators\[1\]'s identity root/);
    const without = await memberFileFor({
      memberId: 'cast',
      keyFile: f.alliance.keyFiles.get('cast')!,
      addrs: ['/ip4/127.0.0.1/tcp/4003'],
    });
    expect(without.identityRoot).toBeUndefined();
    const g = assembleGenesis({ chainId: 'x', members: [bolt, without] });
    expect(g.identityRoot('bolt')).toEqual(f.alliance.genesis.identityRoot('bolt'));
    expect(g.identityRoot('cast')).toBeUndefined();
    expect(readFileSync(f.alliance.genesisFile, 'utf8')).toContain('"identityRoot"');
  });
});
