/**
 * MQTT acknowledgement after durability, with a real gateway process (`masbc-edge run`) killed with
 * SIGKILL and restarted on its persistent session (cleanSession false, fixed client id):
 *
 * - every PUBACK the broker receives is for a message whose event is already in the outbox (checked
 *   at each acknowledgement, from the broker's side), across random kills mid-stream;
 * - a message whose event was stored but whose PUBACK was lost (the proxy drops the gateway's bytes,
 *   then the gateway is killed) is delivered again by the broker and NOT stored a second time;
 * - in the end every published QoS 1 scan is exactly one material_consumed event.
 *
 * Against the simulators' broker library (aedes, which re-sends without the DUP flag) and, when
 * installed, Debian's mosquitto (which sets it).
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { once } from 'node:events';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:net';
import { join } from 'node:path';
import { Aedes } from 'aedes';
import Database from 'better-sqlite3';
import mqtt, { type MqttClient } from 'mqtt';
import { describe, expect, it, onTestFinished } from 'vitest';
import { generateKey, writeKeyFile } from '../../src/crypto/keys.ts';
import { outboxPath } from '../../src/store/outbox.ts';
import { startProxy } from '../drivers/helpers/proxy.ts';
import { missing, startMosquitto } from '../drivers/helpers/tools.ts';
import { itUnless } from '../helpers/skip.ts';
import { tempDir } from '../helpers/tmp.ts';

const bin = join(import.meta.dirname, '..', '..', 'bin', 'masbc-edge.js');
const topic = 'plant1/line1/scanner1/scan';
const clientId = 'masbc-test-scanner';

/** A gateway data folder and configuration with one MQTT scanner on a persistent session. */
function gatewaySetup(brokerPort: number): { dataDir: string; gatewayFile: string } {
  const root = tempDir('gw-ack');
  const dataDir = join(root, 'data');
  mkdirSync(join(root, 'devices'), { recursive: true });
  writeKeyFile(join(dataDir, 'keys', 'gateway.key'), generateKey('ed25519'));
  const gatewayFile = join(root, 'gateway.yaml');
  writeFileSync(
    gatewayFile,
    readFileSync('config/gateway.yaml', 'utf8').replace(/dataDir: .*/, `dataDir: ${dataDir}`),
  );
  writeFileSync(
    join(root, 'devices', 'scanner1.yaml'),
    [
      'id: scanner1',
      'station: ST-30',
      'protocol: mqtt',
      'connection:',
      `  url: mqtt://127.0.0.1:${brokerPort}`,
      '  qos: 1',
      '  cleanSession: false',
      `  clientId: ${clientId}`,
      '  reconnectMaxDelayMs: 500',
      'tags:',
      `  - { name: scanMaterial, topic: ${topic}, value: $.material, timestamp: $.ts, type: string }`,
      `  - { name: scanQty, topic: ${topic}, value: $.qty, type: number, unit: kg }`,
      `  - { name: scanLot, topic: ${topic}, value: $.lot, type: string }`,
      'rules:',
      '  - { name: material, trigger: update, tag: scanMaterial, kind: material_consumed, values: [scanMaterial, scanQty], context: { lot: scanLot } }',
      '',
    ].join('\n'),
  );
  return { dataDir, gatewayFile };
}

interface GatewayProcess {
  child: ChildProcess;
  output(): string;
  /** Resolves when the scanner is connected and subscribed (its driver logs "connected"). */
  connected: Promise<void>;
}

function startGateway(gatewayFile: string): GatewayProcess {
  const child = spawn(process.execPath, [bin, 'run', '-c', gatewayFile, '--log-level', 'info'], {
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let text = '';
  const connected = new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`gateway not connected after 15 s:\n${text}`)), 15_000);
    const onData = (d: Buffer) => {
      text += d;
      if (/"msg":"connected"/.test(text)) {
        clearTimeout(timer);
        resolve();
      }
    };
    child.stdout!.on('data', onData);
    child.stderr!.on('data', onData);
    child.once('exit', (code, signal) => {
      clearTimeout(timer);
      reject(new Error(`gateway exited (${code ?? signal}) before connecting:\n${text}`));
    });
  });
  connected.catch(() => {});
  onTestFinished(() => {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
  });
  return { child, output: () => text, connected };
}

async function kill(gw: GatewayProcess, signal: NodeJS.Signals): Promise<number | null> {
  if (gw.child.exitCode !== null || gw.child.signalCode !== null) return gw.child.exitCode;
  const exited = once(gw.child, 'exit');
  gw.child.kill(signal);
  const [code] = (await exited) as [number | null];
  return code;
}

/** The outbox as another process sees it: material of every material_consumed event, in seq order. */
function outboxReader(dataDir: string): { materials(): string[]; has(material: string): boolean } {
  let db: Database.Database | null = null;
  const open = () => {
    if (!db && existsSync(outboxPath(dataDir))) {
      db = new Database(outboxPath(dataDir), { readonly: true, fileMustExist: true });
      onTestFinished(() => {
        db?.close();
      });
    }
    return db;
  };
  const material = "json_extract(body, '$.values.scanMaterial.v')";
  return {
    materials: () =>
      (open()
        ?.prepare(`SELECT ${material} FROM events WHERE kind = 'material_consumed' ORDER BY seq`)
        .pluck()
        .all() as string[] | undefined) ?? [],
    has: (m) =>
      open()?.prepare(`SELECT 1 FROM events WHERE kind = 'material_consumed' AND ${material} = ?`).get(m) !==
      undefined,
  };
}

/** Re-checks `check` every 20 ms (the outbox is another process's file: nothing to subscribe to). */
async function until(check: () => boolean, what: string, timeoutMs = 15_000): Promise<void> {
  const deadline = performance.now() + timeoutMs;
  while (!check()) {
    if (performance.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

/** Redeliveries the running gateway reports in its status file (refreshed every 2 s), or null. */
function redeliveriesReported(dataDir: string, gw: GatewayProcess): number | null {
  try {
    const s = JSON.parse(readFileSync(join(dataDir, 'status.json'), 'utf8'));
    return s.pid === gw.child.pid ? s.devices[0].detail.redeliveriesSkipped : null;
  } catch {
    return null; // not written yet, or being replaced
  }
}

const scan = (i: number) =>
  JSON.stringify({ ts: Date.UTC(2026, 0, 5, 6) + i, material: `RM-${i}`, qty: 1 + i / 100, lot: 'LOT-1' });

async function aedesBroker(): Promise<{ port: number; broker: Aedes; server: Server }> {
  const broker = await Aedes.createBroker();
  const server = createServer(broker.handle);
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  onTestFinished(async () => {
    await new Promise<void>((r) => broker.close(() => r()));
    await new Promise<void>((r) => server.close(() => r()));
  });
  return { port: (server.address() as { port: number }).port, broker, server };
}

async function publisher(port: number): Promise<MqttClient> {
  const client = await mqtt.connectAsync(`mqtt://127.0.0.1:${port}`, { reconnectPeriod: 0 });
  onTestFinished(() => client.endAsync());
  return client;
}

describe('MQTT acknowledgement after durability (gateway process, SIGKILL, persistent session)', () => {
  it('aedes: a stored message whose PUBACK was lost is delivered again and not stored twice', async () => {
    const { port, broker } = await aedesBroker();
    const acks: string[] = [];
    broker.on('ack', (packet, client) => {
      if (client?.id === clientId && packet && 'payload' in packet) acks.push(String(packet.payload));
    });
    const proxy = await startProxy(port);
    onTestFinished(() => proxy.close());
    const { dataDir, gatewayFile } = gatewaySetup(proxy.port);
    const outbox = outboxReader(dataDir);
    const pub = await publisher(port);

    const first = startGateway(gatewayFile);
    await first.connected;
    // From here the gateway's acknowledgements never reach the broker (as if lost in the crash).
    proxy.freeze('upstream');
    const n = 50;
    for (let i = 0; i < n; i++) await pub.publishAsync(topic, scan(i), { qos: 1 });
    await until(() => outbox.materials().length === n, `${n} events stored`);
    await kill(first, 'SIGKILL');
    expect(acks).toHaveLength(0);

    // Restart: the broker re-sends all 50 (same packet ids) on the resumed session.
    await proxy.close();
    const proxy2 = await startProxy(port);
    onTestFinished(() => proxy2.close());
    const devices = join(gatewayFile, '..', 'devices', 'scanner1.yaml');
    writeFileSync(devices, readFileSync(devices, 'utf8').replace(`:${proxy.port}`, `:${proxy2.port}`));
    const second = startGateway(gatewayFile);
    await until(() => acks.length >= n, 'the broker to receive a PUBACK for every redelivered scan');
    // Each PUBACK went out after its message was handled: a second event would already be stored.
    expect(outbox.materials()).toEqual(Array.from({ length: n }, (_, i) => `RM-${i}`));
    await until(() => redeliveriesReported(dataDir, second) === n, 'the status file to report them');
    expect(await kill(second, 'SIGTERM')).toBe(0);
    expect(outbox.materials()).toHaveLength(n);
  }, 60_000);

  it('aedes: every PUBACK follows its event into the outbox; three SIGKILLs mid-stream; each scan exactly once', async () => {
    const { port, broker } = await aedesBroker();
    const { dataDir, gatewayFile } = gatewaySetup(port);
    const outbox = outboxReader(dataDir);
    const acked = new Set<string>();
    const early: string[] = [];
    broker.on('ack', (packet, client) => {
      if (client?.id !== clientId || !packet || !('payload' in packet)) return;
      const material = (JSON.parse(String(packet.payload)) as { material: string }).material;
      // The broker holds a PUBACK: the event must already be durable in the gateway's outbox.
      if (!outbox.has(material)) early.push(material);
      acked.add(material);
    });
    const pub = await publisher(port);
    const total = 300;
    let gw = startGateway(gatewayFile);
    await gw.connected;
    // Scans keep coming, ~1000/s, whether the gateway is up or not (the broker queues them).
    const publishing = (async () => {
      for (let i = 0; i < total; i += 10) {
        await Promise.all(
          Array.from({ length: 10 }, (_, k) => pub.publishAsync(topic, scan(i + k), { qos: 1 })),
        );
        await new Promise((r) => setTimeout(r, 10));
      }
    })();
    for (const killAt of [40, 120, 200]) {
      await until(() => acked.size >= killAt, `${killAt} acknowledged scans`);
      await kill(gw, 'SIGKILL');
      gw = startGateway(gatewayFile);
      await gw.connected;
    }
    await publishing;
    await until(() => acked.size === total, 'every scan acknowledged', 30_000);
    expect(await kill(gw, 'SIGTERM')).toBe(0);
    expect(early).toEqual([]);
    const stored = outbox.materials();
    expect(stored).toHaveLength(total);
    expect(new Set(stored).size).toBe(total);
  }, 90_000);

  itUnless(missing('mosquitto', 'apt-get install -y mosquitto'))(
    'mosquitto: a stored message whose PUBACK was lost is not stored twice',
    async () => {
      const broker = await startMosquitto({ extraLines: ['max_inflight_messages 100'] });
      onTestFinished(() => broker.stop());
      const proxy = await startProxy(broker.port);
      onTestFinished(() => proxy.close());
      const { dataDir, gatewayFile } = gatewaySetup(proxy.port);
      const outbox = outboxReader(dataDir);
      const pub = await publisher(broker.port);
      const first = startGateway(gatewayFile);
      await first.connected;
      proxy.freeze('upstream');
      const n = 30;
      for (let i = 0; i < n; i++) await pub.publishAsync(topic, scan(i), { qos: 1 });
      await until(() => outbox.materials().length === n, `${n} events stored`);
      await kill(first, 'SIGKILL');
      await proxy.close();
      const devices = join(gatewayFile, '..', 'devices', 'scanner1.yaml');
      writeFileSync(devices, readFileSync(devices, 'utf8').replace(`:${proxy.port}`, `:${broker.port}`));
      const second = startGateway(gatewayFile);
      await second.connected;
      await until(
        () => redeliveriesReported(dataDir, second) === n,
        'the gateway to report every redelivery recognised',
      );
      expect(await kill(second, 'SIGTERM')).toBe(0);
      expect(outbox.materials()).toEqual(Array.from({ length: n }, (_, i) => `RM-${i}`));
    },
    60_000,
  );
});
