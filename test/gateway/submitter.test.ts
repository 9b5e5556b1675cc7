/**
 * The submitter's contract against an in-memory chain that behaves like a member's validator from
 * the outside (keeps bodies, refuses duplicates and committed batches, loses submissions, goes down,
 * replays final blocks). The real thing, over libp2p and processes, is in test/e2e.
 *
 * Where a test is about the submitter not sending a second copy, the chain is told to accept
 * duplicates (`refusesDuplicates = false`) and counts the copies, so that a submitter bug shows on
 * chain instead of being hidden by the validator's own check. Time is a clock the test moves where
 * the result depends on it, and waits are on events (`until`, `passes`), never fixed sleeps.
 */
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import type {
  ChainClient,
  ChainReceipt,
  CommittedBlockInfo,
  SubmitBatch,
  SubmitVerdict,
} from '../../src/consensus/runtime/client.ts';
import { generateKey } from '../../src/crypto/keys.ts';
import { decodeBatchTx } from '../../src/event/batch.ts';
import type { EventDraft } from '../../src/event/draft.ts';
import { EventSigner } from '../../src/event/signer.ts';
import { BatchVerifier, keyRegistry } from '../../src/event/verify.ts';
import { Submitter } from '../../src/gateway/submitter.ts';
import { silentLogger } from '../../src/log/logger.ts';
import { Outbox } from '../../src/store/outbox.ts';
import { tempDir } from '../helpers/tmp.ts';

const key = generateKey();
const verifier = new BatchVerifier(
  keyRegistry([
    { keyId: key.keyId, alg: key.alg, publicKey: key.publicKey, enterprise: 'acme', gateway: 'gw1' },
  ]),
);
const signer = new EventSigner({ enterprise: 'acme', site: 'p', line: 'l', gateway: 'gw1' }, key);
/** One batch per event: these tests reason about events; multi-event batches have their own below. */
const perEvent = { batchEventsMax: 1 };
const drafts = (n: number) => Array.from({ length: n }, (_, i) => draft(i));
const draft = (i: number): EventDraft => ({
  kind: 'part_completed',
  dataClass: 'process',
  station: 'S',
  device: 'cnc1',
  sourceTimeMs: Date.now(),
  lot: 'LOT-1',
  values: { n: { v: i, q: 'good' } },
});

/**
 * A member's validator seen from outside: a body store (bodies kept unless `keepBodies` is off), a
 * mempool, blocks on demand, batches refused once pending or final.
 */
class MemoryChain implements ChainClient {
  blocks: CommittedBlockInfo[] = [];
  mempool: string[] = [];
  down = false;
  /** Off: a full body store (batches refused). */
  keepBodies = true;
  /** Off: batches accepted but their bodies not confirmed (a store that lost them). */
  confirmBodies = true;
  /** Submissions silently lost (accepted, then never proposed): a crashed primary's mempool. */
  loseNext = 0;
  /** Off: a chain that takes every copy it is given (to count the submitter's copies on chain). */
  refusesDuplicates = true;
  submissions = 0;
  /** Event id → how many times a batch holding it was submitted. */
  readonly copies = new Map<string, number>();
  /** Transaction id → its event ids. */
  readonly events = new Map<string, string[]>();
  /** Transaction ids whose bodies were kept. */
  readonly kept = new Set<string>();
  readonly #subs = new Set<(b: CommittedBlockInfo) => void>();
  readonly #where = new Map<string, ChainReceipt>();

  async submit(batches: readonly SubmitBatch[]): Promise<SubmitVerdict[]> {
    if (this.down) throw new Error('no quorum reachable');
    return batches.map(({ tx, bodies }) => {
      this.submissions += 1;
      const d = decodeBatchTx(tx);
      if (!d.ok) return { accepted: false, reason: 'invalid', detail: d.message, bodiesKept: false };
      const id = Buffer.from(d.batch.txId).toString('hex');
      const ids = d.batch.ids.map((x) => Buffer.from(x).toString('hex'));
      this.events.set(id, ids);
      for (const e of ids) this.copies.set(e, (this.copies.get(e) ?? 0) + 1);
      if (!this.keepBodies || bodies.length !== d.batch.envelopes.length)
        return { accepted: false, reason: 'body_store_full', bodiesKept: false };
      const bodiesKept = this.confirmBodies;
      if (bodiesKept) this.kept.add(id);
      if (this.refusesDuplicates) {
        if (this.#where.has(id)) return { accepted: false, reason: 'committed', bodiesKept };
        if (this.mempool.includes(id)) return { accepted: false, reason: 'duplicate', bodiesKept };
      }
      if (this.loseNext > 0) {
        this.loseNext -= 1;
        return { accepted: true, bodiesKept };
      }
      this.mempool.push(id);
      return { accepted: true, bodiesKept };
    });
  }

  /** Commits up to `max` pending batches in one block. */
  commit(max = 1000): void {
    const txIds = this.mempool.splice(0, max);
    if (txIds.length === 0) return;
    const b = {
      height: this.blocks.length + 1,
      blockHash: String(this.blocks.length + 1).padStart(64, '0'),
      txIds,
      timestampMs: Date.now(),
      header: {},
      certificate: {},
    };
    txIds.forEach((id, index) => {
      if (!this.#where.has(id)) this.#where.set(id, { height: b.height, blockHash: b.blockHash, index });
    });
    this.blocks.push(b);
    for (const s of this.#subs) s(b);
  }

  subscribe(after: number, onBlock: (b: CommittedBlockInfo) => void): () => void {
    for (const b of this.blocks.slice(after)) onBlock(b);
    this.#subs.add(onBlock);
    return () => this.#subs.delete(onBlock);
  }

  async receipts(ids: readonly string[]): Promise<(ChainReceipt | null)[]> {
    return ids.map((id) => this.#where.get(id) ?? null);
  }

  /** Every event id on chain, in order. */
  onChain(): string[] {
    return this.blocks.flatMap((b) => b.txIds.flatMap((id) => this.events.get(id) ?? []));
  }

  /** Events pending in the mempool. */
  get pendingEvents(): number {
    return this.mempool.reduce((n, id) => n + (this.events.get(id)?.length ?? 0), 0);
  }
}

const running: Submitter[] = [];
afterEach(async () => {
  for (const s of running.splice(0)) await s.stop();
});

async function until(check: () => boolean, what: string, timeoutMs = 5_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 5));
  }
}

/** A clock the test moves; `reads` counts the submitter's looks at it (each pass of its loop reads it). */
function manualClock(startMs = 0) {
  const clock = {
    nowMs: startMs,
    reads: 0,
    read: () => {
      clock.reads++;
      return clock.nowMs;
    },
  };
  return clock;
}

/** Waits until the submitter has looked at the clock `n` more times: a few passes of its loop. */
async function passes(clock: ReturnType<typeof manualClock>, n = 6): Promise<void> {
  const from = clock.reads;
  await until(() => clock.reads >= from + n, `${n} reads of the clock`);
}

function setup(opts: Partial<ConstructorParameters<typeof Submitter>[0]> = {}, path?: string) {
  const file = path ?? join(tempDir('submitter'), 'outbox.db');
  const outbox = Outbox.open({ path: file, verifier, maxBytes: 1 << 30, maxRows: 1e6 });
  const chain = (opts.chain as MemoryChain | undefined) ?? new MemoryChain();
  const s = new Submitter({ outbox, chain, log: silentLogger, tickMs: 5, ...opts });
  running.push(s);
  return { outbox, chain, s, file };
}

describe('submitter', () => {
  it('marks events final only when seen in a block, exactly once, in seq order', async () => {
    const { outbox, chain, s } = setup();
    outbox.append(drafts(300), signer, perEvent);
    s.start();
    await until(() => chain.mempool.length === 300, 'all submitted');
    expect(outbox.stats().pending).toBe(300);
    chain.commit(120);
    chain.commit(1000);
    await until(() => outbox.stats().pending === 0, 'all final');
    const ids = chain.onChain();
    expect(new Set(ids).size).toBe(300);
    expect(ids).toEqual(
      outbox
        .last(300)
        .reverse()
        .map((e) => e.event.id),
    );
    expect(outbox.get(1)).toMatchObject({ committed: true, height: 1 });
    expect(outbox.get(300)).toMatchObject({ committed: true, height: 2 });
    expect(s.stats()).toMatchObject({ committed: 300, inFlight: 0, lastHeight: 2 });
    expect(s.stats().latencyMs.samples).toBe(300);
  });

  it("splits finality latency: from the source's time, and the chain's part from the gateway's", async () => {
    let now = 1_000_000;
    const { outbox, chain, s } = setup({ nowMs: () => now });
    // Read by the device 5 s before the gateway signed them (a slow poll, a rule window).
    const signedAt = Date.now();
    outbox.append(
      Array.from({ length: 10 }, (_, i) => ({ ...draft(i), sourceTimeMs: signedAt - 5_000 })),
      signer,
    );
    const gatewayTimeMs = outbox.get(1)!.event.env.gatewayTimeMs;
    now = gatewayTimeMs + 200;
    s.start();
    await until(() => chain.pendingEvents === 10, 'all submitted');
    now = gatewayTimeMs + 300; // final 300 ms after signing
    chain.commit();
    await until(() => outbox.stats().pending === 0, 'all final');
    const { latencyMs, chainLatencyMs } = s.stats();
    expect(chainLatencyMs).toEqual({ p50: 300, p99: 300 });
    expect(latencyMs.p50).toBe(300 + gatewayTimeMs - (signedAt - 5_000));
    expect(latencyMs.p50).toBeGreaterThanOrEqual(5_300);
  });

  it('keeps everything through a chain outage and drains the backlog at the configured rate', async () => {
    const clock = manualClock();
    const rate = 2_000;
    const bucket = 100; // submitBatchMax: the token bucket's size
    const { outbox, chain, s } = setup({
      drainEventsPerSecond: rate,
      submitBatchMax: bucket,
      windowEvents: 5_000,
      nowMs: clock.read,
    });
    chain.down = true;
    s.start();
    outbox.append(drafts(1_000), signer, perEvent);
    await until(() => s.stats().errors > 0, 'a failed submission');
    expect(outbox.stats().pending).toBe(1_000);
    chain.down = false;
    // The clock moves 50 ms at a time: never more than the bucket plus the rate allows, and the
    // backlog keeps pace with the limit (it is the limit, not the chain, that paces it).
    const startMs = clock.nowMs;
    while (chain.mempool.length < 1_000) {
      clock.nowMs += 50;
      const allowed = Math.min(1_000, bucket + (rate * (clock.nowMs - startMs)) / 1000);
      await until(() => chain.mempool.length >= allowed - bucket, `${allowed - bucket} submitted`);
      await passes(clock);
      expect(chain.mempool.length, `at +${clock.nowMs - startMs} ms`).toBeLessThanOrEqual(allowed);
      expect(clock.nowMs - startMs, 'the backlog drained').toBeLessThan(2_000);
    }
    // 1,000 events at 2,000/s with a 100-event bucket: not before 450 ms of the clock.
    expect(clock.nowMs - startMs).toBeGreaterThanOrEqual(450);
    chain.commit(1_000);
    await until(() => outbox.stats().pending === 0, 'backlog final');
    expect(new Set(chain.onChain()).size).toBe(1_000);
  });

  it('submits again what was lost and never gets a second copy on chain', async () => {
    const clock = manualClock();
    const { outbox, chain, s } = setup({ resubmitAfterMs: 100, nowMs: clock.read });
    // This chain takes whatever it is given: only the submitter can keep copies off it.
    chain.refusesDuplicates = false;
    chain.loseNext = 10;
    outbox.append(drafts(50), signer, perEvent);
    s.start();
    await until(() => chain.mempool.length === 40, 'the survivors submitted');
    chain.commit();
    await until(() => outbox.stats().pending === 10, 'the survivors final');
    // Nothing more is sent before resubmitAfterMs has passed without progress.
    await passes(clock);
    expect(chain.submissions).toBe(50);
    clock.nowMs += 100;
    await until(() => chain.submissions > 50, 'a resubmission');
    await passes(clock);
    expect(chain.mempool.length, 'only the lost ones submitted again').toBe(10);
    chain.commit();
    await until(() => outbox.stats().pending === 0, 'all final');
    await passes(clock);
    const ids = outbox
      .last(50)
      .reverse()
      .map((e) => e.event.id);
    // Every event on chain once (this chain does not enforce seq order: the lost ten come last).
    expect(chain.onChain().toSorted(), 'every event on chain once').toEqual(ids.toSorted());
    // The lost ten went twice, the others once: nothing final was sent again.
    expect(ids.map((id) => chain.copies.get(id))).toEqual([...Array(10).fill(2), ...Array(40).fill(1)]);
    expect(s.stats().resubmitted).toBe(10);
  });

  it('does not resubmit while its events keep becoming final, however long the oldest waited', async () => {
    const clock = manualClock();
    const { outbox, chain, s } = setup({
      resubmitAfterMs: 1_000,
      windowEvents: 100,
      submitBatchMax: 100,
      nowMs: clock.read,
    });
    outbox.append(drafts(300), signer, perEvent);
    s.start();
    await until(() => chain.mempool.length === 100, 'a full window in flight');
    // A backlog: 20 final every 400 ms, so each event waits 2 s in flight for its turn.
    for (let round = 1; round <= 6; round++) {
      clock.nowMs += 400;
      chain.commit(20);
      await until(() => s.stats().committed === 20 * round, `round ${round} final`);
      await until(() => s.stats().inFlight === 100, 'the window refilled');
    }
    expect(s.stats().resubmitted).toBe(0);
    // A stall: nothing final for longer than resubmitAfterMs. Now it submits again, then backs off:
    // the next round after 2 × resubmitAfterMs, the ones after that every 4 ×.
    const rounds = () => s.stats().resubmitted / 100;
    clock.nowMs += 1_100;
    await until(() => rounds() === 1, 'a resubmission after the stall');
    await until(() => s.stats().inFlight === 100, 'the window resubmitted');
    for (const [stepMs, expected] of [
      [1_900, 1],
      [100, 2],
      [3_900, 2],
      [100, 3],
      [3_900, 3],
      [100, 4],
    ] as const) {
      const before = rounds();
      clock.nowMs += stepMs;
      if (expected > before) await until(() => rounds() === expected, `round ${expected}`);
      else await passes(clock); // a few passes of the submitter's loop: none may resubmit
      await until(() => s.stats().inFlight === 100, 'the window in flight');
      expect(rounds(), `after ${stepMs} ms more`).toBe(expected);
    }
    chain.commit();
    chain.commit();
    await until(() => outbox.stats().pending === 0, 'all final');
    expect(new Set(chain.onChain()).size).toBe(300);
    expect(chain.onChain()).toHaveLength(300);
    // Its count of resubmissions is what the chain received beyond one copy each.
    const copies = [...chain.copies.values()].reduce((a, b) => a + b, 0);
    expect(copies - 300).toBe(s.stats().resubmitted);
  });

  it('after a restart, marks what became final meanwhile and settles resubmitted final events', async () => {
    const first = setup();
    first.outbox.append(drafts(20), signer, perEvent);
    first.s.start();
    await until(() => first.chain.mempool.length === 20, 'submitted');
    first.chain.commit(5);
    await until(() => first.outbox.stats().pending === 15, 'first block marked');
    await first.s.stop();
    first.chain.commit(10); // final while the gateway is down
    first.outbox.close();
    const second = setup({ chain: first.chain }, first.file);
    // Blocks seen before the restart are not replayed: the last height seen was saved with the marks.
    expect(second.outbox.loadMeta('submitter.lastHeight')).toBe(1);
    second.s.start();
    await until(() => second.outbox.stats().pending === 5, 'replayed block 2 marked');
    first.chain.commit();
    await until(() => second.outbox.stats().pending === 0, 'all final');
    expect(new Set(first.chain.onChain()).size).toBe(20);
    expect(first.chain.onChain()).toHaveLength(20);
    // What became final before or during the restart was not sent again; the 5 still pending were
    // (the restarted gateway cannot know the chain still has them; the validator answers duplicate).
    const ids = second.outbox
      .last(20)
      .reverse()
      .map((e) => e.event.id);
    expect(ids.map((id) => first.chain.copies.get(id))).toEqual([...Array(15).fill(1), ...Array(5).fill(2)]);
  });

  it('submits multi-event batches whole and marks every event of a final batch', async () => {
    const { outbox, chain, s } = setup({ windowEvents: 2_048, submitBatchMax: 1_024 });
    outbox.append(drafts(600), signer, { batchEventsMax: 256 });
    s.start();
    await until(() => chain.mempool.length === 3, 'three batches submitted');
    expect(chain.pendingEvents).toBe(600);
    chain.commit(1);
    await until(() => outbox.stats().pending === 344, 'the first batch final');
    chain.commit();
    await until(() => outbox.stats().pending === 0, 'all final');
    expect(chain.onChain()).toEqual(
      outbox
        .last(600)
        .reverse()
        .map((e) => e.event.id),
    );
    expect(s.stats()).toMatchObject({ committed: 600, inFlight: 0, bodiesKept: 3 });
    expect(s.stats().latencyMs.samples).toBe(600);
  });

  it('keeps a final batch whose bodies the member has not confirmed, sends it again, and lets it go once kept', async () => {
    const { outbox, chain, s } = setup({ resubmitAfterMs: 100 });
    // The validator takes the batches but does not confirm their bodies (its store lost them).
    chain.confirmBodies = false;
    outbox.append(drafts(5), signer, perEvent);
    s.start();
    await until(() => chain.mempool.length === 5, 'submitted');
    chain.commit();
    await until(() => outbox.stats().pending === 0, 'final');
    expect(outbox.stats().bodiesUnconfirmed).toBe(5);
    // Final, however old: still in the outbox, since the bodies may live nowhere else.
    expect(outbox.prune(0, Date.now() + 60_000)).toBe(0);
    expect(outbox.stats().rows).toBe(5);
    // Sent again until the member confirms: then they may go.
    chain.confirmBodies = true;
    await until(() => outbox.stats().bodiesUnconfirmed === 0, 'bodies confirmed');
    expect([...chain.kept].length).toBe(5);
    expect(outbox.prune(0, Date.now() + 60_000)).toBe(5);
    expect(chain.onChain()).toHaveLength(5);
    // A body store that is full refuses new batches: they wait in the outbox, not on the chain.
    chain.keepBodies = false;
    outbox.append(drafts(1), signer, perEvent);
    await until(() => s.stats().refused.body_store_full !== undefined, 'refused: the body store is full');
    expect(chain.mempool).toEqual([]);
    expect(outbox.stats()).toMatchObject({ rows: 1, pending: 1 });
    chain.keepBodies = true;
    await until(() => chain.mempool.length === 1, 'submitted once the store has room');
    chain.commit();
    await until(
      () => outbox.stats().pending === 0 && outbox.stats().bodiesUnconfirmed === 0,
      'final and kept',
    );
  });
});
