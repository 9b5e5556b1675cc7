/**
 * The submitter's contract against an in-memory chain that behaves like a member's validator from
 * the outside (keeps bodies, refuses duplicates and committed batches, loses submissions, goes down,
 * replays final blocks). The real thing, over libp2p and processes, is in test/e2e.
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
  submissions = 0;
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
      this.events.set(
        id,
        d.batch.ids.map((x) => Buffer.from(x).toString('hex')),
      );
      if (!this.keepBodies || bodies.length !== d.batch.envelopes.length)
        return { accepted: false, reason: 'body_store_full', bodiesKept: false };
      const bodiesKept = this.confirmBodies;
      if (bodiesKept) this.kept.add(id);
      if (this.#where.has(id)) return { accepted: false, reason: 'committed', bodiesKept };
      if (this.mempool.includes(id)) return { accepted: false, reason: 'duplicate', bodiesKept };
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
      this.#where.set(id, { height: b.height, blockHash: b.blockHash, index });
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
    const { outbox, chain, s } = setup({
      drainEventsPerSecond: 2_000,
      submitBatchMax: 100,
      windowEvents: 5_000,
    });
    chain.down = true;
    s.start();
    outbox.append(drafts(1_000), signer, perEvent);
    await new Promise((r) => setTimeout(r, 100));
    expect(s.stats().errors).toBeGreaterThan(0);
    expect(outbox.stats().pending).toBe(1_000);
    chain.down = false;
    const t0 = Date.now();
    await until(() => chain.mempool.length === 1_000, 'backlog submitted');
    const seconds = (Date.now() - t0) / 1000;
    // 1,000 events at 2,000/s with a 100-event bucket: about 0.45 s; never faster than the limit allows.
    expect(seconds).toBeGreaterThan(0.35);
    chain.commit(1_000);
    await until(() => outbox.stats().pending === 0, 'backlog final');
    expect(new Set(chain.onChain()).size).toBe(1_000);
  });

  it('submits again what was lost and never gets a second copy on chain', async () => {
    const { outbox, chain, s } = setup({ resubmitAfterMs: 100 });
    chain.loseNext = 10;
    outbox.append(drafts(50), signer, perEvent);
    s.start();
    await until(() => chain.mempool.length === 40, 'the survivors submitted');
    chain.commit();
    await until(() => chain.mempool.length === 10, 'the lost ones submitted again');
    chain.commit();
    await until(() => outbox.stats().pending === 0, 'all final');
    expect(chain.onChain()).toHaveLength(50);
    expect(new Set(chain.onChain()).size).toBe(50);
    expect(s.stats().resubmitted).toBeGreaterThan(0);
  });

  it('does not resubmit while its events keep becoming final, however long the oldest waited', async () => {
    let now = 0;
    const { outbox, chain, s } = setup({
      resubmitAfterMs: 1_000,
      windowEvents: 100,
      submitBatchMax: 100,
      nowMs: () => now,
    });
    outbox.append(drafts(300), signer, perEvent);
    s.start();
    await until(() => chain.mempool.length === 100, 'a full window in flight');
    // A backlog: 20 final every 400 ms, so each event waits 2 s in flight for its turn.
    for (let round = 1; round <= 6; round++) {
      now += 400;
      chain.commit(20);
      await until(() => s.stats().committed === 20 * round, `round ${round} final`);
      await until(() => s.stats().inFlight === 100, 'the window refilled');
    }
    expect(s.stats().resubmitted).toBe(0);
    // A stall: nothing final for longer than resubmitAfterMs. Now it submits again, then backs off:
    // the next round after 2 × resubmitAfterMs, the ones after that every 4 ×.
    const rounds = () => s.stats().resubmitted / 100;
    now += 1_100;
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
      now += stepMs;
      if (expected > before) await until(() => rounds() === expected, `round ${expected}`);
      else await new Promise((r) => setTimeout(r, 30)); // a few of the submitter's 5 ms ticks: none may resubmit
      await until(() => s.stats().inFlight === 100, 'the window in flight');
      expect(rounds(), `after ${stepMs} ms more`).toBe(expected);
    }
    chain.commit();
    chain.commit();
    await until(() => outbox.stats().pending === 0, 'all final');
    expect(new Set(chain.onChain()).size).toBe(300);
    expect(chain.onChain()).toHaveLength(300);
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
