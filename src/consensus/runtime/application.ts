/**
 * What the runtime needs from the application it carries: the transaction hooks of the core
 * (`TxHooks`: `txId`, `checkTx`, the optional block-level `order` hooks; not `isCommitted`, which
 * the runtime answers from its block store) and any further optional core setting the application
 * defines. The runtime passes them on to the `Replica` untouched, so it stays generic over hooks.
 *
 * State the hooks derive from the chain (the per-gateway heads `order.checkBlock` needs) is kept
 * current through `onCommitted`: the runtime calls it for each block the core commits right after
 * the input that committed it, which is what the core's `ChainContext.appliedHeight` assumes. An
 * application that keeps that state in the block store returns the rows each block changed; the
 * runtime saves them in the same SQLite transaction as the blocks (`ChainStore.save`), so the state
 * and the chain can never be out of step after a crash. At start it must be as of the store's tip
 * (see `openLedger` in ledger.ts, which loads it and replays any stored block above it).
 */
import type { CoreConfig, TxHooks } from '../core/config.ts';
import type { CertifiedBlock } from '../core/types.ts';

/** Fields of `CoreConfig` the runtime fills itself; everything else is the application's. */
type RuntimeOwned =
  | 'chainId'
  | 'validators'
  | 'self'
  | 'signer'
  | 'verifier'
  | 'genesisHash'
  | 'genesisTimestampMs'
  | 'tx'
  | 'limits'
  | 'timing'
  | 'local';

/** Optional core hooks an application adds (e.g. a block-level ordering rule), passed on as given. */
export type ApplicationCoreHooks = Omit<CoreConfig, RuntimeOwned>;

/** One row of application state (an upsert by key), saved by the runtime with the blocks that changed it. */
export interface AppStateRow {
  key: string;
  data: Uint8Array;
}

export interface Application extends Omit<TxHooks, 'isCommitted'> {
  core?: ApplicationCoreHooks;
  /**
   * Called as soon as the core emits a committed block, before the runtime feeds it the next
   * input, so state a hook derives from the chain (per-gateway heads, say) is never stale. The block
   * is not durable yet. Returns the state rows the block changed when the application keeps its
   * state in the block store (`stateHeight` set): they are saved in the block's transaction.
   */
  onCommitted?(block: CertifiedBlock): readonly AppStateRow[] | undefined;
  /**
   * Present when the application keeps its state in the block store: the height its state is as
   * of. The runtime refuses to start unless it is the store's height, and saves the state's tip
   * with every batch of committed blocks.
   */
  stateHeight?(): number;
  /**
   * How many transaction verdicts the application remembers, if it caches them: the runtime
   * requires at least twice the core's mempool (`mempoolTxsMax`), so that every pending
   * transaction's verdict stays cached while it waits.
   */
  verdictsMax?: number;
  /** The application's own counters, shown in `ConsensusNode.metrics().app`. */
  metrics?(): unknown;
}
