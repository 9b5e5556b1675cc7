/**
 * MQTT acknowledgement after durability, at the driver: the redelivery window (pure) and the driver
 * against an aedes broker with a durable() the test controls, and against a scripted broker for a
 * crash between the outbox write and the PUBACK. The gateway process with SIGKILL is in
 * test/gateway/gateway-mqtt-ack.test.ts.
 */
import { EventEmitter, once } from 'node:events';
import { createServer, type Socket } from 'node:net';
import { Aedes } from 'aedes';
import mqtt from 'mqtt';
import mqttPacket from 'mqtt-packet';
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
    // The same connection of a new session: nothing is owed, so a repeat is a new message.
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

  it('recognises a second copy within one resumed connection (aedes re-sends while it flushes the session)', () => {
    // aedes 1 subscribes a resuming client live before it flushes the session's queue: a message
    // published in between is queued and delivered live, so it arrives twice, same packet id, in the
    // new connection (seen in a stress run: 1–2 of 150 reconnects). The spec forbids it, but QoS 1
    // against such a broker must still yield one event.
    const w = new RedeliveryWindow(16);
    w.connected(false);
    w.connected(true);
    w.record(9, 't', payload('a'));
    expect(w.isRedelivery(9, 't', payload('a'))).toBe(true);
    expect(w.isRedelivery(9, 't', payload('b'))).toBe(false); // another message under a reused id
    expect(w.isRedelivery(10, 't', payload('a'))).toBe(false);
    // A new session: the broker kept nothing to flush, so a repeat is a new message.
    w.connected(false);
    w.record(9, 't', payload('a'));
    expect(w.isRedelivery(9, 't', payload('a'))).toBe(false);
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

/**
 * A scripted MQTT broker over a real socket: `onPacket` answers each packet the client sends
 * (PINGREQ is answered here). Closed when the test finishes. Resolves to its port.
 */
async function scriptedBroker(onPacket: (p: mqttPacket.Packet, socket: Socket) => void): Promise<number> {
  const server = createServer((socket) => {
    const parser = mqttPacket.parser({ protocolVersion: 4 });
    parser.on('packet', (p) => {
      if (p.cmd === 'pingreq') socket.write(mqttPacket.generate({ cmd: 'pingresp' }));
      else onPacket(p, socket);
    });
    socket.on('data', (d) => parser.parse(d));
    socket.on('error', () => {});
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  onTestFinished(() => new Promise<void>((r) => server.close(() => r())));
  server.unref();
  return (server.address() as { port: number }).port;
}

describe('mqtt driver across a crash between the outbox write and the PUBACK', () => {
  it('saves the delivery with the events it produced, so its redelivery produces nothing', async () => {
    // A scripted broker over a real socket. Every connection gets the same QoS 1 PUBLISH (packet id 7)
    // right after its CONNACK: the first as a new message, later ones as the redelivery a broker makes
    // in a resumed session when the PUBACK did not reach it.
    const topic = 'scan';
    const body = Buffer.from('{"seq":41}');
    const acked: number[] = [];
    let connections = 0;
    const port = await scriptedBroker((p, socket) => {
      if (p.cmd === 'connect') {
        const sessionPresent = connections++ > 0;
        socket.write(
          Buffer.concat([
            mqttPacket.generate({ cmd: 'connack', sessionPresent, returnCode: 0 }),
            mqttPacket.generate({
              cmd: 'publish',
              topic,
              payload: body,
              qos: 1,
              messageId: 7,
              dup: sessionPresent,
              retain: false,
            }),
          ]),
        );
      } else if (p.cmd === 'subscribe') {
        socket.write(mqttPacket.generate({ cmd: 'suback', messageId: p.messageId, granted: [1] }));
      } else if (p.cmd === 'puback') {
        acked.push(p.messageId!);
      }
    });
    const device = deviceMap('mqtt', {
      connection: { url: `mqtt://127.0.0.1:${port}`, qos: 1, cleanSession: false, clientId: 'redeliver' },
      tags: [{ name: 'seq', topic, value: '$.seq', type: 'number' }],
    });

    // Before the crash: the gateway's batch fills with this message's events and is written at once,
    // inside onReadings, with the drivers' state (as DraftBatcher does when a batch is full); nothing
    // is left queued, so durable() has nothing to wait for and the PUBACK goes out.
    let saved: unknown;
    let first!: MqttDriver;
    const a = testContext({
      onReadings: () => {
        saved = JSON.parse(JSON.stringify(first.saveState()));
      },
      durable: () => null,
    });
    onTestFinished(() => a.cleanup());
    first = new MqttDriver(device, a.ctx);
    await first.start();
    await a.waitFor(() => acked.includes(7), 'the first PUBACK', 10_000).catch(() => {});
    await first.stop();
    expect(acked, 'the first delivery was acknowledged').toEqual([7]);
    expect(saved, 'the events were written').toBeDefined();

    // The PUBACK was lost with the crash: the restarted gateway loads what it saved with the events.
    const b = testContext();
    onTestFinished(() => b.cleanup());
    const second = new MqttDriver(device, b.ctx);
    second.loadState(saved);
    await second.start();
    onTestFinished(() => second.stop());
    await b.waitFor(() => acked.length === 2, 'the PUBACK of the redelivery');
    expect(b.readings, 'the redelivery produced no readings').toEqual([]);
    expect(second.health().detail).toMatchObject({ redeliveriesSkipped: 1 });
  });
});

describe('mqtt driver against a broker that sends a message twice in a resumed session', () => {
  it('maps the second copy to nothing and acknowledges both', async () => {
    // What aedes 1 does when a message is published while it restores a resuming client's session
    // (the live subscription and the session flush both deliver it): the same QoS 1 PUBLISH, same
    // packet id, twice in one connection, with another message in between. Replayed here exactly.
    const topic = 'scan';
    const publish = (messageId: number, seq: number) =>
      mqttPacket.generate({
        cmd: 'publish',
        topic,
        payload: Buffer.from(`{"seq":${seq}}`),
        qos: 1,
        messageId,
        dup: false,
        retain: false,
      });
    const acked: number[] = [];
    const port = await scriptedBroker((p, socket) => {
      if (p.cmd === 'connect') {
        socket.write(
          Buffer.concat([
            mqttPacket.generate({ cmd: 'connack', sessionPresent: true, returnCode: 0 }),
            publish(300, 1),
            publish(301, 2),
            publish(300, 1),
            publish(302, 3),
          ]),
        );
      } else if (p.cmd === 'subscribe') {
        socket.write(mqttPacket.generate({ cmd: 'suback', messageId: p.messageId, granted: [1] }));
      } else if (p.cmd === 'puback') {
        acked.push(p.messageId!);
      }
    });
    const device = deviceMap('mqtt', {
      connection: { url: `mqtt://127.0.0.1:${port}`, qos: 1, cleanSession: false, clientId: 'twice' },
      tags: [{ name: 'seq', topic, value: '$.seq', type: 'number' }],
    });
    const t = testContext();
    onTestFinished(() => t.cleanup());
    const driver = new MqttDriver(device, t.ctx);
    await driver.start();
    onTestFinished(() => driver.stop());
    await t.waitFor(() => acked.length === 4, 'every copy acknowledged');
    expect(acked).toEqual([300, 301, 300, 302]);
    expect(
      t.readings.map((r) => r.value),
      'each message once',
    ).toEqual([1, 2, 3]);
    expect(driver.health().detail).toMatchObject({ redeliveriesSkipped: 1 });
  });
});

describe('mqtt driver under a backlog', () => {
  it('works off a socket backlog in slices, letting timers and other I/O run in between', async () => {
    // A scripted broker writes 2,000 QoS 0 PUBLISHes (about 50 KB) in one write right after the
    // SUBACK: one read for the client. mqtt.js hands each next message over from process.nextTick, so
    // without slicing, no timer could run until all 2,000 were handled.
    const topic = 'scan';
    const count = 2_000;
    const port = await scriptedBroker((p, socket) => {
      if (p.cmd === 'connect') {
        socket.write(mqttPacket.generate({ cmd: 'connack', sessionPresent: false, returnCode: 0 }));
      } else if (p.cmd === 'subscribe') {
        const backlog = Array.from({ length: count }, (_, i) =>
          mqttPacket.generate({
            cmd: 'publish',
            topic,
            payload: Buffer.from(`{"seq":${i}}`),
            qos: 0,
            dup: false,
            retain: false,
          }),
        );
        socket.write(
          Buffer.concat([
            mqttPacket.generate({ cmd: 'suback', messageId: p.messageId, granted: [0] }),
            ...backlog,
          ]),
        );
      }
    });
    const device = deviceMap('mqtt', {
      connection: { url: `mqtt://127.0.0.1:${port}`, qos: 0 },
      tags: [{ name: 'seq', topic, value: '$.seq', type: 'number' }],
    });
    // A consumer as slow as a busy gateway (about 50 µs a message), and a timer counting the turns of
    // the event loop it gets while the backlog is being worked off.
    const seqs: number[] = [];
    let ticksDuringBacklog = 0;
    const timer = setInterval(() => {
      if (seqs.length > 0 && seqs.length < count) ticksDuringBacklog++;
    }, 1);
    onTestFinished(() => clearInterval(timer));
    const c = testContext({
      onReadings: (batch) => {
        const until = performance.now() + 0.05;
        while (performance.now() < until) {}
        for (const r of batch) seqs.push(r.value as number);
      },
    });
    onTestFinished(() => c.cleanup());
    const driver = new MqttDriver(device, c.ctx);
    await driver.start();
    onTestFinished(() => driver.stop());
    for (const deadline = Date.now() + 20_000; seqs.length < count && Date.now() < deadline; )
      await new Promise((r) => setTimeout(r, 5));
    expect(seqs, 'every message, once, in order').toEqual(Array.from({ length: count }, (_, i) => i));
    expect(ticksDuringBacklog, 'timers ran while the backlog was worked off').toBeGreaterThan(0);
    expect((driver.health().detail as { yields: number }).yields).toBeGreaterThan(0);
  });
});
