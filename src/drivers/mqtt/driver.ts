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
 * Acknowledgement after durability: a QoS 1/2 message is acknowledged (PUBACK, or PUBCOMP for QoS 2)
 * only once the events made from it are stored (`ctx.durable()`), through mqtt.js's documented
 * `handleMessage(packet, callback)` hook. mqtt.js hands messages to that hook one at a time, so at most
 * one message per connection waits for the outbox, nothing queues in memory, and TCP backpressure
 * holds further messages in the broker meanwhile. A crash before the acknowledgement makes the broker
 * deliver the message again in the resumed session; the redelivery window (redelivery.ts), saved with
 * the events, recognises it so its events are not produced twice. See docs/drivers.md for the exact
 * guarantee.
 */

import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { isAbsolute, resolve } from 'node:path';
import mqtt, { type IClientOptions, type IPublishPacket, type MqttClient } from 'mqtt';
import { deadLettersMax, mqttPayloadBytesMax, mqttRedeliveryWindowMax, mqttSliceMs } from '../bounds.ts';
import { aborted, DriverBase, DriverError, errorMessage, type OnceAcquired } from '../common/lifecycle.ts';
import type { DeadLetter, DriverContext, OnceOptions, Reading } from '../types.ts';
import { deadLetterPayloadCharsMax } from '../types.ts';
import { MessageMapper, topicMatches } from './mapping.ts';
import { RedeliveryWindow } from './redelivery.ts';
import type { MqttDevice } from './schema.ts';

export class MqttDriver extends DriverBase {
  readonly #config: MqttDevice;
  readonly #mapper: MessageMapper;
  readonly #clientId: string;
  readonly #deadLetters: DeadLetter[] = [];
  #deadLetterNext = 0;
  #deadLettersDropped = 0;
  #messages = 0;
  /** Only with a persistent session and QoS 1/2: nothing can be redelivered otherwise. */
  readonly #redelivery: RedeliveryWindow | null;
  #redeliveriesSkipped = 0;
  /** Messages whose acknowledgement waits for the outbox (at most one per connection). */
  #acksWaiting = 0;
  /** Start of the current run of messages handled without yielding to the event loop (see #next). */
  #sliceStartMs = 0;
  #yields = 0;
  #ackWaitMsMax = 0;

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
    this.#redelivery = !c.cleanSession && c.qos > 0 ? new RedeliveryWindow(mqttRedeliveryWindowMax) : null;
    if (c.qos === 2 && !c.cleanSession) {
      // mqtt.js sends PUBREC on receipt and keeps the message in memory until PUBREL: a crash in
      // between loses it (the broker then only re-sends PUBREL). QoS 1 plus the window is stronger.
      ctx.log.warn('qos 2 is weaker than qos 1 across a crash here; use qos 1', { device: device.id });
    }
  }

  /** The redelivery window, to be saved with the events (see redelivery.ts); undefined without one. */
  saveState(): unknown {
    return this.#redelivery?.save();
  }

  loadState(state: unknown): void {
    if (!this.#redelivery || state === undefined) return;
    if (!this.#redelivery.load(state)) {
      this.ctx.log.warn('saved MQTT redelivery window unusable; starting without it', {
        device: this.device,
      });
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
      redeliveriesSkipped: this.#redeliveriesSkipped,
      redeliveryWindow: this.#redelivery?.size ?? null,
      acksWaiting: this.#acksWaiting,
      ackWaitMsMax: this.#ackWaitMsMax,
      /** Times a run of messages yielded to the event loop (a backlog at the socket). */
      yields: this.#yields,
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
    // Acknowledge only after the message's events are stored; mqtt.js calls this one message at a time.
    let live = true;
    client.handleMessage = (packet, done) => this.#onPublish(packet, done, () => live && !signal.aborted);
    let connected = false;
    try {
      await Promise.race([
        new Promise<void>((resolve) =>
          client.once('connect', (connack) => {
            // Synchronously: a resumed session's queued messages follow the CONNACK at once.
            this.#redelivery?.connected(connack.sessionPresent);
            resolve();
          }),
        ),
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
      live = false;
      failWith = null;
      if (connected) this.#markDisconnected();
      await endClient(client);
    }
  }

  /**
   * One delivery: map it (unless it is a redelivery of one already handled), then acknowledge it once
   * its events are durable. `done` sends the PUBACK/PUBCOMP and lets mqtt.js hand over the next
   * message; it is not called for a connection that has ended (the broker will deliver again).
   */
  #onPublish(packet: IPublishPacket, done: (err?: Error) => void, live: () => boolean): void {
    if (!this.running || !live()) return;
    const topic = packet.topic;
    const payload = typeof packet.payload === 'string' ? Buffer.from(packet.payload) : packet.payload;
    const acknowledged = packet.qos > 0;
    if (acknowledged && this.#redelivery?.isRedelivery(packet.messageId, topic, payload)) {
      // Handled already (an earlier connection, or a broker's repeat in this resumed one); its events
      // are stored or queued: acknowledge when durable.
      this.#redeliveriesSkipped++;
    } else {
      // Recorded BEFORE the readings are handed on: handing them on can fill the gateway's batch and
      // write it at once, with the drivers' state, inside this call. Recorded after, that write would
      // hold the events but not the delivery, and a crash before the PUBACK reached the broker would
      // make its redelivery produce the events a second time.
      if (acknowledged) this.#redelivery?.record(packet.messageId, topic, payload);
      this.#onMessage(topic, payload);
    }
    if (!acknowledged) {
      this.#next(done, live);
      return;
    }
    let wait: Promise<void> | null = null;
    try {
      wait = this.ctx.durable?.() ?? null;
    } catch (err) {
      this.countError('consumer', err);
    }
    if (!wait) {
      this.#next(done, live);
      return;
    }
    const since = performance.now();
    this.#acksWaiting++;
    wait.then(
      () => {
        this.#acksWaiting--;
        this.#ackWaitMsMax = Math.max(this.#ackWaitMsMax, Math.round(performance.now() - since));
        if (this.running && live()) this.#next(done, live);
      },
      (err: unknown) => {
        // Not expected (durable() settles by resolving); leave the message unacknowledged: the broker
        // keeps it and delivers it again after the next reconnect.
        this.#acksWaiting--;
        this.countError('consumer', err);
      },
    );
  }

  /**
   * Lets mqtt.js hand over the next message, yielding to the event loop first once messages have
   * been handled for {@link mqttSliceMs} without a break. mqtt.js hands over the next message from
   * `process.nextTick`, which runs before any timer, socket or worker message: with a backlog in the
   * socket (a source faster than the gateway) it worked the whole backlog off in one go, and the
   * gateway's timers, status and chain submissions waited seconds for it (measured: submit round
   * trips of 2–5 s at 4,000 messages/s). While we yield, mqtt.js reads nothing more, so TCP
   * backpressure holds further messages at the broker.
   */
  #next(done: () => void, live: () => boolean): void {
    const now = performance.now();
    if (now - this.#sliceStartMs < mqttSliceMs) {
      done();
      return;
    }
    this.#yields++;
    setImmediate(() => {
      this.#sliceStartMs = performance.now();
      // A connection that ended meanwhile gets nothing more (for QoS 1/2: no acknowledgement, so
      // the broker keeps the message for the next session).
      if (this.running && live()) done();
    });
  }

  /** Waits up to the deadline for one message on each topic filter, on a clean session of its own. */
  protected async acquireOnce(signal: AbortSignal, options: OnceOptions): Promise<OnceAcquired> {
    const c = this.#config.connection;
    const filters = this.#mapper.filters;
    const batches: Reading[][] = [];
    const problems: string[] = [];
    let silent: string[] = [];
    const seen = new Set<string>();
    const read = new Set<string>();
    // Never the gateway's client id: taking over its persistent session would steal its messages.
    const base = c.clientId ?? `masbc-edge-${this.device}`;
    const client = mqtt.connect(c.url, {
      ...this.#options(),
      clientId: `${base.slice(0, 100)}-once-${randomBytes(4).toString('hex')}`,
      clean: true,
    });
    let failWith: ((err: Error) => void) | null = null;
    const failed = new Promise<never>((_, reject) => {
      failWith = reject;
    });
    failed.catch(() => {});
    let allSeen: () => void = () => {};
    const everyFilter = new Promise<void>((resolve) => {
      allSeen = resolve;
    });
    client.on('error', (err) =>
      failWith?.(new DriverError(connackReason(err), `${c.url}: ${errorMessage(err)}`)),
    );
    client.on('close', () => failWith?.(new DriverError('disconnected', `${c.url}: connection closed`)));
    client.on('message', (topic, payload) => {
      if (seen.size === filters.length) return;
      const r = this.#mapper.map(topic, payload, this.now());
      // A message for none of the tags (another zone, say) does not answer for its filter.
      if (r.matched === 0 && r.problems.length === 0) return;
      const fresh = filters.filter((f) => !seen.has(f) && topicMatches(f, topic));
      for (const f of fresh) seen.add(f);
      if (r.problems.length > 0) {
        if (fresh.length > 0) problems.push(`unmappable payload on ${topic}: ${r.problems.join('; ')}`);
      } else if (fresh.length > 0 || r.readings.some((x) => !read.has(x.tag))) {
        // The first message of each filter, and later ones only for tags not read yet (another zone).
        batches.push(r.readings);
        for (const reading of r.readings) read.add(reading.tag);
      }
      if (seen.size === filters.length) allSeen();
    });
    try {
      await Promise.race([
        new Promise<void>((r) => client.once('connect', () => r())),
        failed,
        aborted(signal),
      ]);
      if (!signal.aborted) {
        // QoS 0: nothing is queued for this one-off session. Retained messages answer at once.
        const granted = await Promise.race([
          client.subscribeAsync(Object.fromEntries(filters.map((f) => [f, { qos: 0 as const }]))),
          failed,
          aborted(signal),
        ]);
        const refused = new Set<string>();
        for (const g of granted ?? []) {
          if (g.qos !== 128) continue;
          refused.add(g.topic);
          problems.push(`broker refused the subscription to ${g.topic}`);
        }
        await Promise.race([everyFilter, failed, aborted(signal)]);
        // Subscribed and connected, yet no message: an event-driven topic may stay silent. Said, not
        // failed (the caller decides).
        if (granted) silent = filters.filter((f) => !seen.has(f) && !refused.has(f));
      }
      if (silent.length === 0 && seen.size < filters.length && problems.length === 0) {
        problems.push(`${c.url}: not connected and subscribed within ${options.timeoutMs} ms`);
      }
    } catch (err) {
      problems.push(errorMessage(err));
    } finally {
      failWith = null;
      await endClient(client);
    }
    const unread = this.#config.tags.filter((t) => seen.has(t.topic) && !read.has(t.name)).map((t) => t.name);
    const notes =
      unread.length > 0 ? [`no reading for ${unread.join(', ')}: their topic spoke, but not for them`] : [];
    return { batches, problems, notes, silent: problems.length === 0 ? silent : [] };
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
