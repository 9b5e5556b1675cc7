/**
 * Every bound of the operator's side in one place: how often it samples, how much history it keeps,
 * how many tags, dead letters and live clients it serves. The relations between them are asserted
 * below, at load time.
 */
import { outboxGrowthWindowMsMax } from '../gateway/config/gateway-schema.ts';

/** The status page's sample: rates, the health trend and the live updates move at this pace. */
export const sampleIntervalMs = 1_000;
/** Rates (readings/s, events/s) are averaged over this span of samples. */
export const ratesWindowMs = 5_000;
/**
 * Samples of the outbox trend kept (one per sample interval, oldest dropped): the longest
 * `health.outboxGrowthWindowMs` the schema accepts, at one sample per interval.
 */
export const trendSamplesMax = 601;

/** Distinct device/tag pairs whose last reading is kept; beyond, new pairs are counted, not kept. */
export const tagsMax = 4_096;
/** Tags sent to the page per update (sorted by device, then tag); the rest are counted. */
export const tagsShownMax = 1_000;
/** A string value longer than this is cut for the page (readings keep theirs). */
export const tagValueCharsMax = 200;

/** Newest dead letters shown on the page; `/api/dead-letters` serves up to deadLettersQueryMax. */
export const deadLettersShownMax = 20;
export const deadLettersQueryMax = 1_000;
/** Dead-letter payload characters sent to the page (the store keeps up to 1 KiB). */
export const deadLetterPayloadShownChars = 200;

/** Live clients (server-sent events) at once; beyond, 503 and the page falls back to polling. */
export const liveClientsMax = 16;
/**
 * A live client whose socket buffer holds more than this is behind: updates are skipped for it
 * until it has drained (it then gets the newest; nothing queues up per client).
 */
export const liveClientBufferBytesMax = 1024 * 1024;

/** Series per metric at most (label combinations, e.g. one per device and error reason); the rest are left out. */
export const seriesPerMetricMax = 2_000;

/** Finality latency histogram bounds, seconds (source → final block; signed → final block). */
export const finalityBucketsS: readonly number[] = Object.freeze([
  0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 1_800,
]);

/** `masbc-edge health`: how long it waits for the status server's answer. */
export const healthRequestTimeoutMs = 5_000;

if ((trendSamplesMax - 1) * sampleIntervalMs < outboxGrowthWindowMsMax)
  throw new Error('observe bounds: the trend must cover the longest outbox growth window');
if (ratesWindowMs > (trendSamplesMax - 1) * sampleIntervalMs)
  throw new Error('observe bounds: the rates window must fit in the trend');
if (tagsShownMax > tagsMax) throw new Error('observe bounds: cannot show more tags than are kept');
if (deadLettersShownMax > deadLettersQueryMax)
  throw new Error('observe bounds: the page shows at most what the API serves');
