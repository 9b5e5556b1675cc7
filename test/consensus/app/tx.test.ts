/**
 * One transaction's validity (src/consensus/app/tx.ts, shape.ts): every refusal code, the caches
 * never changing a verdict, and agreement with the reference verifier (EventVerifier) and schema
 * (zod `signedEventSchema`) on generated and mutated events.
 */
import { describe, expect, it } from 'vitest';
import { GatewayRegistry } from '../../../src/consensus/app/registry.ts';
import { scanIdHex, TxChecker, type TxVerdict, txIdOf } from '../../../src/consensus/app/tx.ts';
import { canonicalJson } from '../../../src/crypto/canonical.ts';
import { toHex } from '../../../src/crypto/hash.ts';
import type { SignatureVerifier } from '../../../src/crypto/keys.ts';
import { type SignedEvent, signedEventSchema } from '../../../src/event/event.ts';
import { eventShapeProblem } from '../../../src/event/shape.ts';
import { EventRejected, EventVerifier } from '../../../src/event/verify.ts';
import { bytesOf, registryOf, TestGateway } from './fixtures.ts';

const gw = new TestGateway('acme', 'gw-line1');
const other = new TestGateway('bolt', 'gw-1', 'p256');
const registry = registryOf(gw, other);
const text = (e: SignedEvent) => canonicalJson(e);
const utf8 = (s: string) => new TextEncoder().encode(s);

// biome-ignore lint/suspicious/noExplicitAny: the mutations reach into untyped JSON on purpose
type Loose = Record<string, any>;

function code(v: TxVerdict): string {
  return v.ok ? 'ok' : v.code;
}

/** The reference verdict: EventVerifier on the parsed bytes (plus its own size rule). */
function reference(bytes: Uint8Array, verifier = new EventVerifier(registry)): string {
  let input: unknown;
  try {
    input = JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(bytes));
  } catch {
    return 'malformed';
  }
  try {
    verifier.verify(input, bytes.byteLength);
    return 'ok';
  } catch (err) {
    if (err instanceof EventRejected) return err.code;
    throw err;
  }
}

describe('event transactions', () => {
  it('accepts per-event and batch-signed events, Ed25519 and P-256, and a gap event; the id is the event id', () => {
    const checker = new TxChecker({ registry });
    const events = [
      ...gw.sign(1, 'event'),
      ...gw.sign(5, 'batch'),
      ...other.sign(3, 'batch'),
      ...other.sign(1, 'event'),
      ...gw.sign(1, 'batch', {
        kind: 'gap',
        dataClass: 'equipment',
        values: {},
        gap: {
          droppedCount: 12,
          firstSourceTimeMs: 1_763_880_000_000,
          lastSourceTimeMs: 1_763_880_009_000,
          afterSeq: 7,
          byKind: { part_completed: 10, measurement: 2 },
          reason: 'outbox full',
        },
      }),
    ];
    for (const e of events) {
      const bytes = bytesOf(e);
      const v = checker.check(bytes);
      expect(v).toEqual({
        ok: true,
        event: {
          id: e.id,
          chain: `${e.env.enterprise}/${e.env.gateway}`,
          seq: e.env.seq,
          prev: e.env.prev,
          bytes: bytes.byteLength,
        },
      });
      expect(toHex(txIdOf(bytes))).toBe(e.id);
      expect(reference(bytes)).toBe('ok');
    }
    // A batch costs one signature; its events share most audit-path nodes.
    expect(checker.stats().signatureVerifications).toBe(1 + 1 + 1 + 1 + 1);
  });

  it('refuses with a stable code: oversize, malformed, id_mismatch, body_mismatch, unknown_key, bad_signature', () => {
    const checker = new TxChecker({ registry });
    const [a, b] = gw.sign(2, 'batch');
    const [single] = gw.sign(1, 'event');
    const mutate = (e: SignedEvent, f: (x: SignedEvent) => void) => {
      const c = structuredClone(e);
      f(c);
      return utf8(text(c));
    };
    const cases: [string, Uint8Array][] = [
      ['oversize', utf8(text({ ...a!, body: { ...a!.body!, lot: 'x'.repeat(17_000) } }))],
      ['malformed', utf8('not json')],
      ['malformed', Uint8Array.of(0xff, 0xfe, 0x7b, 0x7d)],
      ['malformed', utf8(`${text(a!)} `)],
      ['malformed', utf8(JSON.stringify(a))], // not canonical: key order
      ['malformed', utf8(`\uFEFF${text(a!)}`)], // a byte-order mark is another byte string
      ['malformed', mutate(a!, (x) => ((x.env as Record<string, unknown>).extra = 1))],
      ['malformed', mutate(a!, (x) => delete (x as Partial<SignedEvent>).body)], // bodies are required by default
      ['malformed', mutate(a!, (x) => ((x.sig as { index: number }).index = 2))], // index outside the batch of 2
      ['id_mismatch', mutate(a!, (x) => (x.env.seq += 1))],
      ['body_mismatch', mutate(a!, (x) => (x.body!.lot = 'LOT-OTHER'))],
      ['unknown_key', bytesOf(new TestGateway('zeta', 'gw-x').sign(1, 'event')[0]!)],
      [
        'bad_signature',
        mutate(
          b!,
          (x) =>
            ((x.sig as { path: string[] }).path = [...(x.sig as { path: string[] }).path, 'A'.repeat(43)]),
        ),
      ],
      [
        'bad_signature',
        mutate(single!, (x) => {
          const s = x.sig as { sig: string };
          s.sig = `${s.sig[0] === 'B' ? 'C' : 'B'}${s.sig.slice(1)}`; // another signature, still canonical
        }),
      ],
    ];
    for (const [expected, bytes] of cases)
      expect([expected, code(checker.check(bytes))]).toEqual([expected, expected]);
    // A registered key speaks only for its own gateway: gw-line2's key registered as gw-line1's.
    const impostor = new TestGateway('acme', 'gw-line2');
    const misfiled = new GatewayRegistry([{ ...impostor.entry(), gateway: 'gw-line1' }]);
    const v = new TxChecker({ registry: misfiled }).check(bytesOf(impostor.sign(1, 'event')[0]!));
    expect(v).toMatchObject({ ok: false, code: 'unknown_key' });
    expect((v as { message: string }).message).toMatch(/belongs to acme\/gw-line1, not acme\/gw-line2/);
  });

  it('accepts an event without its body only where the chain allows it', () => {
    const [a] = gw.sign(1, 'batch');
    const stripped = { ...a! };
    delete (stripped as Partial<SignedEvent>).body;
    const bytes = utf8(text(stripped));
    expect(code(new TxChecker({ registry }).check(bytes))).toBe('malformed');
    expect(code(new TxChecker({ registry, requireBody: false }).check(bytes))).toBe('ok');
    expect(toHex(txIdOf(bytes))).toBe(a!.id);
  });

  it('refuses a second spelling of the same signature (non-canonical base64url) and __proto__ keys', () => {
    const [a] = gw.sign(1, 'event');
    const sig = (a!.sig as { sig: string }).sig;
    // 86 characters carry 516 bits for 64 bytes: the last character's 4 low bits must be 0.
    const alphabet = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_';
    const last = alphabet.indexOf(sig[85]!);
    const twin = `${sig.slice(0, 85)}${alphabet[last | 1]}`;
    expect(Buffer.from(twin, 'base64url').equals(Buffer.from(sig, 'base64url'))).toBe(true);
    const bytes = utf8(text({ ...a!, sig: { t: 'event', sig: twin } }));
    expect(reference(bytes)).toBe('ok'); // the reference verifier accepts both spellings
    expect(code(new TxChecker({ registry }).check(bytes))).toBe('malformed');
    const proto = utf8(text(a!).replace('"values":{', '"values":{"__proto__":{"q":"good","v":1},'));
    expect(new TxChecker({ registry }).check(proto)).toMatchObject({ ok: false, code: 'malformed' });
  });

  it('takes the native encoder only where it gives the canonical text: sorted keys, no index-like keys, well-formed strings', () => {
    // Index-like keys come first in property order whatever the text says: "10" before "9" in JCS,
    // after it in JSON.stringify. The event must still be accepted (through the generic encoder).
    const numeric = new TestGateway('acme', 'gw-line1');
    const reg = registryOf(numeric);
    const [e] = numeric.sign(1, 'event', {
      values: { '10': { v: 1, q: 'good' }, '9': { v: 2, q: 'good' }, a: { v: 'x', q: 'good' } },
    });
    const bytes = bytesOf(e!);
    expect(new TextDecoder().decode(bytes)).toContain('"values":{"10":');
    expect(JSON.stringify(JSON.parse(new TextDecoder().decode(bytes)).body)).not.toBe(canonicalJson(e!.body));
    expect(code(new TxChecker({ registry: reg }).check(bytes))).toBe('ok');
    // Keys out of order but otherwise identical: JSON.stringify would reproduce the input; refused.
    const unsorted = new TextDecoder()
      .decode(bytes)
      .replace(
        '"values":{"10":{"q":"good","v":1},"9":{"q":"good","v":2},"a"',
        '"values":{"9":{"q":"good","v":2},"10":{"q":"good","v":1},"a"',
      );
    expect(unsorted).not.toBe(new TextDecoder().decode(bytes));
    expect(code(new TxChecker({ registry: reg }).check(utf8(unsorted)))).toBe('malformed');
    const swapped = new TextDecoder().decode(bytes).replace('{"q":"good","v":1}', '{"v":1,"q":"good"}');
    expect(code(new TxChecker({ registry: reg }).check(utf8(swapped)))).toBe('malformed');
    // A lone surrogate, escaped in the text: JSON.stringify round-trips it, JCS refuses it.
    const [f] = numeric.sign(1, 'event');
    const lone = new TextDecoder().decode(bytesOf(f!)).replace('"site":"plant1"', '"site":"plant\\ud800"');
    expect(JSON.parse(lone).body.site).toBe('plant\ud800');
    expect(new TxChecker({ registry: reg }).check(utf8(lone))).toMatchObject({
      ok: false,
      code: 'malformed',
    });
    // (EventVerifier, given the byte length, throws an untyped CanonicalEncodingError on this input.)
  });

  it('remembers verdicts by exact bytes: a forged copy under a real id gets its own', () => {
    const [a] = gw.sign(1, 'event');
    const good = bytesOf(a!);
    const forged = utf8(text({ ...a!, sig: { t: 'event', sig: `${'A'.repeat(85)}A` } }));
    expect(scanIdHex(forged)).toBe(a!.id);
    for (const order of [
      [good, forged],
      [forged, good],
    ]) {
      const checker = new TxChecker({ registry, verdictsMax: 1 });
      const verdicts = [...order, ...order].map((b) => code(checker.check(b)));
      const expected = order.map((b) => (b === good ? 'ok' : 'bad_signature'));
      expect(verdicts).toEqual([...expected, ...expected]);
    }
  });

  it('gives the same verdicts with its caches cold, warm or thrashing, in any order', () => {
    const events = [...gw.sign(64, 'batch'), ...gw.sign(3, 'event')].map(bytesOf);
    const broken = events.map((b, i) => {
      const c = b.slice();
      const at = (i * 97) % c.length;
      c[at] = c[at]! ^ (1 << (i % 7));
      return c;
    });
    const all = [...events, ...broken];
    const fresh = all.map((b) => code(new TxChecker({ registry }).check(b)));
    const tiny = new TxChecker({ registry, verdictsMax: 1, batchRootsMax: 1, pathNodesMax: 2 });
    const warm = new TxChecker({ registry });
    for (const b of all) warm.check(b);
    const shuffled = [...all.keys()].sort((x, y) => ((x * 7919) % 131) - ((y * 7919) % 131));
    const got = new Map<number, string>();
    for (const i of shuffled) got.set(i, code(tiny.check(all[i]!)));
    expect(all.map((_, i) => got.get(i))).toEqual(fresh);
    expect(all.map((b) => code(warm.check(b)))).toEqual(fresh);
    expect(fresh.slice(0, events.length).every((c) => c === 'ok')).toBe(true);
    expect(fresh.slice(events.length).filter((c) => c === 'ok')).toEqual([]);
  });

  it('verifies a batch signature once and hashes about one interior node per event', () => {
    const checker = new TxChecker({ registry });
    const events = gw.sign(256, 'batch').map(bytesOf);
    for (const b of events) expect(checker.check(b).ok).toBe(true);
    const s = checker.stats();
    expect(s.signatureVerifications).toBe(1);
    expect(s.batchRootHits).toBe(255);
    expect(s.pathNodeHashes).toBeLessThanOrEqual(256);
  });

  it("uses the registry's verifier: a signature that verifies nowhere else is refused here too", () => {
    const never: SignatureVerifier = { verify: () => false };
    const [a] = gw.sign(1, 'event');
    expect(code(new TxChecker({ registry, verifier: never }).check(bytesOf(a!)))).toBe('bad_signature');
  });
});

describe('agreement with the reference verifier and schema', () => {
  // Mutations of valid events, re-encoded canonically (the ledger additionally refuses anything that
  // is not canonical, which the reference does not look at). Each must get the reference's code.
  const fields: ((e: Loose) => void)[] = [
    (e) => (e.env.seq = 0),
    (e) => (e.env.seq = 2 ** 53),
    (e) => (e.env.seq = 1.5),
    (e) => (e.env.v = 2),
    (e) => (e.env.kind = 'other'),
    (e) => (e.env.dataClass = 'equipment'),
    (e) => (e.env.enterprise = ''),
    (e) => (e.env.enterprise = 'é'.repeat(64)),
    (e) => (e.env.enterprise = '😀'.repeat(64)),
    (e) => (e.env.enterprise = '😀'.repeat(65)),
    (e) => (e.env.gateway = 'x'.repeat(65)),
    (e) => (e.env.prev = e.env.prev.toUpperCase()),
    (e) => (e.env.sourceTimeMs = -1),
    (e) => (e.env.gatewayTimeMs = 8_640_000_000_000_001),
    (e) => delete e.env.body,
    (e) => (e.id = e.id.slice(1)),
    (e) => (e.body.salt = e.body.salt.slice(1)),
    (e) => (e.body.site = ''),
    (e) => (e.body.lot = 'x'.repeat(129)),
    (e) => (e.body.lot = '😀'.repeat(128)),
    (e) => (e.body.rule = null),
    (e) => (e.body.values = { '': { v: 1, q: 'good' } }),
    (e) => (e.body.values = { x: { v: 1, q: 'fine' } }),
    (e) => (e.body.values = { x: { v: 'y'.repeat(1025), q: 'good' } }),
    (e) => (e.body.values = { x: { v: [1], q: 'good' } }),
    (e) => (e.body.values = { x: { v: true, unit: 'u'.repeat(33), q: 'good' } }),
    (e) => (e.body.values = { x: { v: null, q: 'good', extra: 1 } }),
    (e) => (e.body.values = { x: { v: 1e300, q: 'bad' } }),
    (e) =>
      (e.body.gap = {
        droppedCount: 0,
        firstSourceTimeMs: 0,
        lastSourceTimeMs: 0,
        afterSeq: 0,
        byKind: {},
        reason: '',
      }),
    (e) =>
      (e.body.gap = {
        droppedCount: 1,
        firstSourceTimeMs: 0,
        lastSourceTimeMs: 0,
        afterSeq: 0,
        byKind: {},
        reason: '',
      }),
    (e) =>
      (e.body.gap = {
        droppedCount: 1,
        firstSourceTimeMs: 0,
        lastSourceTimeMs: 0,
        afterSeq: 0,
        byKind: { nope: 1 },
        reason: '',
      }),
    (e) => (e.sig.t = 'other'),
    (e) => (e.sig.size = 0),
    (e) => (e.sig.size = 65_537),
    (e) => (e.sig.index = e.sig.size),
    (e) => (e.sig.path = Array.from({ length: 17 }, () => 'A'.repeat(43))),
    (e) => (e.sig.path = e.sig.path?.slice(1)),
    (e) => (e.sig.sig = e.sig.sig.slice(2)),
    (e) => (e.sig = { t: 'event', sig: e.sig.sig }),
    (e) => (e.sig.extra = true),
    (e) => (e.extra = true),
  ];

  it('agrees with EventVerifier on valid events and on every mutation', () => {
    const events = [...gw.sign(8, 'batch'), ...other.sign(2, 'event')];
    let compared = 0;
    for (const [i, e] of events.entries()) {
      for (const f of fields) {
        const c = structuredClone(e) as Loose;
        f(c);
        let bytes: Uint8Array;
        try {
          bytes = utf8(canonicalJson(c));
        } catch {
          continue;
        }
        const mine = code(new TxChecker({ registry }).check(bytes));
        expect([i, String(f), mine]).toEqual([i, String(f), reference(bytes)]);
        compared++;
      }
    }
    expect(compared).toBeGreaterThan(300);
  });

  it('agrees with the zod schema on the shape of every mutation and of random byte flips', () => {
    const events = [...gw.sign(4, 'batch'), ...other.sign(2, 'event')];
    const inputs: unknown[] = [];
    for (const e of events) {
      for (const f of fields) {
        const c = structuredClone(e) as Loose;
        f(c);
        inputs.push(c);
      }
      const s = text(e);
      for (let k = 0; k < 200; k++) {
        const chars = [...s];
        const at = (k * 7907) % chars.length;
        chars[at] = String.fromCharCode((chars[at]!.charCodeAt(0) + 1 + (k % 5)) % 128);
        try {
          inputs.push(JSON.parse(chars.join('')));
        } catch {}
      }
    }
    // The one intended difference: the ledger refuses a base64url spelling in `sig` that does not
    // round-trip (a second byte string for the same signature); zod only looks at the alphabet.
    const nonCanonicalSig = (x: unknown) => {
      const sig = (x as Loose).sig;
      const strings: unknown[] = [sig?.sig, ...(Array.isArray(sig?.path) ? sig.path : [])];
      return strings.some(
        (t) => typeof t === 'string' && Buffer.from(t, 'base64url').toString('base64url') !== t,
      );
    };
    const disagreements: string[] = [];
    let strict = 0;
    for (const x of inputs) {
      const zodOk = signedEventSchema.safeParse(x).success;
      const problem = eventShapeProblem(x);
      if (zodOk && problem?.includes('canonical base64url') && nonCanonicalSig(x)) strict++;
      else if (zodOk !== (problem === null))
        disagreements.push(`${problem}: ${JSON.stringify(x).slice(0, 200)}`);
    }
    expect(inputs.length).toBeGreaterThan(1000);
    expect(disagreements).toEqual([]);
    expect(strict).toBeLessThan(inputs.length / 10);
  });
});
