/**
 * Strict structural checks of decoded envelopes, bodies and batch headers: the rules of the zod
 * schemas (event.ts, batch.ts) written out by hand, for two reasons.
 *
 * - **Validity is consensus.** Every validator must reach the same verdict on the same bytes. A
 *   schema library's semantics can change under us between versions (zod 4 moved string lengths
 *   from UTF-16 units to code points); a validator running another version would disagree. Here
 *   the rules are ours and fixed: lengths in Unicode code points, integers safe, numbers finite.
 * - **Speed.** Every validator checks every envelope; the generic schema costs about an order of
 *   magnitude more than this (docs/ledger.md has the figures).
 *
 * Stricter than the schemas in one place: no key may be `__proto__` (zod drops it from its output,
 * so a commitment would be computed over something else). `test/event/shape.test.ts` checks agreement
 * with the schemas on generated and mutated inputs.
 */
import {
  batchEventsMax,
  contextCharsMax,
  gapReasonCharsMax,
  identifierPattern,
  nameCharsMax,
  textValueCharsMax,
  timeMsMax,
  unitCharsMax,
} from './bounds.ts';
import { eventKinds, qualities } from './kinds.ts';

const dataClassSet = new Set(['process', 'equipment']);
const kindSet = new Set<string>(eventKinds);
const qualitySet = new Set<string>(qualities);
const recordKeys = new Set(['id', 'env', 'body']);
const envKeys = new Set([
  'v',
  'enterprise',
  'gateway',
  'keyId',
  'dataClass',
  'kind',
  'sourceTimeMs',
  'gatewayTimeMs',
  'seq',
  'prev',
  'body',
]);
/** The fields of a body (event.ts `bodySchema`); none of them is an envelope's. */
export const bodyKeys: ReadonlySet<string> = new Set([
  'salt',
  'site',
  'line',
  'station',
  'device',
  'rule',
  'lot',
  'product',
  'order',
  'step',
  'values',
  'gap',
]);
const valueKeys = new Set(['v', 'unit', 'q']);
const gapKeys = new Set([
  'droppedCount',
  'firstSourceTimeMs',
  'lastSourceTimeMs',
  'afterSeq',
  'byKind',
  'reason',
]);
const headerKeys = new Set([
  'v',
  'enterprise',
  'gateway',
  'keyId',
  'firstSeq',
  'count',
  'prev',
  'root',
  'envelopeBytes',
]);

const hex64 = /^[0-9a-f]{64}$/;
const hex32 = /^[0-9a-f]{32}$/;
const salt22 = /^[A-Za-z0-9_-]{22}$/;
const highSurrogate = /[\uD800-\uDBFF]/;

type Obj = Record<string, unknown>;

function isObject(x: unknown): x is Obj {
  return typeof x === 'object' && x !== null && !Array.isArray(x);
}

/** Length in Unicode code points (a surrogate pair counts once). */
export function codePointLength(s: string): number {
  if (!highSurrogate.test(s)) return s.length;
  let count = s.length;
  for (let i = 0; i < s.length - 1; i++) {
    if ((s.charCodeAt(i) & 0xfc00) === 0xd800 && (s.charCodeAt(i + 1) & 0xfc00) === 0xdc00) {
      count--;
      i++;
    }
  }
  return count;
}

/** A string of min..max code points. A code point is one or two UTF-16 units: count only when in doubt. */
function text(x: unknown, min: number, max: number): boolean {
  if (typeof x !== 'string') return false;
  const units = x.length;
  if (units < min) return false;
  if (units <= max && units >= 2 * min) return true;
  const n = codePointLength(x);
  return n >= min && n <= max;
}

function int(x: unknown, min: number, max: number): boolean {
  return typeof x === 'number' && Number.isSafeInteger(x) && x >= min && x <= max;
}

/** First key of `o` not in `allowed`, or undefined. */
function unknownKey(o: Obj, allowed: ReadonlySet<string>): string | undefined {
  for (const k of Object.keys(o)) if (!allowed.has(k)) return k;
  return undefined;
}

/**
 * `null` if `x` (decoded JSON) has exactly the shape of an event record (id, envelope, optional
 * body), else `path: problem`. Says nothing about ids or commitments.
 */
export function eventRecordShapeProblem(x: unknown): string | null {
  if (!isObject(x)) return 'event: expected an object';
  const k = unknownKey(x, recordKeys);
  if (k !== undefined) return `event: unknown key "${k}"`;
  if (typeof x.id !== 'string' || !hex64.test(x.id)) return 'id: expected 64 lower-case hex digits';
  const env = envelopeShapeProblem(x.env);
  if (env) return env;
  return x.body === undefined ? null : bodyShapeProblem(x.body);
}

/** `null` if `e` has exactly the shape of an envelope, else `env.field: problem`. */
export function envelopeShapeProblem(e: unknown): string | null {
  return envProblem(e);
}

/** `null` if `b` has exactly the shape of a body, else `body.field: problem`. */
export function bodyShapeProblem(b: unknown): string | null {
  return bodyProblem(b);
}

/** `null` if `h` has exactly the shape of a batch header, else `header.field: problem`. */
export function batchHeaderShapeProblem(h: unknown): string | null {
  if (!isObject(h)) return 'header: expected an object';
  const k = unknownKey(h, headerKeys);
  if (k !== undefined) return `header: unknown key "${k}"`;
  if (h.v !== 2) return 'header.v: expected 2';
  if (typeof h.enterprise !== 'string' || !identifierPattern.test(h.enterprise))
    return 'header.enterprise: expected an identifier';
  if (typeof h.gateway !== 'string' || !identifierPattern.test(h.gateway))
    return 'header.gateway: expected an identifier';
  if (typeof h.keyId !== 'string' || !hex32.test(h.keyId))
    return 'header.keyId: expected 32 lower-case hex digits';
  if (!int(h.firstSeq, 1, Number.MAX_SAFE_INTEGER)) return 'header.firstSeq: expected an integer ≥ 1';
  if (!int(h.count, 1, batchEventsMax)) return `header.count: expected an integer 1-${batchEventsMax}`;
  if (!int((h.firstSeq as number) + (h.count as number) - 1, 1, Number.MAX_SAFE_INTEGER))
    return 'header.count: the batch ends beyond the largest seq';
  if (typeof h.prev !== 'string' || !hex64.test(h.prev))
    return 'header.prev: expected 64 lower-case hex digits';
  if (typeof h.root !== 'string' || !hex64.test(h.root))
    return 'header.root: expected 64 lower-case hex digits';
  if (!int(h.envelopeBytes, 1, Number.MAX_SAFE_INTEGER))
    return 'header.envelopeBytes: expected an integer ≥ 1';
  return null;
}

function envProblem(e: unknown): string | null {
  if (!isObject(e)) return 'env: expected an object';
  const k = unknownKey(e, envKeys);
  if (k !== undefined) return `env: unknown key "${k}"`;
  if (e.v !== 2) return 'env.v: expected 2';
  if (typeof e.enterprise !== 'string' || !identifierPattern.test(e.enterprise))
    return 'env.enterprise: expected an identifier (1-64 of A-Z a-z 0-9 . _ -)';
  if (typeof e.gateway !== 'string' || !identifierPattern.test(e.gateway))
    return 'env.gateway: expected an identifier (1-64 of A-Z a-z 0-9 . _ -)';
  if (typeof e.keyId !== 'string' || !hex32.test(e.keyId))
    return 'env.keyId: expected 32 lower-case hex digits';
  if (typeof e.dataClass !== 'string' || !dataClassSet.has(e.dataClass)) return 'env.dataClass: unknown';
  if (typeof e.kind !== 'string' || !kindSet.has(e.kind)) return 'env.kind: unknown';
  if (!int(e.sourceTimeMs, 0, timeMsMax)) return 'env.sourceTimeMs: expected an integer ms time';
  if (!int(e.gatewayTimeMs, 0, timeMsMax)) return 'env.gatewayTimeMs: expected an integer ms time';
  if (!int(e.seq, 1, Number.MAX_SAFE_INTEGER)) return 'env.seq: expected an integer ≥ 1';
  if (typeof e.prev !== 'string' || !hex64.test(e.prev)) return 'env.prev: expected 64 lower-case hex digits';
  if (typeof e.body !== 'string' || !hex64.test(e.body)) return 'env.body: expected 64 lower-case hex digits';
  return null;
}

function bodyProblem(b: unknown): string | null {
  if (!isObject(b)) return 'body: expected an object';
  const k = unknownKey(b, bodyKeys);
  if (k !== undefined) return `body: unknown key "${k}"`;
  if (typeof b.salt !== 'string' || !salt22.test(b.salt)) return 'body.salt: expected 16 bytes base64url';
  for (const f of ['site', 'line', 'station', 'device'] as const)
    if (!text(b[f], 1, nameCharsMax)) return `body.${f}: expected 1-${nameCharsMax} characters`;
  if (b.rule !== undefined && !text(b.rule, 1, nameCharsMax))
    return `body.rule: expected 1-${nameCharsMax} characters`;
  for (const f of ['lot', 'product', 'order', 'step'] as const)
    if (b[f] !== undefined && !text(b[f], 0, contextCharsMax))
      return `body.${f}: expected at most ${contextCharsMax} characters`;
  if (!isObject(b.values)) return 'body.values: expected an object';
  for (const [name, value] of Object.entries(b.values)) {
    if (!text(name, 1, nameCharsMax) || name === '__proto__') return `body.values: bad value name "${name}"`;
    const p = valueProblem(value);
    if (p) return `body.values.${name}.${p}`;
  }
  if (b.gap !== undefined) return gapProblem(b.gap);
  return null;
}

function valueProblem(v: unknown): string | null {
  if (!isObject(v)) return 'expected an object';
  const k = unknownKey(v, valueKeys);
  if (k !== undefined) return `unknown key "${k}"`;
  const x = v.v;
  const ok =
    x === null ||
    typeof x === 'boolean' ||
    (typeof x === 'number' && Number.isFinite(x)) ||
    (typeof x === 'string' && text(x, 0, textValueCharsMax));
  if (!ok)
    return `v: expected a number, a string of at most ${textValueCharsMax} characters, a boolean or null`;
  if (v.unit !== undefined && !text(v.unit, 0, unitCharsMax))
    return `unit: expected at most ${unitCharsMax} characters`;
  if (typeof v.q !== 'string' || !qualitySet.has(v.q)) return 'q: expected good, uncertain or bad';
  return null;
}

function gapProblem(g: unknown): string | null {
  if (!isObject(g)) return 'body.gap: expected an object';
  const k = unknownKey(g, gapKeys);
  if (k !== undefined) return `body.gap: unknown key "${k}"`;
  if (!int(g.droppedCount, 1, Number.MAX_SAFE_INTEGER))
    return 'body.gap.droppedCount: expected an integer ≥ 1';
  if (!int(g.firstSourceTimeMs, 0, timeMsMax))
    return 'body.gap.firstSourceTimeMs: expected an integer ms time';
  if (!int(g.lastSourceTimeMs, 0, timeMsMax)) return 'body.gap.lastSourceTimeMs: expected an integer ms time';
  if (!int(g.afterSeq, 0, Number.MAX_SAFE_INTEGER)) return 'body.gap.afterSeq: expected an integer ≥ 0';
  if (!isObject(g.byKind)) return 'body.gap.byKind: expected an object';
  for (const [kind, n] of Object.entries(g.byKind)) {
    if (!kindSet.has(kind)) return `body.gap.byKind: unknown kind "${kind}"`;
    if (!int(n, 1, Number.MAX_SAFE_INTEGER)) return `body.gap.byKind.${kind}: expected an integer ≥ 1`;
  }
  if (!text(g.reason, 0, gapReasonCharsMax))
    return `body.gap.reason: expected at most ${gapReasonCharsMax} characters`;
  return null;
}
