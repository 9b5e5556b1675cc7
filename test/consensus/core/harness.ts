/**
 * A hand-driven cluster for directed tests: the test decides which message is delivered, dropped or
 * forged, and when time passes. Real Ed25519 keys; every message goes through the codec. After every
 * `Ready` it checks the runtime contract: each vote a message carries was persisted in that Ready.
 */

import type { LocalLimits, Timing, TxHooks } from '../../../src/consensus/core/config.ts';
import {
  applyRecord,
  emptyPersistedState,
  keyOf,
  type PersistedState,
  type Ready,
  syncResponseFor,
} from '../../../src/consensus/core/io.ts';
import { defaultChainLimits } from '../../../src/consensus/core/limits.ts';
import { Replica } from '../../../src/consensus/core/replica.ts';
import { blockHash, signMessage, txRootOf } from '../../../src/consensus/core/signing.ts';
import type {
  Block,
  CertifiedBlock,
  ChainLimits,
  Message,
  PrePrepare,
  Validator,
} from '../../../src/consensus/core/types.ts';
import { decodeMessage, encodeCertifiedBlock, encodeMessage } from '../../../src/consensus/wire/codec.ts';
import { syncResponseBytesTarget } from '../../../src/consensus/wire/limits.ts';
import { sha256 } from '../../../src/crypto/hash.ts';
import { generateKey, nodeVerifier, type Signer } from '../../../src/crypto/keys.ts';

export const chainId = 'directed';
export const genesisHash = sha256(new TextEncoder().encode('directed genesis'));
export const T = 100;

export interface Envelope {
  from: number;
  to: number;
  message: Message;
}

export type Filter = (e: Envelope) => boolean;
export const ofType =
  (...types: Message['type'][]): Filter =>
  (e) =>
    types.includes(e.message.type);
export const toReplica =
  (...to: number[]): Filter =>
  (e) =>
    to.includes(e.to);
export const fromReplica =
  (...from: number[]): Filter =>
  (e) =>
    from.includes(e.from);
export const all =
  (...fs: Filter[]): Filter =>
  (e) =>
    fs.every((f) => f(e));

let txCounter = 0;
export function tx(): Uint8Array {
  const b = sha256(Uint8Array.of(1, txCounter & 0xff, (txCounter >> 8) & 0xff, 7));
  txCounter++;
  b[0] = 1;
  return b;
}

/** An application under test (default: opaque transactions, valid when `tx[0] === 1`). */
export interface HarnessApp {
  hooks(isCommitted: (id: Uint8Array) => boolean): TxHooks;
  /** Sees every committed block, in order, before the replica's next input (the runtime's contract). */
  apply?(block: Block): void;
}

export class Net {
  readonly n: number;
  readonly signers: Signer[];
  readonly validators: Validator[];
  readonly replicas: (Replica | null)[];
  readonly persisted: PersistedState[];
  readonly stores: CertifiedBlock[][];
  readonly limits: ChainLimits;
  readonly faults: { at: number; peer: number; code: string }[] = [];
  /** Every message ever sent (after 'all' expansion), in order. */
  readonly sent: Envelope[] = [];
  inflight: Envelope[] = [];
  nowMs = 1_000_000;
  readonly #timing: Partial<Timing>;
  readonly #local: Partial<LocalLimits>;
  readonly #appFor?: (replica: number) => HarnessApp;
  readonly apps: (HarnessApp | null)[];

  constructor(
    n: number,
    o: {
      timing?: Partial<Timing>;
      limits?: Partial<ChainLimits>;
      local?: Partial<LocalLimits>;
      /** A fresh application per (re)start; it is shown the stored blocks before the replica starts. */
      app?: (replica: number) => HarnessApp;
    } = {},
  ) {
    this.n = n;
    this.signers = Array.from({ length: n }, () => generateKey('ed25519'));
    this.validators = this.signers.map((s) => ({ keyId: s.keyId, alg: s.alg, publicKey: s.publicKey }));
    this.limits = { ...defaultChainLimits, validatorsMax: n, ...o.limits };
    this.#timing = {
      viewChangeTimeoutMs: T,
      viewChangeTimeoutMaxMs: 64 * T,
      proposeDelayMs: 0,
      statusIntervalMs: 10 * T,
      clockDriftMs: 10 * T,
      retentionMs: 100 * T,
      txCensorshipTimeoutMs: 1000 * T,
      ...o.timing,
    };
    this.#local = o.local ?? {};
    this.#appFor = o.app;
    this.apps = Array.from({ length: n }, () => null);
    this.replicas = Array.from({ length: n }, () => null);
    this.persisted = Array.from({ length: n }, () => emptyPersistedState());
    this.stores = Array.from({ length: n }, () => []);
    for (let i = 0; i < n; i++) this.start(i);
  }

  replica(i: number): Replica {
    const r = this.replicas[i];
    if (!r) throw new Error(`replica ${i} is down`);
    return r;
  }

  /** Starts replica i from its persisted state (or from nothing, store included, if `lose`). */
  start(i: number, lose = false): void {
    if (lose) {
      this.persisted[i] = emptyPersistedState();
      this.stores[i] = [];
    }
    const store = this.stores[i]!;
    const app = this.#appFor?.(i) ?? null;
    this.apps[i] = app;
    for (const cb of store) app?.apply?.(cb.block);
    const txId = (t: Uint8Array) => (app ? hooks.txId(t) : sha256(t));
    const isCommitted = (id: Uint8Array) =>
      store.some((cb) => cb.block.txs.some((t) => keyOf(txId(t)) === keyOf(id)));
    const hooks: TxHooks = app
      ? app.hooks(isCommitted)
      : {
          txId,
          checkTx: (t) => (t[0] === 1 ? null : 'bad transaction'),
          isCommitted,
        };
    const r = new Replica({
      chainId,
      validators: this.validators,
      self: i,
      signer: this.signers[i]!,
      verifier: nodeVerifier,
      genesisHash,
      genesisTimestampMs: 0,
      tx: hooks,
      limits: this.limits,
      timing: this.#timing,
      local: this.#local,
    });
    this.replicas[i] = r;
    r.start(structuredClone(this.persisted[i]!), this.nowMs);
    this.#process(i, r.ready());
  }

  crash(i: number): void {
    this.replicas[i] = null;
    this.inflight = this.inflight.filter((e) => e.to !== i);
  }

  submit(i: number, t: Uint8Array = tx()) {
    const r = this.replica(i).submit(t, this.nowMs);
    this.#process(i, this.replica(i).ready());
    return r;
  }

  /** Moves the clock and ticks every running replica. */
  advance(ms: number): void {
    this.nowMs += ms;
    for (let i = 0; i < this.n; i++) {
      const r = this.replicas[i];
      if (!r) continue;
      r.tick(this.nowMs);
      this.#process(i, r.ready());
    }
  }

  /** Injects a message as if `from` had sent it (forgeries, byzantine behaviour). */
  inject(from: number, to: number, message: Message): void {
    this.inflight.push({ from, to, message });
  }

  /** Delivers matching in-flight messages in order, including ones they cause, until none match. */
  deliver(filter: Filter = () => true, max = 100_000): number {
    let count = 0;
    for (;;) {
      const i = this.inflight.findIndex(filter);
      if (i < 0 || count >= max) return count;
      const [e] = this.inflight.splice(i, 1);
      this.#receive(e!);
      count++;
    }
  }

  drop(filter: Filter = () => true): number {
    const before = this.inflight.length;
    this.inflight = this.inflight.filter((e) => !filter(e));
    return before - this.inflight.length;
  }

  /** Delivers everything and ticks in steps of `stepMs` until `done` or `maxMs` of simulated time. */
  settle(done: () => boolean, stepMs = T / 2, maxMs = 200 * T): boolean {
    const end = this.nowMs + maxMs;
    for (;;) {
      this.deliver();
      if (done()) return true;
      if (this.nowMs >= end) return false;
      this.advance(stepMs);
    }
  }

  heights(): number[] {
    return this.stores.map((s) => s.length);
  }

  /** A pre-prepare for `block` signed by the primary of `view` (for byzantine primaries). */
  prePrepare(view: number, block: Block): PrePrepare {
    const primary = view % this.n;
    return signMessage(this.signers[primary]!, chainId, {
      type: 'pre-prepare',
      view,
      replica: primary,
      block,
      signature: new Uint8Array(64),
    });
  }

  /** The transaction id the replicas use: the app's, or SHA-256 of the bytes without one. */
  txIdOf(tx: Uint8Array): Uint8Array {
    const app = this.apps.find((a) => a !== null && a !== undefined);
    return app ? app.hooks(() => false).txId(tx) : sha256(tx);
  }

  block(
    height: number,
    view: number,
    prevHash: Uint8Array,
    txs: Uint8Array[],
    timestampMs = this.nowMs,
  ): Block {
    return {
      header: {
        version: 2,
        chainId,
        height,
        view,
        prevHash,
        timestampMs,
        txRoot: txRootOf(txs.map((t) => this.txIdOf(t))),
        txCount: txs.length,
        proposer: view % this.n,
      },
      txs,
    };
  }

  #receive(e: Envelope): void {
    const r = this.replicas[e.to];
    if (!r) return;
    const d = decodeMessage(encodeMessage(e.message), this.limits);
    if (!d.ok) throw new Error(`harness sent an undecodable message: ${d.error.detail}`);
    if (d.value.type === 'sync-request') {
      const store = this.stores[e.to]!;
      const resp = syncResponseFor(
        d.value,
        (h) => store[h - 1],
        this.limits.syncBlocksMax,
        syncResponseBytesTarget(this.limits),
        (cb) => encodeCertifiedBlock(cb).byteLength,
      );
      this.inflight.push({ from: e.to, to: e.from, message: resp });
      return;
    }
    r.receive(e.from, d.value, this.nowMs);
    this.#process(e.to, r.ready());
  }

  #process(i: number, rd: Ready): void {
    const p = this.persisted[i]!;
    for (const rec of rd.persist) applyRecord(p, rec);
    for (const cb of rd.committed) {
      const store = this.stores[i]!;
      if (cb.block.header.height !== store.length + 1) throw new Error(`replica ${i} committed out of order`);
      store.push(cb);
      p.tip = cb;
      this.apps[i]?.apply?.(cb.block);
    }
    for (const f of rd.faults) this.faults.push({ at: i, peer: f.peer, code: f.code });
    for (const o of rd.messages) {
      const m = o.message;
      // The runtime contract: a vote leaves only after it is persisted (in this Ready or before).
      if (m.type === 'prepare' || m.type === 'commit' || m.type === 'pre-prepare') {
        const height = m.type === 'pre-prepare' ? m.block.header.height : m.height;
        const hash = m.type === 'pre-prepare' ? blockHash(m.block.header) : m.blockHash;
        const voted = p.votes.find((v) => v.vote === m.type && v.height === height && v.view === m.view);
        const committed = (p.tip?.block.header.height ?? 0) >= height;
        if (!committed && (!voted || keyOf(voted.blockHash) !== keyOf(hash))) {
          throw new Error(
            `replica ${i} sent ${m.type} for view ${m.view} height ${height} without persisting it`,
          );
        }
      }
      const targets = o.to === 'all' ? [...Array(this.n).keys()].filter((x) => x !== i) : [o.to];
      for (const to of targets) {
        const e = { from: i, to, message: m };
        this.sent.push(e);
        this.inflight.push(e);
      }
    }
  }
}
