/**
 * The logger writes what an operator can read: ids as strings (also after crossing a worker
 * thread's message port), bytes as hex, and a repeated warning once per window with its count.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { MessageChannel } from 'node:worker_threads';
import { peerIdFromString } from '@libp2p/peer-id';
import { multiaddr } from '@multiformats/multiaddr';
import { describe, expect, it } from 'vitest';
import { createLogger, loggable, RepeatLimiter } from '../../src/log/logger.ts';
import { tempDir } from '../helpers/tmp.ts';

const peerIdText = '12D3KooWD3eckifWpRn9wQpMG9R9hX3sD158z7EqHWmweQAJU5SA';

function lines(file: string): Record<string, unknown>[] {
  return readFileSync(file, 'utf8')
    .split('\n')
    .filter(Boolean)
    .map((l) => JSON.parse(l) as Record<string, unknown>);
}

/** What a message port delivers (the structured clone the validator thread's log lines go through). */
async function throughPort<T>(value: T): Promise<T> {
  const { port1, port2 } = new MessageChannel();
  const got = new Promise<T>((resolve) => port2.once('message', resolve));
  port1.postMessage(value);
  const v = await got;
  port1.close();
  return v;
}

describe('log fields', () => {
  it('writes ids, addresses and bytes as strings, one JSON object per line', () => {
    const file = join(tempDir('log'), 'a.log');
    const log = createLogger('info', file, { sync: true });
    log.info('ids', {
      peerId: peerIdFromString(peerIdText),
      addrs: [multiaddr(`/ip4/127.0.0.1/tcp/4001/p2p/${peerIdText}`)],
      hash: new Uint8Array([0xde, 0xad, 0xbe, 0xef]),
      height: 10n,
      err: new Error('boom'),
    });
    log.flush();
    const [line] = lines(file);
    expect(line).toMatchObject({
      msg: 'ids',
      peerId: peerIdText,
      addrs: [`/ip4/127.0.0.1/tcp/4001/p2p/${peerIdText}`],
      hash: 'deadbeef',
      height: '10',
      err: { type: 'Error', message: 'boom' },
    });
  });

  it('keeps ids readable across a worker thread port once made loggable before it', async () => {
    const fields = { peerId: peerIdFromString(peerIdText), addrs: [multiaddr('/ip4/10.0.0.5/tcp/4001')] };
    // Without it: the PeerId arrives as its bytes (dozens of index keys), the Multiaddr as {}.
    const raw = JSON.stringify(loggable(await throughPort(fields)));
    expect(raw).not.toContain(peerIdText);
    const kept = (await throughPort(loggable(fields))) as Record<string, unknown>;
    expect(kept).toEqual({ peerId: peerIdText, addrs: ['/ip4/10.0.0.5/tcp/4001'] });
  });

  it('bounds what it copies: long byte arrays are cut, deep nesting is named', () => {
    expect(loggable(new Uint8Array(100))).toBe(`${'00'.repeat(64)}…(100 bytes)`);
    let deep: Record<string, unknown> = { v: 1 };
    for (let i = 0; i < 10; i++) deep = { deep };
    expect(JSON.stringify(loggable(deep))).toContain('[Object]');
    expect((loggable(Array.from({ length: 150 }, (_, i) => i)) as unknown[]).at(-1)).toBe('…50 more');
  });
});

describe('repeated warnings', () => {
  it('lets the first through, counts the rest within the window, and logs the count after it', () => {
    let now = 1_000;
    const file = join(tempDir('log'), 'r.log');
    const log = createLogger('info', file, { nowMs: () => now, repeatWindowMs: 10_000, sync: true });
    for (let i = 0; i < 50; i++) {
      log.warn('validator unreachable; retrying', { err: 'ECONNREFUSED' });
      now += 100;
    }
    log.warn('validator unreachable; retrying', { device: 'press1' }); // another thing: its own line
    now = 20_000;
    log.warn('validator unreachable; retrying', { err: 'ECONNREFUSED' });
    log.info('not limited');
    log.info('not limited');
    log.flush();
    const got = lines(file).map((l) => ({ msg: l.msg, repeated: l.repeated, device: l.device }));
    expect(got).toEqual([
      { msg: 'validator unreachable; retrying', repeated: undefined, device: undefined },
      { msg: 'validator unreachable; retrying', repeated: undefined, device: 'press1' },
      { msg: 'validator unreachable; retrying', repeated: 49, device: undefined },
      { msg: 'not limited', repeated: undefined, device: undefined },
      { msg: 'not limited', repeated: undefined, device: undefined },
    ]);
  });

  it('reports a count nobody carried once its window has passed, and on flush', () => {
    let now = 0;
    const reported: number[] = [];
    const limiter = new RepeatLimiter(1_000, () => now);
    const report = (n: number) => reported.push(n);
    expect(limiter.allow('k', report)).toBe(0);
    expect(limiter.allow('k', report)).toBeNull();
    expect(limiter.allow('k', report)).toBeNull();
    limiter.flush(false);
    expect(reported).toEqual([]); // the window is still open
    now = 1_500;
    limiter.flush(false);
    expect(reported).toEqual([2]);
    expect(limiter.allow('k', report)).toBeNull(); // a new window began when the count was written
    limiter.flush();
    expect(reported).toEqual([2, 1]);
  });
});
