/**
 * The simulator's behaviour layer: what a byzantine replica does to the messages its (real, honest)
 * core emits, and to the sync responses its runtime would answer with. Every message a replica
 * sends goes through {@link sendAs}, every sync response through {@link answerSyncAs}, so a
 * byzantine replica lies on every path an honest one talks on. Byzantine code signs only with its
 * own key (test/sim/keys.ts): what it forges, the others must refuse by the protocol's rules.
 */

import { isConfigTx } from '../../src/consensus/app/config-tx.ts';
import type { Ledger } from '../../src/consensus/app/ledger.ts';
import { chainKeyOf } from '../../src/consensus/app/tx.ts';
import { signMessage, txRootOf } from '../../src/consensus/core/signing.ts';
import type {
  Block,
  CertifiedBlock,
  Message,
  PreparedCertificate,
  SyncResponse,
} from '../../src/consensus/core/types.ts';
import { encodeMessage } from '../../src/consensus/wire/codec.ts';
import type { Signer } from '../../src/crypto/keys.ts';
import { decodeBatchTx } from '../../src/event/batch.ts';
import type { SimGateway } from './gateways.ts';
import type { Rng } from './rng.ts';

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
  /** Sends nothing at all (and answers no sync request). */
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

/**
 * What a byzantine replica does with a sync request (every byzantine behaviour but `silent` draws
 * one per request): answer honestly, forge blocks or certificates, truncate the answer, or withhold it.
 */
export const syncAttacks = ['honest', 'forge', 'truncate', 'withhold'] as const;
export type SyncAttack = (typeof syncAttacks)[number];

/** Ways to forge a certified block; each must be refused by `verifyCertifiedBlock` or the chain check. */
export const syncForgeries = [
  /** Another transaction list under the original header (the root no longer matches). */
  'swap-txs',
  /** A new block (new root, re-signed nothing) under the original certificate (names another hash). */
  'rebuilt-block',
  /** The certificate without its last commit (too few votes). */
  'short-certificate',
  /** The certificate's signatures replaced by the forger's own (they do not verify for the others). */
  'own-signatures',
  /** A block of another height in its place (out of order). */
  'wrong-height',
  /** The certificate claims another view than its signatures cover. */
  'other-view',
] as const;

/** What the behaviour layer needs from the cluster. */
export interface ByzantineContext {
  readonly rng: Rng;
  readonly chainId: string;
  readonly signers: readonly Signer[];
  gateways(): readonly SimGateway[];
  readonly ledgerMode: boolean;
  txId(tx: Uint8Array): Uint8Array;
  /** A fresh valid opaque transaction. */
  newTx(): Uint8Array;
  /** Encodes and sends (counted by type). */
  send(from: number, to: readonly number[], m: Message): void;
  /** Sends raw bytes (garbage) to one replica. */
  sendBytes(from: number, to: number, bytes: Uint8Array): void;
  trace?: (line: string) => void;
  nowMs(): number;
}

/** The per-host state the behaviour layer reads and keeps. */
export interface ByzantineHost {
  readonly index: number;
  readonly behavior: Behavior;
  /** The second block per (view, height), the oldest prepared certificate per height. */
  readonly alternates: Map<string, Message>;
  readonly oldestPrepared: Map<number, PreparedCertificate>;
  readonly store: readonly CertifiedBlock[];
  readonly ledger: Ledger | null;
}

const memoryMax = 64;

/** Sends `m` (what the replica's core emitted) as `h`'s behaviour dictates. */
export function sendAs(c: ByzantineContext, h: ByzantineHost, to: number[], m: Message): void {
  let behavior = h.behavior;
  if (behavior === 'mixed') behavior = c.rng.pick(behaviors.filter((b) => b !== 'mixed' && b !== 'honest'));
  const send = (t: number[], msg: Message) => c.send(h.index, t, msg);
  const signer = c.signers[h.index]!;
  const half = Math.ceil(to.length / 2);
  if (behavior === 'silent') return;
  if (behavior === 'equivocate' && m.type === 'pre-prepare' && to.length > 1) {
    // Two fixed blocks per (view, height), split afresh on every (re)transmission: a replica may
    // see one, restart, and then be offered the other.
    const key = `${m.view}:${m.block.header.height}`;
    let other = h.alternates.get(key);
    if (!other) {
      other = alteredPrePrepare(c, h, m, false);
      h.alternates.set(key, other);
      if (h.alternates.size > memoryMax) h.alternates.delete(h.alternates.keys().next().value!);
    }
    const order = c.rng.shuffle([...to]);
    const cut = c.rng.int(1, to.length - 1);
    send(order.slice(0, cut), m);
    send(order.slice(cut), other);
  } else if (behavior === 'hide-prepared' && m.type === 'view-change' && m.prepared.length > 0) {
    send(to, signMessage(signer, c.chainId, { ...m, prepared: [] }));
  } else if (behavior === 'stale-prepared' && m.type === 'view-change') {
    for (const p of m.prepared) {
      const old = h.oldestPrepared.get(p.header.height);
      if (!old || p.view < old.view) h.oldestPrepared.set(p.header.height, p);
    }
    while (h.oldestPrepared.size > memoryMax) h.oldestPrepared.delete(h.oldestPrepared.keys().next().value!);
    const prepared = m.prepared.map((p) => h.oldestPrepared.get(p.header.height) ?? p);
    send(to, signMessage(signer, c.chainId, { ...m, prepared }));
  } else if (behavior === 'invalid-proposals' && m.type === 'pre-prepare') {
    send(to, alteredPrePrepare(c, h, m, true));
  } else if ((ledgerBehaviors as readonly string[]).includes(behavior) && m.type === 'pre-prepare') {
    send(to, ledgerAttack(c, h, m, behavior as (typeof ledgerBehaviors)[number]));
  } else if (behavior === 'forge-events' && m.type === 'txs' && m.txs.length > 0) {
    send(to, {
      type: 'txs',
      txs: m.txs.map((tx) => (c.rng.chance(0.5) && !isConfigTx(tx) ? forgedTwin(tx) : tx)),
    });
  } else if (
    behavior === 'conflicting-votes' &&
    (m.type === 'prepare' || m.type === 'commit') &&
    to.length > 1
  ) {
    send(to.slice(0, half), m);
    send(to.slice(half), signMessage(signer, c.chainId, { ...m, blockHash: c.rng.bytes(32) }));
  } else {
    send(to, m);
    if (behavior === 'garbage') {
      for (const t of to) {
        if (!c.rng.chance(0.3)) continue;
        const bytes = c.rng.chance(0.5) ? c.rng.bytes(c.rng.int(0, 64)) : corrupt(encodeMessage(m), c.rng);
        c.sendBytes(h.index, t, bytes);
      }
    }
  }
}

/**
 * Answers a sync request with `honest` (what `syncResponseFor` built from `h`'s store) as `h`'s
 * behaviour dictates: an honest replica sends it; a silent one never answers; any other byzantine
 * replica draws per request to answer honestly, forge, truncate or withhold.
 */
export function answerSyncAs(c: ByzantineContext, h: ByzantineHost, to: number, honest: SyncResponse): void {
  if (h.behavior === 'honest') {
    c.send(h.index, [to], honest);
    return;
  }
  const attack: SyncAttack = h.behavior === 'silent' ? 'withhold' : c.rng.pick(syncAttacks);
  c.trace?.(`${c.nowMs()} ${h.index}→${to} sync attack ${attack}`);
  switch (attack) {
    case 'honest':
      c.send(h.index, [to], honest);
      return;
    case 'withhold':
      return;
    case 'truncate': {
      // Fewer blocks than it has (none at all, possibly): not provably a lie, only slower.
      const kept = honest.blocks.length > 0 ? c.rng.int(0, honest.blocks.length - 1) : 0;
      c.send(h.index, [to], { type: 'sync-response', blocks: honest.blocks.slice(0, kept) });
      return;
    }
    case 'forge': {
      if (honest.blocks.length === 0) return;
      const blocks = [...honest.blocks];
      const at = c.rng.int(0, blocks.length - 1);
      blocks[at] = forgeCertifiedBlock(c, h, blocks[at]!, c.rng.pick(syncForgeries));
      c.send(h.index, [to], { type: 'sync-response', blocks });
    }
  }
}

function forgeCertifiedBlock(
  c: ByzantineContext,
  h: ByzantineHost,
  cb: CertifiedBlock,
  how: (typeof syncForgeries)[number],
): CertifiedBlock {
  const cert = cb.certificate;
  switch (how) {
    case 'swap-txs':
      return { ...cb, block: { ...cb.block, txs: otherTxs(c, cb.block.txs) } };
    case 'rebuilt-block': {
      const txs = otherTxs(c, cb.block.txs);
      const header = { ...cb.block.header, txRoot: txRootOf(txs.map(c.txId)), txCount: txs.length };
      return { ...cb, block: { header, txs } };
    }
    case 'short-certificate':
      return { ...cb, certificate: { ...cert, commits: cert.commits.slice(0, -1) } };
    case 'own-signatures': {
      const own = signMessage(c.signers[h.index]!, c.chainId, {
        type: 'commit',
        view: cert.view,
        height: cert.height,
        blockHash: cert.blockHash,
        replica: h.index,
        signature: new Uint8Array(64),
      }).signature;
      return {
        ...cb,
        certificate: { ...cert, commits: cert.commits.map((v) => ({ ...v, signature: own })) },
      };
    }
    case 'wrong-height': {
      const other = h.store.filter((x) => x !== cb);
      return other.length > 0 ? c.rng.pick(other) : { ...cb, certificate: { ...cert, commits: [] } };
    }
    case 'other-view':
      return { ...cb, certificate: { ...cert, view: cert.view + 1 } };
  }
}

/** The transactions with one changed: dropped, or one added (invalid in opaque mode, a replay in ledger mode). */
function otherTxs(c: ByzantineContext, txs: readonly Uint8Array[]): Uint8Array[] {
  if (txs.length > 1 && c.rng.chance(0.5)) return txs.slice(0, -1);
  if (c.ledgerMode) return txs.length > 0 ? [...txs, txs[0]!] : [];
  const bad = c.rng.bytes(24);
  bad[0] = invalidTxTag;
  return [bad, ...txs];
}

export const validTxTag = 0x01;
export const invalidTxTag = 0xee;

/** Another block at the same height: one transaction fewer, or an invalid one in front. */
function alteredPrePrepare(
  c: ByzantineContext,
  h: ByzantineHost,
  m: Extract<Message, { type: 'pre-prepare' }>,
  invalid: boolean,
): Message {
  let txs = m.block.txs;
  if (invalid) {
    const bad = c.rng.bytes(24);
    bad[0] = invalidTxTag;
    txs = [bad, ...txs.slice(1)];
  } else if (txs.length > 1) txs = txs.slice(0, -1);
  else txs = c.ledgerMode ? [] : [c.newTx()];
  return resigned(c, h, m, txs);
}

function resigned(
  c: ByzantineContext,
  h: ByzantineHost,
  m: Extract<Message, { type: 'pre-prepare' }>,
  txs: Uint8Array[],
): Message {
  const block: Block = {
    header: { ...m.block.header, txRoot: txRootOf(txs.map(c.txId)), txCount: txs.length },
    txs,
  };
  return signMessage(c.signers[h.index]!, c.chainId, { ...m, block });
}

/**
 * The primary's block with its events rearranged to break the ordering rule, using only validly
 * signed events (the block's own, the parent's, its chain's, or any gateway's it has seen).
 */
function ledgerAttack(
  c: ByzantineContext,
  h: ByzantineHost,
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
    const gateways = c.gateways();
    const g = gateways.length > 0 ? c.rng.pick(gateways) : undefined;
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
      if (pool.length > 0) txs.splice(c.rng.int(0, txs.length), 0, c.rng.pick(pool));
      break;
    }
    case 'replay-events': {
      const committed = h.store.length > 0 ? c.rng.pick(h.store).block.txs : [];
      if (committed.length > 0) txs.splice(c.rng.int(0, txs.length), 0, c.rng.pick(committed));
      break;
    }
    case 'forge-events': {
      const batches = txs.flatMap((tx, i) => (isConfigTx(tx) ? [] : [i]));
      if (batches.length > 0) {
        const i = c.rng.pick(batches);
        txs[i] = forgedTwin(txs[i]!);
      }
      break;
    }
  }
  return resigned(c, h, m, txs);
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
