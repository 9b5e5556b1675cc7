import { describe, expect, it } from 'vitest';
import { canonicalJson } from '../../src/crypto/canonical.ts';
import { generateKey, keyAlgorithms } from '../../src/crypto/keys.ts';
import { eventBytesMax } from '../../src/event/bounds.ts';
import type { EventDraft } from '../../src/event/draft.ts';
import { bodyCommitment, encodeEvent, eventId, type SignedEvent } from '../../src/event/event.ts';
import { EventSigner, emptyHead, type SigningMode } from '../../src/event/signer.ts';
import { EventRejected, EventVerifier, type GatewayKey, keyRegistry } from '../../src/event/verify.ts';

const identity = { enterprise: 'acme', site: 'plant1', line: 'line1', gateway: 'gw1' };

function draft(i: number, over: Partial<EventDraft> = {}): EventDraft {
  return {
    kind: 'part_completed',
    dataClass: 'process',
    station: 'ST-10',
    device: 'cnc1',
    sourceTimeMs: 1_700_000_000_000 + i,
    lot: 'LOT-1',
    order: 'ORD-1',
    product: `SN-${i}`,
    step: 'OP10',
    rule: 'part-completed',
    values: { diameter: { v: 25.001 + i / 1000, unit: 'mm', q: 'good' } },
    ...over,
  };
}

function setup(mode: SigningMode, alg: 'ed25519' | 'p256' = 'ed25519') {
  const key = generateKey(alg);
  const signer = new EventSigner(identity, key, { mode, nowMs: () => 1_700_000_000_500 });
  const reg: GatewayKey = {
    keyId: key.keyId,
    alg,
    publicKey: key.publicKey,
    enterprise: 'acme',
    gateway: 'gw1',
  };
  return { key, signer, verifier: new EventVerifier(keyRegistry([reg])) };
}

const clone = (e: SignedEvent): SignedEvent => JSON.parse(JSON.stringify(e));

function rejection(fn: () => unknown): string {
  try {
    fn();
  } catch (err) {
    if (err instanceof EventRejected) return err.code;
    throw err;
  }
  return 'accepted';
}

describe('signed events', () => {
  for (const alg of keyAlgorithms) {
    for (const mode of ['event', 'batch'] as const) {
      it(`${alg}/${mode}: every event verifies alone and the chain links`, () => {
        const { signer, verifier } = setup(mode, alg);
        const { events, head } = signer.sign([draft(1), draft(2), draft(3), draft(4), draft(5)], emptyHead);
        expect(head.seq).toBe(5);
        let h = emptyHead;
        for (const e of events) {
          // Verify a fresh copy through JSON, as a peer would receive it, with a fresh verifier (no cache).
          const fresh = new EventVerifier(keyRegistry([]));
          expect(rejection(() => fresh.verify(clone(e)))).toBe('unknown_key');
          verifier.verify(clone(e));
          verifier.checkLink(h, e);
          h = { seq: e.env.seq, id: e.id };
        }
        expect(h).toEqual(head);
        expect(events.map((e) => e.sig.t)).toEqual(Array(5).fill(mode));
      });
    }
  }

  it('ids are stable: the same event encodes to the same bytes however it was built', () => {
    const { signer } = setup('batch');
    const [e] = signer.sign([draft(1)], emptyHead).events;
    const roundTrip = JSON.parse(JSON.stringify(e));
    const reordered = Object.fromEntries(Object.entries(roundTrip).reverse());
    expect(encodeEvent(reordered as SignedEvent)).toBe(encodeEvent(e!));
    expect(eventId((reordered as SignedEvent).env)).toBe(e!.id);
  });

  it('continues a chain from a stored head', () => {
    const { signer, verifier } = setup('batch');
    const a = signer.sign([draft(1), draft(2)], emptyHead);
    const b = signer.sign([draft(3)], a.head);
    expect(b.events[0]!.env.seq).toBe(3);
    expect(b.events[0]!.env.prev).toBe(a.events[1]!.id);
    verifier.checkLink(a.head, b.events[0]!);
  });

  for (const mode of ['event', 'batch'] as const) {
    it(`${mode}: tampering with any envelope field is refused, with or without recomputing the id`, () => {
      const { signer, verifier } = setup(mode);
      const [e] = signer.sign([draft(1), draft(2)], emptyHead).events;
      const changes: Record<string, unknown> = {
        enterprise: 'other',
        gateway: 'gw2',
        dataClass: 'equipment',
        kind: 'measurement',
        sourceTimeMs: 1,
        gatewayTimeMs: 2,
        seq: 9,
        prev: 'f'.repeat(64),
        body: 'e'.repeat(64),
      };
      for (const [field, value] of Object.entries(changes)) {
        const t = clone(e!);
        (t.env as Record<string, unknown>)[field] = value;
        expect(
          rejection(() => verifier.verify(t)),
          field,
        ).toBe('id_mismatch');
        t.id = eventId(t.env);
        const expected =
          field === 'body'
            ? 'body_mismatch'
            : ['enterprise', 'gateway'].includes(field)
              ? 'unknown_key'
              : 'bad_signature';
        expect(
          rejection(() => verifier.verify(t)),
          `${field} with id recomputed`,
        ).toBe(expected);
      }
    });

    it(`${mode}: tampering with the body is refused, even with the commitment and id recomputed`, () => {
      const { signer, verifier } = setup(mode);
      const [e] = signer.sign([draft(1), draft(2)], emptyHead).events;
      const edits: ((b: NonNullable<SignedEvent['body']>) => void)[] = [
        (b) => (b.lot = 'LOT-2'),
        (b) => (b.order = 'ORD-9'),
        (b) => (b.product = 'SN-X'),
        (b) => (b.step = 'OP20'),
        (b) => (b.station = 'ST-99'),
        (b) => (b.device = 'cnc9'),
        (b) => (b.values.diameter!.v = 24.9),
        (b) => (b.values.diameter!.q = 'bad'),
        (b) => (b.values.extra = { v: 1, q: 'good' }),
        (b) => (b.salt = 'A'.repeat(22)),
      ];
      for (const edit of edits) {
        const t = clone(e!);
        edit(t.body!);
        expect(rejection(() => verifier.verify(t))).toBe('body_mismatch');
        t.env.body = bodyCommitment(t.body!);
        t.id = eventId(t.env);
        expect(rejection(() => verifier.verify(t))).toBe('bad_signature');
      }
      // Without the body, the envelope alone still verifies (a reader not authorised for the body).
      const envOnly = clone(e!);
      delete envOnly.body;
      expect(verifier.verify(envOnly).id).toBe(e!.id);
    });
  }

  it('batch: a wrong path, index, size or signature is refused', () => {
    const { signer, verifier } = setup('batch');
    const { events } = signer.sign([draft(1), draft(2), draft(3), draft(4), draft(5)], emptyHead);
    const e = events[2]!;
    if (e.sig.t !== 'batch') throw new Error('expected a batch signature');
    const cases: ((t: SignedEvent & { sig: { t: 'batch' } }) => void)[] = [
      (t) => (t.sig.index = 3),
      (t) => (t.sig.size = 6),
      (t) => (t.sig.size = 4),
      (t) => t.sig.path.pop(),
      (t) => (t.sig.path[0] = events[0]!.sig.t === 'batch' ? events[0]!.sig.path[0]! : ''),
      (t) =>
        (t.sig.sig = `${t.sig.sig.slice(0, 10)}${t.sig.sig[10] === 'A' ? 'B' : 'A'}${t.sig.sig.slice(11)}`),
    ];
    for (const change of cases) {
      const t = clone(e) as SignedEvent & { sig: { t: 'batch' } };
      change(t);
      expect(rejection(() => verifier.verify(t))).toBe('bad_signature');
    }
    // An event's path grafted onto another event of the same batch does not verify either.
    const graft = clone(events[1]!);
    graft.sig = clone(e).sig;
    expect(rejection(() => verifier.verify(graft))).toBe('bad_signature');
  });

  it('refuses malformed and oversize input', () => {
    const { signer, verifier } = setup('event');
    const [e] = signer.sign([draft(1)], emptyHead).events;
    const bad: unknown[] = [null, 'x', {}, { ...clone(e!), extra: 1 }, { ...clone(e!), id: 'XYZ' }];
    for (const b of bad) expect(rejection(() => verifier.verify(b))).toBe('malformed');
    const nan = clone(e!);
    (nan.env as Record<string, unknown>).seq = 1.5;
    expect(rejection(() => verifier.verify(nan))).toBe('malformed');
    const big = clone(e!);
    big.body!.values = Object.fromEntries(
      Array.from({ length: 40 }, (_, i) => [`v${i}`, { v: 'x'.repeat(1000), q: 'good' as const }]),
    );
    expect(canonicalJson(big).length).toBeGreaterThan(eventBytesMax);
    expect(rejection(() => verifier.verify(big))).toBe('oversize');
  });

  it('refuses, never throws on, JSON without a canonical form (a lone surrogate), with or without a size given', () => {
    const { signer, verifier } = setup('event');
    const [e] = signer.sign([draft(1)], emptyHead).events;
    const json = encodeEvent(e!).replace('"site":"plant1"', '"site":"p\\ud800"');
    const parsed = JSON.parse(json);
    expect(rejection(() => verifier.verify(parsed, json.length))).toBe('malformed');
    expect(rejection(() => verifier.verify(parsed))).toBe('malformed');
    const envelope = JSON.parse(encodeEvent(e!).replace('"enterprise":"acme"', '"enterprise":"a\\udc00"'));
    expect(rejection(() => verifier.verify(envelope, 500))).toBe('malformed');
  });

  it('refuses a key registered to another gateway', () => {
    const { key, signer } = setup('event');
    const v = new EventVerifier(
      keyRegistry([
        { keyId: key.keyId, alg: 'ed25519', publicKey: key.publicKey, enterprise: 'acme', gateway: 'gw2' },
      ]),
    );
    expect(rejection(() => v.verify(signer.sign([draft(1)], emptyHead).events[0]))).toBe('unknown_key');
  });

  it('chain links: replayed, reordered, skipped and re-linked events are refused', () => {
    const { signer, verifier } = setup('batch');
    const { events } = signer.sign([draft(1), draft(2), draft(3)], emptyHead);
    const h1 = { seq: 1, id: events[0]!.id };
    const h2 = { seq: 2, id: events[1]!.id };
    expect(rejection(() => verifier.checkLink(h2, events[1]!))).toBe('non_monotonic_seq');
    expect(rejection(() => verifier.checkLink(h2, events[0]!))).toBe('non_monotonic_seq');
    expect(rejection(() => verifier.checkLink(h1, events[2]!))).toBe('seq_gap');
    expect(rejection(() => verifier.checkLink({ seq: 1, id: events[2]!.id }, events[1]!))).toBe(
      'broken_prev',
    );
    verifier.checkLink(h2, events[2]!);
  });
});
