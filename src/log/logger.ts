/**
 * Structured logging (pino, JSON lines). Modules that log declare the small interface they use
 * (drivers: DriverLogger); this Logger satisfies each of them.
 * Operating errors repeat (a device offline logs every retry); the drivers rate-limit their own lines.
 */
import { pino } from 'pino';

/** Satisfies every narrower logger interface a module declares for itself (drivers, submitter, …). */
export interface Logger {
  debug(msg: string, fields?: Record<string, unknown>): void;
  info(msg: string, fields?: Record<string, unknown>): void;
  warn(msg: string, fields?: Record<string, unknown>): void;
  error(msg: string, fields?: Record<string, unknown>): void;
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
