/**
 * What every part of a replica shares (replica.ts lists the parts): the resolved configuration, the
 * sizes that follow from the validator set, the time of the current input and the outbox. Time is
 * an input (the `nowMs` the runtime gives the replica), never read from a clock, so the parts stay
 * deterministic.
 */
import { type CoreConfig, type ResolvedConfig, resolveConfig } from './config.ts';
import { Outbox } from './outbox.ts';
import { faultsTolerated, quorumSize } from './quorum.ts';
import { signMessage } from './signing.ts';
import type { Commit, NewView, PrePrepare, Prepare, ViewChange } from './types.ts';
import type { VerifyContext } from './verify.ts';

export interface ReplicaContext {
  readonly config: ResolvedConfig;
  readonly verify: VerifyContext;
  /** Validators. */
  readonly n: number;
  /** Faulty replicas tolerated. */
  readonly f: number;
  /** Quorum. */
  readonly q: number;
  /** This replica's index. */
  readonly self: number;
  /** W: heights in flight above the committed tip (the chain limit `windowHeights`). */
  readonly windowHeights: number;
  readonly out: Outbox;
  /** Time of the current input, ms (never decreasing). */
  nowMs(): number;
  sign<T extends Prepare | Commit | PrePrepare | ViewChange | NewView>(msg: T): T;
}

/** Resolves the configuration (throws RangeError on a configuration bug); `nowMs` reads the replica's time. */
export function createContext(config: CoreConfig, nowMs: () => number): ReplicaContext {
  const c = resolveConfig(config);
  const n = config.validators.length;
  return {
    config: c,
    verify: {
      chainId: config.chainId,
      validators: config.validators,
      verifier: config.verifier,
      txId: config.tx.txId,
    },
    n,
    f: faultsTolerated(n),
    q: quorumSize(n),
    self: config.self,
    windowHeights: c.limits.windowHeights,
    out: new Outbox(n),
    nowMs,
    sign: (msg) => signMessage(c.signer, c.chainId, msg),
  };
}
