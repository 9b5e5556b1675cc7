import { chmodSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { ConfigError } from '../../../src/config/errors.ts';
import {
  type Genesis,
  genesisFromDocument,
  loadGenesis,
  parseGenesis,
} from '../../../src/consensus/genesis/genesis.ts';
import {
  derivedPeerId,
  libp2pKeyPathFor,
  loadValidatorIdentity,
} from '../../../src/consensus/genesis/identity.ts';
import { messageBytesMax } from '../../../src/consensus/wire/limits.ts';
import { KeyFileError, loadKeyFile } from '../../../src/crypto/keys.ts';
import { createLocalAlliance, GenesisMismatchError } from '../../../src/devtools/local-alliance.ts';
import { allianceFixture, type Fixture } from '../net/helpers.ts';

const fixtures: Fixture[] = [];
afterEach(() => {
  for (const f of fixtures.splice(0)) f.cleanup();
});

async function alliance(members: number | string[], alg: 'ed25519' | 'p256' = 'ed25519') {
  const f = await allianceFixture({
    members,
    alg,
    basePort: 47_000,
    genesisTime: '2026-11-23T06:00:00.000Z',
  });
  fixtures.push(f);
  return f;
}

/** A genesis document to break on purpose. */
interface LooseDocument {
  params: Record<string, unknown> & { limits: Record<string, number> };
  validators: { memberId: string; peerId: string; addrs: string[]; publicKey: Record<string, string> }[];
}
const loose = (g: Genesis) => structuredClone(g.document) as unknown as LooseDocument;

/** The `field: message` of every issue a ConfigError lists. */
function problems(fn: () => unknown): string[] {
  try {
    fn();
  } catch (err) {
    if (err instanceof ConfigError) return err.issues.map((i) => `${i.field}: ${i.message}`);
    throw err;
  }
  throw new Error('expected a ConfigError');
}

describe('genesis', () => {
  it('f, quorum and primaries; the quorum is 2f+1 exactly when n = 3f+1', async () => {
    const rows = [];
    for (const n of [1, 2, 3, 4, 5, 7]) {
      const g = (await alliance(n)).alliance.genesis;
      rows.push([g.n, g.f, g.quorum, g.optimalSize]);
    }
    expect(rows).toEqual([
      [1, 0, 1, true],
      [2, 0, 2, false],
      [3, 0, 2, false],
      [4, 1, 3, true],
      [5, 1, 4, false], // not 2f+1 = 3: two quorums of 3 out of 5 could share only a faulty validator
      [7, 2, 5, true],
    ]);
    const g = (await alliance(['acme', 'bolt', 'cast', 'dyna'])).alliance.genesis;
    expect([0, 1, 4, 7].map((v) => g.primary(v).memberId)).toEqual(['acme', 'bolt', 'acme', 'dyna']);
    expect(() => g.primary(-1)).toThrow(RangeError);
    expect(() => g.primary(1.5)).toThrow(RangeError);
  });

  it('looks validators up by member id, peer id and key id; lists the others', async () => {
    const { alliance: a } = await alliance(['acme', 'bolt', 'cast', 'dyna']);
    const g = a.genesis;
    const bolt = g.byMemberId('bolt')!;
    expect(g.byPeerId(bolt.peerId)).toBe(bolt);
    expect(g.byKeyId(bolt.publicKey.keyId)).toBe(bolt);
    expect(g.indexOf('bolt')).toBe(1);
    expect([g.byMemberId('nope'), g.byPeerId('nope'), g.byKeyId('nope'), g.indexOf('nope')]).toEqual([
      undefined,
      undefined,
      undefined,
      -1,
    ]);
    expect(g.others('bolt').map((v) => v.memberId)).toEqual(['acme', 'cast', 'dyna']);
    expect(g.consensusValidators()[1]).toEqual({
      keyId: bolt.publicKey.keyId,
      alg: 'ed25519',
      publicKey: loadKeyFile(a.keyFiles.get('bolt')!).publicKey,
    });
    expect(g.hashBytes).toHaveLength(32);
    expect(g.messageBytesMax).toBe(messageBytesMax(g.chainLimits));
  });

  it('is the same genesis, with the same hash, as JSON or as YAML; defaults are filled in', async () => {
    const { alliance: a, dir } = await alliance(2);
    const doc = JSON.parse(readFileSync(a.genesisFile, 'utf8'));
    expect(doc.params.limits.blockTxsMax).toBeGreaterThan(0);
    const minimal = { ...doc, params: { viewChangeTimeoutMs: 2000 } };
    const yaml = [
      'version: 2',
      `chainId: ${doc.chainId}`,
      `genesisTime: "${doc.genesisTime}"`,
      'params: { viewChangeTimeoutMs: 2000 }',
      'validators:',
      ...doc.validators.flatMap(
        (v: {
          memberId: string;
          publicKey: Record<string, string>;
          identityRoot: Record<string, string>;
          peerId: string;
          addrs: string[];
        }) => [
          `  - memberId: ${v.memberId}`,
          `    publicKey: { alg: ${v.publicKey.alg}, keyId: "${v.publicKey.keyId}", publicKey: "${v.publicKey.publicKey}" }`,
          `    identityRoot: { alg: ${v.identityRoot.alg}, keyId: "${v.identityRoot.keyId}", publicKey: "${v.identityRoot.publicKey}" }`,
          `    peerId: ${v.peerId}`,
          `    addrs: [${v.addrs.join(', ')}]`,
        ],
      ),
    ].join('\n');
    const file = join(dir, 'genesis.yaml');
    writeFileSync(file, yaml);
    expect(loadGenesis(file).hash).toBe(a.genesis.hash);
    expect(parseGenesis(JSON.stringify(minimal)).hash).toBe(a.genesis.hash);
    expect(loadGenesis(a.genesisFile).hash).toBe(a.genesis.hash);
  });

  it('reports every problem with the file, line and field', async () => {
    const { alliance: a } = await alliance(4);
    const doc = loose(a.genesis);
    doc.params.messageBytesMax = 5000;
    doc.params.viewChangeTimoutMs = 1;
    doc.validators[0]!.publicKey.keyId = '0'.repeat(32);
    doc.validators[1]!.peerId = doc.validators[2]!.peerId;
    doc.validators[2]!.memberId = doc.validators[3]!.memberId;
    doc.validators[3]!.addrs = ['/ip4/127.0.0.1/udp/1'];
    doc.validators[3]!.publicKey.publicKey = 'AAAA';
    const text = JSON.stringify(doc, null, 2);
    let error: ConfigError | undefined;
    try {
      parseGenesis(text, 'alliance/genesis.json');
    } catch (err) {
      error = err as ConfigError;
    }
    expect(error).toBeInstanceOf(ConfigError);
    expect(error!.message).toMatch(/^invalid configuration \(\d+ problems\)/);
    expect(error!.issues.every((i) => i.file === 'alliance/genesis.json' && i.line > 0)).toBe(true);
    expect(problems(() => parseGenesis(text))).toEqual(
      expect.arrayContaining([
        'params.viewChangeTimoutMs: unknown key "viewChangeTimoutMs" (did you mean "viewChangeTimeoutMs"?)',
      ]),
    );
    // Unknown keys fail the schema before the cross-field checks run; fix that one and look again.
    delete doc.params.viewChangeTimoutMs;
    const found = problems(() => genesisFromDocument(doc));
    expect(found).toEqual(
      expect.arrayContaining([
        expect.stringMatching(/^params\.messageBytesMax: the limits allow messages of \d+ bytes/),
        'validators[0].publicKey.keyId: does not match the public key',
        expect.stringMatching(/^validators\[1\]\.peerId: an Ed25519 member key is its own libp2p identity/),
        expect.stringMatching(/^validators\[2\]\.peerId: peerId ".*" is also validators\[1\]/),
        'validators[3].memberId: memberId "member-4" is also validators[2]',
        'validators[3].publicKey.publicKey: a ed25519 public key is 32 bytes, got 3',
        'validators[3].addrs[0]: expected /ip4|ip6|dns|dns4|dns6/<host>/tcp/<port>',
      ]),
    );
    expect(problems(() => parseGenesis('version: 3\nchainId: Bad Chain\n'))).toEqual(
      expect.arrayContaining([
        expect.stringMatching(/^version: /),
        expect.stringMatching(/^chainId: expected 1-63 of a-z/),
        expect.stringMatching(/^genesisTime: required field is missing/),
      ]),
    );
  });

  it('refuses a genesis that does not fit the chain limits', async () => {
    const { alliance: a } = await alliance(4);
    const doc = loose(a.genesis);
    doc.params.limits.validatorsMax = 3;
    expect(problems(() => genesisFromDocument(doc))).toEqual([
      'validators: 4 validators, more than limits.validatorsMax',
    ]);
    doc.params.limits.validatorsMax = 64;
    doc.params.limits.txBytesMax = doc.params.limits.blockBytesMax! + 1;
    expect(problems(() => genesisFromDocument(doc))).toEqual([
      'params.limits: txBytesMax must be ≤ blockBytesMax',
    ]);
  });
});

describe('gateway key registry', () => {
  async function withGateways() {
    const f = await allianceFixture({
      members: ['acme', 'bolt', 'cast', 'dyna'],
      basePort: 47_100,
      genesisTime: '2026-11-23T06:00:00.000Z',
      gateways: { acme: ['gw-line1', 'gw-line2'], bolt: ['gw-1'] },
    });
    fixtures.push(f);
    return f;
  }

  it("lists each member's gateway keys in the genesis, covered by its hash; none by default", async () => {
    const f = await withGateways();
    const g = f.alliance.genesis;
    expect(g.gateways.map((x) => `${x.memberId}/${x.gateway}`)).toEqual([
      'acme/gw-line1',
      'acme/gw-line2',
      'bolt/gw-1',
    ]);
    expect([...f.alliance.gatewayKeyFiles.keys()]).toEqual(['acme/gw-line1', 'acme/gw-line2', 'bolt/gw-1']);
    for (const [chain, file] of f.alliance.gatewayKeyFiles) {
      expect(statSync(file).mode & 0o777).toBe(0o600);
      expect(g.gateways.find((x) => `${x.memberId}/${x.gateway}` === chain)!.publicKey.keyId).toBe(
        loadKeyFile(file).keyId,
      );
    }
    // Reopening checks the gateway keys too.
    const again = await createLocalAlliance({
      dir: f.dir,
      members: ['acme', 'bolt', 'cast', 'dyna'],
      gateways: { acme: ['gw-line1'] },
    });
    expect(again.genesis.hash).toBe(g.hash);
    await expect(
      createLocalAlliance({
        dir: f.dir,
        members: ['acme', 'bolt', 'cast', 'dyna'],
        gateways: { cast: ['gw-9'] },
      }),
    ).rejects.toThrow(GenesisMismatchError);
    // The registry is part of the hash: a genesis without it (or with another) is another chain.
    const doc = structuredClone(g.document) as Record<string, unknown>;
    delete doc.gateways;
    const without = genesisFromDocument(doc);
    expect(without.hash).not.toBe(g.hash);
    expect(without.gateways).toEqual([]);
    // The body option of version 1 is gone: bodies are never on the chain.
    expect(() => genesisFromDocument({ ...doc, eventBodies: 'optional' })).toThrow(/eventBodies/);
  });

  it('refuses a version 1 genesis (bodies on the chain) with the reason, naming the field', async () => {
    const { alliance: a } = await alliance(2);
    const doc = JSON.parse(readFileSync(a.genesisFile, 'utf8'));
    expect(doc.version).toBe(2);
    const v1 = problems(() => genesisFromDocument({ ...doc, version: 1 }));
    expect(v1).toHaveLength(1);
    expect(v1[0]).toMatch(
      /^version: genesis version 1 is the format whose transactions carried event bodies/,
    );
    expect(problems(() => genesisFromDocument({ ...doc, version: 3 }))).toEqual([
      'version: expected version 2, got 3',
    ]);
  });

  it('refuses an unknown member, a bad or reused key, with file, line and column', async () => {
    const f = await withGateways();
    const doc = structuredClone(f.alliance.genesis.document) as unknown as {
      validators: { publicKey: Record<string, string> }[];
      gateways: { memberId: string; gateway: string; publicKey: Record<string, string> }[];
    };
    doc.gateways[0]!.memberId = 'zeta';
    doc.gateways[1]!.publicKey = { ...doc.gateways[0]!.publicKey };
    doc.gateways[2]!.publicKey.keyId = '0'.repeat(32);
    doc.gateways.push({ memberId: 'cast', gateway: 'gw/1', publicKey: { ...doc.validators[2]!.publicKey } });
    const text = JSON.stringify(doc, null, 2);
    let error: ConfigError | undefined;
    try {
      parseGenesis(text, 'alliance/genesis.json');
    } catch (err) {
      error = err as ConfigError;
    }
    expect(error).toBeInstanceOf(ConfigError);
    const issues = error!.issues;
    const lines = text.split('\n');
    const at = (field: string) => issues.find((i) => i.field === field);
    const unknown = at('gateways[0].memberId')!;
    expect(unknown.message).toBe('unknown member "zeta": not a validator of this genesis');
    expect(lines[unknown.line - 1]!.slice(unknown.col - 1)).toMatch(/^"zeta"/);
    expect(issues.map((i) => `${i.field}: ${i.message}`)).toEqual(
      expect.arrayContaining([
        expect.stringMatching(/^gateways\[3\]\.gateway: expected 1-64 of A-Z/),
        "gateways[1].publicKey.keyId: key is also gateways[0]'s",
        'gateways[2].publicKey.keyId: does not match the public key',
        "gateways[3].publicKey.keyId: key is validators[2]'s: a gateway signs with a key of its own",
      ]),
    );
    expect(issues.every((i) => i.file === 'alliance/genesis.json' && i.line > 0 && i.col > 0)).toBe(true);
  });
});

describe('validator identity', () => {
  it('an Ed25519 member key is its libp2p identity; the genesis peer id is derived from it', async () => {
    const { alliance: a } = await alliance(2);
    const id = await loadValidatorIdentity(a.keyFiles.get('member-1')!);
    const v = a.genesis.byMemberId('member-1')!;
    expect(id.source).toBe('member-key');
    expect(id.peerId.toString()).toBe(v.peerId);
    expect(derivedPeerId(v.publicKey)).toBe(v.peerId);
    expect(id.privateKey.publicKey.raw).toEqual(loadKeyFile(a.keyFiles.get('member-1')!).publicKey);
  });

  it('a P-256 member keeps a separate libp2p key beside its key file, mode 0600', async () => {
    const { alliance: a } = await alliance(2, 'p256');
    const keyFile = a.keyFiles.get('member-2')!;
    const id = await loadValidatorIdentity(keyFile);
    expect(id.source).toBe('separate-file');
    expect(id.peerId.toString()).toBe(a.genesis.byMemberId('member-2')!.peerId);
    expect(statSync(libp2pKeyPathFor(keyFile)).mode & 0o777).toBe(0o600);
    expect(derivedPeerId(a.genesis.byMemberId('member-2')!.publicKey)).toBeUndefined();
    chmodSync(libp2pKeyPathFor(keyFile), 0o600);
    writeFileSync(libp2pKeyPathFor(keyFile), 'garbage');
    await expect(loadValidatorIdentity(keyFile)).rejects.toThrow(KeyFileError);
  });
});

describe('local alliance', () => {
  it('writes keys and genesis into the data folder, reopens them, and refuses a mismatch', async () => {
    const f = await alliance(['acme', 'bolt', 'cast', 'dyna']);
    const { alliance: a } = f;
    expect(a.genesisFile).toBe(join(f.dir, 'genesis.json'));
    expect([...a.keyFiles.values()].map((p) => statSync(p).mode & 0o777)).toEqual([
      0o600, 0o600, 0o600, 0o600,
    ]);
    expect(a.genesis.validators.map((v) => v.addrs[0])).toEqual([
      '/ip4/127.0.0.1/tcp/47000',
      '/ip4/127.0.0.1/tcp/47001',
      '/ip4/127.0.0.1/tcp/47002',
      '/ip4/127.0.0.1/tcp/47003',
    ]);
    const again = await createLocalAlliance({ dir: f.dir, members: ['acme', 'bolt', 'cast', 'dyna'] });
    expect(again.genesis.hash).toBe(a.genesis.hash);
    await expect(createLocalAlliance({ dir: f.dir, members: ['acme', 'zeta'] })).rejects.toThrow(
      GenesisMismatchError,
    );
    await expect(createLocalAlliance({ dir: f.dir, members: 4, ifExists: 'fail' })).rejects.toThrow(
      /already exists/,
    );
  });
});
