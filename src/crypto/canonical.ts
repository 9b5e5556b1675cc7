/**
 * Canonical JSON (RFC 8785, "JCS"): the one byte encoding that event ids, commitments and
 * signatures are computed over.
 *
 * Why JCS and not deterministic CBOR: events are JSON everywhere else (SQLite rows, the HTTP API,
 * a browser verifier), JCS needs no extra codec in a browser, and a human can read the exact bytes
 * that were signed. The cost (larger than CBOR, floats printed as text) does not matter at our
 * event sizes. JCS's rules: object keys sorted by UTF-16 code units, no whitespace, numbers as
 * ECMAScript prints them, strings escaped as JSON.stringify does, and only well-formed Unicode.
 *
 * @example
 *   canonicalJson({ b: 1, a: [true, null] }) === '{"a":[true,null],"b":1}'
 */

export class CanonicalEncodingError extends Error {
  override name = 'CanonicalEncodingError';
}

const encoder = new TextEncoder();

/** Canonical JSON text of a JSON value. Object members whose value is `undefined` are omitted. */
export function canonicalJson(value: unknown): string {
  const out: string[] = [];
  write(value, out, '$', 0);
  return out.join('');
}

/** UTF-8 bytes of {@link canonicalJson}. */
export function encodeCanonical(value: unknown): Uint8Array {
  return encoder.encode(canonicalJson(value));
}

const depthMax = 32;

function write(value: unknown, out: string[], path: string, depth: number): void {
  if (depth > depthMax) throw new CanonicalEncodingError(`${path}: nested deeper than ${depthMax}`);
  switch (typeof value) {
    case 'string':
      if (!value.isWellFormed()) throw new CanonicalEncodingError(`${path}: string has a lone surrogate`);
      out.push(JSON.stringify(value));
      return;
    case 'number':
      if (!Number.isFinite(value)) throw new CanonicalEncodingError(`${path}: ${value} is not a JSON number`);
      // ECMAScript's Number-to-string is exactly what RFC 8785 §3.2.2.3 prescribes; -0 prints as 0.
      out.push(JSON.stringify(value));
      return;
    case 'boolean':
      out.push(value ? 'true' : 'false');
      return;
    case 'object': {
      if (value === null) {
        out.push('null');
        return;
      }
      if (Array.isArray(value)) {
        out.push('[');
        for (let i = 0; i < value.length; i++) {
          if (i > 0) out.push(',');
          write(value[i], out, `${path}[${i}]`, depth + 1);
        }
        out.push(']');
        return;
      }
      const proto = Object.getPrototypeOf(value);
      if (proto !== Object.prototype && proto !== null) {
        throw new CanonicalEncodingError(
          `${path}: ${proto?.constructor?.name ?? 'object'} is not plain JSON`,
        );
      }
      // Default string comparison orders by UTF-16 code units, as RFC 8785 §3.2.3 requires.
      const keys = Object.keys(value as object)
        .filter((k) => (value as Record<string, unknown>)[k] !== undefined)
        .sort();
      out.push('{');
      for (let i = 0; i < keys.length; i++) {
        const k = keys[i]!;
        if (!k.isWellFormed()) throw new CanonicalEncodingError(`${path}: key has a lone surrogate`);
        if (i > 0) out.push(',');
        out.push(JSON.stringify(k), ':');
        write((value as Record<string, unknown>)[k], out, `${path}.${k}`, depth + 1);
      }
      out.push('}');
      return;
    }
    default:
      throw new CanonicalEncodingError(`${path}: ${typeof value} is not a JSON value`);
  }
}
