/**
 * Structured logging (pino, JSON lines). Modules that log declare the small interface they use
 * (drivers: DriverLogger); this Logger satisfies each of them.
 *
 * Two things keep the lines useful to an operator:
 * - Fields are made JSON-friendly before they are written ({@link loggable}): an object with its own
 *   string form (a libp2p PeerId, a Multiaddr, a URL) is logged as that string, bytes as hex, a
 *   bigint as a string. Without it a PeerId that crossed a worker thread's message port (which
 *   keeps data, not classes) is logged as ~70 byte-index keys, and a Multiaddr as `{}`.
 * - Repeated warnings and errors are rate-limited ({@link RepeatLimiter}): the first line of a kind
 *   goes through; the same line again within `repeatWindowMs` is counted, not written, and the count
 *   is logged (`repeated: N`) once the window has passed. Operating errors repeat (a validator that is
 *   down fails every retry); the drivers also rate-limit their own lines.
 *
 * @example
 *   const log = createLogger('info', 'data/gateway.log');
 *   log.child({ part: 'driver' }).warn('connect failed', { device: 'press1', err: 'ECONNREFUSED' });
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

export interface LoggerOptions {
  /** The same warning or error again within this window is counted, not written. 0: no limit. */
  repeatWindowMs?: number;
  /** Clock (tests). */
  nowMs?: () => number;
  /** Write each line before returning (default: for stdout and stderr only; files are buffered). */
  sync?: boolean;
}

/** Default window of the repeat limiter. */
export const repeatWindowMs = 10_000;
/** Distinct kinds of line the repeat limiter remembers; when full, the oldest is forgotten (its count logged). */
export const repeatKeysMax = 256;
/** Fields that say which thing a line is about: the same message about another device is another line. */
const identityFields = ['device', 'peer', 'member', 'from', 'gateway', 'unitId', 'reason', 'code', 'topic'];

/** Nesting followed by {@link loggable}; deeper values are logged as their type. */
const loggableDepthMax = 6;
/** Array entries and object keys kept by {@link loggable}; the rest are summarised. */
const loggableItemsMax = 100;
/** Bytes shown as hex by {@link loggable}; longer arrays are cut and their length given. */
const loggableBytesMax = 64;

/** A logger writing JSON lines to `destination` (a file path, or 1 for stdout, 2 for stderr). */
export function createLogger(
  level: LogLevel,
  destination: string | 1 | 2 = 1,
  options: LoggerOptions = {},
): Logger {
  const dest = pino.destination({
    dest: destination,
    sync: options.sync ?? (destination === 1 || destination === 2),
    mkdir: true,
  });
  const p = pino(
    {
      level,
      base: { pid: process.pid },
      formatters: { log: (fields) => loggable(fields) as Record<string, unknown> },
      // loggable() has made errors {type, message, stack} already, under any key.
      serializers: { err: (err: unknown) => err },
    },
    dest,
  );
  const windowMs = options.repeatWindowMs ?? repeatWindowMs;
  const limiter = windowMs > 0 ? new RepeatLimiter(windowMs, options.nowMs ?? Date.now) : null;
  return wrap(p, limiter, '');
}

function wrap(p: pino.Logger, limiter: RepeatLimiter | null, scope: string): Logger {
  const limited =
    (level: 'warn' | 'error') =>
    (msg: string, fields?: Record<string, unknown>): void => {
      if (!limiter) {
        p[level](fields ?? {}, msg);
        return;
      }
      const repeated = limiter.allow(`${level}|${scope}|${msg}|${identityOf(fields)}`, (count) =>
        p[level]({ ...fields, repeated: count }, msg),
      );
      if (repeated === null) return;
      p[level](repeated > 0 ? { ...fields, repeated } : (fields ?? {}), msg);
    };
  return {
    debug: (msg, fields) => p.debug(fields ?? {}, msg),
    info: (msg, fields) => p.info(fields ?? {}, msg),
    warn: limited('warn'),
    error: limited('error'),
    child: (bindings) => wrap(p.child(bindings), limiter, `${scope}${JSON.stringify(loggable(bindings))}`),
    flush: () => {
      limiter?.flush();
      p.flush();
    },
  };
}

function identityOf(fields: Record<string, unknown> | undefined): string {
  if (!fields) return '';
  let key = '';
  for (const f of identityFields) if (fields[f] !== undefined) key += `${f}=${String(fields[f])};`;
  return key;
}

/**
 * Lets the first line of each kind through and counts the same line again within the window. A
 * line arriving after the window is let through with the count of those suppressed before it; a
 * count nobody carried out is written by the sweep (`report`) once its window has passed, or at
 * `flush()`. Bounded: at most {@link repeatKeysMax} kinds; when full, the oldest kind is dropped
 * and its count reported.
 */
export class RepeatLimiter {
  readonly #windowMs: number;
  readonly #now: () => number;
  readonly #keys = new Map<string, { atMs: number; suppressed: number; report: (count: number) => void }>();
  #sweep: NodeJS.Timeout | undefined;

  constructor(windowMs: number, nowMs: () => number = Date.now) {
    this.#windowMs = windowMs;
    this.#now = nowMs;
  }

  /**
   * null: suppress this line (counted). A number: write it, with that many suppressed before it.
   * `report` writes a summary of suppressed lines when no later line carries them.
   */
  allow(key: string, report: (count: number) => void): number | null {
    const now = this.#now();
    const entry = this.#keys.get(key);
    if (entry && now - entry.atMs < this.#windowMs) {
      entry.suppressed++;
      entry.report = report;
      this.#arm();
      return null;
    }
    const suppressed = entry?.suppressed ?? 0;
    this.#keys.delete(key); // re-insert: the map's order is the order of last use
    if (this.#keys.size >= repeatKeysMax) {
      const [oldest, e] = this.#keys.entries().next().value!;
      this.#keys.delete(oldest);
      if (e.suppressed > 0) e.report(e.suppressed);
    }
    this.#keys.set(key, { atMs: now, suppressed: 0, report });
    return suppressed;
  }

  /** Writes the counts of every window that has passed (all of them with `all`). */
  flush(all = true): void {
    const now = this.#now();
    for (const [key, e] of this.#keys) {
      if (e.suppressed === 0) continue;
      if (!all && now - e.atMs < this.#windowMs) continue;
      const count = e.suppressed;
      this.#keys.set(key, { atMs: now, suppressed: 0, report: e.report });
      e.report(count);
    }
  }

  #arm(): void {
    if (this.#sweep) return;
    this.#sweep = setTimeout(() => {
      this.#sweep = undefined;
      this.flush(false);
      if ([...this.#keys.values()].some((e) => e.suppressed > 0)) this.#arm();
    }, this.#windowMs);
    this.#sweep.unref();
  }
}

/**
 * A JSON-friendly copy of a log field: objects with a string form of their own (PeerId, Multiaddr,
 * URL, Date) become that string, bytes become hex (cut at {@link loggableBytesMax}), bigints
 * strings, errors `{type, message, stack}`, Maps objects and Sets arrays. Bounded in depth and size.
 */
export function loggable(value: unknown, depth = 0): unknown {
  if (value === null || typeof value !== 'object') {
    if (typeof value === 'bigint') return value.toString();
    if (typeof value === 'function' || typeof value === 'symbol') return String(value);
    return value;
  }
  if (value instanceof Uint8Array) {
    const hex = Buffer.from(value.subarray(0, loggableBytesMax)).toString('hex');
    return value.byteLength > loggableBytesMax ? `${hex}…(${value.byteLength} bytes)` : hex;
  }
  if (value instanceof Error) {
    const code = (value as { code?: unknown }).code;
    return {
      type: value.name,
      message: value.message,
      ...(code === undefined ? {} : { code: loggable(code, depth + 1) }),
      ...(value.stack ? { stack: value.stack } : {}),
    };
  }
  if (depth >= loggableDepthMax) return `[${value.constructor?.name ?? 'object'}]`;
  if (Array.isArray(value) || value instanceof Set) {
    const items = [...value];
    const out = items.slice(0, loggableItemsMax).map((v) => loggable(v, depth + 1));
    if (items.length > loggableItemsMax) out.push(`…${items.length - loggableItemsMax} more`);
    return out;
  }
  if (value instanceof Map) return loggable(Object.fromEntries(value), depth);
  const proto = Object.getPrototypeOf(value);
  if (proto !== Object.prototype && proto !== null) {
    const own = value as { toJSON?: unknown; toString?: unknown };
    if (typeof own.toJSON === 'function') return loggable((own.toJSON as () => unknown)(), depth + 1);
    if (typeof own.toString === 'function' && own.toString !== Object.prototype.toString)
      return String(value);
  }
  const out: Record<string, unknown> = {};
  let n = 0;
  for (const [k, v] of Object.entries(value)) {
    if (n++ >= loggableItemsMax) {
      out['…'] = `${Object.keys(value).length - loggableItemsMax} more keys`;
      break;
    }
    out[k] = loggable(v, depth + 1);
  }
  return out;
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
