/**
 * The one small interface every protocol driver implements (see docs/architecture.md).
 * Drivers know nothing about events, lots or the chain: they turn a device map into readings.
 *
 * @example
 *   const driver = createDriver(device, { onReading: (r) => normaliser.push(r), log });
 *   await driver.start();   // resolves once started; connecting continues in the background
 *   ...
 *   await driver.stop();    // after this resolves, onReading is never called again
 */

/** OPC UA-style quality: `good` values may feed process events; `bad` never do. */
export type Quality = 'good' | 'uncertain' | 'bad';

export type ReadingValue = number | string | boolean | null;

export interface Reading {
  /** Device id from the device map. */
  device: string;
  /** Tag name from the device map. */
  tag: string;
  value: ReadingValue;
  quality: Quality;
  /** Source timestamp in ms since the epoch: the device's own when it gives one, else the read time. */
  sourceTimeMs: number;
  /** Why the quality is not good (an OPC UA status code name, a Modbus exception, a timeout …). */
  reason?: string;
}

export type DriverState = 'stopped' | 'connecting' | 'connected' | 'backoff';

export interface DriverHealth {
  device: string;
  protocol: string;
  state: DriverState;
  /** ms since the epoch of the last reading with good quality, or null. */
  lastGoodReadMs: number | null;
  readings: number;
  /** Error counters by reason (timeouts, exceptions, malformed payloads, disconnects …). */
  errors: Record<string, number>;
  reconnects: number;
}

export interface Driver {
  readonly device: string;
  readonly protocol: string;
  /** Starts acquisition. Never throws for an unreachable device: it reconnects with bounded backoff. */
  start(): Promise<void>;
  /** Stops acquisition and closes connections; nothing is emitted after it resolves. */
  stop(): Promise<void>;
  health(): DriverHealth;
}

export interface DriverLogger {
  info(msg: string, fields?: Record<string, unknown>): void;
  warn(msg: string, fields?: Record<string, unknown>): void;
  error(msg: string, fields?: Record<string, unknown>): void;
}
