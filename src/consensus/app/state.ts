/**
 * The ledger's committed state and the ordering rule (docs/ledger.md, "Ordering").
 *
 * The state is, per gateway chain, the last event on the ledger: its seq and id. It is a function
 * of the committed chain alone — `applyBlock` folds blocks into it from the genesis state — so
 * every honest validator holds the same state at the same height, and a block store can persist it
 * beside each block (the heads a block changes, `headUpdates`) instead of replaying the chain.
 *
 * The rule, checked for every batch of a block in block order: the batch's first seq is its
 * gateway's head seq + 1 and its prev is the head's id (seq 1 links to 64 zeros); the batch itself
 * guarantees its events run on without a gap, each linked to the one before (src/event/batch.ts).
 * So each gateway's events appear on the ledger exactly once, in seq order, each linked to the one
 * before.
 *
 * @example
 *   let state = genesisLedgerState(genesis.hashBytes);
 *   for (const cb of store.blocks()) state = applyBlock(state, cb.block);
 *   state.heads.get('acme/gw-line1')      // { seq: 4711, id: '…' }
 */
import { canonicalJson } from '../../crypto/canonical.ts';
import { fromHex, toHex, zeroHashHex } from '../../crypto/hash.ts';
import type { EventRejectionCode } from '../../event/errors.ts';
import { blockHash } from '../core/signing.ts';
import type { Block } from '../core/types.ts';
import { isConfigTx } from './config-tx.ts';
import { type BatchTx, parseBatchTx } from './tx.ts';

/** A gateway chain's last event on the ledger. */
export interface GatewayHead {
  seq: number;
  /** Event id, lower-case hex. */
  id: string;
}

/** Before a gateway's first event: seq 0 and the zero hash, which its event 1 names as prev. */
export const emptyGatewayHead: Readonly<GatewayHead> = Object.freeze({ seq: 0, id: zeroHashHex });

export interface LedgerState {
  /** Height of the last block folded in (0: the genesis). */
  height: number;
  /** Hash of that block, lower-case hex (the genesis hash at height 0). */
  blockHash: string;
  /** Per gateway chain (`enterprise/gateway`), its last event. Gateways without events are absent. */
  heads: ReadonlyMap<string, GatewayHead>;
}

/** One head a block changed: what a block store upserts in the transaction that stores the block. */
export interface HeadUpdate {
  chain: string;
  seq: number;
  id: string;
}

/** A committed block that breaks the ordering rule or does not follow the state: more than f faulty validators, or a runtime that applied blocks out of order. Stop the node. */
export class LedgerInvariantError extends Error {
  override name = 'LedgerInvariantError';
}

export function genesisLedgerState(genesisHash: Uint8Array | string): LedgerState {
  const hex = typeof genesisHash === 'string' ? genesisHash : toHex(genesisHash);
  return { height: 0, blockHash: hex, heads: new Map() };
}

/** The ordering rule for one batch after its gateway's head: `null`, or why not (EventRejected codes). */
export function linkProblem(
  head: GatewayHead,
  b: Pick<BatchTx, 'firstSeq' | 'prev'>,
): { code: EventRejectionCode; message: string } | null {
  if (b.firstSeq <= head.seq) {
    return {
      code: 'non_monotonic_seq',
      message: `seq ${b.firstSeq} is not after the gateway's last seq ${head.seq} (replay or reorder)`,
    };
  }
  if (b.firstSeq > head.seq + 1)
    return {
      code: 'seq_gap',
      message: `seq ${b.firstSeq} skips ${b.firstSeq - head.seq - 1} event(s) after ${head.seq}`,
    };
  if (b.prev !== head.id) {
    return {
      code: 'broken_prev',
      message: `prev of seq ${b.firstSeq} is not the id of the gateway's event ${head.seq}`,
    };
  }
  return null;
}

/**
 * The heads a block leaves behind, in the order the block first touches each chain, given the heads
 * before it (configuration transactions move no head). Throws LedgerInvariantError if an event breaks the rule or is not an event.
 */
export function headUpdates(
  headBefore: (chain: string) => GatewayHead,
  block: Block,
  batchOf: (tx: Uint8Array) => BatchTx | undefined = parseBatchTx,
): Map<string, GatewayHead> {
  const after = new Map<string, GatewayHead>();
  for (const [i, tx] of block.txs.entries()) {
    if (isConfigTx(tx)) continue; // the registry's (registry.ts), not a gateway chain's
    const b = batchOf(tx);
    const where = `block ${block.header.height} transaction ${i}`;
    if (!b) throw new LedgerInvariantError(`${where} is not a batch`);
    const head = after.get(b.chain) ?? headBefore(b.chain);
    const problem = linkProblem(head, b);
    if (problem) throw new LedgerInvariantError(`${where} (${b.chain}): ${problem.code}: ${problem.message}`);
    after.set(b.chain, { seq: b.lastSeq, id: b.lastId });
  }
  return after;
}

/** Checks that `block` is the next block after `state` (height and parent hash). */
export function assertFollows(state: LedgerState, block: Block): void {
  const h = block.header;
  if (h.height !== state.height + 1 || toHex(h.prevHash) !== state.blockHash) {
    throw new LedgerInvariantError(
      `block ${h.height} does not follow the ledger state at height ${state.height}; apply committed blocks in order`,
    );
  }
}

/** The state after `block` (a new object; `state` is not changed). Throws LedgerInvariantError. */
export function applyBlock(
  state: LedgerState,
  block: Block,
  batchOf: (tx: Uint8Array) => BatchTx | undefined = parseBatchTx,
): LedgerState {
  assertFollows(state, block);
  const updates = headUpdates((c) => state.heads.get(c) ?? emptyGatewayHead, block, batchOf);
  const heads = new Map(state.heads);
  for (const [chain, head] of updates) heads.set(chain, head);
  return { height: block.header.height, blockHash: toHex(blockHash(block.header)), heads };
}

/** Canonical JSON of a state (heads sorted by chain): for snapshots, and to compare two states. */
export function encodeLedgerState(state: LedgerState): string {
  const heads: Record<string, { seq: number; id: string }> = {};
  for (const chain of [...state.heads.keys()].sort()) {
    const h = state.heads.get(chain)!;
    heads[chain] = { seq: h.seq, id: h.id };
  }
  return canonicalJson({ height: state.height, blockHash: state.blockHash, heads });
}

/** Reads `encodeLedgerState` back; throws LedgerInvariantError on anything else (check after reading). */
export function decodeLedgerState(text: string): LedgerState {
  const bad = (why: string) => new LedgerInvariantError(`ledger state: ${why}`);
  let v: { height?: unknown; blockHash?: unknown; heads?: unknown };
  try {
    v = JSON.parse(text);
  } catch {
    throw bad('not JSON');
  }
  if (!Number.isSafeInteger(v.height) || (v.height as number) < 0) throw bad('height');
  if (typeof v.blockHash !== 'string' || fromHex(v.blockHash).byteLength !== 32) throw bad('blockHash');
  if (typeof v.heads !== 'object' || v.heads === null) throw bad('heads');
  const heads = new Map<string, GatewayHead>();
  for (const [chain, h] of Object.entries(v.heads as Record<string, { seq?: unknown; id?: unknown }>)) {
    if (!Number.isSafeInteger(h?.seq) || (h.seq as number) < 1) throw bad(`heads.${chain}.seq`);
    if (typeof h.id !== 'string' || !/^[0-9a-f]{64}$/.test(h.id)) throw bad(`heads.${chain}.id`);
    heads.set(chain, { seq: h.seq as number, id: h.id });
  }
  const state = { height: v.height as number, blockHash: v.blockHash, heads };
  if (encodeLedgerState(state) !== text) throw bad('not in canonical form');
  return state;
}
