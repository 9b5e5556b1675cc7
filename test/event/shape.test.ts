/**
 * The hand-written structural checks every validator runs (src/event/shape.ts) against the zod
 * schemas of event.ts, on generated envelopes and bodies, hundreds of mutations and random byte
 * flips: they must agree, except where shape.ts is stricter on purpose (`__proto__`).
 */
import { describe, expect, it } from 'vitest';
import { canonicalJson } from '../../src/crypto/canonical.ts';
import { generateKey } from '../../src/crypto/keys.ts';
import type { EventDraft } from '../../src/event/draft.ts';
import { bodySchema, envelopeSchema } from '../../src/event/event.ts';
import { bodyShapeProblem, envelopeShapeProblem } from '../../src/event/shape.ts';
import { EventSigner, emptyHead } from '../../src/event/signer.ts';

// biome-ignore lint/suspicious/noExplicitAny: the mutations reach into untyped JSON on purpose
type Loose = Record<string, any>;

function events() {
  const signer = new EventSigner(
    { enterprise: 'acme', site: 'plant1', line: 'line1', gateway: 'gw-1' },
    generateKey(),
  );
  const drafts: EventDraft[] = Array.from({ length: 6 }, (_, i) => ({
    kind: i === 5 ? 'gap' : 'part_completed',
    dataClass: i === 5 ? 'equipment' : 'process',
    station: 'ST-10',
    device: 'cnc1',
    sourceTimeMs: 1_763_880_000_000 + i,
    lot: 'LOT-2026-000123',
    order: 'ORD-0042',
    product: `SN-${i}`,
    values: { diameter: { v: 25 + i / 1000, unit: 'mm', q: 'good' } },
    ...(i === 5
      ? {
          gap: {
            droppedCount: 3,
            firstSourceTimeMs: 1,
            lastSourceTimeMs: 2,
            afterSeq: 4,
            byKind: { part_completed: 3 },
            reason: 'outbox full',
          },
        }
      : {}),
  }));
  return signer.sign(drafts, emptyHead).events;
}

const envelopeMutations: ((e: Loose) => void)[] = [
  (e) => (e.seq = 0),
  (e) => (e.seq = 2 ** 53),
  (e) => (e.seq = 1.5),
  (e) => (e.v = 1),
  (e) => (e.kind = 'other'),
  (e) => (e.dataClass = 'secret'),
  (e) => (e.enterprise = ''),
  (e) => (e.enterprise = 'é'),
  (e) => (e.enterprise = 'a b'),
  (e) => (e.enterprise = 'x'.repeat(64)),
  (e) => (e.enterprise = 'x'.repeat(65)),
  (e) => (e.gateway = '-gw'),
  (e) => (e.prev = e.prev.toUpperCase()),
  (e) => (e.keyId = e.keyId.slice(1)),
  (e) => (e.sourceTimeMs = -1),
  (e) => (e.gatewayTimeMs = 8_640_000_000_000_001),
  (e) => delete e.body,
  (e) => (e.body = 1),
  (e) => (e.extra = true),
];

const bodyMutations: ((b: Loose) => void)[] = [
  (b) => (b.salt = b.salt.slice(1)),
  (b) => (b.site = ''),
  (b) => (b.lot = 'x'.repeat(129)),
  (b) => (b.lot = '😀'.repeat(128)),
  (b) => (b.rule = null),
  (b) => (b.values = { '': { v: 1, q: 'good' } }),
  (b) => (b.values = { x: { v: 1, q: 'fine' } }),
  (b) => (b.values = { x: { v: 'y'.repeat(1025), q: 'good' } }),
  (b) => (b.values = { x: { v: [1], q: 'good' } }),
  (b) => (b.values = { x: { v: true, unit: 'u'.repeat(33), q: 'good' } }),
  (b) => (b.values = { x: { v: null, q: 'good', extra: 1 } }),
  (b) => (b.values = { x: { v: 1e300, q: 'bad' } }),
  (b) =>
    (b.gap = {
      droppedCount: 0,
      firstSourceTimeMs: 0,
      lastSourceTimeMs: 0,
      afterSeq: 0,
      byKind: {},
      reason: '',
    }),
  (b) =>
    (b.gap = {
      droppedCount: 1,
      firstSourceTimeMs: 0,
      lastSourceTimeMs: 0,
      afterSeq: 0,
      byKind: { nope: 1 },
      reason: '',
    }),
  (b) => (b.extra = true),
];

function flips(x: unknown): unknown[] {
  const s = canonicalJson(x);
  const out: unknown[] = [];
  for (let k = 0; k < 200; k++) {
    const chars = [...s];
    const at = (k * 7907) % chars.length;
    chars[at] = String.fromCharCode((chars[at]!.charCodeAt(0) + 1 + (k % 5)) % 128);
    try {
      out.push(JSON.parse(chars.join('')));
    } catch {}
  }
  return out;
}

function disagreements(
  inputs: unknown[],
  zod: (x: unknown) => boolean,
  mine: (x: unknown) => string | null,
): string[] {
  const out: string[] = [];
  for (const x of inputs) {
    const problem = mine(x);
    if (zod(x) !== (problem === null)) out.push(`${problem}: ${JSON.stringify(x).slice(0, 200)}`);
  }
  return out;
}

describe('structural checks agree with the schemas', () => {
  const list = events();

  it('on envelopes: valid ones, every mutation and random byte flips', () => {
    const inputs: unknown[] = [];
    for (const e of list) {
      inputs.push(e.env);
      for (const f of envelopeMutations) {
        const c = structuredClone(e.env) as Loose;
        f(c);
        inputs.push(c);
      }
      inputs.push(...flips(e.env));
    }
    expect(inputs.length).toBeGreaterThan(500);
    expect(disagreements(inputs, (x) => envelopeSchema.safeParse(x).success, envelopeShapeProblem)).toEqual(
      [],
    );
    expect(list.every((e) => envelopeShapeProblem(e.env) === null)).toBe(true);
  });

  it('on bodies: valid ones, every mutation and random byte flips; __proto__ only here', () => {
    const inputs: unknown[] = [];
    for (const e of list) {
      inputs.push(e.body);
      for (const f of bodyMutations) {
        const c = structuredClone(e.body) as Loose;
        f(c);
        inputs.push(c);
      }
      inputs.push(...flips(e.body));
    }
    expect(inputs.length).toBeGreaterThan(500);
    expect(disagreements(inputs, (x) => bodySchema.safeParse(x).success, bodyShapeProblem)).toEqual([]);
    const proto = JSON.parse(
      canonicalJson(list[0]!.body).replace('"values":{', '"values":{"__proto__":{"q":"good","v":1},'),
    );
    expect(bodySchema.safeParse(proto).success).toBe(true); // zod drops the key: a commitment over something else
    expect(bodyShapeProblem(proto)).toMatch(/__proto__/);
  });
});
