/**
 * The gateway runtime: drivers → normaliser → batcher → signed events in the outbox.
 *
 * Exactly once at the source: the normaliser's memory (counter baselines, current lots and steps) is
 * saved in the SAME transaction as the events it produced (outbox append `meta`). After a crash the
 * gateway resumes from state that matches the stored events exactly, so a part counted before the
 * crash is neither emitted again nor forgotten (parts made while it was down are reported on restart,
 * up to the rule's maxIncrement). Drivers' own memory of that kind (an MQTT driver's recent deliveries,
 * to recognise the broker's redelivery of a message whose events were stored but whose acknowledgement
 * was lost) is saved in the same transaction, and drivers that acknowledge deliveries wait for that
 * transaction (DriverContext.durable) before they do.
 *
 * @example
 *   const gw = await Gateway.start(loadConfig('config/gateway.yaml'), { log });
 *   gw.stats();
 *   await gw.stop();
 */
import { join } from 'node:path';
import type { NodeMetrics, NodeStatus } from '../consensus/runtime/node.ts';
import type { Signer } from '../crypto/keys.ts';
import { createDriver } from '../drivers/registry.ts';
import type { DeadLetter, Driver, DriverHealth, Reading } from '../drivers/types.ts';
import type { EventDraft } from '../event/draft.ts';
import { EventSigner } from '../event/signer.ts';
import { BatchVerifier, keyRegistry } from '../event/verify.ts';
import type { Logger } from '../log/logger.ts';
import { DraftBatcher } from '../normaliser/batcher.ts';
import {
  createNormaliser,
  type Normaliser,
  type NormaliserState,
  type NormaliserStats,
} from '../normaliser/normaliser.ts';
import { Outbox, type OutboxStats, outboxPath } from '../store/outbox.ts';
import {
  deadLetterQueueMax,
  deadLetterSaveMs,
  gatewayTickMs,
  pruneIntervalMs,
  queueBatchesMax,
} from './bounds.ts';
import type { ChainLink } from './chain-link.ts';
import type { LoadedConfig } from './config/config.ts';
import { gatewayIdentity, gatewayKeyOf, loadGatewayKey } from './identity.ts';
import { type GatewayStatus, writeStatus } from './status.ts';
import { Submitter, type SubmitterStats } from './submitter.ts';

export interface GatewayOptions {
  log: Logger;
  /** The signing key; loaded from the config's key file when absent. */
  key?: Signer;
  nowMs?: () => number;
  /** How often the status file is refreshed; 0 disables it. */
  statusIntervalMs?: number;
  /** Receives dead letters (malformed payloads), after they are counted. */
  onDeadLetter?: (letter: DeadLetter) => void;
  /** Sees every batch of readings (the status page's tag values). Keep it fast; it must not throw. */
  onReadings?: (batch: readonly Reading[]) => void;
  /** Sees each of this gateway's events as it becomes final: ms from source time and from signing. */
  onFinal?: (sourceToFinalMs: number, signedToFinalMs: number) => void;
}

export interface GatewayStats {
  startedMs: number;
  readings: number;
  draftsProduced: number;
  eventsStored: number;
  draftsDropped: number;
  deadLetters: number;
  /** Dead letters not saved because they arrived faster than the bounded queue is saved. */
  deadLettersUnsaved: number;
  devices: DriverHealth[];
  normaliser: NormaliserStats;
  outbox: OutboxStats;
  queue: ReturnType<DraftBatcher['stats']>;
  /** Submission to the chain (null when chain.role is none). */
  submitter: SubmitterStats | null;
  /** The embedded validator (chain.role validator). */
  chain: NodeStatus | null;
}

const normaliserStateKey = 'normaliser';
/** Drivers' memory saved with the events (MQTT redelivery windows), by device id. */
const driverStateKey = 'drivers';

export class Gateway {
  readonly config: LoadedConfig;
  readonly outbox: Outbox;
  readonly #log: Logger;
  readonly #signer: EventSigner;
  readonly #normaliser: Normaliser;
  readonly #batcher: DraftBatcher;
  readonly #drivers: Driver[];
  readonly #now: () => number;
  readonly #timers: NodeJS.Timeout[] = [];
  readonly #startedMs: number;
  readonly #statusIntervalMs: number;
  #readings = 0;
  #drafts = 0;
  #stored = 0;
  #deadLetters = 0;
  /** Dead letters waiting to be saved (once a second, one transaction). */
  #deadLetterQueue: DeadLetter[] = [];
  #deadLettersUnsaved = 0;
  #stopping = false;
  #chain: ChainLink | null = null;
  #submitter: Submitter | null = null;
  readonly #onReadingsHook: GatewayOptions['onReadings'];
  readonly #onFinalHook: GatewayOptions['onFinal'];

  static async start(config: LoadedConfig, options: GatewayOptions): Promise<Gateway> {
    const gw = new Gateway(config, options);
    await gw.#start();
    return gw;
  }

  private constructor(config: LoadedConfig, options: GatewayOptions) {
    this.config = config;
    this.#log = options.log;
    this.#now = options.nowMs ?? Date.now;
    this.#startedMs = this.#now();
    this.#statusIntervalMs = options.statusIntervalMs ?? 2_000;
    this.#onReadingsHook = options.onReadings;
    this.#onFinalHook = options.onFinal;
    const identity = gatewayIdentity(config);
    const key = options.key ?? loadGatewayKey(config);
    const store = config.gateway.store;
    const signing = config.gateway.signing;
    this.#signer = new EventSigner(identity, key, { nowMs: this.#now });
    this.outbox = Outbox.open({
      path: outboxPath(config.paths.dataDir),
      verifier: new BatchVerifier(keyRegistry([gatewayKeyOf(identity, key)])),
      maxBytes: store.maxBytes,
      maxRows: store.maxRows,
      synchronous: store.synchronous,
      onCorrupt: (seq, reason) =>
        this.#log.error('outbox batch corrupt; submission halts before it', { seq, reason }),
      onDrop: (count, gap) =>
        this.#log.warn('outbox full: drafts not stored, recorded for a gap event', {
          count,
          lostSoFar: gap.droppedCount,
        }),
    });
    const devices = config.devices.filter((d) => d.enabled);
    this.#normaliser = createNormaliser(devices, {
      onDrafts: (drafts) => this.#onDrafts(drafts),
      log: this.#log.child({ part: 'normaliser' }),
    });
    const saved = this.outbox.loadMeta(normaliserStateKey) as NormaliserState | undefined;
    if (saved) this.#normaliser.loadState(saved);
    const batchMax = signing.batchEventsMax;
    this.#batcher = new DraftBatcher({
      batchEventsMax: batchMax,
      batchWindowMs: signing.batchWindowMs,
      queueMax: batchMax * queueBatchesMax,
      flush: (drafts) => this.#flush(drafts),
      onOverflow: (drafts) =>
        this.outbox.recordDropped(drafts, 'gateway queue full while the outbox refused writes'),
      onError: (err) =>
        this.#log.error('outbox append failed; drafts kept and retried', { err: err.message }),
    });
    const driverLog = this.#log.child({ part: 'driver' });
    this.#drivers = devices.map((device) =>
      createDriver(device, {
        onReadings: (batch) => this.#onReadings(batch),
        log: driverLog,
        dataDir: config.paths.dataDir,
        pkiFolder: join(config.paths.dataDir, 'pki', 'opcua'),
        nowMs: this.#now,
        onDeadLetter: (letter) => this.#onDeadLetter(letter, options.onDeadLetter),
        // MQTT acknowledges a message only once the events made from it are in the outbox.
        durable: () => this.#batcher.flushed(),
      }),
    );
    const driverStates = this.outbox.loadMeta(driverStateKey) as Record<string, unknown> | undefined;
    for (const d of this.#drivers) d.loadState?.(driverStates?.[d.device]);
  }

  async #start(): Promise<void> {
    const g = this.config.gateway;
    this.#log.info('gateway starting', {
      gateway: g.gateway.id,
      enterprise: g.gateway.enterprise,
      keyId: this.#signer.keyId,
      devices: this.#drivers.map((d) => `${d.device}(${d.protocol})`),
      head: this.outbox.head.seq,
    });
    this.#timers.push(setInterval(() => this.#tick(), gatewayTickMs));
    this.#timers.push(setInterval(() => this.#prune(), pruneIntervalMs));
    this.#timers.push(setInterval(() => this.#saveDeadLetters(), deadLetterSaveMs));
    if (this.#statusIntervalMs > 0) {
      this.#writeStatus();
      this.#timers.push(setInterval(() => this.#writeStatus(), this.#statusIntervalMs));
    }
    for (const t of this.#timers) t.unref();
    // The chain first: a validator that is catching up must not hold back acquisition, and the
    // submitter only needs the link object (it waits for the chain by itself).
    if (this.config.gateway.chain.role !== 'none') {
      // Loaded only when used: libp2p, the consensus core and fastify are not needed otherwise.
      const { openChainLink } = await import('./chain-link.ts');
      this.#chain = await openChainLink(this.config, this.#log);
    }
    if (this.#chain) {
      const submit = this.config.gateway.chain.submit;
      this.#submitter = new Submitter({
        outbox: this.outbox,
        chain: this.#chain.client,
        log: this.#log.child({ part: 'submitter' }),
        windowEvents: submit.windowEvents,
        drainEventsPerSecond: submit.drainEventsPerSecond,
        resubmitAfterMs: submit.resubmitAfterMs,
        nowMs: this.#now,
        onFinal: this.#onFinalHook,
      });
      this.#submitter.start();
    }
    await Promise.all(this.#drivers.map((d) => d.start()));
  }

  #onDeadLetter(letter: DeadLetter, forward?: (letter: DeadLetter) => void): void {
    this.#deadLetters += 1;
    if (this.#deadLetterQueue.length >= deadLetterQueueMax) {
      this.#deadLetterQueue.shift();
      this.#deadLettersUnsaved += 1;
    }
    this.#deadLetterQueue.push(letter);
    forward?.(letter);
  }

  #saveDeadLetters(): void {
    if (this.#deadLetterQueue.length === 0) return;
    try {
      this.outbox.addDeadLetters(this.#deadLetterQueue);
      this.#deadLetterQueue = [];
    } catch (err) {
      this.#log.warn('cannot save dead letters', { err: (err as Error).message });
    }
  }

  #onReadings(batch: readonly Reading[]): void {
    if (this.#stopping) return;
    this.#readings += batch.length;
    this.#normaliser.push(batch);
    this.#onReadingsHook?.(batch);
  }

  #onDrafts(drafts: EventDraft[]): void {
    this.#drafts += drafts.length;
    for (const d of drafts) this.#batcher.push(d);
  }

  #flush(drafts: EventDraft[]): void {
    const r = this.outbox.append(drafts, this.#signer, {
      batchEventsMax: this.config.gateway.signing.batchEventsMax,
      meta: { [normaliserStateKey]: this.#normaliser.saveState(), ...this.#driverStates() },
    });
    this.#stored += r.stored.length;
    if (r.stored.length > 0) this.#submitter?.kick();
  }

  /** What drivers must keep in step with the events (see Driver.saveState), or nothing. */
  #driverStates(): Record<string, unknown> {
    const states: Record<string, unknown> = {};
    let any = false;
    for (const d of this.#drivers) {
      const state = d.saveState?.();
      if (state === undefined) continue;
      states[d.device] = state;
      any = true;
    }
    return any ? { [driverStateKey]: states } : {};
  }

  #tick(): void {
    try {
      this.#normaliser.tick(this.#now());
    } catch (err) {
      this.#log.error('normaliser tick failed', { err: (err as Error).message });
    }
  }

  #prune(): void {
    try {
      const n = this.outbox.prune(this.config.gateway.store.retainCommittedMs, this.#now());
      if (n > 0) this.#log.info('pruned committed events past retention', { count: n });
    } catch (err) {
      this.#log.error('prune failed', { err: (err as Error).message });
    }
  }

  stats(): GatewayStats {
    return {
      startedMs: this.#startedMs,
      readings: this.#readings,
      draftsProduced: this.#drafts,
      eventsStored: this.#stored,
      draftsDropped: this.outbox.stats().droppedTotal,
      deadLetters: this.#deadLetters,
      deadLettersUnsaved: this.#deadLettersUnsaved,
      devices: this.#drivers.map((d) => d.health()),
      normaliser: this.#normaliser.stats(),
      outbox: this.outbox.stats(),
      queue: this.#batcher.stats(),
      submitter: this.#submitter?.stats() ?? null,
      chain: this.#chain?.status() ?? null,
    };
  }

  /** The validator's counters (chain role validator; on a worker thread, as of its last report), or null. */
  chainMetrics(): NodeMetrics | null {
    return this.#chain?.metrics() ?? null;
  }

  /** The chain role in use: what the configuration says, once the chain link is open. */
  get chainRole(): 'validator' | 'client' | 'none' {
    return this.#chain?.role ?? 'none';
  }

  #writeStatus(): void {
    try {
      const s = this.stats();
      const problems: string[] = [];
      if (s.outbox.corrupt.length > 0)
        problems.push(`corrupt outbox events at seq ${s.outbox.corrupt.join(', ')}`);
      if (s.outbox.pendingGap)
        problems.push(`outbox full: ${s.outbox.pendingGap.droppedCount} drafts lost so far`);
      if (s.queue.failures > 0 && s.queue.queued > 0) problems.push('outbox refusing writes');
      const mem = process.memoryUsage();
      const status: GatewayStatus = {
        ...s,
        pid: process.pid,
        rssBytes: mem.rss,
        // Where the memory is: the JavaScript heap, or outside it (buffers, SQLite, native modules).
        heapUsedBytes: mem.heapUsed,
        externalBytes: mem.external,
        updatedMs: this.#now(),
        healthy: problems.length === 0,
        problems,
        gateway: this.config.gateway.gateway.id,
      };
      writeStatus(this.config.paths.dataDir, status);
    } catch (err) {
      this.#log.warn('cannot write status file', { err: (err as Error).message });
    }
  }

  /** Stops drivers (nothing emitted after), writes what is queued, closes the outbox. */
  async stop(): Promise<void> {
    if (this.#stopping) return;
    this.#stopping = true;
    for (const t of this.#timers) clearInterval(t);
    await Promise.all(this.#drivers.map((d) => d.stop()));
    this.#batcher.stop();
    this.#saveDeadLetters();
    await this.#submitter?.stop();
    await this.#chain?.stop();
    this.#log.info('gateway stopped', {
      head: this.outbox.head.seq,
      stored: this.#stored,
      readings: this.#readings,
    });
    this.outbox.close();
  }
}
