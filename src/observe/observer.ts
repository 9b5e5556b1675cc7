/**
 * What the operator's side sees of a running gateway or validator, read through small adapters
 * from the objects that already keep the figures: `Gateway.stats()` (drivers' health, normaliser,
 * outbox, submitter, the hosted validator's status), `Gateway.chainMetrics()` and
 * `ConsensusNode.metrics()`. Nothing here counts anything the runtime does not already count,
 * except what only an observer can: the last value of each tag, dead letters by device, finality
 * latencies as histograms, rates and the outbox trend over time.
 *
 * One sample a second (`sampleIntervalMs`) keeps the trend and rates and gives the page its
 * update; `/metrics`, `/health` and `/ready` take a fresh observation when asked.
 *
 * @example
 *   const observer = new Observer({ kind: 'gateway', name: 'acme/gw-line1', policy, dataDir });
 *   const gateway = await Gateway.start(config, { log, ...observer.gatewayHooks });
 *   observer.attachGateway(gateway);
 *   observer.sample();            // every second
 *   observer.snapshot();          // what the page shows
 *   observer.health();            // what /ready says
 */
import { statfsSync } from 'node:fs';
import { quorumSize } from '../consensus/core/quorum.ts';
import type { NodeMetrics, NodeStatus } from '../consensus/runtime/node.ts';
import type { DeadLetter, DriverHealth, Reading, ReadingValue } from '../drivers/types.ts';
import type { HealthPolicy } from '../gateway/config/gateway-schema.ts';
import type { GatewayStats } from '../gateway/gateway.ts';
import type { StoredDeadLetter } from '../store/outbox.ts';
import {
  deadLetterPayloadShownChars,
  deadLettersShownMax,
  finalityBucketsS,
  ratesWindowMs,
  tagsMax,
  tagsShownMax,
  tagValueCharsMax,
  trendSamplesMax,
} from './bounds.ts';
import { evaluateHealth, type HealthInputs, type HealthReport } from './health.ts';
import { TagCache, type TagView } from './tags.ts';

/** What the observer needs of a gateway (src/gateway/gateway.ts `Gateway` has it). */
export interface ObservedGateway {
  readonly config: { gateway: { gateway: { id: string; enterprise: string } }; paths: { dataDir: string } };
  readonly outbox: {
    pending(options: { eventsMax: number }): { firstSeq: number; events: { gatewayTimeMs: number }[] }[];
    deadLetters(limit: number): StoredDeadLetter[];
  };
  readonly chainRole: 'validator' | 'client' | 'none';
  stats(): GatewayStats;
  chainMetrics(): NodeMetrics | null;
}

/** What the observer needs of a validator without a gateway (`RunningValidator` has it). */
export interface ObservedValidator {
  readonly member: string;
  readonly genesis: { quorum: number; n: number; chainId: string };
  readonly node: { metrics(): NodeMetrics };
  /** The API's authorisation counters (src/api/auth/policy.ts), when it serves an API. */
  readonly access?: { snapshot(): AccessSnapshot } | null;
}

/** Requests let through and refused (by code) by the API's authorisation policy. */
export interface AccessSnapshot {
  allowed: number;
  refused: Record<string, number>;
}

/** Counts in fixed buckets (a Prometheus histogram's data): constant memory. */
export class Buckets {
  readonly bounds: readonly number[];
  readonly counts: number[];
  count = 0;
  sum = 0;

  constructor(bounds: readonly number[]) {
    this.bounds = bounds;
    this.counts = new Array<number>(bounds.length + 1).fill(0);
  }

  observe(value: number): void {
    let i = 0;
    while (i < this.bounds.length && value > this.bounds[i]!) i++;
    this.counts[i]!++;
    this.count++;
    this.sum += value;
  }
}

export interface ProcessFigures {
  pid: number;
  node: string;
  uptimeS: number;
  rssBytes: number;
  heapUsedBytes: number;
  heapTotalBytes: number;
  externalBytes: number;
  /** Share of one core used since the previous sample (100 = one core busy). */
  cpuPercent: number;
}

/** One reading of everything, at one time. */
export interface Observation {
  nowMs: number;
  gateway: {
    id: string;
    enterprise: string;
    role: 'validator' | 'client' | 'none';
    stats: GatewayStats;
    chainMetrics: NodeMetrics | null;
    /** The oldest event not yet final: its seq and when the gateway signed it. */
    oldestPending: { seq: number; gatewayTimeMs: number } | null;
  } | null;
  validator: {
    member: string;
    chainId: string;
    quorum: number;
    metrics: NodeMetrics;
    access: AccessSnapshot | null;
  } | null;
  process: ProcessFigures;
  disk: { path: string; freeBytes: number; totalBytes: number } | null;
}

export interface DeviceView {
  device: string;
  protocol: string;
  state: string;
  lastError: string | null;
  lastGoodReadMs: number | null;
  readings: number;
  errors: Record<string, number>;
  reconnects: number;
  /** Poll and subscription figures from the driver's own detail, flattened for a table. */
  figures: Record<string, string | number>;
  /** Read round trips (request/response protocols): mean and the bucket bound holding the 99th percentile. */
  readMs: { mean: number; p99Max: number | null; count: number } | null;
  deadLetters: number;
}

export interface ChainView {
  role: 'validator' | 'client' | 'none' | 'peer';
  memberId: string | null;
  state: string | null;
  height: number | null;
  view: number | null;
  viewChanging: boolean;
  primary: string | null;
  peers: { memberId: string; state: string }[];
  peersConnected: number | null;
  quorum: number | null;
  lastCommitAtMs: number | null;
  mempoolTxs: number | null;
  /** Source → final block and signed → final block, ms (gateways that submit; null otherwise). */
  finality: { p50Ms: number; p99Ms: number; chainP50Ms: number; chainP99Ms: number; samples: number } | null;
  refusals: Record<string, number>;
  invalidTxs: Record<string, number>;
  viewChangeCauses: Record<string, number>;
  submitter: {
    inFlight: number;
    submitted: number;
    resubmitted: number;
    committed: number;
    refused: Record<string, number>;
    errors: number;
  } | null;
  problem: string | null;
}

/** Everything the status page shows (`/api/status`, and each live update). */
export interface OpsSnapshot {
  kind: 'gateway' | 'validator';
  name: string;
  nowMs: number;
  startedMs: number;
  attached: boolean;
  devices: DeviceView[] | null;
  tags: { shown: TagView[]; total: number; dropped: number } | null;
  rates: { readingsPerS: number | null; eventsPerS: number | null; committedPerS: number | null };
  pipeline: {
    readings: number;
    draftsProduced: number;
    eventsStored: number;
    draftsDropped: number;
    eventsByKind: Record<string, number>;
    queued: number;
  } | null;
  outbox: {
    pending: number;
    rows: number;
    final: number;
    usedBytes: number;
    maxBytes: number;
    maxRows: number;
    oldestPendingAgeMs: number | null;
    headSeq: number;
    gapsAppended: number;
    lostDrafts: number;
    corrupt: number[];
  } | null;
  deadLetters: {
    /** Received since this process started. */
    total: number;
    unsaved: number;
    newest: StoredDeadLetter[];
  } | null;
  chain: ChainView | null;
  process: ProcessFigures;
  disk: { path: string; freeBytes: number; totalBytes: number } | null;
  health: HealthReport;
}

interface TrendSample {
  atMs: number;
  pending: number;
  readings: number;
  stored: number;
  committed: number;
}

export interface ObserverOptions {
  kind: 'gateway' | 'validator';
  name: string;
  policy: HealthPolicy;
  /** Whose free space counts for `disk-low` (the gateway's or validator's data folder). */
  dataDir: string | null;
  nowMs?: () => number;
}

export class Observer {
  readonly kind: 'gateway' | 'validator';
  /** How the page names the process (a validator's member id is known once it is attached). */
  name: string;
  readonly policy: HealthPolicy;
  readonly tags = new TagCache(tagsMax);
  /** Source time → final block, and signed → final block, seconds (this gateway's events). */
  readonly finality = { source: new Buckets(finalityBucketsS), signed: new Buckets(finalityBucketsS) };
  readonly #dataDir: string | null;
  readonly #now: () => number;
  readonly #startedMs: number;
  #gateway: ObservedGateway | null = null;
  #validator: ObservedValidator | null = null;
  readonly #deadLettersByDevice = new Map<string, number>();
  readonly #trend: TrendSample[] = [];
  #cpu = { usage: process.cpuUsage(), atMs: performance.now(), percent: 0 };
  /** Progress of the chain as seen here: when something last became final, and since when something waits. */
  #lastCommitted = -1;
  #lastFinalMs: number | null = null;
  #waitingSinceMs: number | null = null;

  constructor(options: ObserverOptions) {
    this.kind = options.kind;
    this.name = options.name;
    this.policy = options.policy;
    this.#dataDir = options.dataDir;
    this.#now = options.nowMs ?? Date.now;
    this.#startedMs = this.#now();
  }

  /** Hooks to pass to `Gateway.start` (GatewayOptions) before attaching the gateway. */
  get gatewayHooks() {
    return {
      onReadings: (batch: readonly Reading[]) => this.tags.record(batch, this.#now()),
      onFinal: (sourceToFinalMs: number, signedToFinalMs: number) => {
        this.finality.source.observe(Math.max(0, sourceToFinalMs) / 1000);
        this.finality.signed.observe(Math.max(0, signedToFinalMs) / 1000);
      },
      onDeadLetter: (letter: DeadLetter) =>
        // Keyed by configured device ids only (the driver names its own device): bounded by the config.
        this.#deadLettersByDevice.set(letter.device, (this.#deadLettersByDevice.get(letter.device) ?? 0) + 1),
    };
  }

  attachGateway(gateway: ObservedGateway): void {
    this.#gateway = gateway;
  }

  attachValidator(validator: ObservedValidator): void {
    this.#validator = validator;
    this.name = validator.member;
  }

  get attached(): boolean {
    return this.#gateway !== null || this.#validator !== null;
  }

  get deadLettersByDevice(): ReadonlyMap<string, number> {
    return this.#deadLettersByDevice;
  }

  /** Reads everything now (cheap: in-memory counters, one indexed outbox read, one statfs). */
  observe(): Observation {
    const nowMs = this.#now();
    const g = this.#gateway;
    const v = this.#validator;
    let oldestPending: { seq: number; gatewayTimeMs: number } | null = null;
    if (g) {
      const first = g.outbox.pending({ eventsMax: 1 })[0];
      const event = first?.events[0];
      if (first && event) oldestPending = { seq: first.firstSeq, gatewayTimeMs: event.gatewayTimeMs };
    }
    return {
      nowMs,
      gateway: g
        ? {
            id: g.config.gateway.gateway.id,
            enterprise: g.config.gateway.gateway.enterprise,
            role: g.chainRole,
            stats: g.stats(),
            chainMetrics: g.chainMetrics(),
            oldestPending,
          }
        : null,
      validator: v
        ? {
            member: v.member,
            chainId: v.genesis.chainId,
            quorum: v.genesis.quorum,
            metrics: v.node.metrics(),
            access: v.access?.snapshot() ?? null,
          }
        : null,
      process: this.#process(false),
      disk: this.#disk(),
    };
  }

  /** Takes the periodic sample: moves the CPU figure, the trend and the chain's progress on. */
  sample(): Observation {
    this.#process(true);
    const o = this.observe();
    const s = o.gateway?.stats;
    // Events final (a gateway's own) or transactions committed (a validator's): per second on the page.
    const committed = s ? (s.submitter?.committed ?? 0) : (o.validator?.metrics.saves.txs ?? 0);
    const waiting = s ? s.outbox.pending > 0 : (o.validator?.metrics.status.mempoolTxs ?? 0) > 0;
    if (committed > this.#lastCommitted) {
      if (this.#lastCommitted >= 0) this.#lastFinalMs = o.nowMs;
      this.#lastCommitted = committed;
    }
    if (!waiting) this.#waitingSinceMs = null;
    else this.#waitingSinceMs ??= o.nowMs;
    this.#trend.push({
      atMs: o.nowMs,
      pending: s?.outbox.pending ?? 0,
      readings: s?.readings ?? 0,
      stored: s?.eventsStored ?? 0,
      committed,
    });
    if (this.#trend.length > trendSamplesMax) this.#trend.shift();
    return o;
  }

  health(o: Observation = this.observe()): HealthReport {
    return evaluateHealth(this.#healthInputs(o), this.policy);
  }

  #healthInputs(o: Observation): HealthInputs {
    const g = o.gateway;
    const s = g?.stats;
    const chain = this.#chainStatus(o);
    return {
      nowMs: o.nowMs,
      attached: this.attached,
      devices: s
        ? s.devices.map((d) => ({ device: d.device, state: d.state, lastError: d.lastError }))
        : null,
      outbox: s
        ? {
            pending: s.outbox.pending,
            rows: s.outbox.rows,
            maxRows: s.outbox.maxRows,
            usedBytes: s.outbox.usedBytes,
            maxBytes: s.outbox.maxBytes,
            lostDrafts: s.outbox.pendingGap?.droppedCount ?? 0,
            corrupt: s.outbox.corrupt,
            refusingWrites: s.queue.failures > 0 && s.queue.queued > 0,
          }
        : null,
      pendingTrend: this.#trend,
      chain: this.attached
        ? {
            role: g ? g.role : 'validator',
            state: chain?.state,
            problem: chain?.problem,
            peersConnected: chain?.peersConnected,
            peersTotal: chain?.peers.length,
            quorum: o.validator?.quorum ?? (chain ? quorumSize(chain.peers.length + 1) : undefined),
            // A sample that saw nothing waiting yet: waiting starts now for this evaluation.
            waitingSinceMs: this.#waitingSince(o),
            lastFinalMs: this.#lastFinalMs ?? this.#startedMs,
          }
        : null,
      disk: o.disk,
    };
  }

  #waitingSince(o: Observation): number | null {
    const waiting = o.gateway
      ? o.gateway.stats.outbox.pending > 0
      : (o.validator?.metrics.status.mempoolTxs ?? 0) > 0;
    return waiting ? (this.#waitingSinceMs ?? o.nowMs) : null;
  }

  #chainStatus(o: Observation): NodeStatus | null {
    return o.validator?.metrics.status ?? o.gateway?.stats.chain ?? null;
  }

  /** What the page shows; `o` defaults to a fresh observation. */
  snapshot(o: Observation = this.observe()): OpsSnapshot {
    const g = o.gateway;
    const s = g?.stats;
    return {
      kind: this.kind,
      name: this.name,
      nowMs: o.nowMs,
      startedMs: s?.startedMs ?? this.#startedMs,
      attached: this.attached,
      devices: s ? s.devices.map((d) => this.#device(d)) : null,
      tags: g
        ? {
            shown: this.tags.list(tagsShownMax).map(shortValue),
            total: this.tags.size,
            dropped: this.tags.dropped,
          }
        : null,
      rates: this.#rates(),
      pipeline: s
        ? {
            readings: s.readings,
            draftsProduced: s.draftsProduced,
            eventsStored: s.eventsStored,
            draftsDropped: s.draftsDropped,
            eventsByKind: { ...s.normaliser.events } as Record<string, number>,
            queued: s.queue.queued,
          }
        : null,
      outbox: s
        ? {
            pending: s.outbox.pending,
            rows: s.outbox.rows,
            final: s.outbox.committed,
            usedBytes: s.outbox.usedBytes,
            maxBytes: s.outbox.maxBytes,
            maxRows: s.outbox.maxRows,
            oldestPendingAgeMs: g.oldestPending ? Math.max(0, o.nowMs - g.oldestPending.gatewayTimeMs) : null,
            headSeq: s.outbox.head.seq,
            gapsAppended: s.outbox.gapsAppended,
            lostDrafts: s.outbox.pendingGap?.droppedCount ?? 0,
            corrupt: s.outbox.corrupt,
          }
        : null,
      deadLetters: s
        ? {
            total: s.deadLetters,
            unsaved: s.deadLettersUnsaved,
            newest: this.deadLetters(deadLettersShownMax).map((d) => ({
              ...d,
              payload: d.payload.slice(0, deadLetterPayloadShownChars),
            })),
          }
        : null,
      chain: this.#chainView(o),
      process: o.process,
      disk: o.disk,
      health: this.health(o),
    };
  }

  /** The newest dead letters the gateway's outbox keeps, newest first (none for a validator). */
  deadLetters(limit: number): StoredDeadLetter[] {
    return this.#gateway?.outbox.deadLetters(limit) ?? [];
  }

  #device(d: DriverHealth): DeviceView {
    return {
      device: d.device,
      protocol: d.protocol,
      state: d.state,
      lastError: d.lastError ?? null,
      lastGoodReadMs: d.lastGoodReadMs,
      readings: d.readings,
      errors: d.errors,
      reconnects: d.reconnects,
      figures: figuresOf(d.detail),
      readMs: d.readLatency
        ? {
            mean: d.readLatency.sumMs / d.readLatency.count,
            p99Max: quantileBound(d.readLatency.bucketsMs, d.readLatency.counts, 0.99),
            count: d.readLatency.count,
          }
        : null,
      deadLetters: this.#deadLettersByDevice.get(d.device) ?? 0,
    };
  }

  #chainView(o: Observation): ChainView | null {
    const g = o.gateway;
    const status = this.#chainStatus(o);
    const metrics = o.validator?.metrics ?? g?.chainMetrics ?? null;
    if (g && g.role === 'none') return null;
    if (!g && !o.validator) return null;
    const sub = g?.stats.submitter ?? null;
    return {
      role: g ? g.role : 'peer',
      memberId: status?.memberId ?? null,
      state: status?.state ?? null,
      height: status?.committedHeight ?? sub?.lastHeight ?? null,
      view: status?.view ?? null,
      viewChanging: status?.viewChanging ?? false,
      primary: status?.primary ?? null,
      peers: status?.peers ?? [],
      peersConnected: status?.peersConnected ?? null,
      quorum: o.validator?.quorum ?? (status ? quorumSize(status.peers.length + 1) : null),
      lastCommitAtMs: status?.lastCommitAtMs ?? null,
      mempoolTxs: status?.mempoolTxs ?? null,
      finality: sub
        ? {
            p50Ms: sub.latencyMs.p50,
            p99Ms: sub.latencyMs.p99,
            chainP50Ms: sub.chainLatencyMs.p50,
            chainP99Ms: sub.chainLatencyMs.p99,
            samples: sub.latencyMs.samples,
          }
        : null,
      refusals: status ? { ...status.refusals } : {},
      invalidTxs: status ? { ...status.invalidTxs } : {},
      viewChangeCauses: metrics ? ({ ...metrics.core.viewChangeCauses } as Record<string, number>) : {},
      submitter: sub
        ? {
            inFlight: sub.inFlight,
            submitted: sub.submitted,
            resubmitted: sub.resubmitted,
            committed: sub.committed,
            refused: sub.refused,
            errors: sub.errors,
          }
        : null,
      problem: status?.problem ?? null,
    };
  }

  #rates(): OpsSnapshot['rates'] {
    const last = this.#trend[this.#trend.length - 1];
    let first: TrendSample | undefined;
    for (let i = this.#trend.length - 2; i >= 0; i--) {
      first = this.#trend[i];
      if (last && last.atMs - first!.atMs >= ratesWindowMs) break;
    }
    if (!last || !first || last.atMs <= first.atMs)
      return { readingsPerS: null, eventsPerS: null, committedPerS: null };
    const perS = (a: number, b: number) => Math.round(((b - a) * 1000 * 10) / (last.atMs - first!.atMs)) / 10;
    const hasGateway = this.#gateway !== null;
    return {
      readingsPerS: hasGateway ? perS(first.readings, last.readings) : null,
      eventsPerS: hasGateway ? perS(first.stored, last.stored) : null,
      committedPerS: perS(first.committed, last.committed),
    };
  }

  #process(advance: boolean): ProcessFigures {
    const mem = process.memoryUsage();
    if (advance) {
      const usage = process.cpuUsage();
      const atMs = performance.now();
      const busyUs = usage.user - this.#cpu.usage.user + (usage.system - this.#cpu.usage.system);
      const wallMs = atMs - this.#cpu.atMs;
      this.#cpu = { usage, atMs, percent: wallMs > 0 ? Math.round((busyUs / wallMs / 10) * 10) / 10 : 0 };
    }
    return {
      pid: process.pid,
      node: process.version,
      uptimeS: Math.round(process.uptime()),
      rssBytes: mem.rss,
      heapUsedBytes: mem.heapUsed,
      heapTotalBytes: mem.heapTotal,
      externalBytes: mem.external,
      cpuPercent: this.#cpu.percent,
    };
  }

  #disk(): Observation['disk'] {
    if (!this.#dataDir) return null;
    try {
      const s = statfsSync(this.#dataDir);
      return { path: this.#dataDir, freeBytes: s.bavail * s.bsize, totalBytes: s.blocks * s.bsize };
    } catch {
      return null; // not there yet (a gateway creates it at start)
    }
  }
}

/** Numbers and short strings of a driver's detail, one level deep; nested records summarised per key. */
export function figuresOf(detail: Record<string, unknown> | undefined): Record<string, string | number> {
  const out: Record<string, string | number> = {};
  if (!detail) return out;
  for (const [k, v] of Object.entries(detail)) {
    if (typeof v === 'number' || (typeof v === 'string' && v.length <= 80)) out[k] = v;
    else if (Array.isArray(v)) out[k] = v.length;
    else if (v && typeof v === 'object') {
      // Modbus: units → { '1': { state, polls, … } }
      for (const [sub, inner] of Object.entries(v).slice(0, 16)) {
        if (!inner || typeof inner !== 'object') continue;
        const parts = Object.entries(inner)
          .filter(([, x]) => typeof x === 'number' || typeof x === 'string')
          .filter(([name]) => !name.endsWith('Ms') || name.endsWith('DurationMs'))
          .map(([name, x]) => `${name} ${x}`);
        out[`${k} ${sub}`] = parts.join(', ');
      }
    }
  }
  return out;
}

/** The upper bound of the bucket holding quantile q (null: above the last bound). */
export function quantileBound(
  bounds: readonly number[],
  counts: readonly number[],
  q: number,
): number | null {
  const total = counts.reduce((a, b) => a + b, 0);
  if (total === 0) return null;
  const target = q * total;
  let seen = 0;
  for (let i = 0; i < counts.length; i++) {
    seen += counts[i]!;
    if (seen >= target) return bounds[i] ?? null;
  }
  return null;
}

function shortValue(t: TagView): TagView {
  const v: ReadingValue = t.value;
  if (typeof v === 'string' && v.length > tagValueCharsMax)
    return { ...t, value: `${v.slice(0, tagValueCharsMax)}…` };
  return t;
}
