/**
 * A replica's liveness timers, as deadlines on the time of its inputs: the view-change timeout T
 * (doubled after each view change that brings no commit), no progress on pending work within T,
 * censorship of the oldest pending transaction, the heartbeat, and proposals deferred because their
 * timestamp is ahead of our clock. `fire` runs the due ones on a tick; `wakeAtMs` tells the runtime
 * when the next one falls due.
 */
import type { ReplicaContext } from './context.ts';
import type {
  ChainPart,
  FutureMessagesPart,
  ProposerPart,
  SlotsPart,
  TimersPart,
  TransactionsPart,
  ViewChangerPart,
} from './parts.ts';

export interface TimersComponents {
  context: ReplicaContext;
  viewChanger: Pick<
    ViewChangerPart,
    'view' | 'viewChanging' | 'viewEnteredMs' | 'isPrimary' | 'base' | 'othersAtOrAbove' | 'startViewChange'
  >;
  transactions: Pick<TransactionsPart, 'proposableCount' | 'oldestProposableMs'>;
  slots: Pick<SlotsPart, 'values'>;
  chain: Pick<ChainPart, 'tip'>;
  proposer: Pick<ProposerPart, 'wakeAtMs'>;
  future: Pick<FutureMessagesPart, 'replay'>;
  /** Status, retransmissions and retries, every `statusIntervalMs`. */
  heartbeat(): void;
}

export class Timers implements TimersPart {
  readonly #ctx: ReplicaContext;
  readonly #c: TimersComponents;
  #failedViews = 0;
  #vcDeadlineMs: number | null = null;
  #progressDeadlineMs: number | null = null;
  #nextStatusMs = 0;
  #deferAtMs: number | null = null;

  constructor(components: TimersComponents) {
    this.#ctx = components.context;
    this.#c = components;
  }

  /** T: doubles with every view change that brought no commit, up to `viewChangeTimeoutMaxMs`. */
  timeoutMs(): number {
    const t = this.#ctx.config.timing;
    return Math.min(t.viewChangeTimeoutMs * 2 ** Math.min(this.#failedViews, 30), t.viewChangeTimeoutMaxMs);
  }

  /** We left our view for a higher one: one more failed view, and T for its NEW-VIEW to come. */
  viewChangeStarted(): void {
    this.#failedViews++;
    this.#vcDeadlineMs = this.#ctx.nowMs() + this.timeoutMs();
    this.#progressDeadlineMs = null;
  }

  /** Restarted while changing view: T again for the NEW-VIEW. */
  viewChangeResumed(): void {
    this.#vcDeadlineMs = this.#ctx.nowMs() + this.timeoutMs();
  }

  /** A NEW-VIEW started a view. */
  viewEntered(): void {
    this.#vcDeadlineMs = null;
    this.#progressDeadlineMs = null;
  }

  /** A block was committed: T starts again from its base. */
  committed(): void {
    this.#failedViews = 0;
    this.#progressDeadlineMs = null; // re-armed by fire() if work remains
  }

  /** Replay buffered messages at `atMs` (a proposal waits for our clock). */
  deferUntil(atMs: number): void {
    this.#deferAtMs = this.#deferAtMs === null ? atMs : Math.min(this.#deferAtMs, atMs);
  }

  /** The next tick sends a heartbeat (after a start). */
  heartbeatNow(): void {
    this.#nextStatusMs = this.#ctx.nowMs();
  }

  /** Fires the due timers (on a tick only). */
  fire(): void {
    const now = this.#ctx.nowMs();
    const vc = this.#c.viewChanger;
    if (vc.viewChanging) {
      if (this.#vcDeadlineMs !== null && now >= this.#vcDeadlineMs) {
        // Move on only with company: if fewer than f others are known to be at our target view or
        // above, we may be ahead of the honest replicas, and with timeouts capped at
        // viewChangeTimeoutMaxMs they would never catch up. Waiting lets them (docs: "Liveness").
        if (vc.othersAtOrAbove(vc.view) >= this.#ctx.f)
          vc.startViewChange(vc.view + 1, 'view-change-timeout');
        else this.#vcDeadlineMs = now + this.timeoutMs();
      }
    } else {
      this.armProgressDeadline();
      if (this.#progressDeadlineMs !== null && now >= this.#progressDeadlineMs) {
        vc.startViewChange(vc.view + 1, 'progress-timeout');
      } else {
        const c = this.#censorshipDeadline();
        if (c !== null && now >= c) vc.startViewChange(vc.view + 1, 'censorship-timeout');
      }
    }
    if (now >= this.#nextStatusMs) {
      this.#nextStatusMs = now + this.#ctx.config.timing.statusIntervalMs;
      this.#c.heartbeat();
    }
    if (this.#deferAtMs !== null && now >= this.#deferAtMs) {
      this.#deferAtMs = null;
      this.#c.future.replay();
    }
  }

  /** No commit within T while there is work: the deadline runs from when the work appeared. */
  armProgressDeadline(): void {
    if (this.#c.viewChanger.viewChanging) return;
    if (!this.#waiting()) this.#progressDeadlineMs = null;
    else if (this.#progressDeadlineMs === null)
      this.#progressDeadlineMs = this.#ctx.nowMs() + this.timeoutMs();
  }

  #censorshipDeadline(): number | null {
    const vc = this.#c.viewChanger;
    if (vc.viewChanging || vc.isPrimary) return null;
    const oldestMs = this.#c.transactions.oldestProposableMs();
    if (oldestMs === null) return null;
    return Math.max(oldestMs, vc.viewEnteredMs) + this.#ctx.config.timing.txCensorshipTimeoutMs;
  }

  /**
   * Is there work that should lead to a commit: proposable pending transactions or uncommitted
   * proposals? (With order hooks, a transaction waiting for a predecessor is not work yet.)
   */
  #waiting(): boolean {
    if (this.#c.transactions.proposableCount() > 0) return true;
    for (const s of this.#c.slots.values()) if (s.proposal || s.certificate) return true;
    const tipHeight = this.#c.chain.tip.height;
    for (const h of this.#c.viewChanger.base.reproposals.keys()) if (h > tipHeight) return true;
    return false;
  }

  /** When the runtime should tick next: the earliest deadline. */
  wakeAtMs(): number | null {
    let t: number | null = this.#nextStatusMs;
    const take = (x: number | null) => {
      if (x !== null && (t === null || x < t)) t = x;
    };
    take(this.#c.viewChanger.viewChanging ? this.#vcDeadlineMs : this.#progressDeadlineMs);
    take(this.#c.proposer.wakeAtMs);
    take(this.#deferAtMs);
    take(this.#censorshipDeadline());
    return t;
  }
}
