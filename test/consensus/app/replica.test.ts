/**
 * The ledger under the real consensus core: four replicas (real Ed25519, every message through the
 * codec, the harness of test/consensus/core), each with its own Ledger fed the committed blocks
 * before its next input, as the runtime does.
 */
import { describe, expect, it } from 'vitest';
import { Ledger } from '../../../src/consensus/app/ledger.ts';
import { blockHash } from '../../../src/consensus/core/signing.ts';
import type { CertifiedBlock } from '../../../src/consensus/core/types.ts';
import { decodeBatchTx } from '../../../src/event/batch.ts';
import { genesisHash, Net, ofType, T, toReplica } from '../core/harness.ts';
import { registryOf, type SignedTx, TestGateway } from './fixtures.ts';

const bytesOf = (b: SignedTx) => b.tx;

function ledgerNet(gateways: TestGateway[], o: ConstructorParameters<typeof Net>[1] = {}) {
  const registry = registryOf(...gateways);
  const ledgers: Ledger[] = [];
  const net = new Net(4, {
    ...o,
    app: (i) => {
      const ledger = new Ledger({ registry, genesisHash });
      ledgers[i] = ledger;
      return { hooks: (isCommitted) => ledger.txHooks(isCommitted), apply: (b) => ledger.apply(b) };
    },
  });
  return { net, ledgers };
}

/** The events on a replica's chain, as `chain#seq`. */
function onChain(store: CertifiedBlock[]): string[] {
  return store.flatMap((cb) =>
    cb.block.txs.flatMap((t) => {
      const d = decodeBatchTx(t);
      if (!d.ok) throw new Error(`not a batch on the chain: ${d.message}`);
      return d.batch.envelopes.map((e) => `${e.enterprise}/${e.gateway}#${e.seq}`);
    }),
  );
}

const views = (net: Net) => [0, 1, 2, 3].map((i) => net.replica(i).view);

describe('the ledger on four replicas', () => {
  it('commits every event once, in seq order per gateway, whatever order and wherever it arrives', () => {
    const a = new TestGateway('acme', 'gw-1');
    const b = new TestGateway('bolt', 'gw-1');
    const { net, ledgers } = ledgerNet([a, b]);
    const as = a.sign(6).map(bytesOf);
    const bs = b.sign(4).map(bytesOf);
    // The later half first, at other replicas: held, and no reason to suspect anyone.
    for (const t of as.slice(3)) expect(net.submit(2, t).accepted).toBe(true);
    for (const t of bs.slice(2)) expect(net.submit(3, t).accepted).toBe(true);
    net.settle(() => false, T / 2, 10 * T);
    expect(net.heights()).toEqual([0, 0, 0, 0]);
    expect(views(net)).toEqual([0, 0, 0, 0]);
    expect(net.sent.filter((e) => e.message.type === 'view-change')).toEqual([]);
    // Then the rest, with duplicates at several replicas.
    for (const t of as.slice(0, 3)) net.submit(1, t);
    for (const t of bs.slice(0, 2)) net.submit(3, t);
    expect(net.submit(2, as[1]!).accepted).toBe(true);
    // Already forwarded to replica 1 by replica 2: a resubmission is a duplicate there.
    expect(net.submit(1, as[4]!)).toMatchObject({ accepted: false, reason: 'duplicate' });
    expect(net.settle(() => net.stores.every((s) => onChain(s).length === 10))).toBe(true);
    const expected = [
      ...['acme/gw-1#1', 'acme/gw-1#2', 'acme/gw-1#3', 'acme/gw-1#4', 'acme/gw-1#5', 'acme/gw-1#6'],
      ...['bolt/gw-1#1', 'bolt/gw-1#2', 'bolt/gw-1#3', 'bolt/gw-1#4'],
    ];
    for (const s of net.stores) {
      const events = onChain(s);
      expect([...events].sort()).toEqual(expected);
      for (const chain of ['acme/gw-1', 'bolt/gw-1']) {
        const seqs = events.filter((x) => x.startsWith(chain)).map((x) => Number(x.split('#')[1]));
        expect(seqs).toEqual([...seqs].sort((x, y) => x - y));
      }
    }
    expect(new Set(net.stores.map((s) => onChain(s).join())).size).toBe(1);
    expect(ledgers.map((l) => l.state.heads.get('acme/gw-1')?.seq)).toEqual([6, 6, 6, 6]);
    // Replays are refused: the committed event as 'committed', and nothing is pending any more.
    expect(net.submit(1, as[0]!)).toMatchObject({ accepted: false, reason: 'committed' });
    expect(net.replica(1).metrics().mempoolTxs).toBe(0);
    expect(net.faults).toEqual([]);
  });

  it('a gateway missing one event stalls alone, without view changes, and resumes when it arrives', () => {
    const a = new TestGateway('acme', 'gw-1');
    const b = new TestGateway('bolt', 'gw-1');
    const { net, ledgers } = ledgerNet([a, b]);
    const as = a.sign(5).map(bytesOf);
    for (const [i, t] of as.entries()) if (i !== 1) net.submit(1 + (i % 3), t);
    for (const t of b.sign(3).map(bytesOf)) net.submit(2, t);
    expect(net.settle(() => net.stores.every((s) => onChain(s).length === 4))).toBe(true);
    net.settle(() => false, T, 60 * T);
    expect(onChain(net.stores[0]!).sort()).toEqual([
      'acme/gw-1#1',
      'bolt/gw-1#1',
      'bolt/gw-1#2',
      'bolt/gw-1#3',
    ]);
    expect(views(net)).toEqual([0, 0, 0, 0]);
    for (const l of ledgers) expect(l.metrics()).toMatchObject({ pending: 3, ready: 0 });
    net.submit(3, as[1]!);
    expect(net.settle(() => net.stores.every((s) => onChain(s).length === 8))).toBe(true);
    expect(onChain(net.stores[2]!).filter((x) => x.startsWith('acme'))).toEqual(
      ['#1', '#2', '#3', '#4', '#5'].map((s) => `acme/gw-1${s}`),
    );
  });

  it("carries a gap event in a gateway's chain like any other event", () => {
    const a = new TestGateway('acme', 'gw-1');
    const { net, ledgers } = ledgerNet([a]);
    const gap = {
      kind: 'gap' as const,
      dataClass: 'equipment' as const,
      values: {},
      gap: {
        droppedCount: 40,
        firstSourceTimeMs: 1_763_880_000_000,
        lastSourceTimeMs: 1_763_880_004_000,
        afterSeq: 2,
        byKind: { part_completed: 40 },
        reason: 'outbox full',
      },
    };
    const events = [...a.sign(2), ...a.sign(1, 1, gap), ...a.sign(2, 2)];
    expect(events.flatMap((b) => b.events.map((e) => e.env.kind))).toEqual([
      'part_completed',
      'part_completed',
      'gap',
      'part_completed',
      'part_completed',
    ]);
    for (const e of events) expect(net.submit(2, bytesOf(e)).accepted).toBe(true);
    expect(net.settle(() => net.stores.every((s) => onChain(s).length === 5))).toBe(true);
    expect(onChain(net.stores[1]!)).toEqual([1, 2, 3, 4, 5].map((q) => `acme/gw-1#${q}`));
    expect(ledgers[3]!.state.heads.get('acme/gw-1')).toEqual({ seq: 5, id: events[3]!.id });
  });

  it('drops a second event signed for a seq once the ledger has the first', () => {
    const a = new TestGateway('acme', 'gw-1');
    const twin = new TestGateway('acme', 'gw-1'); // a second key of the same gateway, signing its own chain
    const { net, ledgers } = ledgerNet([a, twin]);
    const [a1] = a.sign(1).map(bytesOf);
    const [t1] = twin.sign(1).map(bytesOf); // also seq 1
    expect(net.submit(1, a1!).accepted).toBe(true);
    expect(net.settle(() => net.stores.every((s) => s.length === 1))).toBe(true);
    expect(net.submit(2, t1!)).toMatchObject({ accepted: false, reason: 'refused' });
    expect(ledgers[2]!.metrics().refusals).toEqual({ non_monotonic_seq: 1 });
  });
});

describe('byzantine primaries', () => {
  /** Commits a1, a2 in view 0 with the test playing primary 0, then offers `bad` at height 2. */
  function offer(make: (as: Uint8Array[]) => Uint8Array[][]) {
    const a = new TestGateway('acme', 'gw-1');
    const { net } = ledgerNet([a], { limits: { windowHeights: 2 } });
    net.crash(0);
    const as = a.sign(5).map(bytesOf);
    const b1 = net.block(1, 0, genesisHash, [as[0]!, as[1]!]);
    for (const i of [1, 2, 3]) net.inject(0, i, net.prePrepare(0, b1));
    net.deliver();
    expect(net.heights().slice(1)).toEqual([1, 1, 1]);
    let prev = blockHash(b1.header);
    for (const [k, txs] of make(as).entries()) {
      const block = net.block(2 + k, 0, prev, txs);
      prev = blockHash(block.header);
      for (const i of [1, 2, 3]) net.inject(0, i, net.prePrepare(0, block));
    }
    net.deliver(ofType('pre-prepare'));
    return net;
  }

  const cases: [string, (as: Uint8Array[]) => Uint8Array[][]][] = [
    ['skips an event', (as) => [[as[3]!]]],
    ['reorders events', (as) => [[as[3]!, as[2]!]]],
    ['replays a committed event', (as) => [[as[1]!, as[2]!]]],
    ['repeats an event of an uncommitted ancestor', (as) => [[as[2]!], [as[2]!, as[3]!]]],
    ['repeats an event within the block', (as) => [[as[2]!, as[2]!]]],
  ];
  for (const [what, make] of cases) {
    it(`every honest backup refuses a block that ${what}, and the chain goes on in order`, () => {
      const net = offer(make);
      for (const i of [1, 2, 3]) {
        expect(net.faults).toContainEqual({ at: i, peer: 0, code: 'invalid-proposal' });
        expect(net.replica(i).viewChanging).toBe(true);
      }
      const badHeight =
        make([new Uint8Array(1), new Uint8Array(1), new Uint8Array(1), new Uint8Array(1)]).length + 1;
      const prepares = net.sent.filter((e) => e.message.type === 'prepare' && e.message.height === badHeight);
      expect(prepares).toEqual([]);
      net.deliver();
      expect(net.settle(() => [1, 2, 3].every((i) => net.replica(i).view === 1))).toBe(true);
      net.deliver(toReplica(1, 2, 3));
      expect(net.heights().slice(1)).toEqual([1, 1, 1]);
    });
  }
});
