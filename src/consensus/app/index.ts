/**
 * The ledger application on the IPBFT chain (docs/ledger.md): transactions are gateway-signed
 * batches of event envelopes (src/event/batch.ts), checked by every validator against the gateway
 * key registry (the genesis's, changed by members' configuration transactions: config-tx.ts,
 * registry.ts), and each gateway's events go on the ledger exactly once, in seq order,
 * linked by prev. Bodies never go on the chain.
 *
 * @example
 *   const ledger = Ledger.forGenesis(genesis, { state: storedState });
 *   const replica = new Replica({ …, tx: ledger.txHooks((id) => store.hasTx(id)) });
 *   for (const cb of replica.ready().committed) ledger.apply(cb.block);   // → heads to save with it
 *   // In the runtime: `openLedger(genesis, store)` (src/consensus/runtime/ledger.ts) does this and
 *   // keeps the heads in the block store, saved with the blocks.
 */

export { ConfigPool, configPendingMax } from './config-pool.ts';
export {
  type ConfigPayload,
  type ConfigTx,
  configTxId,
  configTxTag,
  decodeConfigTx,
  isConfigTx,
  type RegisterGatewayKey,
  type RevokeGatewayKey,
  signConfigTx,
} from './config-tx.ts';
export {
  defaultLedgerLimits,
  Ledger,
  type LedgerApplication,
  type LedgerLimits,
  type LedgerMetrics,
  type LedgerOptions,
  type LedgerRefusalCode,
  ledgerRefusalCodes,
  refusalCode,
} from './ledger.ts';
export type { PoolLimits } from './pool.ts';
export {
  type ConfigProblem,
  type ConfigRefusalCode,
  configRefusalCodes,
  configSignatureProblem,
  type GatewayEntry,
  GatewayRegistry,
  gatewayRegistryOf,
  isRegistryRow,
  type RegisteredKey,
  type RegistryRow,
  registryBounds,
} from './registry.ts';
export {
  applyBlock,
  decodeLedgerState,
  emptyGatewayHead,
  encodeLedgerState,
  type GatewayHead,
  genesisLedgerState,
  type HeadUpdate,
  headUpdates,
  LedgerInvariantError,
  type LedgerState,
  linkProblem,
} from './state.ts';
export {
  type BatchTx,
  chainKeyOf,
  type GatewayKeyLookup,
  parseBatchTx,
  TxChecker,
  type TxCheckerOptions,
  type TxVerdict,
  txIdOf,
} from './tx.ts';
