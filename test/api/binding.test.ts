/**
 * Where the member's API may listen: HTTPS with a certificate (checked with a real TLS handshake
 * against a self-signed certificate made by openssl), and a non-loopback address without TLS refused
 * at start-up, before anything binds.
 */
import { execFileSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { request } from 'node:https';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { checkApiBinding, UnsafeBindingError } from '../../src/api/auth/binding.ts';
import { createLocalAlliance } from '../../src/devtools/local-alliance.ts';
import { silentLogger } from '../../src/log/logger.ts';
import { startValidator } from '../../src/validator/validator.ts';
import { tempDir } from '../helpers/tmp.ts';
import { tokenFor } from './credentials-fixture.ts';

const openssl = ['/usr/bin/openssl', '/usr/local/bin/openssl'].find((p) => existsSync(p));

function get(url: string, ca: Buffer, token?: string): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = request(url, { ca, headers: token ? { authorization: `Bearer ${token}` } : {} }, (res) => {
      let body = '';
      res.on('data', (c) => {
        body += c;
      });
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
    });
    req.on('error', reject);
    req.end();
  });
}

describe('where the API listens', () => {
  it('refuses a non-loopback address without TLS, with a clear message; loopback or TLS is fine', () => {
    for (const host of ['0.0.0.0', '10.0.0.5', '::', 'acme.example'])
      expect(() => checkApiBinding(host, undefined)).toThrow(/refusing to serve the API on .* without TLS/);
    for (const host of ['127.0.0.1', '127.0.0.2', '::1', '[::1]', 'localhost'])
      checkApiBinding(host, undefined);
    checkApiBinding('0.0.0.0', { certFile: 'c.pem', keyFile: 'k.pem' });
  });

  it('startValidator refuses 0.0.0.0 without TLS before opening anything', async () => {
    const dir = tempDir('bind');
    const a = await createLocalAlliance({ dir, members: ['acme'] });
    const data = join(dir, 'data');
    await expect(
      startValidator({
        genesisFile: a.genesisFile,
        keyFile: a.keyFiles.get('acme')!,
        dataDir: data,
        api: { host: '0.0.0.0', port: 0 },
        log: silentLogger,
      }),
    ).rejects.toThrow(UnsafeBindingError);
    expect(existsSync(join(data, 'chain.db'))).toBe(false);
  });

  it.skipIf(!openssl)('serves HTTPS with a certificate: credentials required all the same', async () => {
    const dir = tempDir('tls');
    const cert = join(dir, 'cert.pem');
    const key = join(dir, 'key.pem');
    execFileSync(
      openssl!,
      [
        'req',
        '-x509',
        '-newkey',
        'ec',
        '-pkeyopt',
        'ec_paramgen_curve:prime256v1',
        '-nodes',
        '-days',
        '1',
        '-subj',
        '/CN=localhost',
        '-addext',
        'subjectAltName=IP:127.0.0.1',
        '-keyout',
        key,
        '-out',
        cert,
      ],
      { stdio: 'ignore' },
    );
    const a = await createLocalAlliance({ dir: join(dir, 'alliance'), members: ['acme'] });
    const v = await startValidator({
      genesisFile: a.genesisFile,
      keyFile: a.keyFiles.get('acme')!,
      dataDir: join(dir, 'data'),
      api: { host: '127.0.0.1', port: 0, tls: { certFile: cert, keyFile: key } },
      log: silentLogger,
    });
    try {
      expect(v.apiUrl).toMatch(/^https:\/\/127\.0\.0\.1:\d+$/);
      const ca = readFileSync(cert);
      expect((await get(`${v.apiUrl}/v1/status`, ca)).status).toBe(401);
      const ok = await get(`${v.apiUrl}/v1/status`, ca, await tokenFor(a, 'acme'));
      expect(ok.status).toBe(200);
      expect(JSON.parse(ok.body).memberId).toBe('acme');
      // Plain HTTP on the TLS port gets no answer of the API.
      const plain = await fetch(v.apiUrl!.replace('https', 'http')).then(
        (r) => r.status,
        () => 'refused',
      );
      expect(plain).not.toBe(200);
    } finally {
      await v.stop();
    }
  });
});
