/**
 * The verifier's browser bundle holds no node: import, and the browser twins of src/crypto give the
 * same answers as the node modules they replace; the pure batch id and signing bytes are batch.ts's;
 * docs/trace.md explains every verifier code.
 */
import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { batchHeaderBytes, batchSigningBytesOf, batchTxIdOf } from '../../../src/api/proof/batch-id.ts';
import * as twin from '../../../src/api/proof/browser/hash.ts';
import { keyIdOf as twinKeyIdOf } from '../../../src/api/proof/browser/keys.ts';
import { browserVerifierBundle } from '../../../src/api/proof/browser-build.ts';
import { verifyErrorCodes } from '../../../src/api/proof/verify.ts';
import * as real from '../../../src/crypto/hash.ts';
import { generateKey, keyIdOf } from '../../../src/crypto/keys.ts';
import { batchSigningBytes, batchTxId, encodeBatchHeader } from '../../../src/event/batch.ts';
import { EventSigner, emptyHead } from '../../../src/event/signer.ts';

describe('the browser bundle of the verifier', () => {
  it('is one ES module exporting verifyProofBundle, with no node: import', async () => {
    const js = await browserVerifierBundle();
    expect(js).not.toMatch(/["']node:/);
    expect(js).not.toMatch(/\brequire\(/);
    expect(js).toMatch(/export\s*\{[^}]*verifyProofBundle/);
  });

  it('hash twins agree with src/crypto/hash.ts', () => {
    for (let n = 0; n < 70; n++) {
      const bytes = new Uint8Array(randomBytes(n));
      expect(twin.sha256(bytes, bytes)).toEqual(real.sha256(bytes, bytes));
      expect(twin.toHex(bytes)).toBe(real.toHex(bytes));
      expect(twin.fromHex(real.toHex(bytes))).toEqual(real.fromHex(real.toHex(bytes)));
      const b64 = real.toBase64Url(bytes);
      expect(twin.toBase64Url(bytes)).toBe(b64);
      expect(twin.fromBase64Url(b64)).toEqual(real.fromBase64Url(b64));
      expect(twin.bytesEqual(bytes, bytes.slice())).toBe(true);
    }
    expect(twin.fromBase64Url('a+b/c=')).toEqual(real.fromBase64Url('a+b/c='));
    expect(twin.bytesEqual(Uint8Array.of(1), Uint8Array.of(2))).toBe(false);
    expect(() => twin.fromHex('0g')).toThrow(TypeError);
    const key = generateKey('p256');
    expect(twinKeyIdOf('p256', key.publicKey)).toBe(keyIdOf('p256', key.publicKey));
  });

  it('batch ids and signing bytes are those of src/event/batch.ts', () => {
    const signer = new EventSigner(
      { enterprise: 'acme', site: 's', line: 'l', gateway: 'gw-1' },
      generateKey('ed25519'),
    );
    const drafts = [1, 2, 3].map((i) => ({
      kind: 'measurement' as const,
      dataClass: 'process' as const,
      station: 'ST',
      device: 'd',
      sourceTimeMs: 1_800_000_000_000 + i,
      values: { x: { v: i / 7, q: 'good' as const } },
    }));
    const { batch } = signer.sign(drafts, emptyHead);
    const headerBytes = batchHeaderBytes(batch.header);
    expect(headerBytes).toEqual(encodeBatchHeader(batch.header));
    expect(batchSigningBytesOf(headerBytes)).toEqual(batchSigningBytes(headerBytes));
    const signature = batch.tx.subarray(3 + headerBytes.byteLength, 3 + headerBytes.byteLength + 64);
    expect(real.toHex(batchTxIdOf(headerBytes, signature))).toBe(batch.txId);
    expect(batchTxIdOf(headerBytes, signature)).toEqual(new Uint8Array(batchTxId(headerBytes, signature)));
  });
});

describe('docs/trace.md', () => {
  it('explains every code the verifier can answer', () => {
    const doc = readFileSync(new URL('../../../docs/trace.md', import.meta.url), 'utf8');
    // A row of the codes table (the formatter pads cells).
    for (const code of verifyErrorCodes) expect(doc, code).toMatch(new RegExp(`^\\| \`${code}\` +\\|`, 'm'));
  });
});
