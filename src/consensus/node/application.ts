/**
 * What the runtime needs from the application it carries: the transaction hooks of the core
 * (`TxHooks`: `txId`, `checkTx`, the optional block-level `order` hooks; not `isCommitted`, which
 * the runtime answers from its block store) and any further optional core setting the application
 * defines. The runtime passes them on to the `Replica` untouched, so it stays generic over hooks.
 *
 * State the hooks derive from the chain (the per-gateway heads `order.checkBlock` needs) is kept
 * current through `onCommitted`: the runtime calls it for each block the core commits right after
 * the input that committed it, which is what the core's `ChainContext.appliedHeight` assumes.
 */
import type { CoreConfig, TxHooks } from '../core/config.ts';
import type { CertifiedBlock } from '../types.ts';

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

export interface Application extends Omit<TxHooks, 'isCommitted'> {
  core?: ApplicationCoreHooks;
  /**
   * Called as soon as the core emits a committed block, before the runtime feeds it the next
   * input, so state a hook derives from the chain (per-gateway heads, say) is never stale. The block
   * may not be durable yet: after a restart, rebuild such state from the block store.
   */
  onCommitted?(block: CertifiedBlock): void;
}
