/**
 * A keyless attacker against the validators' libp2p ports (issue 12, attack 2): connections that
 * send only the multistream header, or stall half-way through the Noise handshake, held open and
 * reopened, from an address the genesis does not list, against all four validators throughout the
 * test, while a legitimate client submits and one validator is killed and restarted (so links must
 * be re-established under attack). Before admission (src/consensus/net/admission.ts) this
 * partitioned the alliance; now the alliance keeps committing and the restarted validator gets
 * back in through the validators' reserve.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { waitFor } from '../consensus/cluster/peers.ts';
import {
  type Alliance,
  expectNothingLost,
  legitimateClient,
  legitLatencyMaxMs,
  startAlliance,
} from './alliance.ts';
import { halfOpenHandshakes, holdSlots } from './tools.ts';

let a: Alliance;
beforeAll(async () => {
  a = await startAlliance();
}, 60_000);
afterAll(async () => {
  await a?.stop();
});

describe('slot holding and half-open handshakes against every validator', () => {
  it('the alliance keeps committing, and a validator restarted under attack reconnects', async () => {
    const slots = holdSlots(a.p2p, 12, 8_000);
    const halfOpen = halfOpenHandshakes(a.p2p, 12, 8_000);
    const client = await legitimateClient(a, a.cluster.peers[1]!);
    try {
      // The attack takes hold: every validator refuses the attacker beyond its bounds.
      await waitFor(
        async () =>
          (await Promise.all(a.cluster.peers.map((p) => p.metrics()))).every(
            (m) =>
              m.transport.admission.refused['address-pending'] +
                m.transport.admission.refused['strangers-pending'] >
              0,
          ),
        'every validator refusing the attacker',
        20_000,
      );
      // kill -9 a validator and restart it while the attacker holds what it can.
      const d = a.cluster.peers[3]!;
      await d.kill();
      await d.start();
      await waitFor(
        async () =>
          (await Promise.all(a.cluster.peers.map((p) => p.status()))).every((s) => s.peersConnected === 3),
        'all four connected again under attack',
        // A redial (redialMaxMs 5 s by default) plus a handshake, with slack.
        15_000,
      );
      // Blocks keep coming: the client's batches after the restart commit too.
      const before = client.latencies().length;
      await waitFor(
        () => client.latencies().length >= before + 5,
        'five more batches committed',
        legitLatencyMaxMs,
      );
      expect((slots.stats().opened ?? 0) + (halfOpen.stats().opened ?? 0)).toBeGreaterThan(48);
    } finally {
      await slots.stop();
      await halfOpen.stop();
    }
    const { batches, latencyMaxMs } = await client.stop();
    expect(latencyMaxMs).toBeLessThanOrEqual(legitLatencyMaxMs);
    await expectNothingLost(
      a,
      client.sent.flatMap((s) => s.ids),
    );
    expect(batches).toBeGreaterThan(5);
  }, 120_000);
});
