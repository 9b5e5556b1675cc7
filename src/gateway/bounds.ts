/**
 * Every bound of the gateway runtime in one place: its loops, its queues, the submitter's window
 * and rates, and the validator thread's timeouts. The configuration schema (config/gateway-schema.ts)
 * takes the operator-settable ones (ranges and defaults) from here, so a value the schema accepts is
 * one the runtime accepts; the relations between bounds are asserted below, at start-up.
 */

/** Period rules are checked at least this often (their own schedule is wall-clock aligned). */
export const gatewayTickMs = 100;
/** Drafts the batcher may hold while the outbox refuses writes, in batches. */
export const queueBatchesMax = 64;
/** How often final events are pruned from the outbox. */
export const pruneIntervalMs = 3_600_000;
/** Dead letters held between saves; beyond this the oldest are not saved (counted). */
export const deadLetterQueueMax = 1_000;
/** How often held dead letters are saved. */
export const deadLetterSaveMs = 1_000;

/** The submitter (submitter.ts): what it sends to the chain, how fast, and when again. */
export const submitter = Object.freeze({
  /** Events per submit call, at most. */
  batchMax: 1_024,
  /** Events submitted and not yet final: at least one whole batch. */
  windowEvents: { min: 1_024, max: 1_000_000, default: 8_192 },
  /** Submission rate limit (events/s): the drain rate of a backlog. */
  drainEventsPerSecond: { min: 1, max: 1_000_000, default: 20_000 },
  /** In-flight events are submitted again when none of them became final for this long. */
  resubmitAfterMs: { min: 100, max: 3_600_000, default: 10_000 },
  /** How often its loop runs when not kicked. */
  tickMs: 50,
  /** Latency samples kept for the p50/p99 it reports. */
  latencySamplesMax: 4_096,
});

/** The validator on its own thread (chain-thread.ts). */
export const validatorThread = Object.freeze({
  /** How often the worker posts the validator's status. */
  statusIntervalMs: 250,
  /** How often it posts the validator's counters (the status page and /metrics read them). */
  metricsIntervalMs: 1_000,
  /** Longest the validator may take to start (a long ledger replay included). */
  startTimeoutMs: 120_000,
  /** Longest a clean stop may take before the thread is terminated. */
  stopTimeoutMs: 15_000,
});

if (submitter.windowEvents.min < submitter.batchMax)
  throw new Error('gateway bounds: the submitter window must hold at least one batch');
if (submitter.windowEvents.default < submitter.windowEvents.min)
  throw new Error('gateway bounds: the default submitter window is below its minimum');
