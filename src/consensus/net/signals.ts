/** Abort-signal helpers: deadlines whose timers are released early, and racing a promise against a signal. */

/** A deadline passed. */
export class DeadlineError extends Error {
  override name = 'DeadlineError';
}

/**
 * A signal that aborts after `ms` (with a {@link DeadlineError}) or when any parent aborts.
 * Call `clear()` once done: it releases the timer, so nothing outlives the operation.
 */
export function deadline(
  ms: number,
  ...parents: (AbortSignal | undefined)[]
): { signal: AbortSignal; clear(): void; expired(): boolean } {
  const controller = new AbortController();
  const timer = setTimeout(() => controller.abort(new DeadlineError(`${ms} ms elapsed`)), ms);
  const signal = AbortSignal.any([controller.signal, ...parents.filter((p) => p !== undefined)]);
  return { signal, clear: () => clearTimeout(timer), expired: () => controller.signal.aborted };
}

/** Settles like `promise`, or rejects with the signal's reason as soon as it aborts. */
export function raceAbort<T>(promise: Promise<T>, signal: AbortSignal): Promise<T> {
  if (signal.aborted) return Promise.reject(signal.reason);
  return new Promise((resolve, reject) => {
    const onAbort = () => reject(signal.reason);
    signal.addEventListener('abort', onAbort, { once: true });
    promise.then(
      (value) => {
        signal.removeEventListener('abort', onAbort);
        resolve(value);
      },
      (err) => {
        signal.removeEventListener('abort', onAbort);
        reject(err);
      },
    );
  });
}
