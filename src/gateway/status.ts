/**
 * The running gateway's status file (`<dataDir>/status.json`), refreshed every few seconds. It feeds
 * `masbc-edge health` (the container's HEALTHCHECK) and operators' scripts without needing the API.
 */
import { readFileSync, renameSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

export const statusFileName = 'status.json';
/** A status older than this means the gateway is hung or gone. */
export const statusStaleMs = 30_000;

export interface GatewayStatus {
  pid: number;
  startedMs: number;
  updatedMs: number;
  healthy: boolean;
  problems: string[];
  [key: string]: unknown;
}

export function statusPath(dataDir: string): string {
  return join(dataDir, statusFileName);
}

/** Writes atomically (temp file + rename) so a reader never sees half a file. */
export function writeStatus(dataDir: string, status: GatewayStatus): void {
  const path = statusPath(dataDir);
  const tmp = `${path}.${process.pid}.tmp`;
  writeFileSync(tmp, `${JSON.stringify(status, null, 2)}\n`);
  renameSync(tmp, path);
}

export type HealthVerdict = { ok: true; status: GatewayStatus } | { ok: false; reason: string };

export function checkHealth(dataDir: string, nowMs = Date.now()): HealthVerdict {
  let status: GatewayStatus;
  try {
    status = JSON.parse(readFileSync(statusPath(dataDir), 'utf8')) as GatewayStatus;
  } catch (err) {
    return { ok: false, reason: `no status from a running gateway (${(err as Error).message})` };
  }
  const age = nowMs - status.updatedMs;
  if (age > statusStaleMs)
    return { ok: false, reason: `status is ${Math.round(age / 1000)} s old: gateway hung or stopped` };
  if (!status.healthy) return { ok: false, reason: status.problems.join('; ') || 'unhealthy' };
  return { ok: true, status };
}
