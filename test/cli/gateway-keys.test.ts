/**
 * `masbc-edge gateway register|revoke|keys`: the errors an operator meets before anything reaches
 * the chain (the whole path over four validators is test/consensus/cluster/gateway-keys.test.ts).
 */
import { createServer } from 'node:net';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { createLocalAlliance, type LocalAlliance } from '../../src/devtools/local-alliance.ts';
import { runCli } from '../helpers/cli.ts';
import { tempDir } from '../helpers/tmp.ts';

let dir: string;
let alliance: LocalAlliance;
let closedUrl: string;

beforeAll(async () => {
  dir = tempDir('gwkeys-cli');
  alliance = await createLocalAlliance({ dir, members: ['acme', 'bolt'], gateways: 1 });
  // A port nothing listens on: bound, then released.
  const port = await new Promise<number>((resolve) => {
    const s = createServer().listen(0, '127.0.0.1', () => {
      const p = (s.address() as { port: number }).port;
      s.close(() => resolve(p));
    });
  });
  closedUrl = `http://127.0.0.1:${port}`;
});

const register = (over: Record<string, string>) => {
  const o = {
    '--genesis': alliance.genesisFile,
    '--identity-root': alliance.identityRootFiles.get('acme')!,
    '--gateway': 'gw-line3',
    '--key': `${alliance.gatewayKeyFiles.get('bolt/gw-1')!}.pub`,
    '--validator': closedUrl,
    ...over,
  };
  return runCli(['gateway', 'register', ...Object.entries(o).flat()]);
};

describe('masbc-edge gateway', () => {
  it('says clearly what is wrong: a missing root, a key that is no root, an unreachable validator, a missing key', async () => {
    const missing = await register({ '--identity-root': join(dir, 'nope.key') });
    expect([missing.code, missing.err]).toEqual([
      1,
      expect.stringMatching(/key file .*nope\.key does not exist/),
    ]);
    const validatorKey = await register({ '--identity-root': alliance.keyFiles.get('acme')! });
    expect(validatorKey.code).toBe(1);
    expect(validatorKey.err).toMatch(
      /is not the identity root of any member of this genesis \(acme: [0-9a-f]{32}, bolt: [0-9a-f]{32}\)/,
    );
    const down = await register({});
    expect(down.code).toBe(1);
    expect(down.err).toMatch(/cannot reach the validator at http:\/\/127\.0\.0\.1:\d+\/v1\/config\/acme/);
    const noPub = await register({ '--key': join(dir, 'missing.pub') });
    expect(noPub.code).not.toBe(0);
    expect(noPub.err).toMatch(/missing\.pub/);
    const revokeWhat = await runCli([
      'gateway',
      'revoke',
      '--genesis',
      alliance.genesisFile,
      '--identity-root',
      alliance.identityRootFiles.get('acme')!,
      '--gateway',
      'gw-1',
      '--validator',
      closedUrl,
    ]);
    expect([revokeWhat.code, revokeWhat.err]).toEqual([
      1,
      expect.stringMatching(/give --key-id <hex> or --key <pubfile>/),
    ]);
    const usage = await runCli(['gateway', 'register', '--genesis', alliance.genesisFile]);
    expect(usage.code).toBe(2);
  }, 60_000);
});
