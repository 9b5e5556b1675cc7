/**
 * A running gateway's status server over a real socket: `/metrics` scraped over HTTP and parsed as
 * the Prometheus text format, the page's data, the dead letters with their reasons, and `/ready`
 * going from ready to degraded when the press PLC goes away and back when it returns. The gateway
 * hosts the only validator of a one-member alliance on its own thread, so events become final.
 */
import { readFileSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { HealthReport } from '../../src/observe/health.ts';
import type { OpsSnapshot } from '../../src/observe/observer.ts';
import { type Family, parsePrometheus, sampleValue } from '../helpers/prometheus.ts';
import { tempDir } from '../helpers/tmp.ts';
import { getJson, type OpsGateway, reconnectMaxDelayMs, startOpsGateway, waitFor } from './fixtures.ts';

let g: OpsGateway;
/** Waits derive from the configured intervals: poll 100 ms, reconnect ≤ 500 ms, one sample a second. */
const settleMs = 60_000;

beforeAll(async () => {
  g = await startOpsGateway(tempDir('ops-gateway'));
  await waitFor(
    async () => (await getJson<HealthReport>(`${g.url}ready`)).body.ready,
    'the gateway ready',
    settleMs,
  );
}, 2 * settleMs);

afterAll(async () => {
  await g?.stop();
});

async function scrape(): Promise<Map<string, Family>> {
  const res = await fetch(`${g.url}metrics`);
  expect(res.status).toBe(200);
  expect(res.headers.get('content-type')).toMatch(/^text\/plain; version=0\.0\.4/);
  return parsePrometheus(await res.text());
}

const status = async () => (await getJson<OpsSnapshot>(`${g.url}api/status`)).body;

describe("a gateway's status server", { timeout: 3 * settleMs }, () => {
  it('serves /metrics in the Prometheus text format, with every figure the operator needs', async () => {
    // Final events, and the validator thread's status posted since (it reports every 250 ms).
    await waitFor(
      async () => {
        const c = (await status()).chain;
        return (c?.submitter?.committed ?? 0) > 0 && (c?.height ?? 0) > 0;
      },
      'events final',
      settleMs,
    );
    const m = await scrape();
    for (const name of [
      'masbc_device_up',
      'masbc_device_readings_total',
      'masbc_device_errors_total',
      'masbc_device_timeouts_total',
      'masbc_device_read_duration_seconds',
      'masbc_normaliser_events_total',
      'masbc_outbox_pending_events',
      'masbc_outbox_used_bytes',
      'masbc_outbox_oldest_pending_age_seconds',
      'masbc_outbox_dead_letters_total',
      'masbc_outbox_gap_events_total',
      'masbc_submitter_in_flight_events',
      'masbc_submitter_resubmitted_total',
      'masbc_submitter_finality_latency_seconds',
      'masbc_consensus_view',
      'masbc_consensus_height',
      'masbc_consensus_view_changes_total',
      'masbc_consensus_peers',
      'masbc_consensus_refusals_total',
      'masbc_consensus_messages_sent_total',
      'masbc_consensus_peer_sent_bytes_total',
      'masbc_health_ready',
      'process_cpu_user_seconds_total',
      'process_resident_memory_bytes',
      'nodejs_heap_size_used_bytes',
    ])
      expect(m.has(name), name).toBe(true);
    for (const name of m.keys())
      expect(name, 'own metrics carry the masbc_ prefix').toMatch(/^(masbc_|process_|nodejs_)/);

    const press = { device: 'press1', protocol: 'modbus' };
    expect(sampleValue(m, 'masbc_device_up', press)).toBe(1);
    expect(sampleValue(m, 'masbc_device_readings_total', press)).toBeGreaterThan(0);
    expect(sampleValue(m, 'masbc_device_read_duration_seconds_count', press)).toBeGreaterThan(0);
    expect(sampleValue(m, 'masbc_device_up', { device: 'oven1', protocol: 'mqtt' })).toBe(1);
    // MQTT has no request/response reads: no latency series for it.
    expect(sampleValue(m, 'masbc_device_read_duration_seconds_count', { device: 'oven1' })).toBeUndefined();
    expect(m.get('masbc_normaliser_events_total')!.samples.length).toBeGreaterThan(0);
    expect(sampleValue(m, 'masbc_consensus_height')).toBeGreaterThan(0);
    expect(sampleValue(m, 'masbc_submitter_final_total')).toBeGreaterThan(0);
    expect(sampleValue(m, 'masbc_submitter_finality_latency_seconds_count')).toBeGreaterThan(0);
    expect(sampleValue(m, 'masbc_consensus_up')).toBe(1);
    expect(sampleValue(m, 'masbc_health_ready')).toBe(1);
    expect(sampleValue(m, 'masbc_build_info', { kind: 'gateway', name: 'acme/gw-ops' })).toBe(1);

    // The counters move: readings keep coming (press polled every 100 ms).
    const before = sampleValue(m, 'masbc_device_readings_total', press)!;
    await waitFor(
      async () => (sampleValue(await scrape(), 'masbc_device_readings_total', press) ?? 0) > before,
      'more press readings',
      settleMs,
    );
  });

  it("serves the page's data: devices, tags with value, quality and time, the chain, rates, process", async () => {
    const s = await waitFor(
      async () => {
        const x = await status();
        return x.rates.readingsPerS !== null && (x.tags?.total ?? 0) > 0 ? x : undefined;
      },
      'rates and tags',
      settleMs,
    );
    expect(s).toMatchObject({ kind: 'gateway', name: 'acme/gw-ops', attached: true });
    expect(s.devices!.map((d) => [d.device, d.state]).sort()).toEqual([
      ['oven1', 'connected'],
      ['press1', 'connected'],
    ]);
    const press = s.devices!.find((d) => d.device === 'press1')!;
    expect(press.readMs?.count).toBeGreaterThan(0);
    expect(Object.keys(press.figures).some((k) => k.startsWith('units'))).toBe(true);
    const parts = s.tags!.shown.find((t) => t.device === 'press1' && t.tag === 'partsTotal')!;
    expect(parts).toMatchObject({ quality: 'good' });
    expect(typeof parts.value).toBe('number');
    expect(parts.sourceTimeMs).toBeGreaterThan(0);
    expect(s.chain).toMatchObject({ role: 'validator', memberId: 'acme', state: 'running' });
    expect(s.chain!.height).toBeGreaterThan(0);
    expect(s.process.rssBytes).toBeGreaterThan(0);
    expect(s.outbox!.maxBytes).toBeGreaterThan(0);
    expect(s.health.ready).toBe(true);
  });

  it('lists dead letters newest first with their reason, on the page and at /api/dead-letters', async () => {
    const s = await waitFor(
      async () => {
        const x = await status();
        return (x.deadLetters?.newest.length ?? 0) > 0 ? x : undefined;
      },
      'a dead letter (the sensors send malformed messages)',
      settleMs,
    );
    const newest = s.deadLetters!.newest;
    expect(newest[0]!.reason.length).toBeGreaterThan(0);
    for (let i = 1; i < newest.length; i++) expect(newest[i - 1]!.id).toBeGreaterThan(newest[i]!.id);
    const all = await getJson<{ deadLetters: { reason: string; device: string }[] }>(
      `${g.url}api/dead-letters?limit=1000`,
    );
    expect(all.status).toBe(200);
    expect(all.body.deadLetters.length).toBeGreaterThanOrEqual(newest.length);
    expect(all.body.deadLetters.every((d) => d.device === 'oven1' && d.reason.length > 0)).toBe(true);
    expect((await getJson(`${g.url}api/dead-letters?limit=100000`)).status).toBe(400);
    const m = await scrape();
    expect(sampleValue(m, 'masbc_device_dead_letters_total', { device: 'oven1' })).toBeGreaterThan(0);
  });

  it('serves the page itself from its own files, with a policy that loads nothing else', async () => {
    for (const [path, type] of [
      ['', 'text/html'],
      ['app.js', 'text/javascript'],
      ['style.css', 'text/css'],
    ] as const) {
      const res = await fetch(`${g.url}${path}`);
      expect(res.status, path).toBe(200);
      expect(res.headers.get('content-type')).toContain(type);
      expect(res.headers.get('content-security-policy')).toContain("default-src 'none'");
      const text = await res.text();
      expect(text).not.toMatch(/https?:\/\//); // no CDN, nothing from the internet
    }
  });

  it('pushes live updates as server-sent events', async () => {
    const controller = new AbortController();
    const res = await fetch(`${g.url}api/events`, { signal: controller.signal });
    expect(res.headers.get('content-type')).toContain('text/event-stream');
    const reader = res.body!.getReader();
    let text = '';
    const events = () => text.split('\n\n').filter((e) => e.includes('event: snapshot'));
    // The first update comes at once, the next with the next sample (one a second).
    while (events().length < 2) text += new TextDecoder().decode((await reader.read()).value);
    const first = JSON.parse(events()[0]!.split('data: ')[1]!) as OpsSnapshot;
    const second = JSON.parse(events()[1]!.split('data: ')[1]!) as OpsSnapshot;
    expect(second.nowMs).toBeGreaterThan(first.nowMs);
    controller.abort();
  });

  it("logs the validator thread's ids as strings", () => {
    const lines = readFileSync(g.logFile, 'utf8').split('\n').filter(Boolean);
    const listening = lines.map((l) => JSON.parse(l)).find((l) => l.msg === 'transport listening');
    expect(listening?.addrs?.[0]).toMatch(/^\/ip4\/127\.0\.0\.1\/tcp\/\d+/);
    expect(lines.filter((l) => /"0":\d+,"1":\d+/.test(l))).toEqual([]);
  });

  it('/ready names the device that went away, /health stays live, and both recover when it returns', async () => {
    await g.sims.faults.stopModbusTcp();
    const down = await waitFor(
      async () => {
        const r = await getJson<HealthReport>(`${g.url}ready`);
        return r.status === 503 ? r.body : undefined;
      },
      'not ready with the press PLC gone',
      settleMs,
    );
    expect(down.reasons.map((r) => r.code)).toEqual(['devices-down']);
    expect(down.reasons[0]!.message).toMatch(/^1 of 2 devices not connected: press1 \((connecting|backoff)/);
    const live = await getJson<HealthReport>(`${g.url}health`);
    expect(live.status).toBe(200);
    expect(live.body).toMatchObject({ live: true, ready: false, status: 'degraded' });
    const m = await scrape();
    expect(sampleValue(m, 'masbc_health_ready')).toBe(0);
    expect(sampleValue(m, 'masbc_health_reason', { code: 'devices-down' })).toBe(1);
    expect(sampleValue(m, 'masbc_device_up', { device: 'press1' })).toBe(0);

    await g.sims.faults.startModbusTcp();
    await waitFor(
      async () => (await getJson<HealthReport>(`${g.url}ready`)).status === 200,
      'ready again',
      settleMs + 10 * reconnectMaxDelayMs,
    );
    const errors = (await scrape())
      .get('masbc_device_errors_total')!
      .samples.filter((s) => s.labels.device === 'press1');
    expect(errors.reduce((a, s) => a + s.value, 0)).toBeGreaterThan(0);
  });
});
