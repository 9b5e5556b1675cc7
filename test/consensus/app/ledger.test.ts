/**
 * The ordering rule, the committed state (applyBlock and its persistence) and the ordered pool,
 * through the Ledger's hooks as the core calls them.
 */
import { describe, expect, it } from 'vitest';
import { Ledger, refusalCode } from '../../../src/consensus/app/ledger.ts';
import {
  applyBlock,
  decodeLedgerState,
  encodeLedgerState,
  genesisLedgerState,
  LedgerInvariantError,
  type LedgerState,
} from '../../../src/consensus/app/state.ts';
import { txIdOf } from '../../../src/consensus/app/tx.ts';
import type { ChainContext, OrderHooks } from '../../../src/consensus/core/config.ts';
import { blockHash } from '../../../src/consensus/core/signing.ts';
import { toHex } from '../../../src/crypto/hash.ts';
import { blockOf, chainOf, genesisHash, registryOf, type SignedTx, TestGateway } from './fixtures.ts';

function setup(limits = {}) {
  const a = new TestGateway('acme', 'gw-1');
  const b = new TestGateway('bolt', 'gw-1');
  const ledger = new Ledger({ registry: registryOf(a, b), genesisHash, limits });
  return { a, b, ledger, order: ledger.orderHooks() };
}

const txs = (batches: SignedTx[]) => batches.map((b) => b.tx);
const code = (r: string | null) => (r === null ? null : r.slice(0, r.indexOf(':')));
const budget = { txsMax: 4096, bytesMax: 1 << 20 };

/** Admits transactions as the core would (checkTx first). */
function admit(ledger: Ledger, order: OrderHooks, list: Uint8Array[], nowMs = 0): (string | null)[] {
  return list.map((tx) => {
    const bad = ledger.checkTx(tx);
    if (bad) return bad;
    return order.admit(txIdOf(tx), tx, nowMs);
  });
}

const hexIds = (ids: Uint8Array[]) => ids.map(toHex);

describe('the ordering rule (checkBlock)', () => {
  it('accepts each gateway continuing its chain, interleaved, on committed state and uncommitted ancestors', () => {
    const { a, b, ledger } = setup();
    const [a1, a2, a3, a4] = a.sign(4);
    const [b1, b2] = b.sign(2);
    const [block1] = chainOf(txs([a1!, b1!]));
    ledger.apply(block1!);
    const ancestor = blockOf(2, blockHash(block1!.header), txs([a2!]));
    const chain = { appliedHeight: 1, ancestors: [ancestor] };
    expect(ledger.checkBlock(txs([b2!, a3!, a4!]), chain)).toBeNull();
    expect(ledger.checkBlock(txs([a3!, b2!, a4!]), chain)).toBeNull();
  });

  it('refuses skipping, reordering, duplicating and replaying events, and forks', () => {
    const { a, ledger } = setup();
    const [a1, a2, a3] = a.sign(3);
    const [block1] = chainOf(txs([a1!]));
    ledger.apply(block1!);
    const ancestor = blockOf(2, blockHash(block1!.header), txs([a2!]));
    const onAncestor: ChainContext = { appliedHeight: 1, ancestors: [ancestor] };
    const onTip: ChainContext = { appliedHeight: 1, ancestors: [] };
    // An event signed a second time for seq 2 (a faulty gateway): valid alone, not on this chain.
    const fork = new TestGateway('acme', 'gw-1');
    const cases: [string, Uint8Array[], ChainContext][] = [
      ['seq_gap', txs([a3!]), onTip], // a2 skipped
      ['seq_gap', txs([a3!, a2!]), onTip], // reordered: a3 first skips a2
      ['non_monotonic_seq', txs([a1!]), onTip], // replay of a committed event
      ['non_monotonic_seq', txs([a2!]), onAncestor], // replay of an uncommitted ancestor's event
      ['non_monotonic_seq', txs([a3!, a3!]), onAncestor], // twice in one block
      ['seq_gap', [a.sign(1)[0]!.tx], onAncestor], // a4 without a3
    ];
    for (const [expected, list, chain] of cases) expect(code(ledger.checkBlock(list, chain))).toBe(expected);
    fork.head = { seq: 1, id: a1!.id };
    const forked = txs(fork.sign(1));
    // Both keys registered to acme/gw-1: checkBlock checks each batch's key as well as its links.
    const freg = new Ledger({ registry: registryOf(a, fork), genesisHash });
    freg.apply(chainOf(txs([a1!]))[0]!);
    expect(freg.checkTx(forked[0]!)).toBeNull();
    expect(freg.checkBlock(forked, onTip)).toBeNull();
    expect(code(freg.checkBlock(forked, onAncestor))).toBe('non_monotonic_seq');
    // Same seq and prev, another id: the next event of the real chain does not link to it.
    expect(code(freg.checkBlock([...forked, a3!.tx], onTip))).toBe('broken_prev');
    expect(ledger.metrics().blocksRefused).toBe(cases.length);
  });

  it('throws when the runtime has not applied what the core committed', () => {
    const { a, ledger } = setup();
    expect(() => ledger.checkBlock(txs(a.sign(1)), { appliedHeight: 1, ancestors: [] })).toThrow(
      LedgerInvariantError,
    );
  });
});

describe('batches of several events', () => {
  it('continue a gateway from its head to their last event, and are refused when they overlap it', () => {
    const { a, b, ledger, order } = setup();
    const [x, y] = a.sign(10, 5); // seq 1-5, 6-10
    const [z] = b.sign(3, 3);
    const [block1] = chainOf([x!.tx, z!.tx]);
    expect(ledger.checkBlock([x!.tx, z!.tx], { appliedHeight: 0, ancestors: [] })).toBeNull();
    expect(ledger.apply(block1!)).toEqual([
      { chain: 'acme/gw-1', seq: 5, id: x!.id },
      { chain: 'bolt/gw-1', seq: 3, id: z!.id },
    ]);
    expect(ledger.head('acme/gw-1')).toEqual({ seq: 5, id: x!.events[4]!.id });
    const tip = { appliedHeight: 1, ancestors: [] };
    expect(ledger.checkBlock([y!.tx], tip)).toBeNull();
    expect(code(ledger.checkBlock([x!.tx], tip))).toBe('non_monotonic_seq');
    // Another batching of the same gateway's events 4-8 (a faulty gateway re-signing): it starts
    // inside what is committed, so it is refused even though its own chain is sound.
    const regrouped = new TestGateway('acme', 'gw-1');
    regrouped.head = { seq: 3, id: x!.events[2]!.id };
    const [overlap] = regrouped.sign(5, 5);
    const reg = new Ledger({ registry: registryOf(regrouped), genesisHash });
    reg.apply(block1!);
    expect(code(reg.checkBlock([overlap!.tx], tip))).toBe('non_monotonic_seq');
    // The pool links batches by their last event: y is ready once x is committed.
    expect(admit(ledger, order, [y!.tx], 3)).toEqual([null]);
    expect(order.readiness()).toEqual({ count: 1, oldestMs: 3 });
  });
});

describe('the committed state', () => {
  it('folds blocks into per-gateway heads, persists as canonical JSON and reads back', () => {
    const { a, b, ledger } = setup();
    const as = a.sign(3);
    const bs = b.sign(2);
    const blocks = chainOf(txs([as[0]!, bs[0]!]), [], txs([as[1]!, as[2]!, bs[1]!]));
    let state: LedgerState = genesisLedgerState(genesisHash);
    const updates = [];
    for (const block of blocks) {
      state = applyBlock(state, block);
      updates.push(ledger.apply(block));
    }
    expect(updates).toEqual([
      [
        { chain: 'acme/gw-1', seq: 1, id: as[0]!.id },
        { chain: 'bolt/gw-1', seq: 1, id: bs[0]!.id },
      ],
      [],
      [
        { chain: 'acme/gw-1', seq: 3, id: as[2]!.id },
        { chain: 'bolt/gw-1', seq: 2, id: bs[1]!.id },
      ],
    ]);
    expect(state.height).toBe(3);
    expect(state.blockHash).toBe(toHex(blockHash(blocks[2]!.header)));
    const text = encodeLedgerState(state);
    expect(text).toBe(encodeLedgerState(ledger.state));
    expect(decodeLedgerState(text)).toEqual(state);
    expect(() => decodeLedgerState(text.replace('"height":3', '"height": 3'))).toThrow(LedgerInvariantError);
    expect(() => decodeLedgerState('{}')).toThrow(LedgerInvariantError);
    // A restarted ledger loaded from the snapshot continues where it stopped.
    const again = new Ledger({ registry: registryOf(a, b), genesisHash, state: decodeLedgerState(text) });
    const [a4] = a.sign(1);
    expect(again.checkBlock(txs([a4!]), { appliedHeight: 3, ancestors: [] })).toBeNull();
  });

  it('refuses to fold a block that breaks the rule or comes out of order', () => {
    const { a } = setup();
    const [a1, a2] = a.sign(2);
    const s0 = genesisLedgerState(genesisHash);
    const [gap] = chainOf(txs([a2!]));
    expect(() => applyBlock(s0, gap!)).toThrow(/seq_gap/);
    const [b1, b2] = chainOf(txs([a1!]), txs([a2!]));
    expect(() => applyBlock(s0, b2!)).toThrow(/does not follow/);
    const s1 = applyBlock(s0, b1!);
    expect(() => applyBlock(s1, blockOf(2, blockHash(b1!.header), txs([a1!])))).toThrow(/non_monotonic_seq/);
    expect(() => applyBlock(s1, blockOf(2, blockHash(b1!.header), [new Uint8Array([1, 2])]))).toThrow(
      /not a batch/,
    );
  });
});

describe('the ordered pool', () => {
  it('holds a batch until its predecessor is pending, then both are ready; held ones are not work', () => {
    const { a, ledger, order } = setup();
    const [a1, a2, a3] = txs(a.sign(3));
    expect(admit(ledger, order, [a2!, a3!], 10)).toEqual([null, null]);
    expect(order.readiness()).toEqual({ count: 0, oldestMs: null });
    expect(order.isReady(txIdOf(a2!))).toBe(false);
    expect(order.select({ appliedHeight: 0, ancestors: [] }, budget)).toEqual([]);
    expect(admit(ledger, order, [a1!], 50)).toEqual([null]);
    expect(order.readiness()).toEqual({ count: 3, oldestMs: 50 });
    expect(hexIds(order.select({ appliedHeight: 0, ancestors: [] }, budget))).toEqual(
      [a1!, a2!, a3!].map((t) => toHex(txIdOf(t))),
    );
  });

  it('selects per gateway in seq order from the heads at the block, across gateways by arrival, within the budget', () => {
    const { a, b, ledger, order } = setup();
    const as = txs(a.sign(4));
    const bs = txs(b.sign(3));
    // Arrival: b1, a1, a3, b2, a2, a4, b3.
    admit(ledger, order, [bs[0]!, as[0]!, as[2]!, bs[1]!, as[1]!, as[3]!, bs[2]!]);
    const id = (t: Uint8Array) => toHex(txIdOf(t));
    const chain0 = { appliedHeight: 0, ancestors: [] };
    expect(hexIds(order.select(chain0, budget))).toEqual(
      [bs[0]!, as[0]!, bs[1]!, as[1]!, as[2]!, as[3]!, bs[2]!].map(id),
    );
    // With a1, a2 in flight below the block, a continues at a3.
    const ancestor = blockOf(1, genesisHash, [as[0]!, as[1]!]);
    const chain1 = { appliedHeight: 0, ancestors: [ancestor] };
    const picked = order.select(chain1, budget);
    expect(hexIds(picked)).toEqual([bs[0]!, as[2]!, bs[1]!, as[3]!, bs[2]!].map(id));
    expect(
      ledger.checkBlock(
        picked.map((p) => [...as, ...bs].find((t) => id(t) === toHex(p))!),
        chain1,
      ),
    ).toBeNull();
    // A gateway whose next event does not fit stops there; the others go on.
    const small = { txsMax: 3, bytesMax: 1 << 20 };
    expect(order.select(chain0, small)).toHaveLength(3);
    const tight = { txsMax: 10, bytesMax: as[0]!.byteLength + bs[0]!.byteLength + 10 };
    expect(hexIds(order.select(chain0, tight))).toEqual([bs[0]!, as[0]!].map(id));
  });

  it('drops events the ledger has passed (replays, a second event for a seq) after each applied block', () => {
    const a = new TestGateway('acme', 'gw-1');
    const [a1, a2, a3] = a.sign(3);
    const fork = new TestGateway('acme', 'gw-1');
    const forkLedger = new Ledger({ registry: registryOf(a, fork), genesisHash });
    const fo = forkLedger.orderHooks();
    fork.head = { seq: 1, id: a1!.id };
    const [f2] = txs(fork.sign(1)); // seq 2, like a2, signed by the same gateway's second key
    expect(admit(forkLedger, fo, [...txs([a1!, a2!, a3!]), f2!])).toEqual([null, null, null, null]);
    expect(fo.readiness().count).toBe(3); // f2 waits: a2 came first for seq 2
    const [block1] = chainOf(txs([a1!, a2!]));
    for (const t of block1!.txs) fo.removed(txIdOf(t)); // the core drops what it committed
    forkLedger.apply(block1!);
    expect(hexIds(fo.refresh(1, 100))).toEqual([toHex(txIdOf(f2!))]);
    expect(fo.readiness().count).toBe(1);
    // Admission refuses what is already passed.
    expect(code(fo.admit(txIdOf(f2!), f2!, 0))).toBe('non_monotonic_seq');
    expect(() => fo.refresh(2, 100)).toThrow(LedgerInvariantError);
  });

  it('keeps readiness age across commits and bounds what one gateway may hold', () => {
    const { a, b, ledger, order } = setup({ pendingPerGatewayMax: 5, heldPerGatewayMax: 2 });
    const as = txs(a.sign(8));
    expect(admit(ledger, order, [as[0]!, as[1]!], 5)).toEqual([null, null]);
    expect(admit(ledger, order, [as[3]!, as[4]!], 6)).toEqual([null, null]);
    expect(code(admit(ledger, order, [as[5]!], 7)[0]!)).toBe('held_full');
    expect(admit(ledger, order, [as[2]!], 8)).toEqual([null]); // ready: the held cap does not apply
    expect(order.readiness()).toEqual({ count: 5, oldestMs: 5 });
    expect(code(admit(ledger, order, [as[5]!], 9)[0]!)).toBe('pending_full');
    // Another gateway is not affected.
    expect(admit(ledger, order, txs(b.sign(1)), 9)).toEqual([null]);
    // a1, a2 commit: a3, a4, a5 stay ready since 8 (when a3 came), not since the commit at 20.
    const [block1] = chainOf([as[0]!, as[1]!]);
    for (const t of block1!.txs) order.removed(txIdOf(t));
    ledger.apply(block1!);
    expect(order.refresh(1, 20)).toEqual([]);
    expect(order.readiness()).toEqual({ count: 4, oldestMs: 8 });
    expect(ledger.metrics().refusals).toEqual({ held_full: 1, pending_full: 1 });
  });

  it('maps core refusals to stable codes', () => {
    expect(refusalCode({ accepted: true })).toBeNull();
    expect(refusalCode({ accepted: false, reason: 'invalid', detail: 'bad_signature: x' })).toBe(
      'bad_signature',
    );
    expect(refusalCode({ accepted: false, reason: 'invalid', detail: 'unknown_key: x' })).toBe('unknown_key');
    expect(refusalCode({ accepted: false, reason: 'committed', detail: '' })).toBe('non_monotonic_seq');
    expect(refusalCode({ accepted: false, reason: 'refused', detail: 'held_full: x' })).toBe('held_full');
    expect(refusalCode({ accepted: false, reason: 'duplicate', detail: '' })).toBe('duplicate');
  });
});
