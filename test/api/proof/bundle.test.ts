/**
 * Bundles built by the real producer from a real validator's stores verify against the genesis, and
 * each kind of flipped byte fails with the code naming the broken link.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type ProofBundle, proofBundleSchema } from '../../../src/api/proof/bundle.ts';
import { ScopeTooLarge, selectScope } from '../../../src/api/proof/order-events.ts';
import { ProofRequestError } from '../../../src/api/proof/produce.ts';
import {
  type BundleVerification,
  VerifyCache,
  type VerifyErrorCode,
  verifyProofBundle,
} from '../../../src/api/proof/verify.ts';
import { nodeVerifier } from '../../../src/crypto/keys.ts';
import { tempDir } from '../../helpers/tmp.ts';
import { partDraft, startTraceFixture, statusDraft, type TraceFixture } from './fixture.ts';

let fx: TraceFixture;
let bundle: ProofBundle;

beforeAll(async () => {
  fx = await startTraceFixture(tempDir('proof-bundle'));
  await fx.commit(1, [
    partDraft({ order: 'ORD-1', lot: 'LOT-A', product: 'SN-1' }),
    partDraft({ order: 'ORD-2', lot: 'LOT-X', product: 'SN-9' }),
    partDraft({ order: 'ORD-1', lot: 'LOT-A', product: 'SN-2' }),
    statusDraft('ORD-1', 'LOT-A'),
  ]);
  await fx.commit(2, [partDraft({ order: 'ORD-1', lot: 'LOT-B', product: 'SN-3', diameter: 24.998 })]);
  await fx.commit(1, [partDraft({ order: 'ORD-1', lot: 'LOT-A', product: 'SN-4' })]);
  bundle = fx.bundle({ scope: { order: 'ORD-1' } });
}, 120_000);

afterAll(async () => {
  await fx?.stop();
});

const genesis = () => fx.validator.genesis.document;
const verify = (b: unknown): BundleVerification =>
  verifyProofBundle(b, genesis(), { verifier: nodeVerifier });
const copy = (): ProofBundle => structuredClone(bundle);

/** Flips one bit of a base64url string's bytes, keeping it canonical. */
function flipB64(s: string, byte = 0): string {
  const b = Buffer.from(s, 'base64url');
  b[byte]! ^= 1;
  return b.toString('base64url');
}
function flipHex(s: string, at = 0): string {
  return s.slice(0, at) + (s[at] === '0' ? '1' : '0') + s.slice(at + 1);
}

function expectBroken(b: unknown, code: VerifyErrorCode): void {
  const r = verify(b);
  expect(r.ok, JSON.stringify(r.ok ? r.summary : r.first)).toBe(false);
  if (!r.ok) expect(r.first.code, r.first.detail).toBe(code);
}

describe('proof bundles from a real validator', () => {
  it("holds exactly the order's final process events, and verifies against the genesis alone", () => {
    expect(proofBundleSchema.safeParse(JSON.parse(JSON.stringify(bundle))).success).toBe(true);
    expect(bundle.events.map((e) => e.body.product)).toEqual(['SN-1', 'SN-2', 'SN-3', 'SN-4']);
    expect(bundle.events.every((e) => e.envelope.dataClass === 'process')).toBe(true);
    expect(bundle.batches).toHaveLength(3);
    const r = verify(JSON.parse(JSON.stringify(bundle)));
    expect(r.ok, r.ok ? '' : `${r.first.code}: ${r.first.detail}`).toBe(true);
    if (!r.ok) return;
    expect(r.summary).toMatchObject({
      member: 'acme',
      events: 4,
      batches: 3,
      gateways: ['acme/gw-1', 'acme/gw-2'],
      closed: false,
      complete: false,
    });
    expect(r.events.every((v) => v.ok)).toBe(true);
    // The pure-JS verifier (what the browser runs) agrees.
    expect(verifyProofBundle(bundle, genesis()).ok).toBe(true);
  });

  it('a lot and a product scope hold their own events; an unknown order holds none', () => {
    const lot = fx.bundle({ scope: { lot: 'LOT-B' } });
    expect(lot.events.map((e) => e.body.product)).toEqual(['SN-3']);
    expect(verify(lot).ok).toBe(true);
    const withEquipment = fx.bundle({ scope: { lot: 'LOT-A' }, classes: ['process', 'equipment'] });
    expect(withEquipment.events).toHaveLength(4);
    expect(verify(withEquipment).ok).toBe(true);
    expect(fx.bundle({ scope: { product: 'SN-9' } }).events).toHaveLength(1);
    const none = fx.bundle({ scope: { order: 'ORD-404' } });
    expect(none.events).toEqual([]);
    expect(verify(none).ok).toBe(true);
  });

  it('a scope above the limit is refused, not cut short; a bad scope is refused', () => {
    expect(() => selectScope(fx.validator.bodies, { order: 'ORD-1' }, ['process'], 3)).toThrow(ScopeTooLarge);
    expect(selectScope(fx.validator.bodies, { order: 'ORD-1' }, ['process'], 4).events).toHaveLength(4);
    const bad = () => fx.bundle({ scope: { order: '' } });
    expect(bad).toThrow(ProofRequestError);
    expect(bad).toThrow(expect.objectContaining({ code: 'bad_scope' }));
  });

  it('a flipped byte of a body value or its salt breaks the body commitment', () => {
    const b = copy();
    (b.events[1]!.body.values as Record<string, { v: number }>).diameter!.v += 0.001;
    expectBroken(b, 'body_mismatch');
    const s = copy();
    s.events[0]!.body.salt = flipB64(s.events[0]!.body.salt as string);
    expectBroken(s, 'body_mismatch');
  });

  it('a changed envelope field breaks the event id', () => {
    const b = copy();
    b.events[2]!.envelope.sourceTimeMs += 1;
    expectBroken(b, 'envelope_id');
  });

  it('a flipped batch signature or batch header field breaks the signature', () => {
    const b = copy();
    b.batches[0]!.signature = flipB64(b.batches[0]!.signature, 5);
    expectBroken(b, 'batch_signature');
    const h = copy();
    h.batches[1]!.header.envelopeBytes += 1;
    expectBroken(h, 'batch_signature');
  });

  it('a flipped node of an event path or a transaction path breaks that path', () => {
    const b = copy();
    const withPath = b.events.find((e) => e.path.length > 0)!;
    withPath.path[0] = flipB64(withPath.path[0]!);
    expectBroken(b, 'event_path');
    const id = copy();
    id.events[0]!.id = flipHex(id.events[0]!.id, 7);
    expectBroken(id, 'event_path');
    const t = copy();
    const batch = t.batches.find((x) => x.path.length > 0);
    if (batch) {
      batch.path[0] = flipB64(batch.path[0]!);
      expectBroken(t, 'tx_path');
    }
    const i = copy();
    i.batches[0]!.index += 1;
    expectBroken(i, 'tx_path');
  });

  it('a changed block header field breaks the link to its certificate', () => {
    const b = copy();
    (b.blocks[0]!.header as { timestampMs: number }).timestampMs += 1;
    expectBroken(b, 'block_hash');
    const r = copy();
    const header = r.blocks[0]!.header as { txRoot: string };
    header.txRoot = flipB64(header.txRoot);
    expectBroken(r, 'block_hash');
  });

  it('a flipped certificate signature, or one vote too few, breaks the certificate', () => {
    const b = copy();
    const cert = b.blocks[0]!.certificate as { commits: { signature: string }[] };
    cert.commits[0]!.signature = flipB64(cert.commits[0]!.signature, 9);
    expectBroken(b, 'certificate');
    const few = copy();
    (few.blocks[0]!.certificate as { commits: unknown[] }).commits.pop();
    expectBroken(few, 'certificate');
  });

  it('a batch under a key the genesis does not give that gateway is refused', () => {
    const b = copy();
    const gw2 = b.batches.find((x) => x.header.gateway === 'gw-2')!;
    gw2.header.gateway = 'gw-1';
    expectBroken(b, 'gateway_key');
  });

  it('an event of another order, or another genesis, is refused', () => {
    const other = fx.bundle({ scope: { order: 'ORD-2' } });
    const b = copy();
    b.events.push({ ...other.events[0]!, batch: b.batches.length });
    b.batches.push(other.batches[0]!);
    expectBroken(b, 'out_of_scope');
    const g = copy();
    g.genesisHash = flipHex(g.genesisHash);
    expectBroken(g, 'wrong_genesis');
    expectBroken({ ...copy(), format: 'something/else' }, 'malformed');
    expectBroken('not a bundle', 'malformed');
  });

  it('a cache shared across bundles (a page that polls) skips only the signature checks it already made', () => {
    const cache = new VerifyCache();
    const withCache = (b: unknown) => {
      const r = verifyProofBundle(b, genesis(), { verifier: nodeVerifier, cache });
      return r.ok ? 'ok' : r.first.code;
    };
    expect(withCache(bundle)).toBe('ok');
    const c = copy();
    const cert = c.blocks[0]!.certificate as { commits: { signature: string }[] };
    cert.commits[0]!.signature = flipB64(cert.commits[0]!.signature, 9);
    expect(withCache(c)).toBe('certificate');
    const s = copy();
    s.batches[0]!.signature = flipB64(s.batches[0]!.signature, 5);
    expect(withCache(s)).toBe('batch_signature');
    const k = copy();
    k.batches.find((x) => x.header.gateway === 'gw-2')!.header.gateway = 'gw-1';
    expect(withCache(k)).toBe('gateway_key');
    expect(withCache(bundle)).toBe('ok');
  });

  it('reports the first broken link and a verdict per event', () => {
    const b = copy();
    b.events[3]!.envelope.seq += 0; // unchanged
    (b.events[3]!.body.values as Record<string, { v: number }>).diameter!.v = 1;
    const r = verify(b);
    expect(r.ok).toBe(false);
    expect(r.events.map((v) => v.ok)).toEqual([true, true, true, false]);
    if (!r.ok) expect(r.first).toMatchObject({ code: 'body_mismatch', eventId: b.events[3]!.id });
  });
});
