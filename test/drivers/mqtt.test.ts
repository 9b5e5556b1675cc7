/**
 * MQTT driver over real sockets: against the simulator's aedes broker (telemetry and scans with
 * malformed payloads, dead letters and their bound, connection drops, broker restart, stop while
 * connecting) and against a Debian mosquitto broker (user name and password, TLS with a client
 * certificate, a persistent session that keeps QoS 1 messages while the gateway is away).
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import mqtt from 'mqtt';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type Simulators, startSimulators } from '../../simulators/index.ts';
import { deadLettersMax } from '../../src/drivers/bounds.ts';
import { MqttDriver } from '../../src/drivers/mqtt/driver.ts';
import type { MqttDevice } from '../../src/drivers/mqtt/schema.ts';
import { loadDeviceMap } from '../../src/gateway/config/config.ts';
import { itUnless } from '../helpers/skip.ts';
import { deviceMap, testContext } from './helpers/context.ts';
import { missing, startMosquitto } from './helpers/tools.ts';

const root = mkdtempSync(join(tmpdir(), 'masbc-mqtt-test-'));
const T = 'plant1/line1/oven1/telemetry';
const S = 'plant1/line1/scanner1/scan';

const ovenTags = [
  {
    name: 'zone2Temp',
    topic: T,
    where: { '$.zone': 2 },
    value: '$.temp.value',
    timestamp: '$.ts',
    type: 'number',
  },
  { name: 'ovenLot', topic: T, value: '$.lot', type: 'string' },
  { name: 'material', topic: S, value: '$.material', type: 'string' },
  { name: 'qty', topic: S, value: '$.qty', type: 'number' },
];

function oven(
  url: string,
  connection: Record<string, unknown> = {},
  tags: Record<string, unknown>[] = ovenTags,
) {
  return deviceMap('mqtt', {
    id: 'oven1',
    connection: { url, reconnectMaxDelayMs: 300, ...connection },
    tags,
  });
}

async function publish(url: string, messages: [string, string][], options: mqtt.IClientOptions = {}) {
  const client = await mqtt.connectAsync(url, { reconnectPeriod: 0, ...options });
  try {
    for (const [topic, payload] of messages) await client.publishAsync(topic, payload, { qos: 1 });
  } finally {
    await client.endAsync();
  }
}

afterAll(() => rmSync(root, { recursive: true, force: true }));

describe('mqtt driver against the simulator broker (aedes)', () => {
  let sims: Simulators;
  let url: string;
  beforeAll(async () => {
    sims = await startSimulators({
      seed: 5,
      startMs: Date.UTC(2026, 0, 5, 6),
      scenario: { cycleTimeMs: 50, telemetryPeriodMs: 100, malformedProbability: 0.3, downProbability: 0 },
      opcua: false,
      modbus: false,
      mqtt: {},
      dataDir: join(root, 'sim'),
    });
    url = sims.endpoints.mqtt!;
  });
  afterAll(async () => {
    await sims?.stop();
  });

  const advance = async (ms: number, stepMs = 50) => {
    for (let t = 0; t < ms; t += stepMs) {
      sims.step(sims.engine.nowMs + stepMs);
      await new Promise((r) => setImmediate(r));
    }
  };

  it('maps telemetry and scans; malformed payloads become dead letters, counted and logged once per topic', async () => {
    const t = testContext();
    const driver = new MqttDriver(oven(url), t.ctx);
    await driver.start();
    try {
      await t.waitFor(() => driver.health().state === 'connected', 'connected');
      await advance(5_000);
      await t.waitFor(() => t.readings.some((r) => r.tag === 'material' && r.quality === 'good'), 'a scan');
      await t.waitFor(() => t.deadLetters.length >= 3, 'dead letters');
      const temps = t.readings.filter((r) => r.tag === 'zone2Temp' && r.quality === 'good');
      expect(temps.length).toBeGreaterThan(5);
      // Source time comes from the payload ($.ts, the simulator's clock), not the arrival time.
      expect(
        temps.every((r) => r.sourceTimeMs <= sims.engine.nowMs && r.sourceTimeMs >= Date.UTC(2026, 0, 5, 6)),
      ).toBe(true);
      expect(temps.every((r) => typeof r.value === 'number' && r.value > 100)).toBe(true);
      const h = driver.health();
      expect(h.errors.malformed).toBe(t.deadLetters.length);
      expect(h.detail).toMatchObject({ deadLetters: t.deadLetters.length });
      for (const letter of t.deadLetters) {
        expect(letter).toMatchObject({ device: 'oven1' });
        expect([T, S]).toContain(letter.source);
        expect(letter.reason.length).toBeGreaterThan(0);
      }
      // Logged at most once per topic per interval, however many arrive.
      const logged = t.logs.filter((l) => l.fields?.reason === 'malformed');
      expect(logged.length).toBeLessThanOrEqual(2);
      expect(new Set(logged.map((l) => l.fields?.topic)).size).toBe(logged.length);
    } finally {
      await driver.stop();
      t.cleanup();
    }
  });

  it('keeps at most deadLettersMax dead letters, dropping the oldest', async () => {
    const t = testContext();
    // A topic of its own, so the simulator's traffic (still draining under load) cannot interleave.
    const topic = 'test/dead-letters';
    const driver = new MqttDriver(oven(url, {}, [{ name: 'x', topic, value: '$.x', type: 'number' }]), t.ctx);
    await driver.start();
    try {
      await t.waitFor(() => driver.health().state === 'connected', 'connected');
      const n = deadLettersMax + 20;
      await publish(
        url,
        Array.from({ length: n }, (_, i) => [topic, `not json ${i}`] as [string, string]),
      );
      await t.waitFor(() => t.deadLetters.length === n, 'all dead letters', 20_000);
      const kept = driver.deadLetters();
      expect(kept).toHaveLength(deadLettersMax);
      expect(kept[0]!.payload).toBe('not json 20');
      expect(kept.at(-1)!.payload).toBe(`not json ${n - 1}`);
      expect(driver.health().detail).toMatchObject({ deadLettersDropped: 20 });
    } finally {
      await driver.stop();
      t.cleanup();
    }
  });

  it('reconnects after dropped connections and a broker restart', async () => {
    const t = testContext();
    const driver = new MqttDriver(oven(url), t.ctx);
    await driver.start();
    try {
      await t.waitFor(() => driver.health().state === 'connected', 'connected');
      sims.faults.dropMqttConnections();
      await t.waitFor(() => t.latest('zone2Temp')?.reason === 'disconnected', 'bad on drop');
      await t.waitFor(() => driver.health().reconnects === 1, 'reconnected');
      await advance(500);
      await t.waitFor(() => t.latest('zone2Temp')?.quality === 'good', 'readings after the drop');
      await sims.faults.restartMqtt({ downMs: 200 });
      await t.waitFor(() => driver.health().reconnects === 2, 'reconnected after restart');
      await advance(500);
      await t.waitFor(() => t.latest('zone2Temp')?.quality === 'good', 'readings after the restart');
    } finally {
      await driver.stop();
      t.cleanup();
    }
  });

  it('stops promptly while connecting to a broker that never answers', async () => {
    const sockets = new Set<Socket>();
    const silent = createServer((s) => {
      s.resume();
      sockets.add(s);
    });
    await new Promise<void>((r) => silent.listen(0, '127.0.0.1', r));
    const port = (silent.address() as { port: number }).port;
    const t = testContext();
    const connectTimeoutMs = 60_000;
    const driver = new MqttDriver(oven(`mqtt://127.0.0.1:${port}`, { connectTimeoutMs }), t.ctx);
    await driver.start();
    await new Promise<void>((r) => silent.once('connection', () => r()));
    const started = performance.now();
    await driver.stop();
    // Promptly: not waiting for the pending connect (a stop that did would take connectTimeoutMs; a
    // loaded machine takes a few hundred ms).
    expect(performance.now() - started).toBeLessThan(connectTimeoutMs / 4);
    expect(t.readings).toHaveLength(0);
    for (const s of sockets) s.destroy();
    await new Promise<void>((r) => silent.close(() => r()));
    t.cleanup();
  });
});

describe('mqtt driver against mosquitto (independent broker)', () => {
  const skip = missing('mosquitto', 'apt-get install -y mosquitto mosquitto-clients');

  itUnless(skip)('plain, with a user name and a password from the environment', async () => {
    const dir = mkdtempSync(join(root, 'pw-'));
    const passwords = join(dir, 'passwd');
    writeFileSync(passwords, '');
    execFileSync('mosquitto_passwd', ['-b', passwords, 'gateway', 's3cret']);
    const broker = await startMosquitto({ passwordFile: passwords });
    const url = `mqtt://127.0.0.1:${broker.port}`;
    const t = testContext();
    const wrong = testContext();
    // The password comes the way a plant engineer writes it: a ${env:} reference in the device map.
    const loaded = loadDeviceMap('oven1.yaml', {
      text: `id: oven1\nstation: ST-30\nprotocol: mqtt\nconnection: { url: "${url}", username: gateway, password: "\${env:OVEN_MQTT_PASSWORD}" }\ntags:\n  - { name: zone2Temp, topic: ${T}, where: { $.zone: 2 }, value: $.temp.value, type: number }\n  - { name: ovenLot, topic: ${T}, value: $.lot, type: string }\n`,
      env: { OVEN_MQTT_PASSWORD: 's3cret' },
    });
    expect(loaded.issues).toEqual([]);
    const driver = new MqttDriver(loaded.value as MqttDevice, t.ctx);
    const refused = new MqttDriver(oven(url, { username: 'gateway', password: 'nope' }), wrong.ctx);
    await driver.start();
    await refused.start();
    try {
      await t.waitFor(() => driver.health().state === 'connected', 'connected');
      await publish(url, [[T, '{"ts":1767600000000,"lot":"L-9","zone":2,"temp":{"value":181.5}}']], {
        username: 'gateway',
        password: 's3cret',
      });
      await t.waitFor(() => t.latest('zone2Temp')?.value === 181.5, 'a reading');
      expect(t.latest('ovenLot')?.value).toBe('L-9');
      await wrong
        .waitFor(() => (refused.health().errors.auth ?? 0) >= 1, 'a refused login', 5_000)
        .catch((e) => {
          throw new Error(`${e.message}: ${JSON.stringify(refused.health())}`);
        });
      expect(wrong.readings).toHaveLength(0);
    } finally {
      await driver.stop();
      await refused.stop();
      await broker.stop();
      t.cleanup();
      wrong.cleanup();
    }
  });

  itUnless(skip)(
    'a payload that is not valid UTF-8 is a dead letter with its reason (issue 14, item 8)',
    async () => {
      const broker = await startMosquitto();
      const url = `mqtt://127.0.0.1:${broker.port}`;
      const t = testContext();
      const driver = new MqttDriver(oven(url), t.ctx);
      await driver.start();
      try {
        await t.waitFor(() => driver.health().state === 'connected', 'connected');
        // Raw bytes, as a scanner with a broken code page sends them: "ORD-" then 0xFF 0xFE.
        const client = await mqtt.connectAsync(url, { reconnectPeriod: 0 });
        const bad = Buffer.concat([
          Buffer.from('{"material":"RM-1","qty":2,"order":"ORD-'),
          Buffer.from([0xff, 0xfe, 0x22, 0x7d]),
        ]);
        await client.publishAsync(S, bad, { qos: 1 });
        await client.publishAsync(S, '{"material":"RM-2","qty":3}', { qos: 1 });
        await client.endAsync();
        await t.waitFor(() => t.latest('material')?.value === 'RM-2', 'the good scan after it');
        // The bad one made no reading at all (not "ORD-\uFFFD\uFFFD"), and is kept with its reason.
        expect(t.readings.filter((r) => r.tag === 'material').map((r) => r.value)).toEqual(['RM-2']);
        expect(t.deadLetters).toHaveLength(1);
        expect(t.deadLetters[0]).toMatchObject({
          source: S,
          reason: 'payload is not valid UTF-8 (first bad byte at offset 40: 0xff)',
          payloadBytes: bad.byteLength,
        });
        expect(driver.health().errors.malformed).toBe(1);
      } finally {
        await driver.stop();
        await broker.stop();
        t.cleanup();
      }
    },
  );

  itUnless(skip || missing('openssl', 'apt-get install -y openssl'))(
    'mqtts with a CA and a client certificate from files',
    async () => {
      const dir = mkdtempSync(join(root, 'tls-'));
      const run = (...args: string[]) =>
        execFileSync('openssl', args, { cwd: dir, stdio: 'pipe', env: opensslEnv() });
      run(
        'req',
        '-x509',
        '-newkey',
        'rsa:2048',
        '-nodes',
        '-days',
        '2',
        '-subj',
        '/CN=test-ca',
        '-keyout',
        'ca.key',
        '-out',
        'ca.crt',
      );
      for (const [name, cn] of [
        ['server', '127.0.0.1'],
        ['client', 'gateway'],
      ]) {
        run(
          'req',
          '-newkey',
          'rsa:2048',
          '-nodes',
          '-subj',
          `/CN=${cn}`,
          '-keyout',
          `${name}.key`,
          '-out',
          `${name}.csr`,
        );
        writeFileSync(
          join(dir, `${name}.ext`),
          name === 'server' ? 'subjectAltName=IP:127.0.0.1\n' : 'extendedKeyUsage=clientAuth\n',
        );
        run(
          'x509',
          '-req',
          '-in',
          `${name}.csr`,
          '-CA',
          'ca.crt',
          '-CAkey',
          'ca.key',
          '-CAcreateserial',
          '-days',
          '2',
          '-extfile',
          `${name}.ext`,
          '-out',
          `${name}.crt`,
        );
      }
      const broker = await startMosquitto({
        tls: {
          ca: join(dir, 'ca.crt'),
          cert: join(dir, 'server.crt'),
          key: join(dir, 'server.key'),
          requireClientCert: true,
        },
      });
      const t = testContext({ dataDir: dir });
      const driver = new MqttDriver(
        oven(`mqtts://127.0.0.1:${broker.tlsPort}`, {
          caFile: 'ca.crt',
          certFile: 'client.crt',
          keyFile: 'client.key',
        }),
        t.ctx,
      );
      const anonymous = testContext({ dataDir: dir });
      const noCert = new MqttDriver(
        oven(`mqtts://127.0.0.1:${broker.tlsPort}`, { caFile: 'ca.crt' }),
        anonymous.ctx,
      );
      await driver.start();
      await noCert.start();
      try {
        await t.waitFor(() => driver.health().state === 'connected', 'connected over TLS');
        await publish(`mqtt://127.0.0.1:${broker.port}`, [[S, '{"material":"RM-1","qty":2}']]);
        await t.waitFor(() => t.latest('material')?.value === 'RM-1', 'a reading over TLS');
        await anonymous.waitFor(
          () => Object.keys(noCert.health().errors).length > 0,
          'refused without a client certificate',
        );
        expect(noCert.health().state).not.toBe('connected');
      } finally {
        await driver.stop();
        await noCert.stop();
        await broker.stop();
      }
    },
  );

  itUnless(skip)('a persistent session keeps QoS 1 messages while the gateway is away', async () => {
    const broker = await startMosquitto();
    const url = `mqtt://127.0.0.1:${broker.port}`;
    const device = oven(url, { clientId: 'masbc-edge-test-persistent', cleanSession: false, qos: 1 });
    const first = testContext();
    let driver = new MqttDriver(device, first.ctx);
    await driver.start();
    try {
      await first.waitFor(() => driver.health().state === 'connected', 'first connection');
      await driver.stop();
      await publish(url, [
        [S, '{"material":"RM-A","qty":1}'],
        [S, '{"material":"RM-B","qty":2}'],
      ]);
      const second = testContext();
      driver = new MqttDriver(device, second.ctx);
      await driver.start();
      await second.waitFor(
        () => second.readings.filter((r) => r.tag === 'material').length === 2,
        'queued messages',
      );
      expect(second.readings.filter((r) => r.tag === 'material').map((r) => r.value)).toEqual([
        'RM-A',
        'RM-B',
      ]);
      second.cleanup();
    } finally {
      await driver.stop();
      await broker.stop();
      first.cleanup();
    }
  });
});

function opensslEnv(): NodeJS.ProcessEnv {
  const { OPENSSL_CONF: _ignored, ...env } = process.env;
  return env;
}
