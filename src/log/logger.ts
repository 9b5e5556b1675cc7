/**
 * Structured logging (pino, JSON lines) behind the small DriverLogger interface the drivers use.
 * Operating errors repeat (a device offline logs every retry); the drivers rate-limit their own lines.
 */
import { pino } from 'pino';
import type { DriverLogger } from '../drivers/types.ts';

export interface Logger extends DriverLogger {
  debug(msg: string, fields?: Record<string, unknown>): void;
  child(bindings: Record<string, unknown>): Logger;
  flush(): void;
}

export type LogLevel = 'trace' | 'debug' | 'info' | 'warn' | 'error';

/** A logger writing JSON lines to `destination` (a file path, or 1 for stdout, 2 for stderr). */
export function createLogger(level: LogLevel, destination: string | 1 | 2 = 1): Logger {
  const dest = pino.destination({
    dest: destination,
    sync: destination === 1 || destination === 2,
    mkdir: true,
  });
  return wrap(pino({ level, base: { pid: process.pid } }, dest));
}

function wrap(p: pino.Logger): Logger {
  return {
    debug: (msg, fields) => p.debug(fields ?? {}, msg),
    info: (msg, fields) => p.info(fields ?? {}, msg),
    warn: (msg, fields) => p.warn(fields ?? {}, msg),
    error: (msg, fields) => p.error(fields ?? {}, msg),
    child: (bindings) => wrap(p.child(bindings)),
    flush: () => p.flush(),
  };
}

/** A logger that drops everything (tests that do not look at logs). */
export const silentLogger: Logger = {
  debug: () => {},
  info: () => {},
  warn: () => {},
  error: () => {},
  child: () => silentLogger,
  flush: () => {},
};
