/**
 * The health rules one by one, as a pure function: each condition the issue names makes the
 * gateway degraded with its own named reason, and nothing else does.
 */
import { describe, expect, it } from 'vitest';
import { healthSchema } from '../../src/gateway/config/gateway-schema.ts';
import { evaluateHealth, type HealthInputs, outboxGrowth } from '../../src/observe/health.ts';

const policy = healthSchema.parse({});
const GiB = 1024 ** 3;

function inputs(over: Partial<HealthInputs> = {}): HealthInputs {
  return {
    nowMs: 1_000_000,
    attached: true,
    devices: [
      { device: 'press1', state: 'connected' },
      { device: 'cnc1', state: 'connected' },
    ],
    outbox: {
      pending: 0,
      rows: 10,
      maxRows: 1_000_000,
      usedBytes: 1_000,
      maxBytes: GiB,
      lostDrafts: 0,
      corrupt: [],
      refusingWrites: false,
    },
    pendingTrend: [],
    chain: {
      role: 'validator',
      state: 'running',
      peersConnected: 3,
      peersTotal: 3,
      quorum: 3,
      waitingSinceMs: null,
      lastFinalMs: 990_000,
    },
    disk: { path: '/data', freeBytes: 50 * GiB, totalBytes: 100 * GiB },
    ...over,
  };
}

const codes = (i: HealthInputs, p = policy) => evaluateHealth(i, p).reasons.map((r) => r.code);

describe('health', () => {
  it('is ok, live and ready when nothing is wrong', () => {
    expect(evaluateHealth(inputs(), policy)).toEqual({ status: 'ok', live: true, ready: true, reasons: [] });
  });

  it('is not ready while starting', () => {
    const r = evaluateHealth(inputs({ attached: false, devices: null, outbox: null, chain: null }), policy);
    expect(r).toMatchObject({ status: 'degraded', live: true, ready: false });
    expect(r.reasons.map((x) => x.code)).toEqual(['starting']);
  });

  describe('devices, by policy', () => {
    const oneDown = inputs({
      devices: [
        { device: 'press1', state: 'backoff', lastError: 'connect ECONNREFUSED 127.0.0.1:5020' },
        { device: 'cnc1', state: 'connected' },
      ],
    });
    const allDown = inputs({
      devices: [
        { device: 'press1', state: 'backoff' },
        { device: 'cnc1', state: 'connecting' },
      ],
    });

    it('any: one device down is degraded, named with its state and last error', () => {
      const r = evaluateHealth(oneDown, policy);
      expect(r.ready).toBe(false);
      expect(r.live).toBe(true);
      expect(r.reasons).toEqual([
        {
          code: 'devices-down',
          fatal: false,
          message: '1 of 2 devices not connected: press1 (backoff: connect ECONNREFUSED 127.0.0.1:5020)',
        },
      ]);
    });

    it('all: degraded only when no device is connected', () => {
      const all = { ...policy, devices: 'all' as const };
      expect(codes(oneDown, all)).toEqual([]);
      expect(evaluateHealth(allDown, all).reasons[0]?.message).toBe(
        'no device connected: press1 (backoff), cnc1 (connecting)',
      );
    });

    it('critical: degraded when a named device is down, or not running at all', () => {
      const critical = { ...policy, devices: 'critical' as const, criticalDevices: ['cnc1'] };
      expect(codes(oneDown, critical)).toEqual([]);
      expect(codes(allDown, critical)).toEqual(['devices-down']);
      const missing = { ...critical, criticalDevices: ['oven9'] };
      expect(evaluateHealth(inputs(), missing).reasons[0]?.message).toContain('oven9 (not running');
    });
  });

  it('outbox filling faster than it drains: growth over the whole window, only once the window is covered', () => {
    const trend = [
      { atMs: 900_000, pending: 10 },
      { atMs: 940_000, pending: 60 },
      { atMs: 1_000_000, pending: 200 },
    ];
    expect(outboxGrowth(trend, 1_000_000, 60_000)).toBe(140);
    expect(outboxGrowth(trend.slice(1), 1_000_000, 60_000)).toBe(140);
    expect(outboxGrowth(trend.slice(2), 1_000_000, 60_000)).toBeNull(); // not a window of samples yet
    const growing = inputs({ pendingTrend: trend });
    growing.outbox!.pending = 200;
    expect(evaluateHealth(growing, policy).reasons).toEqual([
      {
        code: 'outbox-growing',
        fatal: false,
        message:
          'the outbox is filling faster than it drains: 140 more pending events than 60 s ago (200 pending)',
      },
    ]);
    expect(codes(growing, { ...policy, outboxGrowthEventsMin: 141 })).toEqual([]);
    // Chain role none: events stay in the outbox by design.
    expect(codes({ ...growing, chain: { role: 'none', waitingSinceMs: 0, lastFinalMs: null } })).toEqual([]);
  });

  it('outbox nearly full, losing drafts, refusing writes, or corrupt (fatal)', () => {
    const o = inputs().outbox!;
    expect(codes(inputs({ outbox: { ...o, usedBytes: 0.95 * GiB } }))).toEqual(['outbox-full']);
    expect(codes(inputs({ outbox: { ...o, rows: 950_000 } }))).toEqual(['outbox-full']);
    expect(
      evaluateHealth(inputs({ outbox: { ...o, lostDrafts: 12 } }), policy).reasons[0]?.message,
    ).toContain('12 drafts lost');
    expect(codes(inputs({ outbox: { ...o, refusingWrites: true } }))).toEqual(['outbox-refusing']);
    const corrupt = evaluateHealth(inputs({ outbox: { ...o, corrupt: [17] } }), policy);
    expect(corrupt).toMatchObject({ status: 'failed', live: false, ready: false });
    expect(corrupt.reasons[0]).toMatchObject({ code: 'outbox-corrupt', fatal: true });
  });

  it('chain stalled: events wait and nothing became final for finalityStaleMs', () => {
    const stale = policy.finalityStaleMs;
    const chain = inputs().chain!;
    const now = 1_000_000;
    // Waiting for longer than the limit, the last final block older still.
    const stalled = inputs({
      chain: { ...chain, waitingSinceMs: now - stale - 1, lastFinalMs: now - 2 * stale },
    });
    expect(evaluateHealth(stalled, policy).reasons[0]).toMatchObject({ code: 'chain-stalled', fatal: false });
    // Something became final recently: not stalled, however long something has waited.
    expect(
      codes(inputs({ chain: { ...chain, waitingSinceMs: now - 10 * stale, lastFinalMs: now - 1_000 } })),
    ).toEqual([]);
    // A quiet night then one event: waiting starts with it, not with the last block.
    expect(
      codes(inputs({ chain: { ...chain, waitingSinceMs: now - 1_000, lastFinalMs: now - 8 * 3_600_000 } })),
    ).toEqual([]);
    // Nothing waits: nothing to finalise.
    expect(
      codes(inputs({ chain: { ...chain, waitingSinceMs: null, lastFinalMs: now - 10 * stale } })),
    ).toEqual([]);
  });

  it('validator: too few peers for a quorum is degraded; a failed validator is fatal', () => {
    const chain = inputs().chain!;
    expect(evaluateHealth(inputs({ chain: { ...chain, peersConnected: 1 } }), policy).reasons).toEqual([
      { code: 'chain-peers', fatal: false, message: '1 of 3 peers connected; a quorum needs 2' },
    ]);
    const failed = evaluateHealth(
      inputs({ chain: { ...chain, state: 'failed', problem: 'store write failed' } }),
      policy,
    );
    expect(failed).toMatchObject({ live: false, status: 'failed' });
    expect(failed.reasons[0]?.message).toContain('store write failed');
  });

  it('disk nearly full: below the bytes or the share configured', () => {
    expect(
      codes(inputs({ disk: { path: '/data', freeBytes: 100 * 1024 ** 2, totalBytes: 100 * GiB } })),
    ).toEqual(['disk-low']);
    expect(codes(inputs({ disk: { path: '/data', freeBytes: 2 * GiB, totalBytes: 100 * GiB } }))).toEqual([
      'disk-low',
    ]);
    expect(codes(inputs({ disk: { path: '/data', freeBytes: 6 * GiB, totalBytes: 100 * GiB } }))).toEqual([]);
  });

  it('names every reason at once', () => {
    const all = inputs({
      devices: [{ device: 'press1', state: 'backoff' }],
      disk: { path: '/data', freeBytes: 0, totalBytes: 100 * GiB },
      chain: { ...inputs().chain!, peersConnected: 0 },
    });
    expect(codes(all)).toEqual(['devices-down', 'chain-peers', 'disk-low']);
  });
});
