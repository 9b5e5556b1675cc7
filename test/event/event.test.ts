/**
 * The event model: signing drafts into a batch (signer.ts), the batch's verification (verify.ts over
 * batch.ts), bodies against their commitments, and each gateway's seq/prev chain.
 */
import { describe, expect, it } from 'vitest';
import { canonicalJson } from '../../src/crypto/canonical.ts';
import { sha256, toHex } from '../../src/crypto/hash.ts';
import { generateKey, keyAlgorithms } from '../../src/crypto/keys.ts';
import { merklePath, merkleRoot, verifyMerklePath } from '../../src/crypto/merkle.ts';
import { batchSigningBytes, decodeBatchTx, encodeBatchHeader, encodeBatchTx } from '../../src/event/batch.ts';
import { bodyBytesMax } from '../../src/event/bounds.ts';
import type { EventDraft } from '../../src/event/draft.ts';
import { EventRejected } from '../../src/event/errors.ts';
import {
  bodyCommitment,
  type EventRecord,
  encodeBody,
  encodeEnvelope,
  eventId,
} from '../../src/event/event.ts';
import { EventSigner, emptyHead } from '../../src/event/signer.ts';
import { BatchVerifier, checkBody, checkLink, type GatewayKey, keyRegistry } from '../../src/event/verify.ts';

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

function setup(alg: 'ed25519' | 'p256' = 'ed25519') {
  const key = generateKey(alg);
  const signer = new EventSigner(identity, key, { nowMs: () => 1_700_000_000_500 });
  const reg: GatewayKey = {
    keyId: key.keyId,
    alg,
    publicKey: key.publicKey,
    enterprise: 'acme',
    gateway: 'gw1',
  };
  return { key, signer, verifier: new BatchVerifier(keyRegistry([reg])) };
}

function rejection(fn: () => unknown): string {
  try {
    fn();
  } catch (err) {
    if (err instanceof EventRejected) return err.code;
    throw err;
  }
  return 'accepted';
}

const bodiesOf = (events: EventRecord[]) => events.map((e) => encodeBody(e.body!));

describe('signed batches', () => {
  for (const alg of keyAlgorithms) {
    it(`${alg}: a batch verifies with one signature, its bodies match, and the chain links`, () => {
      const { signer, verifier } = setup(alg);
      const { batch, events, head } = signer.sign(
        [1, 2, 3, 4, 5].map((i) => draft(i)),
        emptyHead,
      );
      expect(head.seq).toBe(5);
      expect(batch.header).toMatchObject({ firstSeq: 1, count: 5, prev: emptyHead.id, enterprise: 'acme' });
      // A fresh verifier without the key refuses it; with it, it verifies.
      expect(rejection(() => new BatchVerifier(keyRegistry([])).verify(batch.tx))).toBe('unknown_key');
      const decoded = verifier.verify(batch.tx);
      expect(decoded.envelopes).toEqual(events.map((e) => e.env));
      expect(decoded.ids.map(toHex)).toEqual(events.map((e) => e.id));
      expect(toHex(decoded.txId)).toBe(batch.txId);
      expect(verifier.checkBodies(decoded, bodiesOf(events))).toEqual(events.map((e) => e.body));
      let h = emptyHead;
      for (const e of events) {
        expect(e.env.prev).toBe(h.id);
        expect(e.id).toBe(eventId(e.env));
        h = { seq: e.env.seq, id: e.id };
      }
      expect(h).toEqual(head);
      // An event's inclusion in its batch is a Merkle path from its id to the signed root.
      const ids = decoded.ids;
      expect(
        verifyMerklePath(ids[3]!, 3, ids.length, merklePath(ids, 3), Buffer.from(batch.header.root, 'hex')),
      ).toBe(true);
    });
  }

  it('continues a chain from a stored head; links are checked against it', () => {
    const { signer } = setup();
    const a = signer.sign([draft(1), draft(2)], emptyHead);
    const b = signer.sign([draft(3)], a.head);
    expect(b.batch.header).toMatchObject({ firstSeq: 3, prev: a.events[1]!.id });
    expect(b.events[0]!.env.prev).toBe(a.events[1]!.id);
    checkLink(a.head, b.batch.header);
    expect(rejection(() => checkLink(b.head, b.batch.header))).toBe('non_monotonic_seq');
    expect(rejection(() => checkLink(emptyHead, b.batch.header))).toBe('seq_gap');
    expect(rejection(() => checkLink({ seq: 2, id: a.events[0]!.id }, b.batch.header))).toBe('broken_prev');
  });

  it('ids are stable: the same envelope encodes to the same bytes however it was built', () => {
    const { signer } = setup();
    const [e] = signer.sign([draft(1)], emptyHead).events;
    const reordered = Object.fromEntries(Object.entries(JSON.parse(JSON.stringify(e!.env))).reverse());
    expect(encodeEnvelope(reordered as EventRecord['env'])).toEqual(encodeEnvelope(e!.env));
    expect(eventId(reordered as EventRecord['env'])).toBe(e!.id);
  });

  it('refuses a batch whose envelopes were changed, re-signed or not', () => {
    const { key, signer, verifier } = setup();
    const { batch } = signer.sign([draft(1), draft(2)], emptyHead);
    const d = decodeBatchTx(batch.tx);
    if (!d.ok) throw new Error(d.message);
    const changes: Record<string, unknown> = {
      dataClass: 'equipment',
      kind: 'measurement',
      sourceTimeMs: 1,
      gatewayTimeMs: 2,
      body: 'e'.repeat(64),
    };
    for (const [field, value] of Object.entries(changes)) {
      const envs = d.batch.envelopes.map((e) => ({ ...e }));
      (envs[1] as Record<string, unknown>)[field] = value;
      const bytes = envs.map((e) => encodeEnvelope(e));
      const header = { ...d.batch.header, envelopeBytes: bytes.reduce((n, b) => n + b.byteLength, 0) };
      // The header still names the old root: the envelopes do not give it.
      const stale = encodeBatchTx(encodeBatchHeader(header), d.batch.signature, bytes);
      expect(
        rejection(() => verifier.verify(stale)),
        field,
      ).toBe('root_mismatch');
      // A root made for them, but the gateway never signed it.
      const rooted = { ...header, root: toHex(merkleRoot(bytes.map((b) => sha256(b)))) };
      const unsigned = encodeBatchTx(encodeBatchHeader(rooted), d.batch.signature, bytes);
      expect(
        rejection(() => verifier.verify(unsigned)),
        `${field} with the root remade`,
      ).toBe('bad_signature');
      // Signed by the gateway's key: valid (it is the gateway's own statement).
      const headerBytes = encodeBatchHeader(rooted);
      const resigned = encodeBatchTx(headerBytes, key.sign(batchSigningBytes(headerBytes)), bytes);
      expect(
        rejection(() => verifier.verify(resigned)),
        `${field} re-signed`,
      ).toBe('accepted');
    }
  });

  it('refuses bodies that do not match their envelopes, even with a commitment recomputed', () => {
    const { signer, verifier } = setup();
    const { batch, events } = signer.sign([draft(1), draft(2)], emptyHead);
    const decoded = verifier.verify(batch.tx);
    const edits: ((b: NonNullable<EventRecord['body']>) => void)[] = [
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
      const body = structuredClone(events[0]!.body!);
      edit(body);
      const texts = bodiesOf(events);
      texts[0] = canonicalJson(body);
      expect(rejection(() => verifier.checkBodies(decoded, texts))).toBe('body_mismatch');
      expect(bodyCommitment(body)).not.toBe(events[0]!.env.body);
    }
    // The canonical text is the one committed to: the same body spelled otherwise does not match.
    expect(
      rejection(() =>
        checkBody(JSON.stringify(events[0]!.body, null, 1), events[0]!.env.body, 'part_completed'),
      ),
    ).toBe('body_mismatch');
    expect(rejection(() => verifier.checkBodies(decoded, bodiesOf(events).slice(1)))).toBe('malformed');
  });

  it('refuses malformed and oversize bodies, never throwing on a lone surrogate', () => {
    const { signer, verifier } = setup();
    const { batch, events } = signer.sign([draft(1)], emptyHead);
    const decoded = verifier.verify(batch.tx);
    const commitment = events[0]!.env.body;
    expect(rejection(() => checkBody('not json', commitment, 'part_completed'))).toBe('malformed');
    expect(rejection(() => checkBody('{"salt":"x"}', commitment, 'part_completed'))).toBe('malformed');
    const big = structuredClone(events[0]!.body!);
    big.values = Object.fromEntries(
      Array.from({ length: 20 }, (_, i) => [`v${i}`, { v: 'x'.repeat(1000), q: 'good' as const }]),
    );
    expect(canonicalJson(big).length).toBeGreaterThan(bodyBytesMax);
    expect(rejection(() => checkBody(canonicalJson(big), commitment, 'part_completed'))).toBe('oversize');
    const lone = encodeBody(events[0]!.body!).replace('"site":"plant1"', '"site":"p\\ud800"');
    expect(rejection(() => verifier.checkBodies(decoded, [lone]))).toBe('body_mismatch');
    const gap = {
      ...events[0]!.body!,
      gap: {
        droppedCount: 1,
        firstSourceTimeMs: 0,
        lastSourceTimeMs: 0,
        afterSeq: 0,
        byKind: {},
        reason: '',
      },
    };
    expect(rejection(() => checkBody(canonicalJson(gap), bodyCommitment(gap), 'part_completed'))).toBe(
      'malformed',
    );
    expect(rejection(() => checkBody(canonicalJson(gap), bodyCommitment(gap), 'gap'))).toBe('accepted');
  });

  it('refuses a key registered to another gateway', () => {
    const { key, signer } = setup();
    const v = new BatchVerifier(
      keyRegistry([
        { keyId: key.keyId, alg: 'ed25519', publicKey: key.publicKey, enterprise: 'acme', gateway: 'gw2' },
      ]),
    );
    expect(rejection(() => v.verify(signer.sign([draft(1)], emptyHead).batch.tx))).toBe('unknown_key');
  });
});
