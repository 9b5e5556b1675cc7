/**
 * A simulated IPBFT cluster in one process (TigerBeetle VOPR style): n replicas of the real core,
 * a simulated clock, a network that loses, duplicates, delays, reorders and partitions messages,
 * crashes with restarts from persisted state (or with lost state), clock skew, and byzantine
 * replicas. Every message goes through the real codec (encode → bytes → decode).
 *
 * The checkers run on every commit: no two counted replicas commit different blocks at a height, and
 * every committed block carries a valid certificate from the genesis validators and extends the
 * previous one. A violation throws `SimulationError`; the caller prints the seed.
 *
 * Two applications: opaque transactions (`tx[0]` tags validity), or the ledger (src/consensus/app:
 * signed production events from simulated gateways, gateways.ts). In ledger mode a further checker
 * runs on every commit, written independently of the ledger's code: every committed event verifies
 * with the reference EventVerifier, and each gateway's events on a replica's chain are gap-free, in
 * seq order, each linking to the one before.
 */

import { isConfigTx } from '../../src/consensus/app/config-tx.ts';
import { Ledger, type LedgerLimits } from '../../src/consensus/app/ledger.ts';
import type { GatewayRegistry, RegistryGenesis } from '../../src/consensus/app/registry.ts';
import { chainKeyOf, txIdOf } from '../../src/consensus/app/tx.ts';
import type { LocalLimits, Timing } from '../../src/consensus/core/config.ts';
import {
  applyRecord,
  emptyPersistedState,
  keyOf,
  type PersistedState,
  type Ready,
  type SubmitResult,
  syncResponseFor,
} from '../../src/consensus/core/io.ts';
import { defaultChainLimits } from '../../src/consensus/core/limits.ts';
import { quorumSize } from '../../src/consensus/core/quorum.ts';
import { Replica } from '../../src/consensus/core/replica.ts';
import { blockHash, signMessage, txRootOf } from '../../src/consensus/core/signing.ts';
import type {
  Block,
  CertifiedBlock,
  ChainLimits,
  Message,
  PreparedCertificate,
  Validator,
} from '../../src/consensus/core/types.ts';
import { type VerifyContext, verifyCertifiedBlock } from '../../src/consensus/core/verify.ts';
import { decodeMessage, encodeCertifiedBlock, encodeMessage } from '../../src/consensus/wire/codec.ts';
import { syncResponseBytesTarget } from '../../src/consensus/wire/limits.ts';
import { sha256 } from '../../src/crypto/hash.ts';
import type { Signer } from '../../src/crypto/keys.ts';
import { decodeBatchTx } from '../../src/event/batch.ts';
import { BatchVerifier } from '../../src/event/verify.ts';
import type { SimGateway } from './gateways.ts';
import { Heap } from './heap.ts';
import { simKeys, simVerifier } from './keys.ts';
import { checkLedgerBlock } from './ledger-checker.ts';
import type { Rng } from './rng.ts';

export class SimulationError extends Error {
  override name = 'SimulationError';
}

export const behaviors = [
  'honest',
  /** As primary, sends one block to half the backups and another to the rest. */
  'equivocate',
  /** As primary, proposes blocks holding an invalid transaction. */
  'invalid-proposals',
  /** Sends PREPARE/COMMIT for a random digest to half the replicas. */
  'conflicting-votes',
  /** Also sends random bytes and corrupted messages. */
  'garbage',
  /** Hides its prepared certificates in VIEW-CHANGE (so NEW-VIEW quorums miss blocks it prepared). */
  'hide-prepared',
  /** Reports, per height, the oldest-view prepared certificate it ever held instead of the newest. */
  'stale-prepared',
  /** Sends nothing at all. */
  'silent',
  /** Any of the above, chosen per message. */
  'mixed',
] as const;

/**
 * Byzantine primaries of the ledger scenarios: blocks whose batches are each validly signed but
 * break the ordering rule, or forged. Kept apart from `behaviors` so the opaque scenarios draw exactly as before.
 */
export const ledgerBehaviors = [
  /** Leaves out an event and keeps a later one of the same gateway (a gap). */
  'skip-events',
  /** Puts a gateway's events out of seq order. */
  'reorder-events',
  /** Repeats an event of the block, or of the block's parent. */
  'duplicate-events',
  /** Adds an event already on its chain. */
  'replay-events',
  /**
   * Swaps a batch for a forged twin (the same header and signature over a changed envelope) in its
   * blocks and in the transactions it forwards: a replica that trusted a verdict by header and
   * signature alone would take the forgery.
   */
  'forge-events',
] as const;
export type Behavior = (typeof behaviors)[number] | (typeof ledgerBehaviors)[number];

export interface NetworkConditions {
  lossP: number;
  duplicateP: number;
  delayMinMs: number;
  delayMaxMs: number;
  /** Share of messages delayed by up to `lateMaxMs` more (stale messages arriving views later). */
  lateP: number;
  lateMaxMs: number;
  /** Extra loss per directed link [from][to], added to lossP (asymmetric, flaky links). */
  linkLossP?: number[][];
}

export interface ClusterOptions {
  n: number;
  rng: Rng;
  behaviors?: Behavior[];
  skewMs?: number[];
  timing?: Partial<Timing>;
  limits?: Partial<ChainLimits>;
  local?: Partial<LocalLimits>;
  network?: Partial<NetworkConditions>;
  realKeys?: boolean;
  /** Run the ledger application with these gateways' keys (default: opaque transactions). */
  ledger?: {
    registry: GatewayRegistry;
    limits?: Partial<LedgerLimits>;
    /** Identity roots for configuration transactions (a gateway registered during the run). */
    genesis?: Pick<RegistryGenesis, 'chainId' | 'validators'>;
    /** Every gateway's key, for the checker's signature checks (default `registry`). */
    allKeys?: GatewayRegistry;
  };
  /** Replicas that will lose their state: counted as faulty from the start. */
  faulty?: number[];
  /** Chance that an honest replica crashes right after sending a vote, restarting 1–50 ms later. */
  crashAfterVoteP?: number;
  trace?: (line: string) => void;
}

interface Host {
  index: number;
  behavior: Behavior;
  skewMs: number;
  up: boolean;
  replica: Replica | null;
  persisted: PersistedState;
  store: CertifiedBlock[];
  txIndex: Set<string>;
  wakeGen: number;
  /** Restarted with lost state at least once: counts against f like a byzantine replica. */
  lostState: boolean;
  /** Byzantine memory: the second block per (view, height), the oldest prepared certificate per height. */
  alternates: Map<string, Message>;
  oldestPrepared: Map<number, PreparedCertificate>;
  /** Ledger mode: the application, rebuilt from `store` on every restart. */
  ledger: Ledger | null;
  /** Ledger checker: each gateway's last event on this replica's chain (independent of the ledger). */
  heads: Map<string, { seq: number; id: string }>;
  /** Ledger checker: height of the block registering a gateway not in the genesis, per chain. */
  registeredAt: Map<string, number>;
}

type EventBody =
  | { atMs: number; kind: 'deliver'; from: number; to: number; payload: Payload }
  | { atMs: number; kind: 'wake'; host: number; gen: number }
  | { atMs: number; kind: 'action'; run: () => void };
type Event = EventBody & { seq: number };

/**
 * Encoded bytes, decoded once for all recipients of a broadcast (the core never mutates its
 * inputs); each replica still only ever sees what the real decoder produced from the bytes.
 */
interface Payload {
  bytes: Uint8Array;
  decoded?: ReturnType<typeof decodeMessage>;
}

export const chainId = 'sim';
const genesisHash = sha256(new TextEncoder().encode('sim genesis'));
export const validTxTag = 0x01;
export const invalidTxTag = 0xee;

export function txKey(tx: Uint8Array): string {
  return keyOf(sha256(tx));
}

export class Cluster {
  readonly n: number;
  /** Ledger mode: the gateways (set by the scenario), for the byzantine primaries' attacks. */
  gateways: SimGateway[] = [];
  readonly #ledger?: NonNullable<ClusterOptions['ledger']>;
  /** Ledger mode: chains whose key is not in the genesis (registered by a configuration transaction). */
  readonly #lateChains = new Set<string>();
  /** The reference verifier of committed batches (caches verified signatures by transaction id). */
  readonly #eventVerifier?: BatchVerifier;
  readonly rng: Rng;
  readonly hosts: Host[];
  readonly signers: Signer[];
  readonly validators: Validator[];
  readonly ctx: VerifyContext;
  readonly limits: ChainLimits;
  readonly #timing: Partial<Timing>;
  readonly #local: Partial<LocalLimits>;
  readonly #heap = new Heap<Event>();
  #seq = 0;
  nowMs = 0;
  net: NetworkConditions;
  /** Group per host; messages only flow within a group. null = fully connected. */
  partition: number[] | null = null;
  readonly decided = new Map<number, string>();
  /** Replicas counted as faulty for the certificate checker: byzantine ones and those that lost state. */
  readonly faulty = new Set<number>();
  /** Honest COMMITs seen on the wire, by `${view}:${height}:${hash}`. */
  readonly #commitVotes = new Map<string, Set<number>>();
  /** Heights at which some block is certifiable: honest COMMITs + every faulty replica ≥ quorum. */
  readonly certifiable = new Map<number, string>();
  readonly #quorum: number;
  /** Mutable: the scenario turns it off when the network heals. */
  crashAfterVoteP: number;
  readonly stats = {
    sentByType: new Map<string, number>(),
    bytesSent: 0,
    delivered: 0,
    dropped: 0,
    decodeErrors: 0,
    events: 0,
  };
  readonly #trace?: (line: string) => void;
  #txCounter = 0;

  constructor(o: ClusterOptions) {
    this.n = o.n;
    this.rng = o.rng;
    this.#trace = o.trace;
    const keys = simKeys(o.rng.fork(), o.n, o.realKeys);
    this.signers = keys.signers;
    this.validators = keys.validators;
    this.ctx = {
      chainId,
      validators: keys.validators,
      verifier: keys.verifier,
      txId: (tx) => (o.ledger ? txIdOf(tx) : sha256(tx)),
    };
    this.limits = { ...defaultChainLimits, validatorsMax: o.n, ...o.limits };
    this.#timing = o.timing ?? {};
    this.#local = o.local ?? {};
    this.#ledger = o.ledger;
    if (o.ledger) {
      this.#eventVerifier = new BatchVerifier(o.ledger.allKeys ?? o.ledger.registry, {
        verifier: simVerifier,
      });
      const genesisChains = new Set(o.ledger.registry.chains());
      for (const c of o.ledger.allKeys?.chains() ?? []) if (!genesisChains.has(c)) this.#lateChains.add(c);
    }
    this.net = {
      lossP: 0,
      duplicateP: 0,
      delayMinMs: 1,
      delayMaxMs: 10,
      lateP: 0,
      lateMaxMs: 0,
      ...o.network,
    };
    this.hosts = Array.from({ length: o.n }, (_, i) => ({
      index: i,
      behavior: o.behaviors?.[i] ?? 'honest',
      skewMs: o.skewMs?.[i] ?? 0,
      up: false,
      replica: null,
      persisted: emptyPersistedState(),
      store: [],
      txIndex: new Set<string>(),
      wakeGen: 0,
      lostState: false,
      alternates: new Map(),
      oldestPrepared: new Map(),
      ledger: null,
      heads: new Map(),
      registeredAt: new Map(),
    }));
    this.#quorum = quorumSize(o.n);
    this.crashAfterVoteP = o.crashAfterVoteP ?? 0;
    for (const h of this.hosts) if (h.behavior !== 'honest') this.faulty.add(h.index);
    for (const i of o.faulty ?? []) this.faulty.add(i);
    for (const h of this.hosts) this.restart(h.index, false);
  }

  get ledgerMode(): boolean {
    return this.#ledger !== undefined;
  }

  /** The key a committed transaction is indexed by: the application's transaction id. */
  txKeyOf(tx: Uint8Array): string {
    return this.#ledger ? keyOf(txIdOf(tx)) : txKey(tx);
  }

  /** Hosts whose commits the agreement checker counts: all but the byzantine ones. */
  counted(h: Host): boolean {
    return h.behavior === 'honest';
  }

  /** Honest and never lost its state: the replicas that must stay live. */
  correct(h: Host): boolean {
    return h.behavior === 'honest' && !h.lostState;
  }

  #localNow(h: Host): number {
    return this.nowMs + h.skewMs;
  }

  #schedule(e: EventBody): void {
    this.#heap.push({ ...e, seq: this.#seq++ });
  }

  at(atMs: number, run: () => void): void {
    this.#schedule({ atMs, kind: 'action', run });
  }

  // -------------------------------------------------------------------------------------------
  // Hosts

  crash(i: number): void {
    const h = this.hosts[i]!;
    if (!h.up) return;
    this.#trace?.(`${this.nowMs} crash ${i}`);
    h.up = false;
    h.replica = null;
    h.wakeGen++;
  }

  /** (Re)starts host i from its persisted state, or from nothing (its block store too) if `lose`. */
  restart(i: number, lose: boolean): void {
    const h = this.hosts[i]!;
    if (h.up) this.crash(i);
    if (lose) {
      this.faulty.add(i);
      h.persisted = emptyPersistedState();
      h.store = [];
      h.txIndex = new Set();
      h.heads = new Map();
      h.registeredAt = new Map();
      h.lostState = true;
    }
    this.#trace?.(`${this.nowMs} start ${i}${lose ? ' (state lost)' : ''}`);
    const isCommitted = (id: Uint8Array) => h.txIndex.has(keyOf(id));
    h.ledger = null;
    if (this.#ledger) {
      // The runtime keeps the ledger state with the blocks; rebuilding it from the store is the same.
      const ledger = new Ledger({
        registry: this.#ledger.registry,
        genesis: this.#ledger.genesis,
        genesisHash,
        verifier: simVerifier,
        limits: this.#ledger.limits,
      });
      for (const cb of h.store) ledger.apply(cb.block);
      h.ledger = ledger;
    }
    const replica = new Replica({
      chainId,
      validators: this.validators,
      self: i,
      signer: this.signers[i]!,
      verifier: this.ctx.verifier,
      genesisHash,
      genesisTimestampMs: 0,
      tx: h.ledger
        ? h.ledger.txHooks(isCommitted)
        : {
            txId: (tx) => sha256(tx),
            checkTx: (tx) => (tx[0] === validTxTag ? null : 'not a valid transaction'),
            isCommitted,
          },
      limits: this.limits,
      timing: this.#timing,
      local: this.#local,
    });
    h.replica = replica;
    h.up = true;
    replica.start(structuredClone(h.persisted), this.#localNow(h));
    this.#process(h, replica.ready());
  }

  /** A fresh valid transaction (unique per cluster). */
  newTx(size = 24): Uint8Array {
    const tx = this.rng.bytes(size);
    tx[0] = validTxTag;
    const c = this.#txCounter++;
    tx[1] = c & 0xff;
    tx[2] = (c >> 8) & 0xff;
    tx[3] = (c >> 16) & 0xff;
    return tx;
  }

  submit(i: number, tx: Uint8Array): SubmitResult | null {
    const h = this.hosts[i]!;
    if (!h.up || !h.replica) return null;
    const r = h.replica.submit(tx, this.#localNow(h));
    this.#process(h, h.replica.ready());
    return r;
  }

  #process(h: Host, rd: Ready): void {
    for (const r of rd.persist) applyRecord(h.persisted, r);
    if (this.#trace)
      for (const f of rd.faults)
        this.#trace(`${this.nowMs} ${h.index} fault ${f.peer} ${f.code}: ${f.detail}`);
    for (const cb of rd.committed) this.#commit(h, cb);
    for (const o of rd.messages) {
      const to = o.to === 'all' ? this.hosts.map((x) => x.index).filter((x) => x !== h.index) : [o.to];
      this.#emit(h, to, o.message);
    }
    if (
      this.crashAfterVoteP > 0 &&
      !this.faulty.has(h.index) &&
      rd.messages.some((o) => o.message.type === 'prepare' || o.message.type === 'commit') &&
      this.rng.chance(this.crashAfterVoteP)
    ) {
      // The worst moment to crash: votes just left, nothing more happens until the restart.
      this.crash(h.index);
      this.at(this.nowMs + this.rng.int(1, 50), () => {
        if (!h.up) this.restart(h.index, false);
      });
      return;
    }
    if (rd.wakeAtMs !== null) {
      const gen = ++h.wakeGen;
      this.#schedule({
        atMs: Math.max(rd.wakeAtMs - h.skewMs, this.nowMs + 1),
        kind: 'wake',
        host: h.index,
        gen,
      });
    }
  }

  #commit(h: Host, cb: CertifiedBlock): void {
    const height = cb.block.header.height;
    const fail = (why: string) => {
      throw new SimulationError(`t=${this.nowMs} replica ${h.index} height ${height}: ${why}`);
    };
    if (height !== h.store.length + 1) fail(`committed out of order after ${h.store.length}`);
    const e = verifyCertifiedBlock(this.ctx, this.limits, cb);
    if (e) fail(`committed block without a valid certificate: ${e.detail}`);
    const prev = h.store[height - 2];
    const prevHash = prev ? blockHash(prev.block.header) : genesisHash;
    if (keyOf(prevHash) !== keyOf(cb.block.header.prevHash))
      fail('committed block does not extend the previous one');
    const key = keyOf(blockHash(cb.block.header));
    if (this.counted(h)) {
      const d = this.decided.get(height);
      if (d === undefined) this.decided.set(height, key);
      else if (d !== key) fail(`AGREEMENT VIOLATED: committed ${key}, another replica committed ${d}`);
      const c = this.certifiable.get(height);
      if (c !== undefined && c !== key) fail(`AGREEMENT VIOLATED: committed ${key}, but ${c} is certifiable`);
    }
    if (this.#ledger && this.counted(h))
      checkLedgerBlock(this.#eventVerifier!, this.#lateChains, h, cb, fail);
    for (const tx of cb.block.txs) {
      const k = this.txKeyOf(tx);
      if (h.txIndex.has(k)) fail('a transaction was committed twice');
      h.txIndex.add(k);
    }
    h.store.push(cb);
    h.persisted.tip = cb;
    // The runtime's contract: the application sees the committed block before the next input.
    h.ledger?.apply(cb.block);
    this.#trace?.(
      `${this.nowMs} ${h.index} commit ${height} ${key.slice(0, 8)} (${cb.block.txs.length} txs)`,
    );
  }

  // -------------------------------------------------------------------------------------------
  // Network and byzantine behaviour

  /**
   * The strongest safety check: a certificate is transferable proof, so no two different blocks may
   * ever be certifiable at one height, even if no replica delivers either. Counts every faulty
   * replica as willing to sign anything.
   */
  #watchCommit(h: Host, m: Extract<Message, { type: 'commit' }>): void {
    if (this.faulty.has(h.index)) return;
    const key = keyOf(m.blockHash);
    const id = `${m.view}:${m.height}:${key}`;
    let voters = this.#commitVotes.get(id);
    if (!voters) {
      voters = new Set();
      this.#commitVotes.set(id, voters);
    }
    voters.add(h.index);
    let honest = 0;
    for (const v of voters) if (!this.faulty.has(v)) honest++;
    if (honest + this.faulty.size < this.#quorum) return;
    const prev = this.certifiable.get(m.height) ?? this.decided.get(m.height);
    if (prev !== undefined && prev !== key) {
      throw new SimulationError(
        `t=${this.nowMs} height ${m.height}: AGREEMENT VIOLATED: ${key} is certifiable in view ${m.view}, and so is (or was committed) ${prev}`,
      );
    }
    this.certifiable.set(m.height, key);
  }

  #emit(h: Host, to: number[], m: Message): void {
    if (m.type === 'commit') this.#watchCommit(h, m);
    if (this.#trace && m.type !== 'status' && m.type !== 'txs') {
      const what =
        m.type === 'pre-prepare'
          ? `v${m.view} h${m.block.header.height} ${keyOf(blockHash(m.block.header)).slice(0, 6)} (${m.block.txs.length} txs)`
          : m.type === 'prepare' || m.type === 'commit'
            ? `v${m.view} h${m.height} ${keyOf(m.blockHash).slice(0, 6)}`
            : m.type === 'view-change'
              ? `v${m.view} cp=${m.checkpoint?.height ?? 0} prepared=${m.prepared.map((p) => `${p.header.height}@${p.view}`).join(',')}`
              : m.type === 'new-view'
                ? `v${m.view} from ${m.viewChanges.map((v) => v.replica).join(',')}`
                : m.type === 'sync-request'
                  ? `${m.fromHeight}+${m.count}`
                  : '';
      this.#trace(
        `${this.nowMs} ${h.index}→${to.length === this.n - 1 ? '*' : to.join(',')} ${m.type} ${what}`,
      );
    }
    let behavior = h.behavior;
    if (behavior === 'mixed')
      behavior = this.rng.pick(behaviors.filter((b) => b !== 'mixed' && b !== 'honest'));
    const send = (t: number[], msg: Message) => this.#sendAll(h.index, t, msg);
    const half = Math.ceil(to.length / 2);
    if (behavior === 'silent') return;
    if (behavior === 'equivocate' && m.type === 'pre-prepare' && to.length > 1) {
      // Two fixed blocks per (view, height), split afresh on every (re)transmission: a replica may
      // see one, restart, and then be offered the other.
      const key = `${m.view}:${m.block.header.height}`;
      let other = h.alternates.get(key);
      if (!other) {
        other = this.#alteredPrePrepare(h, m, false);
        h.alternates.set(key, other);
        if (h.alternates.size > 64) h.alternates.delete(h.alternates.keys().next().value!);
      }
      const order = this.rng.shuffle([...to]);
      const cut = this.rng.int(1, to.length - 1);
      send(order.slice(0, cut), m);
      send(order.slice(cut), other);
    } else if (behavior === 'hide-prepared' && m.type === 'view-change' && m.prepared.length > 0) {
      send(to, signMessage(this.signers[h.index]!, chainId, { ...m, prepared: [] }));
    } else if (behavior === 'stale-prepared' && m.type === 'view-change') {
      for (const p of m.prepared) {
        const old = h.oldestPrepared.get(p.header.height);
        if (!old || p.view < old.view) h.oldestPrepared.set(p.header.height, p);
      }
      while (h.oldestPrepared.size > 64) h.oldestPrepared.delete(h.oldestPrepared.keys().next().value!);
      const prepared = m.prepared.map((p) => h.oldestPrepared.get(p.header.height) ?? p);
      send(to, signMessage(this.signers[h.index]!, chainId, { ...m, prepared }));
    } else if (behavior === 'invalid-proposals' && m.type === 'pre-prepare') {
      send(to, this.#alteredPrePrepare(h, m, true));
    } else if ((ledgerBehaviors as readonly string[]).includes(behavior) && m.type === 'pre-prepare') {
      send(to, this.#ledgerAttack(h, m, behavior as (typeof ledgerBehaviors)[number]));
    } else if (behavior === 'forge-events' && m.type === 'txs' && m.txs.length > 0) {
      send(to, {
        type: 'txs',
        txs: m.txs.map((tx) => (this.rng.chance(0.5) && !isConfigTx(tx) ? forgedTwin(tx) : tx)),
      });
    } else if (
      behavior === 'conflicting-votes' &&
      (m.type === 'prepare' || m.type === 'commit') &&
      to.length > 1
    ) {
      send(to.slice(0, half), m);
      send(
        to.slice(half),
        signMessage(this.signers[h.index]!, chainId, { ...m, blockHash: this.rng.bytes(32) }),
      );
    } else {
      send(to, m);
      if (behavior === 'garbage') {
        for (const t of to) {
          if (!this.rng.chance(0.3)) continue;
          const bytes = this.rng.chance(0.5)
            ? this.rng.bytes(this.rng.int(0, 64))
            : corrupt(encodeMessage(m), this.rng);
          this.#send(h.index, t, { bytes }, 'garbage');
        }
      }
    }
  }

  /** Another block at the same height: one transaction fewer, or an invalid one in front. */
  #alteredPrePrepare(h: Host, m: Extract<Message, { type: 'pre-prepare' }>, invalid: boolean): Message {
    let txs = m.block.txs;
    if (invalid) {
      const bad = this.rng.bytes(24);
      bad[0] = invalidTxTag;
      txs = [bad, ...txs.slice(1)];
    } else if (txs.length > 1) txs = txs.slice(0, -1);
    else txs = this.#ledger ? [] : [this.newTx()];
    return this.#resigned(h, m, txs);
  }

  #resigned(h: Host, m: Extract<Message, { type: 'pre-prepare' }>, txs: Uint8Array[]): Message {
    const block: Block = {
      header: { ...m.block.header, txRoot: txRootOf(txs.map(this.ctx.txId)), txCount: txs.length },
      txs,
    };
    return signMessage(this.signers[h.index]!, chainId, { ...m, block });
  }

  /**
   * The primary's block with its events rearranged to break the ordering rule, using only validly
   * signed events (the block's own, the parent's, its chain's, or any gateway's it has seen).
   */
  #ledgerAttack(
    h: Host,
    m: Extract<Message, { type: 'pre-prepare' }>,
    kind: (typeof ledgerBehaviors)[number],
  ): Message {
    const txs = [...m.block.txs];
    const info = txs.map((tx) => {
      if (isConfigTx(tx)) return { chain: '#config', seq: 0 };
      const d = decodeBatchTx(tx);
      if (!d.ok) throw new Error(`bug: a proposal of a ledger primary holds a non-batch: ${d.message}`);
      return {
        chain: chainKeyOf(d.batch.header.enterprise, d.batch.header.gateway),
        seq: d.batch.header.firstSeq,
      };
    });
    // A pair of events of one gateway in this block, if any: (i, j) with i < j.
    let pair: [number, number] | null = null;
    for (let j = 0; j < info.length && !pair; j++)
      for (let i = 0; i < j; i++) if (info[i]!.chain === info[j]!.chain) pair = [i, j];
    // A gateway's next events after this replica's committed head, from what the gateways signed.
    const known = () => {
      const g = this.gateways.length > 0 ? this.rng.pick(this.gateways) : undefined;
      if (!g) return [];
      const head = h.ledger?.head(g.chain).seq ?? 0;
      const next = g.events.findIndex((b) => b.lastSeq > head);
      return next < 0 ? [] : g.events.slice(next, next + 2).map((e) => e.tx);
    };
    switch (kind) {
      case 'skip-events':
        if (pair) txs.splice(pair[0], 1);
        else {
          const next = known();
          if (next.length === 2) txs.unshift(next[1]!);
        }
        break;
      case 'reorder-events':
        if (pair) [txs[pair[0]], txs[pair[1]]] = [txs[pair[1]]!, txs[pair[0]]!];
        else {
          const next = known();
          if (next.length === 2) txs.unshift(next[1]!, next[0]!);
        }
        break;
      case 'duplicate-events': {
        const parent = h.store.at(-1)?.block.txs ?? [];
        const pool = [...txs, ...parent];
        if (pool.length > 0) txs.splice(this.rng.int(0, txs.length), 0, this.rng.pick(pool));
        break;
      }
      case 'replay-events': {
        const committed = h.store.length > 0 ? this.rng.pick(h.store).block.txs : [];
        if (committed.length > 0) txs.splice(this.rng.int(0, txs.length), 0, this.rng.pick(committed));
        break;
      }
      case 'forge-events': {
        const batches = txs.flatMap((tx, i) => (isConfigTx(tx) ? [] : [i]));
        if (batches.length > 0) {
          const i = this.rng.pick(batches);
          txs[i] = forgedTwin(txs[i]!);
        }
        break;
      }
    }
    return this.#resigned(h, m, txs);
  }

  #sendAll(from: number, to: number[], m: Message): void {
    const bytes = encodeMessage(m);
    const payload: Payload = { bytes };
    for (const t of to) this.#send(from, t, payload, m.type);
  }

  #send(from: number, to: number, payload: Payload, type: string): void {
    this.stats.sentByType.set(type, (this.stats.sentByType.get(type) ?? 0) + 1);
    this.stats.bytesSent += payload.bytes.byteLength;
    if (this.partition && this.partition[from] !== this.partition[to]) {
      this.stats.dropped++;
      return;
    }
    if (this.rng.chance(this.net.lossP + (this.net.linkLossP?.[from]?.[to] ?? 0))) {
      this.stats.dropped++;
      return;
    }
    const copies = this.rng.chance(this.net.duplicateP) ? 2 : 1;
    for (let c = 0; c < copies; c++) {
      let delay = this.rng.int(this.net.delayMinMs, this.net.delayMaxMs);
      if (this.net.lateP > 0 && this.rng.chance(this.net.lateP)) delay += this.rng.int(0, this.net.lateMaxMs);
      this.#schedule({ atMs: this.nowMs + delay, kind: 'deliver', from, to, payload });
    }
  }

  #deliver(e: Extract<Event, { kind: 'deliver' }>): void {
    const h = this.hosts[e.to]!;
    if (!h.up || !h.replica) {
      this.stats.dropped++;
      return;
    }
    e.payload.decoded ??= decodeMessage(e.payload.bytes, this.limits);
    const d = e.payload.decoded;
    if (!d.ok) {
      // The net layer counts these against the peer and may drop it; the core never sees them.
      this.stats.decodeErrors++;
      return;
    }
    this.stats.delivered++;
    if (d.value.type === 'sync-request') {
      // The runtime answers from its block store.
      const req = d.value;
      const resp = syncResponseFor(
        req,
        (height) => h.store[height - 1],
        this.limits.syncBlocksMax,
        syncResponseBytesTarget(this.limits),
        (cb) => encodeCertifiedBlock(cb).byteLength,
      );
      if (h.behavior === 'silent') return;
      this.#sendAll(h.index, [e.from], resp);
      return;
    }
    h.replica.receive(e.from, d.value, this.#localNow(h));
    this.#process(h, h.replica.ready());
  }

  // -------------------------------------------------------------------------------------------
  // Running

  /** Runs events until `untilMs` (inclusive) or until `stop` returns true after an event. */
  run(untilMs: number, stop?: () => boolean): boolean {
    for (;;) {
      const next = this.#heap.peek();
      if (!next || next.atMs > untilMs) {
        this.nowMs = Math.max(this.nowMs, untilMs);
        return stop?.() ?? false;
      }
      this.#heap.pop();
      this.nowMs = next.atMs;
      this.stats.events++;
      switch (next.kind) {
        case 'deliver':
          this.#deliver(next);
          break;
        case 'wake': {
          const h = this.hosts[next.host]!;
          if (h.up && h.replica && h.wakeGen === next.gen) {
            h.replica.tick(this.#localNow(h));
            this.#process(h, h.replica.ready());
          }
          break;
        }
        case 'action':
          next.run();
          break;
      }
      if (stop?.()) return true;
    }
  }

  heal(): void {
    this.partition = null;
  }
}

/**
 * The same batch header and signature over one changed envelope: its last envelope's body commitment
 * with one hex digit changed (still well-formed and canonical). Its header and signature, hence the
 * id a well-formed batch would have, are the genuine batch's; only the root check tells them apart.
 */
function forgedTwin(tx: Uint8Array): Uint8Array {
  const text = Buffer.from(tx).toString('latin1');
  const at = text.lastIndexOf('"body":"') + 8;
  if (at < 8) throw new Error('forge-events: not a batch of envelopes');
  const out = tx.slice();
  out[at] = text[at] === 'a' ? 0x62 : 0x61; // 'b' or 'a'
  return out;
}

function corrupt(bytes: Uint8Array, rng: Rng): Uint8Array {
  const out = bytes.slice();
  const flips = rng.int(1, 4);
  for (let i = 0; i < flips && out.length > 0; i++) {
    const at = rng.int(0, out.length - 1);
    out[at] = out[at]! ^ (1 << rng.int(0, 7));
  }
  return out;
}
