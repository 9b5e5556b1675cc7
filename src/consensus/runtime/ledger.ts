/**
 * The ledger application (src/consensus/app, docs/ledger.md) in the runtime, with its state kept
 * in the block store: each gateway's head (last seq and event id on the ledger) is one state row,
 * saved by the runtime in the same SQLite transaction as the block that moved it, with the height
 * and hash of the tip the rows are as of (`ChainStore.save`'s `appState`).
 *
 * `openLedger` loads those rows (checksums checked; a damaged row is a ChainCorruptionError naming
 * it), builds the Ledger from them, and applies any stored block above their height, so the state
 * always ends at the store's tip: a store written before the state was kept (no rows) is replayed
 * from the genesis, and the replayed state is saved at once. Gateway keys come from the genesis's
 * `gateways:` registry and the configuration transactions on the chain (app/registry.ts): each key a
 * configuration transaction registered or revoked, and each member's configuration sequence, is a
 * row too (`#key:<keyId>`, `#seq:<member>`), saved with the block that changed it, so the registry
 * survives restarts and block-sync catch-up exactly as the heads do.
 *
 * @example
 *   const store = ChainStore.open({ path: chainStorePath(dataDir), chain: chainContext(genesis), txId: txIdOf });
 *   const { ledger, app } = openLedger(genesis, store);
 *   const node = new ConsensusNode({ genesis, self, signer, transport, store, app });
 */
import { encodeCanonical } from '../../crypto/canonical.ts';
import { toHex } from '../../crypto/hash.ts';
import { Ledger, type LedgerOptions } from '../app/ledger.ts';
import { type GatewayRegistry, gatewayRegistryOf, isRegistryRow, registryBounds } from '../app/registry.ts';
import type { GatewayHead, HeadUpdate, LedgerState } from '../app/state.ts';
import type { Genesis } from '../genesis/genesis.ts';
import type { Application, AppStateRow } from './application.ts';
import { ChainCorruptionError, type ChainStore } from './block-store.ts';

export interface OpenedLedger {
  ledger: Ledger;
  /** The runtime's hooks: the ledger's, whose `onCommitted` returns the head rows to save. */
  app: Application;
  /** Stored blocks applied at open because the saved state was below the tip (0 normally). */
  replayedBlocks: number;
}

const utf8 = new TextDecoder('utf-8', { fatal: true });
const hexId = /^[0-9a-f]{64}$/;

/** The rows a committed block changed: its gateway heads and its registry changes. */
function rowsOf(changed: ReturnType<Ledger['applyRows']>): AppStateRow[] {
  return [...changed.heads.map(headRow), ...changed.registry.map(registryRow)];
}

/** A head's row: key = the gateway chain (`member/gateway`), data = canonical JSON `{"id","seq"}`. */
export function headRow(u: HeadUpdate): AppStateRow {
  return { key: u.chain, data: encodeCanonical({ id: u.id, seq: u.seq }) };
}

/**
 * The ledger state of stored rows. Each row must be a canonical head of a chain the registry
 * knows; anything else is corruption (its checksum matched, so it was written that way or forged).
 */
export function ledgerStateFromRows(
  saved: { height: number; blockHash: Uint8Array; rows: ReadonlyMap<string, Uint8Array> },
  chains: ReadonlySet<string>,
): LedgerState {
  const heads = new Map<string, GatewayHead>();
  for (const [chain, data] of saved.rows) {
    if (isRegistryRow(chain)) continue; // the registry's (registryFromRows)
    const fail = (why: string) => new ChainCorruptionError('app_state', chain, why);
    if (!chains.has(chain)) throw fail('not a gateway registered in the genesis');
    let v: { id?: unknown; seq?: unknown };
    try {
      v = JSON.parse(utf8.decode(data));
    } catch {
      throw fail('not JSON');
    }
    if (
      typeof v !== 'object' ||
      v === null ||
      typeof v.id !== 'string' ||
      !hexId.test(v.id) ||
      !Number.isSafeInteger(v.seq) ||
      (v.seq as number) < 1
    ) {
      throw fail('not a gateway head');
    }
    const head = { id: v.id, seq: v.seq as number };
    if (!Buffer.from(data).equals(headRow({ chain, ...head }).data)) throw fail('not in canonical form');
    heads.set(chain, head);
  }
  return { height: saved.height, blockHash: toHex(saved.blockHash), heads };
}

/**
 * The gateway key registry as saved with the blocks: the genesis's, with the rows of every key and
 * member sequence a configuration transaction changed loaded over it. ChainCorruptionError for a row
 * that is not one.
 */
export function registryFromRows(genesis: Genesis, rows: ReadonlyMap<string, Uint8Array>): GatewayRegistry {
  const registry = gatewayRegistryOf(genesis, registryBounds);
  for (const [key, data] of rows) {
    if (!isRegistryRow(key)) continue;
    try {
      registry.loadRow(key, utf8.decode(data));
    } catch (err) {
      throw new ChainCorruptionError('app_state', key, `not a registry row (${(err as Error).message})`);
    }
  }
  return registry;
}

/** A registry row as the block store keeps it. */
function registryRow(r: { key: string; data: string }): AppStateRow {
  return { key: r.key, data: new TextEncoder().encode(r.data) };
}

/**
 * The ledger as of the store's tip: stored state, then any stored block above it (the replayed
 * heads are saved before this returns). Throws ChainCorruptionError for a damaged state row, and
 * LedgerInvariantError if a stored block breaks the ordering rule (more than f faulty validators).
 */
export function openLedger(
  genesis: Genesis,
  store: ChainStore,
  options: Omit<LedgerOptions, 'registry' | 'genesisHash' | 'state'> = {},
): OpenedLedger {
  const saved = store.loadAppState();
  const registry = registryFromRows(genesis, saved.rows);
  const state = ledgerStateFromRows(saved, new Set(registry.chains()));
  const ledger = Ledger.forGenesis(genesis, { ...options, state, registry });
  const replayed = new Map<string, Uint8Array>();
  let replayedBlocks = 0;
  for (let h = state.height + 1; h <= store.height; h++) {
    const cb = store.blockAt(h);
    if (!cb) throw new ChainCorruptionError('blocks', `height ${h}`, 'missing below the tip');
    for (const row of rowsOf(ledger.applyRows(cb.block))) replayed.set(row.key, row.data);
    replayedBlocks++;
  }
  if (replayedBlocks > 0) store.save({ records: [], committed: [], appState: replayed });
  const hooks = ledger.application();
  const app: Application = {
    txId: hooks.txId,
    checkTx: hooks.checkTx,
    order: hooks.order,
    onCommitted: (cb) => rowsOf(ledger.applyRows(cb.block)),
    stateHeight: () => ledger.height,
    verdictsMax: ledger.verdictsMax,
    metrics: () => ledger.metrics(),
  };
  return { ledger, app, replayedBlocks };
}
