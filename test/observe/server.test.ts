/**
 * The status server's own rules, on a real socket: before a gateway is attached it says so
 * (`starting`: live, not ready); it refuses live clients beyond its bound (the page then polls);
 * the tag cache keeps at most its bound and counts the rest.
 */
import { describe, expect, it } from 'vitest';
import { healthSchema } from '../../src/gateway/config/gateway-schema.ts';
import { silentLogger } from '../../src/log/logger.ts';
import { liveClientsMax } from '../../src/observe/bounds.ts';
import { pageUrl, startOps } from '../../src/observe/server.ts';
import { TagCache } from '../../src/observe/tags.ts';
import { parsePrometheus, sampleValue } from '../helpers/prometheus.ts';
import { tempDir } from '../helpers/tmp.ts';

const policy = healthSchema.parse({});

describe('the status server', () => {
  it('before anything is attached: live, not ready, reason "starting"; metrics still parse', async () => {
    const ops = await startOps({
      kind: 'gateway',
      name: 'acme/gw-x',
      host: '127.0.0.1',
      port: 0,
      policy,
      dataDir: tempDir('ops-server'),
      log: silentLogger,
    });
    try {
      const ready = await fetch(`${ops.url}ready`);
      expect(ready.status).toBe(503);
      expect(await ready.json()).toMatchObject({
        ready: false,
        live: true,
        reasons: [{ code: 'starting' }],
        pid: process.pid,
      });
      expect((await fetch(`${ops.url}health`)).status).toBe(200);
      const m = parsePrometheus(await (await fetch(`${ops.url}metrics`)).text());
      expect(sampleValue(m, 'masbc_health_reason', { code: 'starting' })).toBe(1);
      expect(m.get('masbc_device_up')!.samples).toEqual([]);
      expect(m.get('masbc_data_disk_free_bytes')!.samples[0]!.value).toBeGreaterThan(0);
      const s = await (await fetch(`${ops.url}api/status`)).json();
      expect(s).toMatchObject({ attached: false, devices: null, chain: null });
    } finally {
      await ops.close();
    }
  });

  it(`serves at most ${liveClientsMax} live clients; the next one is told to poll`, async () => {
    const ops = await startOps({
      kind: 'validator',
      name: 'v',
      host: '127.0.0.1',
      port: 0,
      policy,
      dataDir: null,
      log: silentLogger,
    });
    const controllers: AbortController[] = [];
    try {
      for (let i = 0; i < liveClientsMax; i++) {
        const c = new AbortController();
        controllers.push(c);
        const res = await fetch(`${ops.url}api/events`, { signal: c.signal });
        expect(res.status).toBe(200);
      }
      const refused = await fetch(`${ops.url}api/events`);
      expect(refused.status).toBe(503);
      expect(((await refused.json()) as { error: string }).error).toContain('poll /api/status');
    } finally {
      for (const c of controllers) c.abort();
      await ops.close();
    }
  });

  it('shows a wildcard bind as loopback, IPv6 in brackets', () => {
    expect(pageUrl('0.0.0.0', 8090)).toBe('http://127.0.0.1:8090/');
    expect(pageUrl('::1', 8090)).toBe('http://[::1]:8090/');
    expect(pageUrl('10.0.0.5', 80)).toBe('http://10.0.0.5:80/');
  });
});

describe('the tag cache', () => {
  it('keeps the last reading of each tag, at most its bound, and counts readings of tags beyond it', () => {
    const tags = new TagCache(2);
    const r = (tag: string, value: number) => ({
      device: 'd',
      tag,
      value,
      quality: 'good' as const,
      sourceTimeMs: value,
    });
    tags.record([r('b', 1), r('a', 2)], 10);
    tags.record([r('b', 3), r('c', 4), r('c', 5)], 20);
    expect(tags.size).toBe(2);
    expect(tags.dropped).toBe(2);
    expect(tags.list(10).map((t) => [t.tag, t.value, t.readings, t.receivedMs])).toEqual([
      ['a', 2, 1, 10],
      ['b', 3, 2, 20],
    ]);
    tags.record([{ ...r('a', 6), quality: 'bad', reason: 'timeout' }], 30);
    expect(tags.list(1)[0]).toMatchObject({ tag: 'a', quality: 'bad', reason: 'timeout' });
    tags.record([r('a', 7)], 40);
    expect(tags.list(1)[0]!.reason).toBeUndefined();
  });
});
