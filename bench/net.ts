/**
 * Consensus transport throughput between two libp2p validators on 127.0.0.1 (TCP, Noise, Yamux,
 * our credit-based message streams): round trips per second of 200 B messages, one at a time
 * (latency-bound, like a vote answering a proposal), and one-way MB/s of 1 KiB messages with the
 * sender pacing itself on `waitForCapacity` so nothing is dropped (throughput-bound, like a burst
 * of forwarded transactions). Medians of 3 runs after a warm-up.
 *
 * Run alone: `node bench/net.ts`.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadValidatorIdentity } from '../src/consensus/genesis/identity.ts';
import { Libp2pTransport } from '../src/consensus/net/libp2p.ts';
import { createLocalAlliance } from '../src/devtools/local-alliance.ts';
import { type Figure, formatFigures, machine, rate } from './lib.ts';

async function pair(dir: string): Promise<[Libp2pTransport, Libp2pTransport]> {
  const alliance = await createLocalAlliance({ dir, members: 2, chainId: 'bench' });
  const transports = await Promise.all(
    ['member-1', 'member-2'].map(
      async (self) =>
        new Libp2pTransport({
          genesis: alliance.genesis,
          self,
          identity: await loadValidatorIdentity(alliance.keyFiles.get(self)!),
        }),
    ),
  );
  const connected = transports.map(
    (t) =>
      new Promise<void>((resolve) => {
        t.onPeerState((s) => {
          if (s.state === 'connected' && s.inboundOpen) resolve();
        });
      }),
  );
  await Promise.all(transports.map((t) => t.start()));
  await Promise.all(connected);
  return transports as [Libp2pTransport, Libp2pTransport];
}

export async function benchNet(runs = 3): Promise<Figure[]> {
  const dir = mkdtempSync(join(tmpdir(), 'masbc-bench-net-'));
  const [a, b] = await pair(dir);
  try {
    const roundTrips = 2_000;
    const small = new Uint8Array(200).fill(1);
    b.onMessage((from, payload) => b.send(from, payload));
    const pingPong = await rate('round trips, 200 B, one in flight', 'round trips/s', runs, async () => {
      let left = roundTrips;
      const done = Promise.withResolvers<void>();
      a.onMessage(() => {
        if (--left === 0) done.resolve();
        else a.send('member-2', small);
      });
      const t0 = performance.now();
      a.send('member-2', small);
      await done.promise;
      return roundTrips / ((performance.now() - t0) / 1000);
    });

    const messages = 20_000;
    const kib = new Uint8Array(1024).fill(2);
    const oneWay = await rate('one way, 1 KiB messages, paced', 'MB/s', runs, async () => {
      let received = 0;
      const done = Promise.withResolvers<void>();
      b.onMessage(() => {
        if (++received === messages) done.resolve();
      });
      const t0 = performance.now();
      for (let i = 0; i < messages; i++) {
        await a.waitForCapacity('member-2', kib.byteLength);
        a.send('member-2', kib);
      }
      await done.promise;
      return (messages * kib.byteLength) / 1e6 / ((performance.now() - t0) / 1000);
    });
    const dropped = a.metrics().peers['member-2']!.messagesDropped;
    if (dropped !== 0) throw new Error(`the paced sender lost ${dropped} messages`);
    return [pingPong, oneWay];
  } finally {
    await Promise.all([a.stop(), b.stop()]);
    rmSync(dir, { recursive: true, force: true });
  }
}

if (process.argv[1] === import.meta.filename) {
  console.log(`${new Date().toISOString()} on ${machine()}\n`);
  console.log(formatFigures('Consensus transport (libp2p, 2 validators, 127.0.0.1)', await benchNet()));
}
