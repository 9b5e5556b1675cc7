/**
 * Attacks on the validators' libp2p ports, against four `masbc-edge peer` processes while a
 * legitimate client keeps submitting: a stranger's peer id (a libp2p node with its own key), raw
 * garbage at the connection level, and, from a validator's key (member-4's, its process stopped:
 * what a compromised validator could send), garbage and oversize frames on the message protocol.
 * Each time the alliance keeps committing; at the end member-4 returns, reconnects once its
 * quarantine ends, and nothing is lost. Slot holding and half-open handshakes: slots.test.ts.
 */
import { noise } from '@chainsafe/libp2p-noise';
import { yamux } from '@chainsafe/libp2p-yamux';
import { generateKeyPair } from '@libp2p/crypto/keys';
import type { PrivateKey, Stream } from '@libp2p/interface';
import { tcp } from '@libp2p/tcp';
import { multiaddr } from '@multiformats/multiaddr';
import { createLibp2p, type Libp2p } from 'libp2p';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadValidatorIdentity } from '../../src/consensus/genesis/identity.ts';
import { dataHeader } from '../../src/consensus/net/frames.ts';
import { protocolIds } from '../../src/consensus/net/libp2p.ts';
import { waitFor } from '../consensus/cluster/peers.ts';
import {
  type Alliance,
  expectNothingLost,
  legitimateClient,
  legitLatencyMaxMs,
  startAlliance,
} from './alliance.ts';
import { attackerAddress, garbageConnections } from './tools.ts';

let a: Alliance;
const sent: string[] = [];
const nodes: Libp2p[] = [];

beforeAll(async () => {
  a = await startAlliance();
}, 60_000);
afterAll(async () => {
  for (const n of nodes) await n.stop();
  await a?.stop();
});

/** A bare libp2p node dialling from the attacker's address. */
async function bareNode(privateKey?: PrivateKey): Promise<Libp2p> {
  const node = await createLibp2p({
    ...(privateKey ? { privateKey } : {}),
    transports: [tcp({ dialOpts: { localAddress: attackerAddress } as never })],
    connectionEncrypters: [noise()],
    streamMuxers: [yamux()],
  });
  nodes.push(node);
  return node;
}

const genesis = () => a.cluster.files.alliance.genesis;
const addrOf = (i: number) => multiaddr(genesis().validators[i]!.addrs[0]!);
const metricsOf = async (i: number) => (await a.cluster.peers[i]!.metrics()).transport;

/** Runs `attack` while the legitimate client submits to member-2; checks it kept committing. */
async function whileCommitting(attack: () => Promise<void>) {
  const client = await legitimateClient(a, a.cluster.peers[1]!);
  await attack();
  const before = client.latencies().length;
  await waitFor(
    () => client.latencies().length >= before + 2,
    'two more batches committed',
    legitLatencyMaxMs,
  );
  const { latencyMaxMs } = await client.stop();
  for (const s of client.sent) sent.push(...s.ids);
  expect(latencyMaxMs).toBeLessThanOrEqual(legitLatencyMaxMs);
}

describe('attacks on the libp2p ports', () => {
  it("a stranger's peer id is refused by every validator, and counted", async () => {
    await whileCommitting(async () => {
      const stranger = await bareNode(await generateKeyPair('Ed25519'));
      for (let i = 0; i < 4; i++) {
        await expect(stranger.dialProtocol(addrOf(i), protocolIds(genesis()).msg)).rejects.toThrow();
      }
    });
    for (let i = 0; i < 4; i++) expect((await metricsOf(i)).refusedConnections).toBeGreaterThan(0);
  }, 60_000);

  it('garbage at the connection level is cut', async () => {
    await whileCommitting(async () => {
      const r = await garbageConnections(a.p2p, 5, 64 * 1024);
      expect(r.closedByTarget).toBeGreaterThan(0);
    });
  }, 60_000);

  it('garbage and oversize frames from a validator key get it dropped and quarantined, not the alliance', async () => {
    const d = a.cluster.peers[3]!; // member-4
    await d.stop();
    const identity = await loadValidatorIdentity(a.cluster.files.alliance.keyFiles.get('member-4')!);
    const max = genesis().messageBytesMax;
    await whileCommitting(async () => {
      const impostor = await bareNode(identity.privateKey);
      const open = async (i: number) => {
        const stream: Stream = await impostor.dialProtocol(addrOf(i), protocolIds(genesis()).msg);
        const closed = new Promise<void>((resolve) =>
          stream.addEventListener('close', () => resolve(), { once: true }),
        );
        return { stream, closed };
      };
      const oversize = await open(0);
      oversize.stream.send(dataHeader(max + 1));
      await oversize.closed;
      const garbage = await open(1);
      garbage.stream.send(Buffer.concat([dataHeader(3), Buffer.from('bad'), Uint8Array.of(0, 0, 0, 1, 9)]));
      await garbage.closed;
      await impostor.stop();
    });
    expect((await metricsOf(0)).peers['member-4']!.drops.oversize).toBeGreaterThan(0);
    expect((await metricsOf(1)).peers['member-4']!.drops.malformed).toBeGreaterThan(0);
    // The real member-4 comes back and is let in again once the quarantines end.
    await d.start();
    await waitFor(
      async () =>
        (await Promise.all(a.cluster.peers.map((p) => p.status()))).every((s) => s.peersConnected === 3),
      'member-4 reconnected after its quarantine',
      // quarantineMaxMs (60 s) bounds it; the first quarantine is quarantineMinMs (2 s).
      30_000,
    );
  }, 90_000);

  it('nothing was lost: every batch the client sent is on chain once, on every replica', async () => {
    await expectNothingLost(a, sent);
  }, 60_000);
});
