/**
 * Transport errors, one class per failure with a stable `name`. Operating failures of the network
 * (a peer down, a timeout) surface only from {@link Transport.request}; `send` never fails for
 * them, because losing a consensus message is normal and counted, not exceptional.
 */

/** `send`/`request` to oneself or to someone who is not a validator: a bug in the caller. */
export class NotAPeerError extends Error {
  override name = 'NotAPeerError';
}

/** A payload above the configured maximum: a bug in the caller (it should never build one). */
export class MessageTooLargeError extends Error {
  override name = 'MessageTooLargeError';
}

export class TransportStoppedError extends Error {
  override name = 'TransportStoppedError';
}

/** Invalid transport limits: a configuration error reported before anything starts. */
export class TransportLimitsError extends RangeError {
  override name = 'TransportLimitsError';
}

/**
 * Why a request failed. Local: 'timeout', 'aborted' (the caller's signal), 'unavailable' (no
 * connection could be opened, or the peer is quarantined), 'too-many-requests' (we already have the
 * maximum in flight to that peer), 'stopped', 'protocol' (the answer was malformed or too large:
 * the peer is dropped). Remote, as answered by the peer: 'busy', 'no-handler', 'handler-failed',
 * 'response-too-large'.
 */
export const requestFailures = [
  'timeout',
  'aborted',
  'unavailable',
  'too-many-requests',
  'stopped',
  'protocol',
  'busy',
  'no-handler',
  'handler-failed',
  'response-too-large',
] as const;
export type RequestFailure = (typeof requestFailures)[number];
/** The failures a responder can send back. */
export const remoteRequestFailures = ['busy', 'no-handler', 'handler-failed', 'response-too-large'] as const;
export type RemoteRequestFailure = (typeof remoteRequestFailures)[number];

export class RequestError extends Error {
  override name = 'RequestError';
  readonly reason: RequestFailure;
  constructor(reason: RequestFailure, message: string, options?: { cause?: unknown }) {
    super(`${reason}: ${message}`, options);
    this.reason = reason;
  }
}
