/**
 * MQTT acknowledgement after durability, at the driver: the redelivery window (pure) and the driver
 * against an aedes broker with a durable() the test controls. The gateway process with SIGKILL is in
 * test/edge/gateway-mqtt-ack.test.ts.
 */
import { EventEmitter, once } from 'node:events';
import { createServer } from 'node:net';
import { Aedes } from 'aedes';
import mqtt from 'mqtt';
import { describe, expect, it, onTestFinished } from 'vitest';
import { MqttDriver } from '../../src/drivers/mqtt/driver.ts';
import { RedeliveryWindow } from '../../src/drivers/mqtt/redelivery.ts';
import { deviceMap, testContext } from './helpers/context.ts';

const payload = (s: string) => Buffer.from(s);

describe('RedeliveryWindow', () => {
  it('recognises a delivery of an earlier connection in a resumed session, by id, topic and payload', () => {
    const w = new RedeliveryWindow(16);
    w.connected(false);
    w.record(1, 't', payload('a'));
    // The same connection: a broker does not re-send within it, so this is a new message.
    expect(w.isRedelivery(1, 't', payload('a'))).toBe(false);
    w.connected(true);
    expect(w.isRedelivery(1, 't', payload('a'))).toBe(true);
    expect(w.isRedelivery(1, 't', payload('b'))).toBe(false); // another message under a reused id
    expect(w.isRedelivery(1, 'u', payload('a'))).toBe(false);
    expect(w.isRedelivery(2, 't', payload('a'))).toBe(false);
    expect(w.isRedelivery(undefined, 't', payload('a'))).toBe(false); // QoS 0 has no id
    // Still a candidate after a match: the second acknowledgement may be lost too.
    w.connected(true);
    expect(w.isRedelivery(1, 't', payload('a'))).toBe(true);
    expect(w.matched).toBe(2);
  });

  it('forgets everything on a new session, replaces a reused id, keeps only the newest entries', () => {
    const w = new RedeliveryWindow(3);
    w.connected(false);
    for (let id = 1; id <= 5; id++) w.record(id, 't', payload(`m${id}`));
    expect(w.size).toBe(3);
    w.record(4, 't', payload('new'));
    w.connected(true);
    expect(w.isRedelivery(2, 't', payload('m2'))).toBe(false); // evicted
    expect(w.isRedelivery(4, 't', payload('m4'))).toBe(false); // replaced
    expect(w.isRedelivery(4, 't', payload('new'))).toBe(true);
    w.connected(false);
    expect(w.size).toBe(0);
  });

  it('survives save and load (entries count as earlier connections), refuses garbage', () => {
    const w = new RedeliveryWindow(8);
    w.connected(false);
    w.record(7, 't', payload('x'));
    const saved = JSON.parse(JSON.stringify(w.save()));
    const restored = new RedeliveryWindow(8);
    expect(restored.load(saved)).toBe(true);
    restored.connected(true);
    expect(restored.isRedelivery(7, 't', payload('x'))).toBe(true);
    expect(restored.load({ version: 2 })).toBe(false);
    expect(restored.load(null)).toBe(false);
    expect(restored.load({ version: 1, ids: [1], digests: [] })).toBe(false);
  });
});

describe('mqtt driver acknowledges after durable()', () => {
  it('withholds each PUBACK until durable() resolves, one message at a time; QoS 0 never waits', async () => {
    const broker = await Aedes.createBroker();
    const server = createServer(broker.handle);
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    const port = (server.address() as { port: number }).port;
    onTestFinished(async () => {
      await new Promise<void>((r) => broker.close(() => r()));
      await new Promise<void>((r) => server.close(() => r()));
    });
    const acks: string[] = [];
    broker.on('ack', (packet) => {
      if (packet && 'payload' in packet) acks.push(String(packet.payload));
    });
    // durable(): a promise the test resolves, as the gateway does after its outbox write.
    const pending: (() => void)[] = [];
    const waits = new EventEmitter();
    const t = testContext({
      durable: () =>
        new Promise<void>((resolve) => {
          pending.push(resolve);
          waits.emit('wait');
        }),
    });
    onTestFinished(() => t.cleanup());
    const driver = new MqttDriver(
      deviceMap('mqtt', {
        connection: { url: `mqtt://127.0.0.1:${port}`, qos: 1, cleanSession: false, clientId: 'ack-test' },
        tags: [
          { name: 'v', topic: 'q1', type: 'number' },
          { name: 'w', topic: 'q0', type: 'number' },
        ],
      }),
      t.ctx,
    );
    await driver.start();
    onTestFinished(() => driver.stop());
    await t.waitFor(() => driver.health().state === 'connected', 'connected');
    const pub = await mqtt.connectAsync(`mqtt://127.0.0.1:${port}`, { reconnectPeriod: 0 });
    onTestFinished(() => pub.endAsync());
    const firstWait = once(waits, 'wait');
    await pub.publishAsync('q1', '1', { qos: 1 });
    await pub.publishAsync('q1', '2', { qos: 1 });
    await firstWait;
    // Handed on, not acknowledged; the second message waits behind the first.
    expect(t.readings.map((r) => r.value)).toEqual([1]);
    expect(acks).toEqual([]);
    expect(driver.health().detail).toMatchObject({ acksWaiting: 1 });
    const firstAck = once(broker, 'ack');
    const secondWait = once(waits, 'wait');
    pending.shift()!();
    await Promise.all([firstAck, secondWait]);
    expect(acks).toEqual(['1']);
    expect(t.readings.map((r) => r.value)).toEqual([1, 2]);
    const secondAck = once(broker, 'ack');
    pending.shift()!();
    await secondAck;
    expect(acks).toEqual(['1', '2']);
    // QoS 0: nothing to acknowledge, nothing to wait for.
    await pub.publishAsync('q0', '5', { qos: 0 });
    await t.waitFor(() => t.readings.some((r) => r.tag === 'w'), 'the QoS 0 reading');
    expect(pending).toHaveLength(0);
  });
});
