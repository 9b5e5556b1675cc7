/**
 * A gateway key registered on the chain by a configuration transaction (signed by the member's
 * identity root), not in the genesis: the bundle carries the registration, proven like a batch, and
 * the verifier accepts the key only through it; a revocation travels too.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { ProofBundle } from '../../../src/api/proof/bundle.ts';
import { type BundleVerification, verifyProofBundle } from '../../../src/api/proof/verify.ts';
import { signConfigTx } from '../../../src/consensus/app/config-tx.ts';
import { generateKey, nodeVerifier, publicKeyRecord } from '../../../src/crypto/keys.ts';
import { tempDir } from '../../helpers/tmp.ts';
import { partDraft, startTraceFixture, type TraceFixture } from './fixture.ts';

let fx: TraceFixture;
let bundle: ProofBundle;
let revoked: ProofBundle;
const key = generateKey('ed25519');

const verify = (b: unknown): BundleVerification =>
  verifyProofBundle(b, fx.validator.genesis.document, { verifier: nodeVerifier });

beforeAll(async () => {
  fx = await startTraceFixture(tempDir('proof-registration'));
  const chainId = fx.validator.genesis.chainId;
  await fx.commitConfig(
    signConfigTx(
      { v: 1, chainId, member: 'acme', seq: 1, op: 'register', gateway: 'gw-new', key: publicKeyRecord(key) },
      fx.identityRoot(),
    ),
  );
  fx.addGateway('gw-new', key);
  await fx.commit('gw-new', [partDraft({ order: 'ORD-R', lot: 'L-R', product: 'SN-R1' })]);
  await fx.commit(1, [partDraft({ order: 'ORD-R', lot: 'L-R', product: 'SN-R2' })]);
  bundle = fx.bundle({ scope: { order: 'ORD-R' } });
  await fx.commitConfig(
    signConfigTx(
      { v: 1, chainId, member: 'acme', seq: 2, op: 'revoke', gateway: 'gw-new', keyId: key.keyId },
      fx.identityRoot(),
    ),
  );
  revoked = fx.bundle({ scope: { order: 'ORD-R' } });
}, 120_000);

afterAll(async () => {
  await fx?.stop();
});

describe('gateway keys registered on the chain', () => {
  it('the bundle carries the registration and verifies; after a revocation, the revocation too', () => {
    expect(bundle.registrations).toHaveLength(1);
    expect(bundle.batches.map((b) => b.header.gateway).sort()).toEqual(['gw-1', 'gw-new']);
    const r = verify(bundle);
    expect(r.ok, r.ok ? '' : `${r.first.code}: ${r.first.detail}`).toBe(true);
    expect(verifyProofBundle(bundle, fx.validator.genesis.document).ok).toBe(true);
    expect(revoked.registrations).toHaveLength(2);
    // Its batch came before the revocation: still its.
    expect(verify(revoked).ok).toBe(true);
  });

  it('without the registration the key is unknown', () => {
    const b = structuredClone(bundle);
    b.registrations = [];
    const r = verify(b);
    expect(r.ok).toBe(false);
    if (!r.ok) expect(r.first.code).toBe('gateway_key');
  });

  it('a registration not signed by the member identity root, or not in its block, is refused', () => {
    const b = structuredClone(bundle);
    const tx = Buffer.from(b.registrations[0]!.tx, 'base64url');
    tx[tx.length - 5]! ^= 1; // the signature
    b.registrations[0]!.tx = tx.toString('base64url');
    const r = verify(b);
    expect(r.ok).toBe(false);
    if (!r.ok) expect(r.first.code).toBe('registration');
    const p = structuredClone(bundle);
    p.registrations[0]!.index += 1;
    const rp = verify(p);
    expect(rp.ok).toBe(false);
    if (!rp.ok) expect(rp.first.code).toBe('tx_path');
  });

  it('a revocation moved before the batch would make the key not its: the revocation is proven too', () => {
    const b = structuredClone(revoked);
    const revoke = b.registrations[1]!;
    const batch = b.batches.find((x) => x.header.gateway === 'gw-new')!;
    revoke.height = batch.height - 1;
    const r = verify(b);
    expect(r.ok).toBe(false);
    // The block it claims does not hold it (or is not in the bundle).
    if (!r.ok) expect(['tx_path', 'malformed']).toContain(r.first.code);
  });
});
