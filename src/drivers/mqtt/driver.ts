/**
 * MQTT driver (mqtt.js): subscribes to the device's topic filters and maps each message to readings
 * (see mapping.ts). mqtt.js's own reconnect is off: the driver's loop reconnects with bounded
 * exponential backoff, with a fresh client each time, so no state leaks across connections.
 *
 * A message is mapped whole or not at all (see mapping.ts). Malformed or unmappable payloads yield no
 * readings: they are counted (`malformed`), logged at most once per topic per interval with the
 * reason, handed to `ctx.onDeadLetter`, and kept in a bounded in-memory ring (deadLettersMax; when
 * full the oldest is dropped and counted). They never throw.
 *
 * Acknowledgement: QoS 1/2 messages are acknowledged by mqtt.js once the message handler returns, i.e.
 * after the readings were handed to the consumer.
 */

import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { isAbsolute, resolve } from 'node:path';
import mqtt, { type IClientOptions, type MqttClient } from 'mqtt';
import type { DeviceConfig } from '../../config/index.ts';
import { deadLettersMax, mqttPayloadBytesMax } from '../bounds.ts';
import { aborted, DriverBase, DriverError, errorMessage } from '../common/lifecycle.ts';
import type { DeadLetter, DriverContext, Reading } from '../types.ts';
import { deadLetterPayloadCharsMax } from '../types.ts';
import { MessageMapper } from './mapping.ts';

export type MqttDevice = Extract<DeviceConfig, { protocol: 'mqtt' }>;

export class MqttDriver extends DriverBase {
  readonly #config: MqttDevice;
  readonly #mapper: MessageMapper;
  readonly #clientId: string;
  readonly #deadLetters: DeadLetter[] = [];
  #deadLetterNext = 0;
  #deadLettersDropped = 0;
  #messages = 0;

  constructor(device: MqttDevice, ctx: DriverContext) {
    super(device.id, 'mqtt', ctx, device.connection.reconnectMaxDelayMs);
    this.#config = device;
    this.#mapper = new MessageMapper(device.id, device.tags);
    const c = device.connection;
    this.#clientId =
      c.clientId ??
      (c.cleanSession
        ? `masbc-edge-${device.id}-${randomBytes(4).toString('hex')}`
        : `masbc-edge-${device.id}`);
    if (!c.url.startsWith('mqtts') && !c.url.startsWith('wss') && (c.caFile || c.certFile)) {
      throw new RangeError(`device ${device.id}: caFile/certFile need an mqtts:// or wss:// URL`);
    }
    if (Boolean(c.certFile) !== Boolean(c.keyFile)) {
      throw new RangeError(`device ${device.id}: certFile and keyFile go together`);
    }
  }

  /** Dead letters kept in memory, oldest first (bounded by deadLettersMax). */
  deadLetters(): DeadLetter[] {
    const n = this.#deadLetters.length;
    if (n < deadLettersMax) return [...this.#deadLetters];
    return [
      ...this.#deadLetters.slice(this.#deadLetterNext),
      ...this.#deadLetters.slice(0, this.#deadLetterNext),
    ];
  }

  protected override detail(): Record<string, unknown> {
    return {
      clientId: this.#clientId,
      messages: this.#messages,
      deadLetters: this.#deadLetters.length,
      deadLettersDropped: this.#deadLettersDropped,
      subscriptions: this.#mapper.filters,
    };
  }

  #options(): IClientOptions {
    const c = this.#config.connection;
    const file = (p: string) => readFileSync(isAbsolute(p) ? p : resolve(this.ctx.dataDir, p));
    const options: IClientOptions = {
      clientId: this.#clientId,
      clean: c.cleanSession,
      keepalive: c.keepaliveS,
      connectTimeout: c.connectTimeoutMs,
      reconnectPeriod: 0,
      resubscribe: false,
      protocolVersion: 4,
    };
    if (c.username !== undefined) options.username = c.username;
    if (c.password !== undefined) options.password = c.password;
    try {
      if (c.caFile) options.ca = file(c.caFile);
      if (c.certFile) options.cert = file(c.certFile);
      if (c.keyFile) options.key = file(c.keyFile);
    } catch (err) {
      throw new DriverError('tls-files', `cannot read TLS files: ${errorMessage(err)}`);
    }
    options.rejectUnauthorized = c.serverCertificate === 'verify';
    return options;
  }

  protected async session(signal: AbortSignal): Promise<void> {
    const c = this.#config.connection;
    const client: MqttClient = mqtt.connect(c.url, this.#options());
    let failWith: ((err: Error) => void) | null = null;
    const failed = new Promise<never>((_, reject) => {
      failWith = reject;
    });
    failed.catch(() => {});
    client.on('error', (err) =>
      failWith?.(new DriverError(connackReason(err), `${c.url}: ${errorMessage(err)}`)),
    );
    client.on('close', () => failWith?.(new DriverError('disconnected', `${c.url}: connection closed`)));
    client.on('message', (topic, payload) => this.#onMessage(topic, payload));
    let connected = false;
    try {
      await Promise.race([
        new Promise<void>((resolve) => client.once('connect', () => resolve())),
        failed,
        aborted(signal),
      ]);
      if (signal.aborted) return;
      const subscriptions = Object.fromEntries(this.#mapper.filters.map((f) => [f, { qos: c.qos }]));
      const granted = await Promise.race([client.subscribeAsync(subscriptions), failed, aborted(signal)]);
      if (signal.aborted) return;
      for (const g of granted ?? []) {
        if (g.qos === 128) {
          this.countError('subscribe-refused', new Error(`broker refused the subscription to ${g.topic}`), {
            key: g.topic,
          });
        }
      }
      connected = true;
      this.markConnected();
      await Promise.race([failed, aborted(signal)]);
    } finally {
      failWith = null;
      if (connected) this.#markDisconnected();
      await endClient(client);
    }
  }

  #onMessage(topic: string, payload: Buffer): void {
    if (!this.running) return;
    this.#messages++;
    const now = this.now();
    if (payload.byteLength > mqttPayloadBytesMax) {
      this.#deadLetter(
        topic,
        payload,
        `payload of ${payload.byteLength} bytes exceeds ${mqttPayloadBytesMax}`,
        now,
      );
      return;
    }
    let result: { readings: Reading[]; problems: string[]; warnings: string[] };
    try {
      result = this.#mapper.map(topic, payload, now);
    } catch (err) {
      // A mapping bug must not take the connection down: dead-letter it like a bad payload.
      result = { readings: [], problems: [`mapping failed: ${errorMessage(err)}`], warnings: [] };
    }
    if (result.problems.length > 0) {
      this.#deadLetter(topic, payload, result.problems.join('; '), now);
      return;
    }
    if (result.warnings.length > 0) {
      this.countError('timestamp', new Error(`${topic}: ${result.warnings.join('; ')}`), {
        key: topic,
        topic,
      });
    }
    this.emit(result.readings);
  }

  #deadLetter(topic: string, payload: Buffer, reason: string, nowMs: number): void {
    this.countError('malformed', new Error(`unmappable payload on ${topic}: ${reason}`), {
      key: topic,
      topic,
    });
    const letter: DeadLetter = {
      device: this.device,
      source: topic,
      reason,
      payload: payload
        .subarray(0, deadLetterPayloadCharsMax * 4)
        .toString('utf8')
        .slice(0, deadLetterPayloadCharsMax),
      payloadBytes: payload.byteLength,
      receivedMs: nowMs,
    };
    if (this.#deadLetters.length < deadLettersMax) {
      this.#deadLetters.push(letter);
    } else {
      this.#deadLetters[this.#deadLetterNext] = letter;
      this.#deadLetterNext = (this.#deadLetterNext + 1) % deadLettersMax;
      this.#deadLettersDropped++;
    }
    try {
      this.ctx.onDeadLetter?.(letter);
    } catch (err) {
      this.countError('consumer', err);
    }
  }

  /** On connection loss every tag reads bad: its value is no longer current. */
  #markDisconnected(): void {
    const now = this.now();
    this.emit(
      this.#config.tags.map((t) => ({
        device: this.device,
        tag: t.name,
        value: null,
        quality: 'bad' as const,
        sourceTimeMs: now,
        reason: 'disconnected',
      })),
    );
  }
}

function connackReason(err: unknown): string {
  const code = (err as { code?: unknown }).code;
  if (code === 4 || code === 5 || code === 134 || code === 135) return 'auth';
  return 'connect';
}

function endClient(client: MqttClient): Promise<void> {
  return new Promise((resolve) => {
    const timer = setTimeout(resolve, 1_000);
    client.removeAllListeners('message');
    client.on('error', () => {});
    client.end(true, {}, () => {
      clearTimeout(timer);
      resolve();
    });
  });
}

export function createMqttDriver(device: MqttDevice, ctx: DriverContext): MqttDriver {
  return new MqttDriver(device, ctx);
}
