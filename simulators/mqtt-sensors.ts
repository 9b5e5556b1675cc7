/**
 * An embedded MQTT broker (aedes) with the line's MQTT devices publishing into it: the oven's zone
 * thermocouples (telemetry) and the barcode scanner (material scans). The devices publish in-process
 * through the broker, exactly one PUBLISH per ground-truth record, in ground-truth order, QoS 1.
 *
 * Topics (prefix `plant1/line1` by default; payloads in docs/simulators.md):
 *   plant1/line1/oven1/telemetry   {"ts":…,"lot":…|null,"zone":2,"temp":{"value":180.12,"unit":"degC"}}
 *   plant1/line1/scanner1/scan     {"ts":…,"material":"RM-…","qty":8.4,"unit":"kg","lot":…,"order":…,"station":"CNC1"}
 * A `malformed_message` record is published on its device's topic as one of three documented bad
 * payloads (invalid JSON, wrong types, missing fields).
 *
 * Store and forward: messages wait in a bounded queue while the broker is stopped (or busy) and are
 * published in order once it runs again, like a sensor gateway's buffer. Overflow drops the OLDEST
 * message and counts it in `stats.dropped`; a test relying on complete delivery asserts it is 0.
 *
 * Faults: `dropConnections()` resets every client socket (sessions and queued QoS 1 messages survive
 * in the broker); `stop()`/`start()` (or `restart()`) replace the broker on the same port, so sessions
 * are lost as with a broker restarted without persistence.
 *
 * @example
 *   const mqtt = await startMqttSensors({ engine, port: 0 });
 *   mqtt.url; // mqtt://127.0.0.1:<port>
 *   mqtt.dropConnections();
 *   await mqtt.stop();
 */

import { once } from 'node:events';
import net from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';
import { Aedes } from 'aedes';
import { type Credentials, credentialsMatch } from './credentials.ts';
import type { GroundTruthRecord, MalformedMessage, MaterialConsumed, SensorSample } from './ground-truth.ts';
import type { Scenario } from './scenario.ts';
import { SCANNER_ID } from './scenario.ts';

export interface MqttSensorsOptions {
  engine: Scenario;
  host?: string;
  /** 0 for an ephemeral port (kept across restarts). Default 0. */
  port?: number;
  /** Default `plant1/line1`. */
  topicPrefix?: string;
  /** QoS of the devices' publications. Default 1. */
  qos?: 0 | 1;
  /** When given, clients must authenticate with one of these; otherwise anonymous clients are accepted. */
  users?: readonly Credentials[];
  /** Messages held while the broker is down. Default 10 000 (drop-oldest beyond). */
  queueMax?: number;
  /** Client connections accepted at once; further ones are closed at once (counted). Default unlimited. */
  maxConnections?: number;
}

export const MQTT_QUEUE_MAX_DEFAULT = 10_000;

interface Outgoing {
  topic: string;
  payload: string;
}

export class MqttSensors {
  readonly topicPrefix: string;
  readonly stats = {
    published: 0,
    dropped: 0,
    malformed: 0,
    connectionsDropped: 0,
    publishErrors: 0,
    refusedConnections: 0,
  };
  private readonly engine: Scenario;
  private readonly host: string;
  private portValue: number;
  private readonly qos: 0 | 1;
  private readonly users: readonly Credentials[] | null;
  private readonly queueMax: number;
  private readonly maxConnections: number;
  private readonly queue: Outgoing[] = [];
  private broker: Aedes | null = null;
  private server: net.Server | null = null;
  private readonly sockets = new Set<net.Socket>();
  private draining: Promise<void> | null = null;
  private readonly unsubscribe: () => void;

  constructor(options: MqttSensorsOptions) {
    this.engine = options.engine;
    this.host = options.host ?? '127.0.0.1';
    this.portValue = options.port ?? 0;
    this.topicPrefix = options.topicPrefix ?? 'plant1/line1';
    this.qos = options.qos ?? 1;
    this.users = options.users ?? null;
    this.queueMax = options.queueMax ?? MQTT_QUEUE_MAX_DEFAULT;
    this.maxConnections = options.maxConnections ?? Number.POSITIVE_INFINITY;
    if (!Number.isInteger(this.queueMax) || this.queueMax < 1) throw new RangeError('queueMax must be >= 1');
    // Records are rendered even while the broker is down: the devices keep measuring.
    this.unsubscribe = this.engine.onRecord((r) => this.onRecord(r));
  }

  get port(): number {
    return this.portValue;
  }

  get url(): string {
    return `mqtt://${this.host}:${this.portValue}`;
  }

  get running(): boolean {
    return this.server !== null;
  }

  /**
   * Resolves once every queued message has been handed to the broker. While the broker is stopped it
   * resolves at once and the messages stay queued.
   */
  async flush(): Promise<void> {
    while (this.draining) await this.draining;
  }

  /** Topic a device publishes on, e.g. `plant1/line1/oven1/telemetry`. */
  topicOf(device: string, channel: 'telemetry' | 'scan'): string {
    return `${this.topicPrefix}/${device.toLowerCase()}/${channel}`;
  }

  /** Messages waiting to be published (while the broker is down, or being drained). */
  get queued(): number {
    return this.queue.length;
  }

  async start(): Promise<void> {
    if (this.server) return;
    const broker = await Aedes.createBroker();
    const users = this.users;
    if (users) {
      broker.authenticate = (_client, username, password, done) => {
        if (credentialsMatch(users, username ?? '', password?.toString('utf8') ?? ''))
          return done(null, true);
        // CONNACK return code 4: bad user name or password.
        done(Object.assign(new Error('bad user name or password'), { returnCode: 4 }), false);
      };
    }
    const server = net.createServer((sock) => {
      if (this.sockets.size >= this.maxConnections) {
        this.stats.refusedConnections++;
        sock.destroy();
        return;
      }
      this.sockets.add(sock);
      sock.on('close', () => this.sockets.delete(sock));
      broker.handle(sock);
    });
    server.listen({ host: this.host, port: this.portValue });
    await once(server, 'listening');
    this.portValue = (server.address() as net.AddressInfo).port;
    this.broker = broker;
    this.server = server;
    this.drain();
  }

  /** Client connections open now. */
  get connections(): number {
    return this.sockets.size;
  }

  /** Closes every client connection without a DISCONNECT (clients see a reset and reconnect). */
  dropConnections(): void {
    this.stats.connectionsDropped += this.sockets.size;
    this.destroySockets();
  }

  private destroySockets(): void {
    for (const s of this.sockets) s.destroy();
    this.sockets.clear();
  }

  /** Stops the broker (sessions are lost); publications queue until start(). */
  async stop(): Promise<void> {
    const { server, broker } = this;
    if (!server || !broker) return;
    this.server = null;
    this.broker = null;
    if (this.draining) await this.draining;
    const closed = new Promise<void>((resolve) => server.close(() => resolve()));
    this.destroySockets();
    await new Promise<void>((resolve) => broker.close(() => resolve()));
    await closed;
  }

  async restart(options: { downMs?: number } = {}): Promise<void> {
    await this.stop();
    if (options.downMs) await sleep(options.downMs);
    await this.start();
  }

  /** Stops the broker for good and detaches from the engine. */
  async close(): Promise<void> {
    this.unsubscribe();
    await this.stop();
  }

  private onRecord(r: GroundTruthRecord): void {
    let out: Outgoing | null = null;
    if (r.kind === 'sensor_sample')
      out = { topic: this.topicOf(r.machine, 'telemetry'), payload: telemetryPayload(r) };
    else if (r.kind === 'material_consumed')
      out = { topic: this.topicOf(SCANNER_ID, 'scan'), payload: scanPayload(r) };
    else if (r.kind === 'malformed_message') {
      out = { topic: this.topicOf(r.machine, r.channel), payload: malformedPayload(r) };
      this.stats.malformed++;
    }
    if (!out) return;
    if (this.queue.length >= this.queueMax) {
      this.queue.shift();
      this.stats.dropped++;
    }
    this.queue.push(out);
    this.drain();
  }

  /** Publishes queued messages one at a time (aedes then keeps their order for every subscriber). */
  private drain(): void {
    if (this.draining || !this.broker) return;
    const broker = this.broker;
    this.draining = this.publishQueued(broker).then((ok) => {
      this.draining = null;
      // A record may have arrived between the loop's last check and here.
      if (ok && this.queue.length > 0 && this.broker === broker) this.drain();
    });
  }

  /** Resolves false when a publish failed (the message stays queued for the next attempt). */
  private async publishQueued(broker: Aedes): Promise<boolean> {
    while (this.queue.length > 0 && this.broker === broker) {
      const m = this.queue[0]!;
      const packet = {
        cmd: 'publish',
        topic: m.topic,
        payload: Buffer.from(m.payload),
        qos: this.qos,
        retain: false,
        dup: false,
      } as const;
      const err = await new Promise<Error | undefined>((resolve) => broker.publish(packet, resolve));
      if (err) {
        // The message stays first in the queue; the next record or start() tries again.
        this.stats.publishErrors++;
        return false;
      }
      this.queue.shift();
      this.stats.published++;
    }
    return true;
  }
}

export function telemetryPayload(r: SensorSample): string {
  return JSON.stringify({ ts: r.atMs, lot: r.lot, zone: r.zone, temp: { value: r.value, unit: r.unit } });
}

export function scanPayload(r: MaterialConsumed): string {
  return JSON.stringify({
    ts: r.atMs,
    material: r.material,
    qty: r.qty,
    unit: r.unit,
    lot: r.lot,
    order: r.order,
    station: r.machine,
  });
}

/** The bad payloads, one per reason and channel (documented verbatim in docs/simulators.md). */
export function malformedPayload(r: MalformedMessage): string {
  const ts = r.atMs;
  if (r.channel === 'telemetry') {
    switch (r.reason) {
      case 'invalid_json':
        return `{"ts":${ts},"lot":null,"zone":2,"temp":{"value":18`;
      case 'wrong_type':
        return `{"ts":${ts},"lot":null,"zone":"2","temp":{"value":"180.0","unit":"degC"}}`;
      case 'missing_field':
        return `{"ts":${ts},"lot":null,"zone":2}`;
    }
  }
  switch (r.reason) {
    case 'invalid_json':
      return `{"ts":${ts},"material":"RM-`;
    case 'wrong_type':
      return `{"ts":${ts},"material":"RM-42CRMO4-D30","qty":"8.4","unit":"kg","lot":42,"order":null,"station":"CNC1"}`;
    case 'missing_field':
      return `{"ts":${ts},"qty":8.4,"unit":"kg"}`;
  }
}

export async function startMqttSensors(options: MqttSensorsOptions): Promise<MqttSensors> {
  const sensors = new MqttSensors(options);
  try {
    await sensors.start();
  } catch (err) {
    await sensors.close();
    throw err;
  }
  return sensors;
}
