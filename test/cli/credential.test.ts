/**
 * `masbc-edge credential issue|revoke`: a token signed by the member's identity root that the
 * genesis alone verifies, refused for a key that is not the member's root; revocations written to the
 * member's list, bounded by expiry.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { verifyCredential } from '../../src/api/auth/credentials.ts';
import { RevocationList, revocationsPath, revokeCredential } from '../../src/api/auth/revocations.ts';
import { createLocalAlliance } from '../../src/devtools/local-alliance.ts';
import { runCli } from '../helpers/cli.ts';
import { tempDir } from '../helpers/tmp.ts';

describe('masbc-edge credential', () => {
  it('issues a customer credential the genesis verifies, and revokes it in the member data folder', async () => {
    const dir = tempDir('cli-cred');
    const a = await createLocalAlliance({ dir, members: ['acme', 'bolt'] });
    const issued = await runCli([
      'credential',
      'issue',
      '--genesis',
      a.genesisFile,
      '--identity-root',
      a.identityRootFiles.get('acme')!,
      '--role',
      'customer',
      '--subject',
      'globex',
      '--order',
      'PO-1',
      '--order',
      'PO-2',
      '--days',
      '7',
      '--json',
    ]);
    expect(issued.code, issued.err).toBe(0);
    const { token, jti, member } = JSON.parse(issued.out);
    expect(member).toBe('acme');
    const v = await verifyCredential(token, {
      chainId: a.genesis.chainId,
      identityRoot: (m) => a.genesis.identityRoot(m),
    });
    expect(v.ok && v.principal).toMatchObject({
      role: 'customer',
      member: 'acme',
      subject: 'globex',
      orders: ['PO-1', 'PO-2'],
    });

    // Another member's root cannot issue for acme; a customer credential needs an order.
    const wrong = await runCli([
      'credential',
      'issue',
      '--genesis',
      a.genesisFile,
      '--identity-root',
      a.identityRootFiles.get('bolt')!,
      '--member',
      'acme',
      '--role',
      'reader',
      '--subject',
      'x',
    ]);
    expect([wrong.code, wrong.err]).toEqual([1, expect.stringMatching(/is not acme's identity root/)]);
    const noOrder = await runCli([
      'credential',
      'issue',
      '--genesis',
      a.genesisFile,
      '--identity-root',
      a.identityRootFiles.get('acme')!,
      '--role',
      'customer',
      '--subject',
      'x',
    ]);
    expect([noOrder.code, noOrder.err]).toEqual([1, expect.stringMatching(/names at least one order/)]);

    const data = join(dir, 'data-acme');
    const list = new RevocationList(data);
    expect(list.has(jti)).toBe(false);
    const revoked = await runCli(['credential', 'revoke', token, '--data', data]);
    expect(revoked.code, revoked.err).toBe(0);
    expect(list.has(jti)).toBe(true); // read again on change, no restart
    const saved = JSON.parse(readFileSync(revocationsPath(data), 'utf8'));
    expect(saved.revoked[0].expMs).toBe(v.ok ? v.principal.expMs : 0);
  });

  it('drops revocations past their expiry, so the list stays bounded', () => {
    const data = tempDir('revocations');
    const now = Date.now();
    revokeCredential(data, { jti: 'old-credential', expMs: now - 1000 }, now - 2000);
    expect(revokeCredential(data, { jti: 'new-credential-1' }, now).entries).toBe(1);
    const list = new RevocationList(data);
    expect([list.has('old-credential'), list.has('new-credential-1')]).toEqual([false, true]);
  });
});
