/**
 * What every validator spends per event on the ledger's rules (docs/ledger.md, "Cost"): checkTx
 * (signature, id, body, shape, canonical bytes) cold and remembered, checkBlock (the ordering rule),
 * folding a committed block into the state, against the reference EventVerifier; then the whole
 * path through a real backup replica: a forwarded batch of events admitted, and the pre-prepare that
 * proposes them checked, each decoded from the wire bytes.
 *
 *   node bench/ledger.ts            # or, from bench/run.ts, the `ledger` suite
 */
import { Ledger } from '../src/consensus/app/ledger.ts';
import { GatewayRegistry } from '../src/consensus/app/registry.ts';
import { applyBlock, genesisLedgerState } from '../src/consensus/app/state.ts';
import { TxChecker, txIdOf } from '../src/consensus/app/tx.ts';
import { emptyPersistedState } from '../src/consensus/core/io.ts';
import { defaultChainLimits } from '../src/consensus/core/limits.ts';
import { Replica } from '../src/consensus/core/replica.ts';
import { signMessage, txRootOf } from '../src/consensus/core/signing.ts';
import type { Block, Message } from '../src/consensus/core/types.ts';
import { decodeMessage, encodeMessage } from '../src/consensus/wire/codec.ts';
import { sha256 } from '../src/crypto/hash.ts';
import { generateKey, type KeyAlgorithm, nodeVerifier, publicKeyRecord } from '../src/crypto/keys.ts';
import type { EventDraft } from '../src/event/draft.ts';
import { EventSigner, emptyHead } from '../src/event/signer.ts';
import { type Figure, perSecond, rate } from './lib.ts';

const encoder = new TextEncoder();
const genesisHash = sha256(encoder.encode('bench ledger genesis'));

function drafts(n: number, from: number): EventDraft[] {
  return Array.from({ length: n }, (_, k) => {
    const i = from + k;
    return {
      kind: 'part_completed',
      dataClass: 'process',
      station: 'ST-10',
      device: 'cnc1',
      sourceTimeMs: 1_763_880_000_000 + i,
      lot: 'LOT-2026-000123',
      order: 'ORD-0042',
      product: `SN-${i}`,
      step: 'OP20-FINISH',
      values: {
        diameter: { v: 25 + (i % 1000) / 1000, unit: 'mm', q: 'good' },
        spindleLoad: { v: 41.5, unit: '%', q: 'good' },
      },
    };
  });
}

interface Workload {
  registry: GatewayRegistry;
  /** Batches in gateway-interleaved order, each gateway's in seq order: one valid block's worth. */
  txs: Uint8Array[];
  /** Events in them. */
  events: number;
  bytes: number;
}

/** `gateways` gateways, `perGateway` events each, signed in batches of `batch` (1: one per event). */
function workload(alg: KeyAlgorithm, gateways: number, perGateway: number, batch = 256): Workload {
  const chains: Uint8Array[][] = [];
  const entries = [];
  for (let g = 0; g < gateways; g++) {
    const key = generateKey(alg);
    const identity = { enterprise: `member-${g % 4}`, site: 'plant1', line: 'line1', gateway: `gw-${g}` };
    entries.push({
      memberId: identity.enterprise,
      gateway: identity.gateway,
      publicKey: publicKeyRecord(key),
    });
    const signer = new EventSigner(identity, key);
    let head = emptyHead;
    const batches: Uint8Array[] = [];
    for (let i = 0; i < perGateway; i += batch) {
      const r = signer.sign(drafts(Math.min(batch, perGateway - i), i), head);
      head = r.head;
      batches.push(r.batch.tx);
    }
    chains.push(batches);
  }
  const txs: Uint8Array[] = [];
  for (let i = 0; i < chains[0]!.length; i++) for (const c of chains) txs.push(c[i]!);
  return {
    registry: new GatewayRegistry(entries),
    txs,
    events: gateways * perGateway,
    bytes: txs.reduce((s, t) => s + t.byteLength, 0),
  };
}

function blockOf(txs: Uint8Array[], height = 1, prevHash = genesisHash, proposer = 0): Block {
  return {
    header: {
      version: 2,
      chainId: 'bench',
      height,
      view: 0,
      prevHash,
      timestampMs: 1_763_880_000_000,
      txRoot: txRootOf(txs.map(txIdOf)),
      txCount: txs.length,
      proposer,
    },
    txs,
  };
}

/** µs per unit of `reps` passes of `body`, each doing `units` units. */
function microsEach(units: number, reps: number, body: () => void): number {
  const t0 = process.hrtime.bigint();
  for (let i = 0; i < reps; i++) body();
  return Number(process.hrtime.bigint() - t0) / 1e3 / (units * reps);
}

/** checkTx on fresh caches (every batch new to the validator), and again on the same bytes. */
async function checkTxFigures(label: string, w: Workload, runs: number, note?: string): Promise<Figure[]> {
  const n = w.events;
  let warm: TxChecker | undefined;
  const cold = await rate(
    `checkTx ${label}`,
    'events/s',
    runs,
    () => {
      warm = new TxChecker({ registry: w.registry });
      const c = warm;
      return perSecond(n, () => {
        // Fresh objects: the scan of a transaction is remembered with the object it was read from.
        for (const tx of w.txs) if (!c.check(tx.slice()).ok) throw new Error('bench batch refused');
      });
    },
    note,
  );
  // A remembered verdict costs per batch, whatever its size: timed over many passes, per batch.
  const again = await rate(
    `checkTx ${label}, same bytes again (proposal after admission)`,
    'µs per batch',
    runs,
    () =>
      microsEach(w.txs.length, 1000, () => {
        for (const tx of w.txs) warm!.check(tx);
      }),
  );
  return [cold, again];
}

/** A backup replica (index 1 of 4) with the ledger: admission of forwarded events, then the proposal. */
async function replicaFigures(w: Workload, runs: number): Promise<Figure[]> {
  const signers = Array.from({ length: 4 }, () => generateKey('ed25519'));
  const validators = signers.map((s) => ({ keyId: s.keyId, alg: s.alg, publicKey: s.publicKey }));
  const limits = {
    ...defaultChainLimits,
    blockTxsMax: w.txs.length,
    blockBytesMax: 8 * 1024 * 1024,
    forwardTxsMax: 1024,
    txBytesMax: defaultChainLimits.txBytesMax,
  };
  const forwards: Uint8Array[] = [];
  for (let i = 0; i < w.txs.length; i += 1024)
    forwards.push(encodeMessage({ type: 'txs', txs: w.txs.slice(i, i + 1024) }));
  const block = blockOf(w.txs, 1, genesisHash, 0);
  const prePrepare = encodeMessage(
    signMessage(signers[0]!, 'bench', {
      type: 'pre-prepare',
      view: 0,
      replica: 0,
      block,
      signature: new Uint8Array(64),
    }),
  );
  let admitMs = 0;
  let proposeMs = 0;
  const once = () => {
    const ledger = new Ledger({ registry: w.registry, genesisHash });
    const replica = new Replica({
      chainId: 'bench',
      validators,
      self: 1,
      signer: signers[1]!,
      verifier: nodeVerifier,
      genesisHash,
      genesisTimestampMs: 0,
      tx: ledger.txHooks(() => false),
      limits,
      local: {
        mempoolTxsMax: 2 * w.txs.length,
        mempoolBytesMax: 64 * 1024 * 1024,
        futureMessagesPerPeerMax: 64,
      },
    });
    const now = 1_763_880_000_000;
    replica.start(emptyPersistedState(), now);
    replica.ready();
    const feed = (bytes: Uint8Array) => {
      const d = decodeMessage(bytes, limits);
      if (!d.ok) throw new Error(d.error.detail);
      replica.receive(0, d.value as Message, now);
      return replica.ready();
    };
    let t0 = performance.now();
    for (const f of forwards) feed(f);
    admitMs = performance.now() - t0;
    if (ledger.metrics().pending !== w.txs.length) throw new Error('bench: not every batch was admitted');
    t0 = performance.now();
    const rd = feed(prePrepare);
    proposeMs = performance.now() - t0;
    if (!rd.messages.some((m) => m.message.type === 'prepare'))
      throw new Error('bench: the backup did not prepare');
  };
  const admitted: number[] = [];
  const proposed: number[] = [];
  const both: number[] = [];
  once();
  for (let i = 0; i < runs; i++) {
    once();
    admitted.push((w.events / admitMs) * 1000);
    proposed.push((w.events / proposeMs) * 1000);
    both.push((w.events / (admitMs + proposeMs)) * 1000);
  }
  const med = (xs: number[]) => [...xs].sort((a, b) => a - b)[xs.length >> 1]!;
  const note = `${w.events} events in ${w.txs.length} batches (${(w.bytes / w.events) | 0} B per envelope) from 8 gateways, decoded from wire bytes`;
  return [
    {
      name: 'replica: admit forwarded batches (decode, checkTx, pool)',
      value: med(admitted),
      unit: 'events/s',
      runs: admitted,
      note,
    },
    {
      name: 'replica: check the pre-prepare of those batches (decode, txRoot, duplicates, checkBlock)',
      value: med(proposed),
      unit: 'events/s',
      runs: proposed,
    },
    { name: 'replica: admission + proposal, per event', value: med(both), unit: 'events/s', runs: both },
  ];
}

export async function benchLedger(runs = 7): Promise<Figure[]> {
  const figures: Figure[] = [];
  const batch = workload('ed25519', 8, 512);
  // Steady state, not the JIT's first passes.
  for (let i = 0; i < 8; i++) {
    const c = new TxChecker({ registry: batch.registry });
    for (const tx of batch.txs) c.check(tx.slice());
  }
  figures.push(
    ...(await checkTxFigures(
      'Ed25519, batches of 256',
      batch,
      runs,
      `${(batch.bytes / batch.events) | 0} B per envelope`,
    )),
  );
  const perEvent = workload('ed25519', 4, 256, 1);
  figures.push(...(await checkTxFigures('Ed25519, a batch per event', perEvent, runs)));
  const p256 = workload('p256', 8, 512);
  figures.push(...(await checkTxFigures('P-256, batches of 256', p256, runs)));

  // The ordering rule on a block of 16 batches of 8 gateways, half of each chain in an ancestor.
  const ledger = new Ledger({ registry: batch.registry, genesisHash });
  for (const tx of batch.txs) if (ledger.checkTx(tx) !== null) throw new Error('bench batch refused');
  const half = batch.txs.length / 2;
  const ancestor = blockOf(batch.txs.slice(0, half));
  const rest = batch.txs.slice(half);
  const chain = { appliedHeight: 0, ancestors: [ancestor] };
  // Both work per batch (its ordering fields), not per event: timed per block of 8 batches.
  figures.push(
    await rate(
      'checkBlock (ordering rule), 8 batches (2,048 events) after an 8-batch ancestor',
      'µs per block',
      runs,
      () =>
        microsEach(1, 2000, () => {
          if (ledger.checkBlock(rest, chain) !== null) throw new Error('bench block refused');
        }),
    ),
  );
  const full = blockOf(batch.txs);
  figures.push(
    await rate('applyBlock (fold a committed block of 16 batches into the heads)', 'µs per block', runs, () =>
      microsEach(1, 2000, () => applyBlock(genesisLedgerState(genesisHash), full)),
    ),
  );
  figures.push(...(await replicaFigures(batch, Math.max(3, runs - 2))));
  return figures;
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const { formatFigures, machine } = await import('./lib.ts');
  console.log(`${new Date().toISOString()} on ${machine()}\n`);
  console.log(formatFigures('Ledger: per-event cost at one validator (one core)', await benchLedger()));
}
