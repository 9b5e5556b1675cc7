/**
 * The two byzantine cases of issue 12 with no directed test before, at the level of the consensus
 * core (the directed harness of test/consensus/core: real Ed25519 keys, every message through the
 * codec, the test deciding what is delivered): votes for a block no one proposed, and a validly
 * signed VIEW-CHANGE carrying a forged prepared certificate or a forged checkpoint. In each, the
 * byzantine replica signs with its own key only; the honest replicas commit the real block, the
 * same one, and never the forged one. And a replay of every message ever sent, after a restart.
 */
import { describe, expect, it } from 'vitest';
import { keyOf } from '../../src/consensus/core/io.ts';
import { blockHash, signMessage } from '../../src/consensus/core/signing.ts';
import type { Commit, Prepare, PreparedCertificate, ViewChange } from '../../src/consensus/core/types.ts';
import { sha256 } from '../../src/crypto/hash.ts';
import { chainId, genesisHash, Net, T, tx } from '../consensus/core/harness.ts';

const zeroSig = new Uint8Array(64);
const garbage = (k: number) => sha256(Uint8Array.of(9, k)).slice(0, 32);
const sig64 = (k: number) => new Uint8Array([...garbage(k), ...garbage(k + 100)]);

function vote<T extends Prepare | Commit>(
  net: Net,
  type: T['type'],
  replica: number,
  height: number,
  hash: Uint8Array,
): T {
  return signMessage(net.signers[replica]!, chainId, {
    type,
    view: 0,
    height,
    blockHash: hash,
    replica,
    signature: zeroSig,
  } as T);
}

/** The block hash each replica committed at `height` (undefined where it has none). */
const committedAt = (net: Net, height: number, replicas: number[]) =>
  replicas.map((i) => {
    const cb = net.stores[i]![height - 1];
    return cb ? keyOf(blockHash(cb.block.header)) : undefined;
  });

describe('byzantine: votes for a block no one proposed', () => {
  it('are never counted: the honest replicas commit the proposed block, with its own certificate', () => {
    const net = new Net(4);
    const bogus = sha256(new TextEncoder().encode('a block no one proposed'));
    // Replica 3 is byzantine: before anything is proposed, and again while the real block is being
    // voted on, it sends PREPARE and COMMIT for a block that does not exist, signed with its own key.
    const lie = () => {
      for (const to of [0, 1, 2]) {
        net.inject(3, to, vote(net, 'prepare', 3, 1, bogus));
        net.inject(3, to, vote(net, 'commit', 3, 1, bogus));
      }
    };
    lie();
    net.deliver();
    const t = tx();
    net.submit(0, t);
    lie();
    expect(net.settle(() => net.heights().every((h) => h >= 1))).toBe(true);
    const hashes = committedAt(net, 1, [0, 1, 2, 3]);
    expect(new Set(hashes).size).toBe(1);
    expect(hashes[0]).not.toBe(keyOf(bogus));
    const cb = net.stores[0]![0]!;
    expect(keyOf(cb.certificate.blockHash)).toBe(hashes[0]);
    expect(cb.block.txs.map(keyOf)).toContain(keyOf(t));
    // And it keeps committing afterwards.
    net.submit(1);
    expect(net.settle(() => net.heights().every((h) => h >= 2))).toBe(true);
  });

  it('cannot make a lagging replica commit it: three signatures of the same replica are one vote', () => {
    const net = new Net(4);
    const bogus = sha256(new TextEncoder().encode('still no one proposed it'));
    // The same byzantine vote, repeated, to one replica: a quorum needs three distinct signers.
    for (let k = 0; k < 5; k++) {
      net.inject(3, 2, vote(net, 'prepare', 3, 1, bogus));
      net.inject(3, 2, vote(net, 'commit', 3, 1, bogus));
    }
    net.deliver();
    net.advance(T / 2);
    net.deliver();
    expect(net.heights()).toEqual([0, 0, 0, 0]);
  });
});

describe('byzantine: a validly signed VIEW-CHANGE with forged certificates', () => {
  /**
   * Replica 0, the primary of view 0, is byzantine: it proposes nothing, so the others leave the
   * view; then it signs a VIEW-CHANGE(1) carrying `forge(...)`. The honest three must refuse it
   * (its signature is valid, its certificate is not), move to view 1 without it, and commit the
   * transaction they hold, not the forged block.
   */
  function scenario(
    forge: (net: Net, fake: ReturnType<Net['block']>) => Partial<ViewChange>,
    refused = true,
  ) {
    const net = new Net(4);
    net.crash(0); // silent as a primary; its key still signs what the test forges
    const t = tx();
    for (const i of [1, 2, 3]) net.submit(i, t);
    const fake = net.block(1, 0, genesisHash, [tx()]);
    const forged = signMessage(net.signers[0]!, chainId, {
      type: 'view-change' as const,
      view: 1,
      replica: 0,
      checkpoint: null,
      prepared: [],
      signature: zeroSig,
      ...forge(net, fake),
    });
    // Replicas time out on view 0; the forged VIEW-CHANGE reaches everyone first.
    net.advance(T + 1);
    for (const to of [1, 2, 3]) net.inject(0, to, forged);
    const settled = net.settle(() => [1, 2, 3].every((i) => net.heights()[i]! >= 1));
    expect(settled).toBe(true);
    const hashes = committedAt(net, 1, [1, 2, 3]);
    expect(new Set(hashes).size).toBe(1);
    expect(hashes[0]).not.toBe(keyOf(blockHash(fake.header)));
    expect(net.stores[1]![0]!.block.txs.map(keyOf)).toContain(keyOf(t));
    // Refused for its forged signatures (its own signature is valid: see the control below); a
    // NEW-VIEW never carried it.
    const faults = net.faults.filter((f) => f.peer === 0).map((f) => f.code);
    if (!refused) {
      expect(faults).toEqual([]);
      return net;
    }
    expect(faults.length).toBeGreaterThan(0);
    for (const code of faults) expect(['bad-signature', 'view-change-invalid']).toContain(code);
    const newViews = net.sent.filter((e) => e.message.type === 'new-view');
    expect(newViews.length).toBeGreaterThan(0);
    for (const e of newViews) {
      if (e.message.type !== 'new-view') continue;
      expect(e.message.viewChanges.map((vc) => vc.replica)).not.toContain(0);
    }
    return net;
  }

  it('control: the same VIEW-CHANGE without forged certificates is accepted (its signature is valid)', () => {
    scenario(() => ({}), false);
  });

  it('refuses a prepared certificate whose PREPAREs are forged (the primary part genuine)', () => {
    scenario((net, fake) => {
      const prePrepare = net.prePrepare(0, fake);
      const cert: PreparedCertificate = {
        view: 0,
        header: fake.header,
        prePrepareSignature: prePrepare.signature,
        prepares: [
          { replica: 1, signature: sig64(1) },
          { replica: 2, signature: sig64(2) },
        ],
      };
      return { prepared: [cert] };
    });
  });

  it('refuses a checkpoint whose COMMIT certificate is forged', () => {
    scenario((_net, fake) => ({
      checkpoint: {
        height: 1,
        view: 0,
        blockHash: blockHash(fake.header),
        commits: [
          { replica: 1, signature: sig64(11) },
          { replica: 2, signature: sig64(12) },
          { replica: 3, signature: sig64(13) },
        ],
      },
    }));
  });
});

describe('replay of old valid messages after a restart', () => {
  it('a restarted replica, and the others, fed every message ever sent again, commit nothing twice and keep going', () => {
    const net = new Net(4);
    for (let k = 1; k <= 3; k++) {
      net.submit(k % 4);
      expect(net.settle(() => net.heights().every((h) => h >= k))).toBe(true);
    }
    const old = [...net.sent];
    // Replica 2 restarts from what it persisted; then everything ever sent arrives again, in order,
    // to everyone (an attacker who recorded the traffic, or a network that duplicates it).
    net.crash(2);
    net.start(2);
    for (const e of old) net.inject(e.from, e.to, e.message);
    net.deliver();
    expect(net.heights()).toEqual([3, 3, 3, 3]);
    // The chain goes on, the same on every replica.
    net.submit(1);
    expect(net.settle(() => net.heights().every((h) => h >= 4))).toBe(true);
    for (let h = 1; h <= 4; h++) expect(new Set(committedAt(net, h, [0, 1, 2, 3])).size).toBe(1);
    expect(net.faults.filter((f) => f.code === 'equivocation')).toEqual([]);
  });
});
