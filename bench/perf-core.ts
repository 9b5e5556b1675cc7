/**
 * The CPU an alliance spends per committed event, without SQLite and libp2p: n real replicas
 * (core, codec, ledger, Ed25519) in ONE thread, every message encoded once by its sender and decoded
 * by each receiver, delivered in FIFO order with no latency. A client submits pre-signed batches of
 * BATCH events (one transaction each), round-robin over the replicas, with at most WINDOW events
 * uncommitted (as bench/consensus.ts does). Since everything runs on one thread, wall time is CPU
 * time: µs per event here is the sum over all replicas, which is what 2 cores must pay at n = 4.
 * The measure is insensitive to other load on the machine (up to the cache), so changes to the core,
 * the codec and the event checks can be compared back to back even when the machine is shared.
 *
 *   node bench/perf-core.ts                 # n = 4, 20,000 events, 3 runs
 *   N=7 EVENTS=10000 node bench/perf-core.ts
 *   node --cpu-prof --cpu-prof-dir=/tmp/p bench/perf-core.ts
 *
 * Reported per run: events/s on one thread (= 1e6 / µs per event), blocks and their mean size,
 * messages and bytes on the wire per event, view changes (none expected: there is no latency here).
 */
import { loadavg } from 'node:os';
import { Ledger } from '../src/consensus/app/ledger.ts';
import { GatewayRegistry } from '../src/consensus/app/registry.ts';
import { parseBatchTx, txIdOf } from '../src/consensus/app/tx.ts';
import { emptyPersistedState, type Ready } from '../src/consensus/core/io.ts';
import { defaultChainLimits } from '../src/consensus/core/limits.ts';
import { Replica } from '../src/consensus/core/replica.ts';
import type { ChainLimits, Message } from '../src/consensus/core/types.ts';
import { decodeMessage, encodeMessage } from '../src/consensus/wire/codec.ts';
import { sha256, toHex } from '../src/crypto/hash.ts';
import { generateKey, nodeVerifier, publicKeyRecord } from '../src/crypto/keys.ts';
import { EventSigner, emptyHead } from '../src/event/signer.ts';
import { partCompleted } from '../test/consensus/cluster/peers.ts';
import { machine, median } from './lib.ts';

const env = process.env;
const n = Number(env.N ?? 4);
const events = Number(env.EVENTS ?? 20_000);
const runs = Number(env.RUNS ?? 3);
const windowTxs = Number(env.WINDOW ?? 4_000);
const batch = Number(env.BATCH ?? 100);
const encoder = new TextEncoder();
const genesisHash = sha256(encoder.encode('perf-core genesis'));
const limits: ChainLimits = { ...defaultChainLimits };

interface Workload {
  registry: GatewayRegistry;
  batches: { ids: string[]; bytes: Uint8Array[] }[];
  bytes: number;
}

/** Four gateways (one per member), events shaped like bench/consensus.ts's, in batches of BATCH. */
function workload(count: number): Workload {
  const gws = Array.from({ length: 4 }, (_, g) => {
    const key = generateKey('ed25519');
    const identity = { enterprise: `member-${g + 1}`, site: 'site-1', line: 'line-1', gateway: `gw-${g}` };
    return {
      entry: { memberId: identity.enterprise, gateway: identity.gateway, publicKey: publicKeyRecord(key) },
      signer: new EventSigner(identity, key),
      head: emptyHead,
      n: 0,
    };
  });
  const batches: Workload['batches'] = [];
  let bytes = 0;
  for (let b = 0; b < count / batch; b++) {
    const gw = gws[b % gws.length]!;
    const drafts = Array.from({ length: batch }, () => partCompleted(++gw.n));
    const r = gw.signer.sign(drafts, gw.head);
    gw.head = r.head;
    bytes += r.batch.tx.byteLength;
    batches.push({ ids: [r.batch.txId], bytes: [r.batch.tx] });
  }
  return { registry: new GatewayRegistry(gws.map((g) => g.entry)), batches, bytes };
}

class Fifo<T> {
  #items: T[] = [];
  #at = 0;
  get size(): number {
    return this.#items.length - this.#at;
  }
  push(x: T): void {
    this.#items.push(x);
  }
  shift(): T | undefined {
    if (this.#at >= this.#items.length) return undefined;
    const x = this.#items[this.#at++];
    if (this.#at > 4096) {
      this.#items = this.#items.slice(this.#at);
      this.#at = 0;
    }
    return x;
  }
}

interface Node {
  replica: Replica;
  ledger: Ledger;
  committed: Set<string>;
  height: number;
}

function run(w: Workload) {
  const keys = Array.from({ length: n }, () => generateKey('ed25519'));
  const validators = keys.map((k) => ({ keyId: k.keyId, alg: k.alg, publicKey: k.publicKey }));
  const now = () => performance.timeOrigin + performance.now();
  const nodes: Node[] = keys.map((signer, self) => {
    const ledger = new Ledger({ registry: w.registry, genesisHash });
    const committed = new Set<string>();
    const replica = new Replica({
      chainId: 'perf',
      validators,
      self,
      signer,
      verifier: nodeVerifier,
      genesisHash,
      genesisTimestampMs: 0,
      tx: ledger.txHooks((id) => committed.has(toHex(id))),
      limits,
    });
    return { replica, ledger, committed, height: 0 };
  });
  // Two FIFOs as the runtime's inbound queue (node.ts): consensus messages first, forwarded
  // transactions at least every fourth turn.
  const consensusQ = new Fifo<{ to: number; from: number; bytes: Uint8Array }>();
  const bulkQ = new Fifo<{ to: number; from: number; bytes: Uint8Array }>();
  let turn = 0;
  let messages = 0;
  let wireBytes = 0;
  const byType = new Map<string, number>();
  const wake: (number | null)[] = nodes.map(() => null);
  const blocks: number[] = [];
  const seen = new Set<string>();
  let seenEvents = 0;
  const handle = (i: number, rd: Ready) => {
    const node = nodes[i]!;
    for (const cb of rd.committed) {
      for (const tx of cb.block.txs) node.committed.add(toHex(txIdOf(tx)));
      node.ledger.apply(cb.block);
      node.height = cb.block.header.height;
      if (i === 0) {
        let count = 0;
        for (const tx of cb.block.txs) {
          seen.add(toHex(txIdOf(tx)));
          count += parseBatchTx(tx)?.count ?? 0;
        }
        blocks.push(count);
        seenEvents += count;
      }
    }
    for (const m of rd.messages) {
      if (m.message.type === 'sync-request') continue;
      const bytes = encodeMessage(m.message);
      const targets = m.to === 'all' ? nodes.map((_, k) => k).filter((k) => k !== i) : [m.to];
      for (const to of targets) {
        (m.message.type === 'txs' ? bulkQ : consensusQ).push({ to, from: i, bytes });
        messages++;
        wireBytes += bytes.byteLength;
        byType.set(m.message.type, (byType.get(m.message.type) ?? 0) + bytes.byteLength);
      }
    }
    wake[i] = rd.wakeAtMs;
  };
  for (const [i, node] of nodes.entries()) {
    node.replica.start(emptyPersistedState(), now());
    handle(i, node.replica.ready());
  }
  let next = 0;
  let submitted = 0;
  let rr = 0;
  const t0 = performance.now();
  const vc0 = nodes.reduce((s, x) => s + x.replica.metrics().viewChangesStarted, 0);
  const all = w.batches.length * batch;
  while (seenEvents < all) {
    if (next < w.batches.length && submitted - seenEvents < windowTxs) {
      const b = w.batches[next++]!;
      const i = rr++ % n;
      for (const tx of b.bytes) {
        const r = nodes[i]!.replica.submit(tx, now());
        if (!r.accepted) throw new Error(`refused: ${r.reason} ${r.detail}`);
        handle(i, nodes[i]!.replica.ready());
      }
      submitted += batch;
      continue;
    }
    if (consensusQ.size + bulkQ.size > 0) {
      const m = (++turn % 4 === 0 ? bulkQ.shift() : undefined) ?? consensusQ.shift() ?? bulkQ.shift()!;
      const d = decodeMessage(m.bytes, limits);
      if (!d.ok) throw new Error(d.error.detail);
      nodes[m.to]!.replica.receive(m.from, d.value as Message, now());
      handle(m.to, nodes[m.to]!.replica.ready());
      continue;
    }
    // Idle: fire the earliest timer (proposal delays), as a runtime would when it is due.
    let at = Number.POSITIVE_INFINITY;
    let who = -1;
    for (const [i, t] of wake.entries()) if (t !== null && t < at) [at, who] = [t, i];
    if (who < 0) throw new Error('stuck: nothing to do');
    while (now() < at) {
      /* spin: the timer is due within a few ms */
    }
    nodes[who]!.replica.tick(now());
    handle(who, nodes[who]!.replica.ready());
  }
  const ms = performance.now() - t0;
  const vc = nodes.reduce((s, x) => s + x.replica.metrics().viewChangesStarted, 0) - vc0;
  return {
    perSecond: (all / ms) * 1000,
    usPerEvent: (ms * 1000) / all,
    blocks: blocks.length,
    meanBlock: all / blocks.length,
    messagesPerEvent: messages / all,
    wireBytesPerEvent: wireBytes / all,
    viewChanges: vc,
    causes: nodes.map((x) => x.replica.metrics().viewChangeCauses),
    wireByType: Object.fromEntries([...byType].map(([k, v]) => [k, Math.round(v / all)])),
    checker: nodes.map((x) => {
      const c = x.ledger.metrics().checker;
      return `${(c.checked / all).toFixed(2)} checks (${(c.verdictHits / all).toFixed(2)} hits)`;
    }),
  };
}

console.log(`${new Date().toISOString()} on ${machine()}; n=${n}, ${events} events`);
const w = workload(events);
console.log(`envelopes of ${(w.bytes / events).toFixed(0)} B on the chain, in signed batches of ${batch}`);
run(workload(Math.min(events, 4000))); // warm-up: JIT
const rs = [];
for (let i = 0; i < runs; i++) {
  const r = run(i === 0 ? w : workload(events));
  rs.push(r);
  console.log(
    `  run ${i + 1}: ${r.perSecond.toFixed(0)} events/s on one thread (${r.usPerEvent.toFixed(1)} µs/event, all ${n} replicas), ${r.blocks} blocks of ${r.meanBlock.toFixed(0)}, ${r.messagesPerEvent.toFixed(2)} msgs and ${r.wireBytesPerEvent.toFixed(0)} wire B per event, ${r.viewChanges} view changes, load ${loadavg()[0]!.toFixed(2)}`,
  );
  if (r.viewChanges > 0) console.log('    view changes by cause, per replica', JSON.stringify(r.causes));
  if (env.VERBOSE)
    console.log('    wire B per event by type', r.wireByType, '\n    per replica per event', r.checker);
}
console.log(
  `n=${n}: median ${median(rs.map((r) => r.usPerEvent)).toFixed(1)} µs of CPU per committed event (all replicas, no SQLite, no libp2p)`,
);
