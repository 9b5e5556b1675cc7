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
  return write(value, 0);
}

/** UTF-8 bytes of {@link canonicalJson}. */
export function encodeCanonical(value: unknown): Uint8Array {
  return encoder.encode(canonicalJson(value));
}

const depthMax = 32;
/** Printable ASCII without `"` and `\\`: quoted as is, the common case for ids, names and units. */
const plainAscii = /^[\x20\x21\x23-\x5b\x5d-\x7e]*$/;

function quote(s: string): string {
  if (plainAscii.test(s)) return `"${s}"`;
  if (!s.isWellFormed()) throw new CanonicalEncodingError('string has a lone surrogate');
  return JSON.stringify(s);
}

// Hot path (every event id and commitment): plain string concatenation, no per-node allocations
// beyond the sorted key list. Error messages are built only on failure.
function write(value: unknown, depth: number): string {
  if (depth > depthMax) throw new CanonicalEncodingError(`nested deeper than ${depthMax}`);
  switch (typeof value) {
    case 'string':
      return quote(value);
    case 'number':
      if (!Number.isFinite(value)) throw new CanonicalEncodingError(`${value} is not a JSON number`);
      // ECMAScript's Number-to-string is exactly what RFC 8785 §3.2.2.3 prescribes; -0 prints as 0.
      return JSON.stringify(value);
    case 'boolean':
      return value ? 'true' : 'false';
    case 'object': {
      if (value === null) return 'null';
      if (Array.isArray(value)) {
        let out = '[';
        for (let i = 0; i < value.length; i++) out += (i > 0 ? ',' : '') + write(value[i], depth + 1);
        return `${out}]`;
      }
      const proto = Object.getPrototypeOf(value);
      if (proto !== Object.prototype && proto !== null) {
        throw new CanonicalEncodingError(`${proto?.constructor?.name ?? 'object'} is not plain JSON`);
      }
      const obj = value as Record<string, unknown>;
      // Default string comparison orders by UTF-16 code units, as RFC 8785 §3.2.3 requires.
      const keys = Object.keys(obj).sort();
      let out = '{';
      let first = true;
      for (const k of keys) {
        const v = obj[k];
        if (v === undefined) continue;
        out += `${first ? '' : ','}${quote(k)}:${write(v, depth + 1)}`;
        first = false;
      }
      return `${out}}`;
    }
    default:
      throw new CanonicalEncodingError(`${typeof value} is not a JSON value`);
  }
}
