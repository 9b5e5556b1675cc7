/** The in-memory network: same interface and bounds as libp2p, deterministic, no sockets. */
import { afterEach, describe, expect, it } from 'vitest';
import type { Genesis } from '../../../src/consensus/genesis/genesis.ts';
import { MessageTooLargeError, NotAPeerError, RequestError } from '../../../src/consensus/net/errors.ts';
import { MemoryNetwork } from '../../../src/consensus/net/memory.ts';
import { allianceFixture, collector, type Fixture, text, utf8 } from './helpers.ts';

const fixtures: Fixture[] = [];
afterEach(() => {
  for (const f of fixtures.splice(0)) f.cleanup();
});

async function genesis(members = 4): Promise<Genesis> {
  const f = await allianceFixture({ members, basePort: 47_100 });
  fixtures.push(f);
  return f.alliance.genesis;
}

async function network(options: ConstructorParameters<typeof MemoryNetwork>[1] = {}, members = 4) {
  const net = new MemoryNetwork(await genesis(members), options);
  const ts = net.genesis.validators.map((v) => net.transport(v.memberId));
  const inboxes = ts.map((t) => {
    const c = collector();
    t.onMessage(c.handler);
    return c;
  });
  await Promise.all(ts.map((t) => t.start()));
  return { net, ts, inboxes };
}

describe('in-memory transport', () => {
  it('delivers only when told, in a deterministic order', async () => {
    const runs: string[][] = [];
    for (let run = 0; run < 2; run++) {
      const { net, ts, inboxes } = await network({ delivery: 'manual' });
      ts[0]!.broadcast(utf8('a'));
      ts[1]!.send('member-3', utf8('b'));
      ts[3]!.broadcast(utf8('c'));
      await Promise.resolve();
      expect(inboxes.every((i) => i.received.length === 0)).toBe(true);
      expect(net.deliverOne()).toBe(true);
      await net.flush();
      runs.push(
        inboxes.flatMap((inbox, i) => inbox.received.map((m) => `${m.from}->${i + 1}:${text(m.payload)}`)),
      );
    }
    expect(runs[0]).toHaveLength(7);
    expect(runs[1]).toEqual(runs[0]);
  });

  it('mirrors the bounds: a slow consumer backs messages up into the sender queue, which drops the oldest', async () => {
    const { net, ts } = await network({
      delivery: 'manual',
      limits: { messageBytesMax: 2000, windowBytes: 3 * (1000 + 64), outboundQueueMessagesMax: 4 },
    });
    let release: (() => void) | undefined;
    const seen: number[] = [];
    ts[1]!.onMessage(async (_from, p) => {
      seen.push(p[0]!);
      await new Promise<void>((resolve) => (release = resolve));
    });
    for (let i = 0; i < 10; i++) ts[0]!.send('member-2', new Uint8Array(1000).fill(i));
    // 4 fit the queue (0..5 were evicted); the window lets 3 of them through while the consumer holds one.
    while (net.deliverOne());
    const status = () => ts[0]!.peers().find((p) => p.memberId === 'member-2')!;
    expect(status()).toMatchObject({
      outboundQueuedMessages: 1,
      metrics: { messagesDropped: 6, messagesOut: 3 },
    });
    expect(ts[1]!.peers()[0]!.inboundQueuedBytes).toBe(3 * 1064);
    for (let i = 0; i < 4; i++) {
      await Promise.resolve();
      release?.();
      release = undefined;
      while (net.deliverOne());
      await new Promise((resolve) => setImmediate(resolve));
    }
    expect(seen).toEqual([6, 7, 8, 9]);
    expect(ts[1]!.peers()[0]!.inboundQueuedBytesPeak).toBe(3 * 1064);
    expect(() => ts[0]!.send('member-2', new Uint8Array(2001))).toThrow(MessageTooLargeError);
    expect(() => ts[0]!.send('member-1', utf8('self'))).toThrow(NotAPeerError);
    expect(() => ts[0]!.send('stranger', utf8('x'))).toThrow(NotAPeerError);
  });

  it('links go down and up; a stopped member misses nothing that was still queued for it', async () => {
    const { net, ts, inboxes } = await network();
    const states: string[] = [];
    ts[0]!.onPeerState((s) => states.push(`${s.memberId}:${s.state}`));
    net.setLink('member-1', 'member-2', 'down');
    ts[0]!.send('member-2', utf8('held'));
    await net.flush();
    expect(inboxes[1]!.received).toEqual([]);
    net.setLink('member-1', 'member-2', 'up');
    await net.flush();
    expect(inboxes[1]!.received.map((m) => text(m.payload))).toEqual(['held']);
    await ts[2]!.stop();
    ts[0]!.send('member-3', utf8('later'));
    const back = net.transport('member-3');
    const inbox = collector();
    back.onMessage(inbox.handler);
    await back.start();
    await net.flush();
    expect(inbox.received.map((m) => text(m.payload))).toEqual(['later']);
    expect(states).toEqual([
      'member-2:connecting',
      'member-2:connected',
      'member-3:connecting',
      'member-3:connected',
    ]);
  });

  it('reportMisbehaviour takes the link down until the test heals it', async () => {
    const { net, ts, inboxes } = await network();
    ts[0]!.reportMisbehaviour('member-2', 'bad signature');
    expect(ts[0]!.peers()[0]).toMatchObject({
      state: 'quarantined',
      lastDrop: { reason: 'reported', detail: 'bad signature' },
      metrics: { drops: { reported: 1 } },
    });
    ts[1]!.send('member-1', utf8('ignored for now'));
    await net.flush();
    expect(inboxes[0]!.received).toEqual([]);
    net.setLink('member-1', 'member-2', 'up');
    await net.flush();
    expect(inboxes[0]!.received.map((m) => text(m.payload))).toEqual(['ignored for now']);
  });

  it('request/response with the same failures as libp2p', async () => {
    const { net, ts } = await network({}, 2);
    ts[1]!.onRequest(async (req, { from, maxResponseBytes, signal }) => {
      if (text(req) === 'hang') return new Promise((_, reject) => signal.addEventListener('abort', reject));
      if (text(req) === 'big') return new Uint8Array(maxResponseBytes + 1);
      return utf8(`${from} asked ${text(req)}`);
    });
    expect(text(await ts[0]!.request('member-2', utf8('blocks 1..4')))).toBe('member-1 asked blocks 1..4');
    await expect(ts[0]!.request('member-2', utf8('big'), { maxResponseBytes: 10 })).rejects.toMatchObject({
      reason: 'response-too-large',
    });
    await expect(ts[0]!.request('member-2', utf8('hang'), { timeoutMs: 20 })).rejects.toMatchObject({
      reason: 'timeout',
    });
    net.setLink('member-1', 'member-2', 'down');
    await expect(ts[0]!.request('member-2', utf8('x'))).rejects.toBeInstanceOf(RequestError);
    await expect(ts[0]!.request('member-2', utf8('x'))).rejects.toMatchObject({ reason: 'unavailable' });
    await ts[0]!.stop();
    await expect(ts[0]!.request('member-2', utf8('x'))).rejects.toMatchObject({ reason: 'stopped' });
  });
});
