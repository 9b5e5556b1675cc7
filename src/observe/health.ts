/**
 * Honest health: what `/health` (liveness), `/ready` (readiness) and `masbc-edge health` report, as
 * one pure function of what the gateway or validator observes, so each rule is tested without a
 * process.
 *
 * Every problem is a named reason with a stable code:
 *
 * | code             | when                                                                              | fatal |
 * | ---------------- | --------------------------------------------------------------------------------- | ----- |
 * | `starting`       | the gateway or validator is not attached yet                                      | no    |
 * | `devices-down`   | devices not connected, per the policy: `any` one, `all` of them, or a `critical` one | no |
 * | `outbox-growing` | pending events grew by ≥ `outboxGrowthEventsMin` over `outboxGrowthWindowMs`      | no    |
 * | `outbox-full`    | the outbox is at ≥ 90 % of its byte or row budget, or has lost drafts             | no    |
 * | `outbox-refusing`| the outbox refuses writes (drafts wait in memory)                                  | no    |
 * | `chain-stalled`  | events wait and none has become final for `finalityStaleMs`                       | no    |
 * | `chain-peers`    | the validator sees fewer peers than a quorum needs                                | no    |
 * | `disk-low`       | the data folder's file system has less than `diskFreeMinBytes` or `diskFreeMinPercent` free | no |
 * | `outbox-corrupt` | stored events failed verification on read (submission halts before them)         | yes   |
 * | `chain-failed`   | the validator stopped on its own (its problem is given)                           | yes   |
 *
 * Ready means no reason at all. Live means no fatal reason: a PLC that is off is a reason to look
 * (not ready, `health` exits 1) but not to restart the gateway, which would not bring the PLC back.
 * With chain role `none`, events stay in the outbox by design: neither its growth nor finality is
 * judged.
 *
 * @example
 *   const report = evaluateHealth(inputs, policy);
 *   report.ready; // false
 *   report.reasons; // [{ code: 'devices-down', message: 'press1 not connected (backoff: …)', fatal: false }]
 */
import type { HealthPolicy } from '../gateway/config/gateway-schema.ts';

/** Every reason's code (docs/deploy.md lists them; a test holds the two together). */
export const healthCodes = [
  'starting',
  'devices-down',
  'outbox-growing',
  'outbox-full',
  'outbox-refusing',
  'chain-stalled',
  'chain-peers',
  'disk-low',
  'outbox-corrupt',
  'chain-failed',
] as const;
export type HealthCode = (typeof healthCodes)[number];

export interface HealthReason {
  code: HealthCode;
  message: string;
  /** Liveness fails: the process cannot recover by itself. */
  fatal: boolean;
}

export interface HealthReport {
  /** 'ok' (ready), 'degraded' (not ready, live) or 'failed' (not live). */
  status: 'ok' | 'degraded' | 'failed';
  live: boolean;
  ready: boolean;
  reasons: HealthReason[];
}

/** Share of the outbox budget (bytes or rows) at which it counts as nearly full. */
export const outboxFullShare = 0.9;

export interface HealthInputs {
  nowMs: number;
  /** Null: nothing attached yet. */
  attached: boolean;
  /** Enabled devices (null for a validator without a gateway). */
  devices: { device: string; state: string; lastError?: string | undefined }[] | null;
  outbox: {
    pending: number;
    rows: number;
    maxRows: number;
    usedBytes: number;
    maxBytes: number;
    lostDrafts: number;
    corrupt: readonly number[];
    refusingWrites: boolean;
  } | null;
  /** Pending events over time, oldest first (one sample per interval). */
  pendingTrend: readonly { atMs: number; pending: number }[];
  chain: {
    role: 'validator' | 'client' | 'none';
    /** The validator's state and problem (role validator). */
    state?: string | undefined;
    problem?: string | null | undefined;
    peersConnected?: number | undefined;
    peersTotal?: number | undefined;
    /** Validators in a quorum (this one included). */
    quorum?: number | undefined;
    /** Something is waiting to become final since this time (null: nothing waits). */
    waitingSinceMs: number | null;
    /** When something last became final (null: never, in this process). */
    lastFinalMs: number | null;
  } | null;
  disk: { path: string; freeBytes: number; totalBytes: number } | null;
}

export function evaluateHealth(i: HealthInputs, policy: HealthPolicy): HealthReport {
  const reasons: HealthReason[] = [];
  const add = (code: HealthCode, message: string, fatal = false) => reasons.push({ code, message, fatal });
  if (!i.attached) add('starting', 'starting: not acquiring or validating yet');

  if (i.devices && i.devices.length > 0) {
    const down = i.devices.filter((d) => d.state !== 'connected');
    const describe = (ds: typeof down) =>
      ds.map((d) => `${d.device} (${d.state}${d.lastError ? `: ${d.lastError}` : ''})`).join(', ');
    if (policy.devices === 'any' && down.length > 0) {
      add('devices-down', `${down.length} of ${i.devices.length} devices not connected: ${describe(down)}`);
    } else if (policy.devices === 'all' && down.length === i.devices.length) {
      add('devices-down', `no device connected: ${describe(down)}`);
    } else if (policy.devices === 'critical') {
      const critical = new Set(policy.criticalDevices);
      const criticalDown = down.filter((d) => critical.has(d.device));
      const missing = policy.criticalDevices.filter((id) => !i.devices!.some((d) => d.device === id));
      if (criticalDown.length > 0 || missing.length > 0) {
        const parts = [
          ...(criticalDown.length ? [describe(criticalDown)] : []),
          ...missing.map((id) => `${id} (not running: disabled?)`),
        ];
        add('devices-down', `critical devices not connected: ${parts.join(', ')}`);
      }
    }
  }

  const o = i.outbox;
  if (o) {
    if (o.corrupt.length > 0)
      add(
        'outbox-corrupt',
        `corrupt outbox events at seq ${o.corrupt.join(', ')}: submission halts before them`,
        true,
      );
    const byteShare = o.maxBytes > 0 ? o.usedBytes / o.maxBytes : 0;
    const rowShare = o.maxRows > 0 ? o.rows / o.maxRows : 0;
    if (o.lostDrafts > 0) {
      add('outbox-full', `outbox full: ${o.lostDrafts} drafts lost so far (a gap event will record them)`);
    } else if (byteShare >= outboxFullShare || rowShare >= outboxFullShare) {
      add(
        'outbox-full',
        `outbox at ${Math.round(100 * Math.max(byteShare, rowShare))} % of its budget ` +
          `(${o.usedBytes} of ${o.maxBytes} bytes, ${o.rows} of ${o.maxRows} rows)`,
      );
    }
    if (o.refusingWrites) add('outbox-refusing', 'the outbox refuses writes: drafts wait in memory');
  }

  const c = i.chain;
  if (c && c.role !== 'none') {
    if (o) {
      const growth = outboxGrowth(i.pendingTrend, i.nowMs, policy.outboxGrowthWindowMs);
      if (growth !== null && growth >= policy.outboxGrowthEventsMin)
        add(
          'outbox-growing',
          `the outbox is filling faster than it drains: ${growth} more pending events than ` +
            `${Math.round(policy.outboxGrowthWindowMs / 1000)} s ago (${o.pending} pending)`,
        );
    }
    if (c.waitingSinceMs !== null) {
      const since = Math.max(c.waitingSinceMs, c.lastFinalMs ?? Number.NEGATIVE_INFINITY);
      const idleMs = i.nowMs - since;
      if (idleMs > policy.finalityStaleMs)
        add(
          'chain-stalled',
          `nothing became final for ${Math.round(idleMs / 1000)} s while events wait ` +
            `(limit ${Math.round(policy.finalityStaleMs / 1000)} s)`,
        );
    }
    if (c.role === 'validator') {
      if (c.state === 'failed' || (c.state === 'stopped' && i.attached))
        add('chain-failed', `the validator ${c.state}: ${c.problem ?? 'no reason given'}`, true);
      else if (c.problem) add('chain-failed', `the validator reports: ${c.problem}`, true);
      if (
        c.state === 'running' &&
        c.quorum !== undefined &&
        c.peersConnected !== undefined &&
        c.peersConnected < c.quorum - 1
      )
        add(
          'chain-peers',
          `${c.peersConnected} of ${c.peersTotal ?? '?'} peers connected; a quorum needs ${c.quorum - 1}`,
        );
    }
  }

  const d = i.disk;
  if (d && d.totalBytes > 0) {
    const percent = (100 * d.freeBytes) / d.totalBytes;
    if (d.freeBytes < policy.diskFreeMinBytes || percent < policy.diskFreeMinPercent)
      add(
        'disk-low',
        `${d.path}: ${formatBytes(d.freeBytes)} free (${percent.toFixed(1)} %), ` +
          `below ${formatBytes(policy.diskFreeMinBytes)} or ${policy.diskFreeMinPercent} %`,
      );
  }

  const live = !reasons.some((r) => r.fatal);
  const ready = reasons.length === 0;
  return { status: ready ? 'ok' : live ? 'degraded' : 'failed', live, ready, reasons };
}

/**
 * Pending now minus pending `windowMs` ago, from samples oldest first; null until the samples span
 * the whole window (a gateway that just started has no trend yet).
 */
export function outboxGrowth(
  trend: readonly { atMs: number; pending: number }[],
  nowMs: number,
  windowMs: number,
): number | null {
  const last = trend[trend.length - 1];
  if (!last) return null;
  const from = nowMs - windowMs;
  // The newest sample at or before the window's start.
  let start: { atMs: number; pending: number } | undefined;
  for (const s of trend) {
    if (s.atMs > from) break;
    start = s;
  }
  return start ? last.pending - start.pending : null;
}

export function formatBytes(n: number): string {
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let v = n;
  let u = 0;
  while (v >= 1024 && u < units.length - 1) {
    v /= 1024;
    u++;
  }
  return `${v.toFixed(u === 0 ? 0 : 1)} ${units[u]}`;
}
