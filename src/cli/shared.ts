/**
 * What the commands share: waiting for a signal, and option parsers.
 */
import { InvalidArgumentError } from 'commander';

/** Resolves on the first SIGINT or SIGTERM; a second one exits at once. */
export function untilSignal(): Promise<NodeJS.Signals> {
  return new Promise((resolve) => {
    const onSignal = (signal: NodeJS.Signals) => {
      process.removeListener('SIGINT', onSignal);
      process.removeListener('SIGTERM', onSignal);
      process.once('SIGINT', () => process.exit(130));
      process.once('SIGTERM', () => process.exit(143));
      resolve(signal);
    };
    process.on('SIGINT', onSignal);
    process.on('SIGTERM', onSignal);
  });
}

/** An option parser accepting integers from `min` to `max`. */
export function integer(min: number, max: number) {
  return (text: string) => {
    const v = Number(text);
    if (!Number.isInteger(v) || v < min || v > max)
      throw new InvalidArgumentError(`expected an integer from ${min} to ${max}`);
    return v;
  };
}

/** `name=value unit`, or `name=null` (a missing value has no unit), then the quality when not good. */
export function formatValue(name: string, v: { v: unknown; unit?: string | undefined; q: string }): string {
  const unit = v.v !== null && v.unit ? ` ${v.unit}` : '';
  return `${name}=${v.v === null ? 'null' : String(v.v)}${unit}${v.q === 'good' ? '' : ` (${v.q})`}`;
}
