/**
 * The one small interface every protocol driver implements (see docs/drivers.md).
 * Drivers know nothing about events, lots or the chain: they turn a device map into readings.
 *
 * @example
 *   const driver = createDriver(device, {
 *     onReadings: (batch) => normaliser.push(batch),
 *     log,
 *     dataDir: '/var/lib/masbc-edge',
 *     pkiFolder: '/var/lib/masbc-edge/pki/opcua',
 *   });
 *   await driver.start();   // resolves at once; connecting continues in the background
 *   ...
 *   await driver.stop();    // after this resolves, onReadings is never called again
 */

/**
 * What every device map gives a driver besides its protocol's own fields (connection, tags). The
 * gateway's device schema (src/gateway/config/device-schema.ts) adds the normaliser's context and
 * rules, which drivers never read.
 */
export interface DeviceBase {
  id: string;
  station: string;
  enabled: boolean;
  description?: string | undefined;
}

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
  /** Connections established after the first one. */
  reconnects: number;
  /** The most recent error message, if any (for status pages; not a counter). */
  lastError?: string;
  /** Protocol-specific detail (Modbus: per-unit state; MQTT: dead letters kept …). */
  detail?: Record<string, unknown>;
  /** Round trips of request/response reads (Modbus requests, OPC UA polled Reads); absent before the first. */
  readLatency?: ReadLatency;
}

/** Counts of read round trips by bucket: `counts[i]` fell in (bucketsMs[i-1], bucketsMs[i]]; the last is above all. */
export interface ReadLatency {
  bucketsMs: readonly number[];
  /** One per bucket plus one above the last bound (not cumulative). */
  counts: number[];
  count: number;
  sumMs: number;
}

export interface Driver {
  readonly device: string;
  readonly protocol: string;
  /**
   * Starts acquisition and resolves at once. Never throws for an unreachable device: connecting
   * continues in the background with bounded exponential backoff.
   */
  start(): Promise<void>;
  /** Stops acquisition and closes connections; nothing is emitted after it resolves. Idempotent. */
  stop(): Promise<void>;
  health(): DriverHealth;
  /**
   * Reads every tag once on a connection of its own, closes it and returns what it read (`masbc-edge
   * run --once`): OPC UA one Read of all tags (subscribed ones too), Modbus one poll per unit, MQTT one
   * message per topic filter (a clean session under a client id of its own, so a running gateway's
   * persistent session is never touched). Calls nothing in the context (no readings, no dead letters).
   * Only on a driver that was never started. Never throws for a device that does not answer: that is
   * in the result.
   */
  readOnce(options: OnceOptions): Promise<OnceResult>;
  /**
   * Driver memory that must be saved in the same transaction as the events made from its readings,
   * or undefined when the driver keeps none (MQTT: the recent deliveries, to recognise a message the
   * broker delivers again after a crash). The gateway stores it with the events and hands it back to
   * {@link loadState} before start().
   */
  saveState?(): unknown;
  loadState?(state: unknown): void;
}

export interface OnceOptions {
  /**
   * Deadline for the whole read, connecting included. MQTT waits up to this long for one message on
   * each topic filter.
   */
  timeoutMs: number;
}

/** What {@link Driver.readOnce} found. */
export interface OnceResult {
  device: string;
  protocol: string;
  /**
   * The readings as the device reported them together (one Modbus unit's poll, one OPC UA Read, one
   * MQTT message), so a consumer can apply each batch atomically. Tags that failed are bad readings
   * with their reason.
   */
  batches: Reading[][];
  /**
   * Every part of the device answered: the connection, every Modbus unit, every tag with a usable
   * value, every MQTT subscription. A silent MQTT topic filter is not a failure (see `silent`).
   */
  complete: boolean;
  /** What did not answer or was unusable, one line each, for an operator. */
  problems: string[];
  /**
   * MQTT topic filters on which no message came before the deadline, the connection and subscription
   * being fine: event-driven topics (a scanner) may well stay silent. The caller decides whether that
   * is a failure (`run --once --once-silent-topics fail`).
   */
  silent: string[];
  /** Remarks that are not failures (MQTT tags whose message did not come while others on the topic did). */
  notes: string[];
  elapsedMs: number;
}

export interface DriverLogger {
  info(msg: string, fields?: Record<string, unknown>): void;
  warn(msg: string, fields?: Record<string, unknown>): void;
  error(msg: string, fields?: Record<string, unknown>): void;
}

/** A payload a driver received but could not map to readings, kept for inspection. */
export interface DeadLetter {
  device: string;
  /** Where it came from: the MQTT topic, say. */
  source: string;
  reason: string;
  /** The payload as UTF-8 text (binary bytes replaced), cut at {@link deadLetterPayloadCharsMax}. */
  payload: string;
  /** Size of the original payload in bytes. */
  payloadBytes: number;
  receivedMs: number;
}

export const deadLetterPayloadCharsMax = 1024;

/**
 * What a driver may use from the gateway (js-libp2p's "components" style: only what drivers need).
 * Everything is passed in, nothing is global, so tests build drivers with a plain object.
 */
export interface DriverContext {
  /**
   * Receives the readings of one acquisition at a time: one Modbus unit's poll, one OPC UA publish
   * response or read, one MQTT message. A batch is what the device reported together, so a consumer
   * can apply it atomically (the lot and the part counter of one message, say). The driver does not
   * keep or reuse the array or the readings after the call. Called synchronously from the driver's
   * I/O callbacks: keep it fast, never throw (a throw is caught, counted and logged).
   */
  onReadings(readings: readonly Reading[]): void;
  log: DriverLogger;
  /** Base folder for relative file paths in device maps (certificates, keys). */
  dataDir: string;
  /**
   * OPC UA PKI folder (own certificate, trusted/ and rejected/ peers), normally `<dataDir>/pki/opcua`.
   * Passed to node-opcua's OPCUACertificateManager as rootFolder so nothing lands in ~/.config.
   */
  pkiFolder: string;
  /** Receives every dead letter (MQTT: malformed or unmappable payloads), e.g. to persist them. */
  onDeadLetter?: (letter: DeadLetter) => void;
  /** Wall clock in ms since the epoch; injectable for tests. Defaults to Date.now. */
  nowMs?: () => number;
  /**
   * Resolves once the events made from every batch handed to onReadings so far are durably stored
   * (or their loss durably recorded); null when nothing is waiting to be stored. A driver whose
   * protocol acknowledges deliveries (MQTT QoS 1/2) acknowledges only after it: a crash can then
   * lose no acknowledged message. Callers share one promise per outbox write, and asking brings that
   * write forward (someone is waiting), so waiting costs one transaction, not a batch window.
   * Absent (tests, `run --once`): acknowledge at once.
   */
  durable?: () => Promise<void> | null;
}

/** Builds a driver from a validated device map. Validates; opens nothing. */
export type DriverFactory<D> = (device: D, ctx: DriverContext) => Driver;
