/**
 * A DriverContext for tests that records every batch, log line and dead letter, and lets a test
 * await a condition re-checked on each of those events (no sleeps as synchronisation).
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { DeadLetter, DriverContext, Reading } from '../../../src/drivers/types.ts';

export interface LogLine {
  level: 'info' | 'warn' | 'error';
  msg: string;
  fields?: Record<string, unknown> | undefined;
}

export interface TestContext {
  ctx: DriverContext;
  batches: Reading[][];
  readings: Reading[];
  logs: LogLine[];
  deadLetters: DeadLetter[];
  /** Resolves when `check` holds (re-checked on every batch, log line and dead letter). */
  waitFor(check: () => boolean, what: string, timeoutMs?: number): Promise<void>;
  /** Latest reading of a tag. */
  latest(tag: string): Reading | undefined;
  cleanup(): void;
}

export function testContext(overrides: Partial<DriverContext> = {}): TestContext {
  // A private data folder unless the test brings its own (then the test removes it).
  const ownDir = overrides.dataDir === undefined ? mkdtempSync(join(tmpdir(), 'masbc-driver-')) : null;
  const dataDir = overrides.dataDir ?? ownDir!;
  const batches: Reading[][] = [];
  const readings: Reading[] = [];
  const logs: LogLine[] = [];
  const deadLetters: DeadLetter[] = [];
  const waiters = new Set<() => void>();
  const poke = () => {
    for (const w of [...waiters]) w();
  };
  const log = (level: LogLine['level']) => (msg: string, fields?: Record<string, unknown>) => {
    logs.push({ level, msg, fields });
    if (process.env.DRIVER_TEST_LOG) console.log(level, msg, fields ?? '');
    poke();
  };
  const ctx: DriverContext = {
    onReadings(batch) {
      batches.push([...batch]);
      readings.push(...batch);
      poke();
    },
    onDeadLetter(letter) {
      deadLetters.push(letter);
      poke();
    },
    log: { info: log('info'), warn: log('warn'), error: log('error') },
    dataDir,
    pkiFolder: join(dataDir, 'pki'),
    ...overrides,
  };
  return {
    ctx,
    batches,
    readings,
    logs,
    deadLetters,
    waitFor(check, what, timeoutMs = 10_000) {
      if (check()) return Promise.resolve();
      return new Promise((resolve, reject) => {
        const timer = setTimeout(() => {
          waiters.delete(waiter);
          reject(new Error(`timed out after ${timeoutMs} ms waiting for ${what}`));
        }, timeoutMs);
        const waiter = () => {
          if (!check()) return;
          clearTimeout(timer);
          waiters.delete(waiter);
          resolve();
        };
        waiters.add(waiter);
      });
    },
    latest(tag) {
      for (let i = readings.length - 1; i >= 0; i--) if (readings[i]!.tag === tag) return readings[i];
      return undefined;
    },
    cleanup() {
      if (ownDir) rmSync(ownDir, { recursive: true, force: true });
    },
  };
}

import { type DeviceConfig, deviceSchema } from '../../../src/gateway/config/device-schema.ts';

/** A device map object through the real schema (defaults applied), narrowed to its protocol. */
export function deviceMap<P extends DeviceConfig['protocol']>(
  protocol: P,
  map: Record<string, unknown>,
): Extract<DeviceConfig, { protocol: P }> {
  return deviceSchema.parse({ id: 'dev', station: 'ST-1', ...map, protocol }) as Extract<
    DeviceConfig,
    { protocol: P }
  >;
}
