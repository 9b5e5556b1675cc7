/**
 * Every bound of the validator HTTP API in one place (docs/security.md, "HTTP API"): request bodies
 * per route, timeouts, per-address connections, requests and long-polls, and the share of the event
 * loop that signature checks of submitted batches may take from consensus. `checkApiLimits` asserts
 * how they relate.
 */
import { submitBatchesMax } from '../consensus/runtime/client.ts';
import {
  batchHeaderBytesMax,
  batchSignatureBytes,
  batchTxBytesMax,
  bodyBytesMax,
  envelopeBytesMax,
} from '../event/bounds.ts';

export interface ValidatorApiLimits {
  /** Largest POST /v1/batches body (binary: batches with their events' bodies), bytes. */
  bodyBytesMax: number;
  /** Largest JSON body (POST /v1/receipts), bytes. */
  jsonBodyBytesMax: number;
  /** Largest body of any other route, bytes. */
  otherBodyBytesMax: number;
  /** Deepest nesting of a JSON body (json.ts; refused before parsing). */
  jsonDepthMax: number;
  /** Objects and arrays in one JSON body (json.ts; refused before parsing). */
  jsonContainersMax: number;
  /** Batches per POST /v1/batches. */
  submitBatchesMax: number;
  /** Blocks per GET /v1/commits answer. */
  commitsPageMax: number;
  /** Longest a GET /v1/commits waits for a new block. */
  commitsWaitMaxMs: number;
  /** GET /v1/commits requests waiting at once, from all clients; beyond, 503. */
  commitWaitersMax: number;
  /** GET /v1/commits requests waiting at once from one address; beyond, 429. */
  commitWaitersPerAddressMax: number;
  /** Ids per POST /v1/receipts. */
  receiptIdsMax: number;
  /** Final blocks kept in memory for GET /v1/commits (older ones come from the store). */
  recentBlocksMax: number;
  /** A whole request (headers and body) must arrive within this (node's `requestTimeout`). */
  requestTimeoutMs: number;
  /** Its headers within this (node's `headersTimeout`): slow-header clients are cut. */
  headersTimeoutMs: number;
  /** A connection with no traffic for this long is closed (must outlast a long-poll). */
  connectionTimeoutMs: number;
  /** Idle keep-alive connections are closed after this. */
  keepAliveTimeoutMs: number;
  /** Open connections from one address; beyond, new ones are closed at once. */
  connectionsPerAddressMax: number;
  /** Requests in progress from one address (long-polls included); beyond, 429. */
  requestsPerAddressMax: number;
  /** Requests per second from one address, sustained (token bucket); beyond, 429. */
  requestsPerAddressPerSecond: number;
  /** …and in a burst. */
  requestsPerAddressBurst: number;
  /** POST /v1/batches in progress from one address (its body in memory); beyond, 429. */
  submitsPerAddressMax: number;
  /** …from all addresses together; beyond, 503. Bounds bodies in memory to this × bodyBytesMax. */
  submitsMax: number;
  /**
   * Share of the event loop the checks of submitted batches (decode, signature, body store) may
   * take over any stretch longer than `submitWorkBurstMs`; the rest is left to consensus.
   */
  submitWorkShare: number;
  /** Work the submissions may do at once after an idle stretch, ms. */
  submitWorkBurstMs: number;
  /** Transaction bytes checked in one piece of work (a gateway's largest call fits in one). */
  submitPieceBytesMax: number;
}

/** Blocks per GET /v1/commits answer, at most. */
export const commitsPageMax = 256;
/** Longest a GET /v1/commits waits for a new block. */
export const commitsWaitMaxMs = 30_000;
/** Ids per POST /v1/receipts, at most. */
export const receiptIdsMax = 10_000;
/**
 * Events per submission a gateway sends at most: its submitter's `batchMax`
 * (src/gateway/bounds.ts; a test asserts they agree).
 */
export const submissionEventsMax = 1_024;

/**
 * The largest legitimate POST /v1/batches: the larger of a gateway's largest call (1,024 events,
 * each envelope and body at its bound, in up to 64 batches) and 64 batches at their bound without
 * bodies (what a client that is not the member's own gateway may send). About 17 MB.
 */
export const submissionBytesMax = Math.max(
  submitBatchesMax * (4 + 1 + 2 + batchHeaderBytesMax + batchSignatureBytes + 2) +
    submissionEventsMax * (2 + envelopeBytesMax + 4 + bodyBytesMax),
  submitBatchesMax * (4 + batchTxBytesMax + 2),
);

/** `{"ids":[…]}` with `receiptIdsMax` hex ids, with room for whitespace. */
export const receiptsBodyBytesMax = 64 + receiptIdsMax * (64 + 2 + 1 + 2);

export const defaultValidatorApiLimits: Readonly<ValidatorApiLimits> = Object.freeze({
  bodyBytesMax: submissionBytesMax,
  jsonBodyBytesMax: receiptsBodyBytesMax,
  otherBodyBytesMax: 16 * 1024,
  jsonDepthMax: 16,
  jsonContainersMax: 1_024,
  submitBatchesMax,
  commitsPageMax,
  commitsWaitMaxMs,
  commitWaitersMax: 256,
  commitWaitersPerAddressMax: 8,
  receiptIdsMax,
  recentBlocksMax: 1_024,
  requestTimeoutMs: 60_000,
  headersTimeoutMs: 10_000,
  connectionTimeoutMs: commitsWaitMaxMs + 10_000,
  keepAliveTimeoutMs: 5_000,
  connectionsPerAddressMax: 64,
  requestsPerAddressMax: 32,
  requestsPerAddressPerSecond: 500,
  requestsPerAddressBurst: 1_000,
  submitsPerAddressMax: 2,
  submitsMax: 8,
  submitWorkShare: 0.5,
  submitWorkBurstMs: 100,
  submitPieceBytesMax:
    submissionEventsMax * (2 + envelopeBytesMax) +
    submitBatchesMax * (3 + batchHeaderBytesMax + batchSignatureBytes),
});

export function apiLimits(overrides: Partial<ValidatorApiLimits> = {}): ValidatorApiLimits {
  const l = { ...defaultValidatorApiLimits, ...overrides };
  checkApiLimits(l);
  return l;
}

function checkApiLimits(l: ValidatorApiLimits): void {
  for (const [k, v] of Object.entries(l)) {
    if (k === 'submitWorkShare') continue;
    if (!Number.isSafeInteger(v) || v < 1) throw new RangeError(`${k} must be a positive integer`);
  }
  const need = (ok: boolean, what: string) => {
    if (!ok) throw new RangeError(`validator API limits: ${what}`);
  };
  need(l.submitWorkShare > 0 && l.submitWorkShare <= 1, 'submitWorkShare must be in (0, 1]');
  need(
    l.commitWaitersPerAddressMax <= l.requestsPerAddressMax,
    'commitWaitersPerAddressMax <= requestsPerAddressMax',
  );
  need(l.submitsPerAddressMax <= l.submitsMax, 'submitsPerAddressMax <= submitsMax');
  need(l.submitsPerAddressMax <= l.requestsPerAddressMax, 'submitsPerAddressMax <= requestsPerAddressMax');
  need(
    l.requestsPerAddressPerSecond <= l.requestsPerAddressBurst,
    'requestsPerAddressPerSecond <= requestsPerAddressBurst',
  );
  // A long-poll is a quiet connection: the idle timeout must not cut it.
  need(l.connectionTimeoutMs > l.commitsWaitMaxMs, 'connectionTimeoutMs > commitsWaitMaxMs');
  need(l.headersTimeoutMs <= l.requestTimeoutMs, 'headersTimeoutMs <= requestTimeoutMs');
}
