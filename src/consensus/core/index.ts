/**
 * The IPBFT consensus core: a pure, deterministic replica state machine (docs/consensus.md).
 * No sockets, clocks, timers, randomness or storage inside: a runtime feeds it inputs and carries
 * out its outputs, persisting before sending (etcd raft's Ready discipline).
 *
 * @example
 *   const replica = new Replica({ chainId, validators, self, signer, verifier: nodeVerifier,
 *     genesisHash, genesisTimestampMs, tx: { txId, checkTx, isCommitted } });
 *   replica.start(persistedState, Date.now());
 *   replica.receive(peerIndex, decoded, Date.now());   // or tick(now) / submit(tx, now)
 *   const rd = replica.ready();
 *   db.transaction(() => { saveRecords(rd.persist); saveBlocks(rd.committed); })();
 *   for (const m of rd.messages) transport.send(m.to, encodeMessage(m.message));
 *   if (rd.wakeAtMs !== null) scheduleTick(rd.wakeAtMs);
 */
export {
  type BlockBudget,
  type ChainContext,
  type CoreConfig,
  defaultLocalLimits,
  defaultTiming,
  type LocalLimits,
  type OrderHooks,
  type ResolvedConfig,
  resolveConfig,
  type Timing,
  type TxHooks,
} from './config.ts';
export {
  applyRecord,
  coreFaultCodes,
  emptyPersistedState,
  type Outbound,
  type PeerFault,
  type PersistedState,
  type PersistRecord,
  type Ready,
  type SubmitResult,
  syncResponseFor,
  type VoteKind,
  type VoteRecord,
} from './io.ts';
export { Replica, type ReplicaMetrics } from './replica.ts';
export { checkNewView, checkViewChange, type Selection, selectReproposals } from './viewchange.ts';
