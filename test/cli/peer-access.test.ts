/**
 * `masbc-edge peer`: the API's refusals are counted by code in the validator's Prometheus /metrics
 * (masbc_api_refusals_total), next to the requests let through.
 */
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { startPeer } from '../../src/cli/peer.ts';
import { createLocalAlliance } from '../../src/devtools/local-alliance.ts';
import { bearer, tokenFor } from '../api/credentials-fixture.ts';
import { parsePrometheus, sampleValue } from '../helpers/prometheus.ts';
import { tempDir } from '../helpers/tmp.ts';

describe('masbc-edge peer: access metrics', () => {
  it('counts refusals by code and allowed requests in /metrics', async () => {
    const dir = tempDir('cli-peer-access');
    const alliance = await createLocalAlliance({ dir, members: ['acme', 'bolt'] });
    const lines: string[] = [];
    const log = console.log;
    console.log = (...a: unknown[]) => lines.push(a.join(' '));
    let peer: Awaited<ReturnType<typeof startPeer>>;
    try {
      peer = await startPeer({
        genesis: alliance.genesisFile,
        key: alliance.keyFiles.get('acme')!,
        data: join(dir, 'acme'),
        opsPort: 0,
        statusEveryMs: 0,
        logLevel: 'error',
      });
    } finally {
      console.log = log;
    }
    try {
      const ready = lines.join('\n');
      const api = / api (http:\/\/\S+) /.exec(ready)![1]!;
      const status = /\| status (http:\/\/\S+)/.exec(ready)![1]!;
      expect((await fetch(`${api}/v1/status`)).status).toBe(401);
      expect((await fetch(`${api}/v1/status`, { headers: bearer('x.y.z') })).status).toBe(401);
      const other = await fetch(`${api}/v1/status`, { headers: bearer(await tokenFor(alliance, 'bolt')) });
      expect(other.status).toBe(403);
      expect(
        (await fetch(`${api}/v1/status`, { headers: bearer(await tokenFor(alliance, 'acme')) })).status,
      ).toBe(200);
      const metrics = parsePrometheus(await (await fetch(`${status}metrics`)).text());
      expect(sampleValue(metrics, 'masbc_api_refusals_total', { code: 'credential_missing' })).toBe(1);
      expect(sampleValue(metrics, 'masbc_api_refusals_total', { code: 'credential_malformed' })).toBe(1);
      expect(sampleValue(metrics, 'masbc_api_refusals_total', { code: 'other_member' })).toBe(1);
      expect(sampleValue(metrics, 'masbc_api_requests_allowed_total')).toBe(1);
    } finally {
      await peer!.stop();
    }
  });
});
