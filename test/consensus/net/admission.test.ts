/**
 * Admission of inbound connections before their handshake (src/consensus/net/admission.ts), over
 * real TCP on loopback: the validators listen on and connect from 127.0.0.1, the address their
 * genesis lists; strangers connect from 127.0.0.2, which Linux also routes to the loopback
 * interface. The slot-holding attack of issue 12 runs here against in-process transports; the
 * adversarial suite (test/adversarial/) runs it against peer processes.
 */
import { connect } from 'node:net';
import { noise } from '@chainsafe/libp2p-noise';
import { yamux } from '@chainsafe/libp2p-yamux';
import { generateKeyPair } from '@libp2p/crypto/keys';
import { tcp } from '@libp2p/tcp';
import { multiaddr } from '@multiformats/multiaddr';
import { createLibp2p } from 'libp2p';
import { afterEach, describe, expect, it } from 'vitest';
import { addressKey } from '../../../src/consensus/net/admission.ts';
import { protocolIds } from '../../../src/consensus/net/libp2p.ts';
import type { TransportLimits } from '../../../src/consensus/net/limits.ts';
import { attackerAddress, holdSlots, multistreamHeader, tcpTarget } from '../../adversarial/tools.ts';
import {
  allConnected,
  allianceFixture,
  eventually,
  testLimits,
  transportFor,
  untilPeers,
} from './helpers.ts';

const cleanups: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

async function alliance(members = 4) {
  const f = await allianceFixture({ members });
  cleanups.push(f.cleanup);
  return f.alliance;
}

/** A raw TCP connection from `localAddress` that sends the multistream header; resolves when closed. */
function knock(port: number, localAddress = attackerAddress): { closed: Promise<number> } {
  const t0 = performance.now();
  const s = connect({ host: '127.0.0.1', port, localAddress });
  s.on('connect', () => s.write(multistreamHeader));
  s.on('data', () => {});
  s.on('error', () => {});
  cleanups.push(() => void s.destroy());
  return { closed: new Promise((resolve) => s.on('close', () => resolve(performance.now() - t0))) };
}

describe('addressKey', () => {
  it('counts IPv4 addresses one by one and IPv6 addresses by /64', () => {
    expect(addressKey('10.0.0.5')).toBe('10.0.0.5');
    expect(addressKey('::ffff:10.0.0.5')).toBe('10.0.0.5');
    expect(addressKey('2001:db8:1:2:aaaa::1')).toBe('2001:db8:1:2::/64');
    expect(addressKey('2001:DB8:1:2:bbbb:cccc:dddd:eeee')).toBe('2001:db8:1:2::/64');
    expect(addressKey('2001:db8::1')).toBe('2001:db8:0:0::/64');
    expect(addressKey('::1')).toBe('0:0:0:0::/64');
  });
});

describe('admission before the handshake', () => {
  it('validators reconnect while strangers hold every handshake slot they can; strangers are counted', async () => {
    const a = await alliance();
    const limits: Partial<TransportLimits> = { ...testLimits, handshakeTimeoutMs: 2_000 };
    const ts = await Promise.all(a.genesis.validators.map((v) => transportFor(a, v.memberId, limits)));
    for (const t of ts) cleanups.push(() => t.stop());
    await Promise.all(ts.map((t) => t.start()));
    await Promise.all(ts.map((t) => untilPeers(t, allConnected)));
    // The attacker: 12 connections per validator port sending only the multistream header,
    // reopened at once when closed (and every 8 s).
    const targets = ts.map((t) => tcpTarget(t.multiaddrs[0]!));
    const attack = holdSlots(targets, 12, 8_000);
    cleanups.push(() => attack.stop());
    await eventually(
      () => ts.every((t) => t.metrics().admission.refused['address-pending'] >= 10),
      'the attacker refused beyond its per-address bound',
    );
    // Links torn down while every slot libp2p would give strangers is held: member-1 and member-4
    // drop each other (a short quarantine) and must reconnect through the validators' reserve.
    // (Without admission they wait for libp2p's 10 s upgrade timeout to free a slot: shown failing.)
    ts[0]!.reportMisbehaviour('member-4', 'test: force a reconnect under attack');
    ts[3]!.reportMisbehaviour('member-1', 'test: force a reconnect under attack');
    const quarantineMaxMs = 1_000;
    const reconnectMs = quarantineMaxMs + 3_000;
    await Promise.all([ts[0]!, ts[3]!].map((t) => untilPeers(t, allConnected, reconnectMs)));
    // member-4 restarts during the attack: a fresh transport must get back in.
    await ts[3]!.stop();
    const again = await transportFor(a, 'member-4', limits);
    cleanups.push(() => again.stop());
    await again.start();
    // Within one dial timeout (5 s): the others redial within redialMaxMs (0.5 s), and a handshake
    // on loopback takes milliseconds. (Before admission, ~9 s: until libp2p's 10 s upgrade timeout
    // freed a slot the attacker did not take back first.)
    const dialTimeoutMs = 5_000;
    await Promise.all([again, ...ts.slice(0, 3)].map((t) => untilPeers(t, allConnected, dialTimeoutMs)));
    const m1 = ts[0]!.metrics();
    expect(m1.admission.strangerConnections).toBeGreaterThanOrEqual(12);
    expect(m1.admission.pendingStrangers).toBeLessThanOrEqual(2);
    // The links between the three that stayed up were never touched.
    expect(m1.peers['member-2']!.connects).toBe(1);
    expect(m1.peers['member-3']!.connects).toBe(1);
    expect(attack.stats().open).toBeGreaterThan(0);
  });

  it('closes a connection that does not complete its handshake within handshakeTimeoutMs', async () => {
    const a = await alliance(2);
    const handshakeTimeoutMs = 300;
    const m1 = await transportFor(a, 'member-1', { ...testLimits, handshakeTimeoutMs });
    cleanups.push(() => m1.stop());
    await m1.start();
    const { port } = tcpTarget(m1.multiaddrs[0]!);
    const ms = await knock(port).closed;
    expect(ms).toBeGreaterThanOrEqual(handshakeTimeoutMs - 50);
    expect(ms).toBeLessThan(handshakeTimeoutMs + 2_000);
    await eventually(() => m1.metrics().admission.abandonedHandshakes >= 1, 'counted');
    expect(m1.metrics().admission.pendingStrangers).toBe(0);
  });

  it("in 'genesis-only' mode refuses strangers before the handshake; a validator still connects", async () => {
    const a = await alliance(2);
    const m1 = await transportFor(a, 'member-1', testLimits);
    // Built by hand for the admission option (transportFor takes limits only).
    const { Libp2pTransport } = await import('../../../src/consensus/net/libp2p.ts');
    const { loadValidatorIdentity } = await import('../../../src/consensus/genesis/identity.ts');
    const guarded = new Libp2pTransport({
      genesis: a.genesis,
      self: 'member-2',
      identity: await loadValidatorIdentity(a.keyFiles.get('member-2')!),
      limits: testLimits,
      admission: 'genesis-only',
    });
    for (const t of [m1, guarded]) cleanups.push(() => t.stop());
    await Promise.all([m1.start(), guarded.start()]);
    await Promise.all([m1, guarded].map((t) => untilPeers(t, allConnected)));
    const { port } = tcpTarget(guarded.multiaddrs[0]!);
    // A raw connection from a stranger's address is closed at once, before reading anything…
    const ms = await knock(port).closed;
    expect(ms).toBeLessThan(1_000);
    // …and so is a libp2p node with its own key dialling from there.
    const stranger = await createLibp2p({
      privateKey: await generateKeyPair('Ed25519'),
      transports: [tcp({ dialOpts: { localAddress: attackerAddress } as never })],
      connectionEncrypters: [noise()],
      streamMuxers: [yamux()],
    });
    cleanups.push(() => stranger.stop());
    await expect(
      stranger.dialProtocol(multiaddr(guarded.multiaddrs[0]!), protocolIds(a.genesis).msg),
    ).rejects.toThrow();
    const m = guarded.metrics();
    expect(m.admission).toMatchObject({ mode: 'genesis-only', strangerConnections: 2, pendingStrangers: 0 });
    expect(m.admission.refused['not-listed']).toBe(2);
    expect(m.admission.lastStranger?.address).toBe(attackerAddress);
    // Refused before Noise: it never got far enough to be refused by its peer id.
    expect(m.refusedConnections).toBe(0);
    expect(guarded.peers()[0]!.state).toBe('connected');
  });

  it("in 'open' mode lets a stranger's handshake through, then refuses its peer id (counted twice)", async () => {
    const a = await alliance(2);
    const m1 = await transportFor(a, 'member-1', testLimits);
    cleanups.push(() => m1.stop());
    await m1.start();
    const stranger = await createLibp2p({
      privateKey: await generateKeyPair('Ed25519'),
      transports: [tcp({ dialOpts: { localAddress: attackerAddress } as never })],
      connectionEncrypters: [noise()],
      streamMuxers: [yamux()],
    });
    cleanups.push(() => stranger.stop());
    await expect(
      stranger.dialProtocol(multiaddr(m1.multiaddrs[0]!), protocolIds(a.genesis).msg),
    ).rejects.toThrow();
    await eventually(() => m1.metrics().refusedConnections >= 1, 'refused by peer id');
    expect(m1.metrics().admission).toMatchObject({
      mode: 'open',
      strangerConnections: 1,
      pendingStrangers: 0,
    });
  });
});
