/**
 * Directed regression tests for the known PBFT pitfalls (docs/consensus.md), each driven message by
 * message with real Ed25519 keys. The seeded simulator (test/sim) covers the same ground at random;
 * these pin the exact executions.
 */
import { describe, expect, it } from 'vitest';
import { keyOf } from '../../../src/consensus/core/io.ts';
import { blockHash, signMessage } from '../../../src/consensus/core/signing.ts';
import type { CertifiedBlock, Message, SyncResponse, ViewChange } from '../../../src/consensus/core/types.ts';
import { all, chainId, fromReplica, genesisHash, Net, ofType, T, toReplica, tx } from './harness.ts';

const zeroSig = new Uint8Array(64);
const hashKey = (cb: CertifiedBlock | undefined) => (cb ? keyOf(blockHash(cb.block.header)) : undefined);

function viewChange(net: Net, replica: number, view: number): ViewChange {
  return signMessage(net.signers[replica]!, chainId, {
    type: 'view-change',
    view,
    replica,
    checkpoint: null,
    prepared: [],
    signature: zeroSig,
  });
}

function sentBy(net: Net, replica: number, type: Message['type']) {
  return net.sent.filter((e) => e.from === replica && e.message.type === type);
}

describe('normal case', () => {
  it('commits a block at every replica with one certificate from one view', () => {
    const net = new Net(4);
    net.submit(0);
    expect(net.settle(() => net.heights().every((h) => h === 1))).toBe(true);
    const keys = net.stores.map((s) => hashKey(s[0]));
    expect(new Set(keys).size).toBe(1);
    // The primary never sends PREPARE: its pre-prepare is its vote (Castro & Liskov §4.2).
    expect(sentBy(net, 0, 'prepare')).toHaveLength(0);
    expect(net.faults).toEqual([]);
  });

  it('does not commit at h+1 before it is prepared at h (the anchoring rule)', () => {
    const net = new Net(4, { limits: { blockTxsMax: 1, windowHeights: 2 } });
    net.submit(0, tx());
    net.submit(0, tx());
    net.deliver(ofType('pre-prepare'));
    expect(net.replica(1).committedHeight).toBe(0);
    // Every replica sees the PREPAREs for height 2 but none for height 1.
    const atHeight = (h: number) => (e: { message: Message }) =>
      e.message.type === 'prepare' && e.message.height === h;
    net.deliver(atHeight(2));
    expect(net.sent.filter((e) => e.message.type === 'commit')).toHaveLength(0);
    net.deliver(atHeight(1));
    expect(net.settle(() => net.heights().every((h) => h === 2))).toBe(true);
  });
});

describe('pitfall: equivocating primary', () => {
  it('lets at most one of two blocks commit, and a replica that sees both leaves the view at once', () => {
    const net = new Net(4);
    net.crash(0); // the test plays the byzantine primary of view 0
    const a = net.block(1, 0, genesisHash, [tx()]);
    const b = net.block(1, 0, genesisHash, [tx()]);
    net.inject(0, 1, net.prePrepare(0, a));
    net.inject(0, 2, net.prePrepare(0, a));
    net.inject(0, 3, net.prePrepare(0, b));
    net.deliver();
    // 1 and 2 are prepared on a (pre-prepare + their two PREPAREs); 3 voted b and is stuck.
    expect(sentBy(net, 3, 'commit')).toHaveLength(0);
    expect(net.heights()).toEqual([0, 0, 0, 0]);
    // Shown the second pre-prepare, replica 1 holds proof of equivocation.
    net.inject(0, 1, net.prePrepare(0, b));
    net.deliver(toReplica(1));
    expect(net.faults).toContainEqual({ at: 1, peer: 0, code: 'equivocation' });
    expect(net.replica(1).viewChanging).toBe(true);
    // The others time out; view 1 re-proposes a (prepared at 1 and 2), never b.
    expect(net.settle(() => [1, 2, 3].every((i) => net.stores[i]!.length >= 1))).toBe(true);
    for (const i of [1, 2, 3]) expect(hashKey(net.stores[i]![0])).toBe(keyOf(blockHash(a.header)));
  });
});

describe('pitfall: prepared certificate dropped at a view change', () => {
  it('re-proposes a block committed at one replica only, instead of replacing it', () => {
    const net = new Net(4);
    net.submit(0);
    net.deliver(ofType('pre-prepare'));
    net.deliver(ofType('prepare'));
    // Only replica 3 sees the COMMITs: block X is final there and nowhere else.
    net.deliver(all(ofType('commit'), toReplica(3)));
    net.drop(ofType('commit'));
    expect(net.heights()).toEqual([0, 0, 0, 1]);
    const x = hashKey(net.stores[3]![0]);
    // Replica 3 goes down; 0, 1 and 2 hold prepared certificates for X but no commit certificate.
    net.crash(3);
    // They time out and change view. The NEW-VIEW quorum is {0, 1, 2}: X must come back.
    expect(net.settle(() => [0, 1, 2].every((i) => net.stores[i]!.length >= 1))).toBe(true);
    for (const i of [0, 1, 2]) expect(hashKey(net.stores[i]![0])).toBe(x);
    expect(net.replica(1).view).toBeGreaterThan(0);
    const nv = net.sent.find((e) => e.message.type === 'new-view')!.message as Extract<
      Message,
      { type: 'new-view' }
    >;
    expect(nv.viewChanges.every((vc) => vc.prepared.length === 1)).toBe(true);
  });

  it('refuses a NEW-VIEW whose VIEW-CHANGEs were stripped of their prepared certificates', () => {
    const net = new Net(4);
    net.submit(0);
    net.deliver(ofType('pre-prepare'));
    net.deliver(ofType('prepare'));
    net.drop(ofType('commit'));
    net.crash(0);
    // Replicas 1, 2, 3 time out and send VIEW-CHANGE(1); keep them in flight.
    net.advance(T + 1);
    const vcs = net.inflight
      .filter((e) => e.message.type === 'view-change' && e.to === 1)
      .map((e) => e.message as ViewChange);
    expect(vcs.length).toBe(2);
    // A new primary that "forgets" the certificates cannot produce a valid NEW-VIEW: the VIEW-CHANGEs
    // are signed by their senders, so removing a certificate breaks the signature.
    const stripped = vcs.map((vc) => ({ ...vc, prepared: [] }));
    const own = viewChange(net, 1, 1);
    const nv = signMessage(net.signers[1]!, chainId, {
      type: 'new-view' as const,
      view: 1,
      replica: 1,
      viewChanges: [own, ...stripped].sort((p, q) => p.replica - q.replica),
      signature: zeroSig,
    });
    net.drop(toReplica(2));
    net.inject(1, 2, nv);
    net.deliver(toReplica(2));
    expect(net.faults).toContainEqual({ at: 2, peer: 1, code: 'new-view-invalid' });
    expect(net.replica(2).viewChanging).toBe(true);
  });
});

describe('pitfall: a single complaint forcing a view change', () => {
  it('ignores one VIEW-CHANGE and joins on f+1', () => {
    const net = new Net(4);
    for (const i of [0, 1, 2]) net.inject(3, i, viewChange(net, 3, 1));
    net.deliver(ofType('view-change'));
    for (const i of [0, 1, 2]) {
      expect(net.replica(i).view).toBe(0);
      expect(net.replica(i).viewChanging).toBe(false);
    }
    net.submit(0);
    expect(net.settle(() => net.heights().every((h) => h >= 1))).toBe(true);
    expect(net.replica(0).view).toBe(0);
    // A second replica (f+1 = 2 in all) asks too: now an honest one must be among them, so join.
    for (const i of [0, 1]) net.inject(2, i, viewChange(net, 2, 1));
    net.deliver(all(ofType('view-change'), fromReplica(2)));
    expect(net.replica(0).view).toBe(1);
    expect(net.replica(1).view).toBe(1);
  });
});

describe('pitfall: a restart forgetting votes', () => {
  it('never votes for a second block at the same view and height after a restart', () => {
    const net = new Net(4);
    net.crash(0);
    const a = net.block(1, 0, genesisHash, [tx()]);
    const b = net.block(1, 0, genesisHash, [tx()]);
    net.inject(0, 1, net.prePrepare(0, a));
    net.deliver(toReplica(1));
    expect(net.persisted[1]!.votes).toContainEqual(
      expect.objectContaining({ vote: 'prepare', view: 0, height: 1 }),
    );
    net.drop();
    net.crash(1);
    net.start(1);
    net.inject(0, 1, net.prePrepare(0, b));
    net.deliver(toReplica(1));
    const votedB = () =>
      sentBy(net, 1, 'prepare').filter(
        (e) => e.message.type === 'prepare' && keyOf(e.message.blockHash) === keyOf(blockHash(b.header)),
      );
    expect(votedB()).toHaveLength(0);
    expect(net.faults).toContainEqual({ at: 1, peer: 0, code: 'equivocation' });
    // The hazard this guards against: with its state lost, the same replica votes again. That is
    // why a replica restarted without its records counts as one of the f faulty ones.
    net.crash(1);
    net.start(1, true);
    net.inject(0, 1, net.prePrepare(0, b));
    net.deliver(toReplica(1));
    expect(votedB()).toHaveLength(3); // one PREPARE, to each of the 3 others
  });

  it('re-sends its VIEW-CHANGE, with its prepared certificates, after a restart', () => {
    const net = new Net(4);
    net.submit(0);
    net.deliver(ofType('pre-prepare'));
    net.deliver(ofType('prepare'));
    net.drop();
    net.crash(0);
    net.advance(T + 1);
    net.drop();
    expect(net.replica(2).viewChanging).toBe(true);
    net.crash(2);
    net.start(2);
    const vc = net.inflight.find((e) => e.from === 2 && e.message.type === 'view-change')!
      .message as ViewChange;
    expect(vc.view).toBe(1);
    expect(vc.prepared).toHaveLength(1);
  });
});

describe('pitfall: view-change storms', () => {
  it('doubles T after each view change that brings no commit', () => {
    const net = new Net(7);
    net.crash(0);
    net.crash(1);
    net.submit(3);
    const firstSend = (view: number) =>
      net.sent.find((e) => e.from === 3 && e.message.type === 'view-change' && e.message.view === view);
    const at = new Map<number, number>();
    const watch = () => {
      for (const v of [1, 2]) if (!at.has(v) && firstSend(v)) at.set(v, net.nowMs);
      return at.size === 2 && net.stores[3]!.length >= 1;
    };
    expect(net.settle(watch, 5)).toBe(true);
    // View 0 → 1 after T (no progress), 1 → 2 after 2T (no NEW-VIEW: primary 1 is down).
    expect(at.get(2)! - at.get(1)!).toBeGreaterThanOrEqual(2 * T);
    expect(at.get(2)! - at.get(1)!).toBeLessThan(3 * T);
    expect(net.replica(3).view).toBe(2);
  });

  it('keeps an isolated replica at its first view change instead of spinning through views', () => {
    const net = new Net(4);
    net.submit(3); // pending work at replica 3, which then loses the network
    net.drop();
    for (let step = 0; step < 100; step++) {
      net.advance(T);
      net.drop(fromReplica(3));
      net.drop(toReplica(3));
      net.deliver();
    }
    const views = sentBy(net, 3, 'view-change').map((e) => (e.message as ViewChange).view);
    expect(Math.max(...views)).toBe(1);
    expect(net.replica(0).view).toBe(0);
  });
});

describe('pitfall: a busy replica blaming the primary', () => {
  it('judges progress on everything that arrived while it was busy, not on the first message', () => {
    const net = new Net(4);
    net.submit(0);
    // Replica 1 holds the proposal and its progress deadline runs; the COMMITs are on their way.
    net.deliver((e) => e.message.type !== 'commit' || e.to !== 1);
    expect(net.replica(1).committedHeight).toBe(0);
    // Replica 1 was busy for 2T (no tick ran). Its backlog: a STATUS first, then the COMMITs.
    net.nowMs += 2 * T;
    net.inject(2, 1, { type: 'status', view: 0, viewChanging: false, committedHeight: 1 });
    const status = net.inflight.pop()!;
    net.inflight.unshift(status);
    net.deliver(toReplica(1));
    net.advance(0); // the tick that fell due meanwhile, after the backlog (as node.ts feeds it)
    expect(net.replica(1).committedHeight).toBe(1);
    expect(net.replica(1).view).toBe(0);
    expect(net.replica(1).metrics().viewChangeCauses).toEqual({});
    expect(sentBy(net, 1, 'view-change')).toHaveLength(0);
  });

  it('still leaves the view when nothing it received was progress', () => {
    const net = new Net(4);
    net.submit(0);
    net.deliver((e) => e.message.type !== 'commit' || e.to !== 1);
    net.drop((e) => e.message.type === 'commit' && e.to === 1);
    net.nowMs += 2 * T;
    net.inject(2, 1, { type: 'status', view: 0, viewChanging: false, committedHeight: 1 });
    net.deliver(toReplica(1));
    expect(sentBy(net, 1, 'view-change')).toHaveLength(0); // a message never fires a timer
    net.advance(0);
    expect(net.replica(1).metrics().viewChangeCauses).toEqual({ 'progress-timeout': 1 });
  });
});

describe('pitfall: a lagging replica trusting blocks without certificates', () => {
  it('accepts synced blocks only with a valid certificate from the genesis validators', () => {
    const net = new Net(4);
    net.crash(3);
    for (let i = 0; i < 3; i++) {
      net.submit(0);
      expect(net.settle(() => net.stores[0]!.length === i + 1)).toBe(true);
    }
    net.start(3);
    const good = net.stores[0]![0]!;
    const forgeries: [string, CertifiedBlock][] = [
      [
        'too-few-votes',
        { ...good, certificate: { ...good.certificate, commits: good.certificate.commits.slice(0, 2) } },
      ],
      ['certificate-mismatch', { ...good, certificate: { ...net.stores[0]![1]!.certificate, height: 1 } }],
      [
        'bad-signature',
        {
          ...good,
          certificate: {
            ...good.certificate,
            commits: good.certificate.commits.map((c) => ({ ...c, signature: new Uint8Array(64).fill(7) })),
          },
        },
      ],
      ['tx-root', { ...good, block: { ...good.block, txs: [tx()] } }],
    ];
    for (const [code, cb] of forgeries) {
      const resp: SyncResponse = { type: 'sync-response', blocks: [cb] };
      net.inject(1, 3, resp);
      net.deliver(toReplica(3));
      expect(net.stores[3]).toHaveLength(0);
      expect(net.faults).toContainEqual({ at: 3, peer: 1, code });
    }
    // A certified block that does not start at our next height is not accepted either.
    net.inject(1, 3, { type: 'sync-response', blocks: [net.stores[0]![2]!] });
    net.deliver(toReplica(3));
    expect(net.stores[3]).toHaveLength(0);
    // The genuine blocks, fetched by the replica itself once it hears it is behind.
    expect(net.settle(() => net.stores[3]!.length === 3)).toBe(true);
    expect(net.stores[3]!.map(hashKey)).toEqual(net.stores[0]!.map(hashKey));
  });
});

describe('proposal validation', () => {
  it('leaves the view at once on an invalid transaction, then commits in the next view', () => {
    const net = new Net(4);
    net.crash(0);
    const bad = tx();
    bad[0] = 0xee;
    for (const i of [1, 2, 3]) net.inject(0, i, net.prePrepare(0, net.block(1, 0, genesisHash, [bad])));
    net.deliver(ofType('pre-prepare'));
    for (const i of [1, 2, 3]) expect(net.replica(i).viewChanging).toBe(true);
    expect(net.faults.filter((f) => f.code === 'invalid-proposal')).toHaveLength(3);
    expect(sentBy(net, 1, 'prepare')).toHaveLength(0);
    net.deliver();
    for (const i of [1, 2, 3]) expect(net.replica(i).view).toBe(1);
    net.submit(1);
    expect(net.settle(() => [1, 2, 3].every((i) => net.stores[i]!.length === 1))).toBe(true);
  });

  it('waits for its clock instead of voting for a block from the future, and refuses one going back', () => {
    const net = new Net(4);
    net.crash(0);
    const ahead = net.block(1, 0, genesisHash, [tx()], net.nowMs + 30 * T); // drift bound is 10T
    net.inject(0, 1, net.prePrepare(0, ahead));
    net.deliver(toReplica(1));
    expect(sentBy(net, 1, 'prepare')).toHaveLength(0);
    expect(net.replica(1).viewChanging).toBe(false);
    net.advance(20 * T);
    expect(sentBy(net, 1, 'prepare').length).toBeGreaterThan(0);
    const h1 = blockHash(ahead.header);
    const back = net.block(2, 0, h1, [tx()], ahead.header.timestampMs - 1);
    net.inject(0, 1, net.prePrepare(0, back));
    net.deliver(toReplica(1));
    expect(net.faults).toContainEqual({ at: 1, peer: 0, code: 'invalid-proposal' });
  });
});

describe('proposal validation against blocks committed in the same input', () => {
  it('refuses a block repeating a transaction the replica committed while handling the same message', () => {
    // isCommitted answers from the runtime's store, which gets a committed block only after the input
    // that committed it. A pre-prepare buffered for the next height (outside the window) is replayed
    // inside the very input that commits the block below it, when isCommitted cannot see it yet.
    const net = new Net(4, { limits: { windowHeights: 1 } });
    net.crash(0);
    const a = tx();
    const b1 = net.block(1, 0, genesisHash, [a]);
    for (const i of [1, 2, 3]) net.inject(0, i, net.prePrepare(0, b1));
    net.deliver(ofType('pre-prepare', 'prepare'));
    // Replica 1 now holds COMMITs to deliver; first it is handed block 2, which repeats `a`.
    net.inject(0, 1, net.prePrepare(0, net.block(2, 0, blockHash(b1.header), [a, tx()])));
    net.deliver(all(toReplica(1), ofType('pre-prepare')));
    expect(net.replica(1).committedHeight).toBe(0);
    net.deliver(all(toReplica(1), ofType('commit')));
    expect(net.stores[1]).toHaveLength(1);
    expect(
      sentBy(net, 1, 'prepare').filter((e) => e.message.type === 'prepare' && e.message.height === 2),
    ).toEqual([]);
    expect(net.faults).toContainEqual({ at: 1, peer: 0, code: 'invalid-proposal' });
  });
});

describe('mempool and bounds', () => {
  it('refuses duplicates, invalid and committed transactions, and new ones when full', () => {
    const net = new Net(4, { local: { mempoolTxsMax: 4096 }, limits: { blockTxsMax: 4 } });
    const t = tx();
    expect(net.submit(1, t).accepted).toBe(true);
    expect(net.submit(1, t)).toMatchObject({ accepted: false, reason: 'duplicate' });
    const bad = tx();
    bad[0] = 2;
    expect(net.submit(1, bad)).toMatchObject({ accepted: false, reason: 'invalid' });
    expect(net.settle(() => net.heights().every((h) => h === 1))).toBe(true);
    expect(net.submit(2, t)).toMatchObject({ accepted: false, reason: 'committed' });
    const small = new Net(4, { local: { mempoolTxsMax: 4 }, limits: { blockTxsMax: 4 } });
    small.crash(0); // no primary: nothing leaves the mempool
    for (let i = 0; i < 4; i++) expect(small.submit(1).accepted).toBe(true);
    expect(small.submit(1)).toMatchObject({ accepted: false, reason: 'mempool-full' });
  });

  it('prunes logs of committed heights by retention, only below the committed height', () => {
    const net = new Net(4, { local: { retainedHeightsMax: 3 }, limits: { blockTxsMax: 1 } });
    for (let i = 0; i < 8; i++) {
      net.submit(0);
      expect(net.settle(() => net.stores[0]!.length === i + 1)).toBe(true);
    }
    const p = net.persisted[1]!;
    expect(p.votes.every((v) => v.height > 8 - 4)).toBe(true);
    expect(p.prepared.every((x) => x.certificate.header.height > 8 - 4)).toBe(true);
  });
});
