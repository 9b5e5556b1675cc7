/**
 * The MQTT broker and sensors over real sockets, received by mqtt.js. Payloads are checked against
 * the ground truth with a validator written here, the way a gateway would classify them.
 */
import mqtt from 'mqtt';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { GroundTruthRecord, MalformedReason } from '../../simulators/ground-truth.ts';
import { type MqttSensors, startMqttSensors } from '../../simulators/mqtt-sensors.ts';
import { createScenario, type Scenario } from '../../simulators/scenario.ts';

const T0 = Date.UTC(2026, 0, 5, 6);
const USER = { username: 'gateway', password: 'fixture-only-password' };
let engine: Scenario;
let sensors: MqttSensors;

beforeAll(async () => {
  engine = createScenario({
    seed: 9,
    startMs: T0,
    cycleTimeMs: 10,
    telemetryPeriodMs: 20,
    malformedProbability: 0.1,
  });
  sensors = await startMqttSensors({ engine, users: [USER] });
});

afterAll(async () => {
  await sensors?.close();
  engine?.close();
});

interface Received {
  topic: string;
  payload: string;
}

/** A subscriber collecting everything under the line, with a hook to await a count. */
async function subscriber(clientId: string, options: mqtt.IClientOptions = {}) {
  const client = await mqtt.connectAsync(sensors.url, {
    clientId,
    ...USER,
    clean: false,
    reconnectPeriod: 20,
    ...options,
  });
  await client.subscribeAsync('plant1/line1/#', { qos: 1 });
  const got: Received[] = [];
  let waiter: { n: number; resolve: () => void } | null = null;
  client.on('message', (topic, payload) => {
    got.push({ topic, payload: payload.toString('utf8') });
    if (waiter && got.length >= waiter.n) waiter.resolve();
  });
  const waitFor = (n: number) =>
    new Promise<void>((resolve) => {
      waiter = { n, resolve };
      if (got.length >= n) resolve();
    });
  return { client, got, waitFor };
}

const published = (r: GroundTruthRecord) =>
  r.kind === 'sensor_sample' || r.kind === 'material_consumed' || r.kind === 'malformed_message';

/** Classifies a payload as a gateway must: a valid reading, or the reason it is malformed. */
function classify(
  topic: string,
  payload: string,
): { ok: true; value: Record<string, unknown> } | { ok: false; reason: MalformedReason } {
  let v: unknown;
  try {
    v = JSON.parse(payload);
  } catch {
    return { ok: false, reason: 'invalid_json' };
  }
  const o = v as Record<string, unknown>;
  const fields: Record<string, string[]> = topic.endsWith('/telemetry')
    ? { ts: ['number'], lot: ['string', 'null'], zone: ['number'], temp: ['object'] }
    : {
        ts: ['number'],
        material: ['string'],
        qty: ['number'],
        unit: ['string'],
        lot: ['string'],
        order: ['string'],
        station: ['string'],
      };
  for (const name of Object.keys(fields)) if (!(name in o)) return { ok: false, reason: 'missing_field' };
  for (const [name, types] of Object.entries(fields)) {
    const t = o[name] === null ? 'null' : typeof o[name];
    if (!types.includes(t)) return { ok: false, reason: 'wrong_type' };
  }
  if (topic.endsWith('/telemetry')) {
    const temp = o.temp as Record<string, unknown> | null;
    if (!temp || !('value' in temp)) return { ok: false, reason: 'missing_field' };
    if (typeof temp.value !== 'number') return { ok: false, reason: 'wrong_type' };
  }
  return { ok: true, value: o };
}

describe('MQTT sensors', () => {
  it('publishes one message per ground-truth record, in order, with the documented payloads', async () => {
    const sub = await subscriber('gw-payloads');
    const fromSeq = engine.groundTruth.lastSeq + 1;
    engine.step(engine.nowMs + 2_000);
    const truth = engine.groundTruth.query({ fromSeq }).filter(published);
    await sub.waitFor(truth.length);
    expect(sub.got.length).toBe(truth.length);
    const malformed: Record<string, number> = {};
    truth.forEach((r, i) => {
      const m = sub.got[i]!;
      const c = classify(m.topic, m.payload);
      if (r.kind === 'malformed_message') {
        expect(m.topic).toBe(`plant1/line1/${r.machine.toLowerCase()}/${r.channel}`);
        expect(c).toEqual({ ok: false, reason: r.reason });
        malformed[r.reason] = (malformed[r.reason] ?? 0) + 1;
      } else if (r.kind === 'sensor_sample') {
        expect(m.topic).toBe('plant1/line1/oven1/telemetry');
        expect(c).toEqual({
          ok: true,
          value: { ts: r.atMs, lot: r.lot, zone: r.zone, temp: { value: r.value, unit: 'degC' } },
        });
      } else if (r.kind === 'material_consumed') {
        expect(m.topic).toBe('plant1/line1/scanner1/scan');
        const value = {
          ts: r.atMs,
          material: r.material,
          qty: r.qty,
          unit: 'kg',
          lot: r.lot,
          order: r.order,
          station: r.machine,
        };
        expect(c).toEqual({ ok: true, value });
      }
    });
    // Every kind of malformed message occurred and was recognised.
    expect(Object.keys(malformed).sort()).toEqual(['invalid_json', 'missing_field', 'wrong_type']);
    expect(sub.got.some((m) => m.topic.endsWith('/scan'))).toBe(true);
    await sub.client.endAsync();
  });

  it('rejects a client with a wrong password', async () => {
    const refused = mqtt.connectAsync(sensors.url, { ...USER, password: 'wrong', reconnectPeriod: 0 });
    await expect(refused).rejects.toThrow(/Bad username or password|Connection refused/i);
  });

  it('dropped connections: a persistent QoS 1 session gets everything published meanwhile', async () => {
    const sub = await subscriber('gw-persistent');
    const before = engine.groundTruth.lastSeq;
    const reconnected = new Promise<void>((resolve) => sub.client.once('connect', () => resolve()));
    const closed = new Promise<void>((resolve) => sub.client.once('close', () => resolve()));
    sensors.dropConnections();
    await closed;
    engine.step(engine.nowMs + 500); // published while the subscriber is away
    await reconnected;
    const truth = engine.groundTruth.query({ fromSeq: before + 1 }).filter(published);
    expect(truth.length).toBeGreaterThan(0);
    await sub.waitFor(truth.length);
    const ts = (m: Received) => Number(/^\{"ts":(\d+)/.exec(m.payload)![1]);
    expect(sub.got.map(ts)).toEqual(truth.map((r) => r.atMs));
    expect(sensors.stats.connectionsDropped).toBeGreaterThan(0);
    await sub.client.endAsync();
  });

  it('restart: messages wait in the bounded queue while the broker is down; clients reconnect to the same port', async () => {
    // resubscribe false: this client subscribes itself after reconnecting, as a driver does.
    const sub = await subscriber('gw-restart', { clean: true, resubscribe: false });
    const port = sensors.port;
    const reconnected = new Promise<void>((resolve) => sub.client.once('connect', () => resolve()));
    await sensors.stop();
    const publishedBefore = sensors.stats.published;
    engine.step(engine.nowMs + 200);
    expect(sensors.queued).toBeGreaterThan(0);
    await sensors.start();
    expect(sensors.port).toBe(port);
    await sensors.flush(); // the backlog goes out as soon as the broker runs
    expect(sensors.queued).toBe(0);
    expect(sensors.stats.published).toBeGreaterThan(publishedBefore);
    expect(sensors.stats.dropped).toBe(0);
    await reconnected;
    // The restarted broker has no sessions (CONNACK: session not present): subscribe again, then
    // everything published from then on arrives.
    await sub.client.subscribeAsync('plant1/line1/#', { qos: 1 });
    const seen = sub.got.length;
    const fromSeq = engine.groundTruth.lastSeq + 1;
    engine.step(engine.nowMs + 200);
    const truth = engine.groundTruth.query({ fromSeq }).filter(published);
    await sub.waitFor(seen + truth.length);
    expect(sub.got.length).toBe(seen + truth.length);
    await sub.client.endAsync();
  });
});
