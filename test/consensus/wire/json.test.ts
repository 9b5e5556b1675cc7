import { describe, expect, it } from 'vitest';
import { defaultChainLimits } from '../../../src/consensus/core/limits.ts';
import { blockHash } from '../../../src/consensus/core/signing.ts';
import { verifyCertifiedBlock } from '../../../src/consensus/core/verify.ts';
import {
  certificateFromJson,
  certifiedBlockFromJson,
  certifiedBlockToJson,
  headerFromJson,
} from '../../../src/consensus/wire/json.ts';
import { encodeCanonical } from '../../../src/crypto/canonical.ts';
import { sha256, toBase64Url, toHex } from '../../../src/crypto/hash.ts';
import { ctx, samples } from './fixtures.ts';

const enc = new TextEncoder();
type Json = Record<string, unknown>;
/** The JSON form as an HTTP client gets it: serialised and parsed again. */
const overHttp = (v: unknown) => JSON.parse(new TextDecoder().decode(encodeCanonical(v))) as Json;

describe('JSON form of certified blocks (HTTP API only)', () => {
  it('round-trips a certified block; its header is the canonical form that is hashed', () => {
    const s = samples();
    const json = overHttp(certifiedBlockToJson(s.certified));
    const r = certifiedBlockFromJson(json);
    expect(r).toEqual({ ok: true, value: s.certified });
    expect(r.ok && verifyCertifiedBlock(ctx, defaultChainLimits, r.value)).toBeNull();
    const header = (json.block as Json).header;
    const domain = enc.encode('masbc-edge/ipbft/v2/block-header\0');
    expect(toHex(sha256(domain, encodeCanonical(header)))).toBe(toHex(blockHash(s.block.header)));
    expect(headerFromJson(header)).toEqual({ ok: true, value: s.block.header });
    expect(certificateFromJson(json.certificate)).toEqual({ ok: true, value: s.certificate });
    expect((json.block as Json).txs).toEqual(s.block.txs.map(toBase64Url));
  });

  it('is strict: exact fields, safe integers, limits, sorted votes, canonical base64url only', () => {
    const s = samples();
    const json = () => overHttp(certifiedBlockToJson(s.certified));
    const code = (v: unknown) => {
      const r = certifiedBlockFromJson(v);
      return r.ok ? 'accepted' : r.error.code;
    };
    const edit = (
      f: (j: Json & { block: Json & { header: Json; txs: string[] }; certificate: Json }) => void,
    ) => {
      const j = json() as Parameters<typeof f>[0];
      f(j);
      return j;
    };
    expect(code('not an object')).toBe('shape');
    expect(code(edit((j) => Object.assign(j, { extra: 1 })))).toBe('shape');
    expect(code(edit((j) => delete (j.block as Json).txs))).toBe('shape');
    expect(code(edit((j) => Object.assign(j.block.header, { height: 1.5 })))).toBe('shape');
    expect(code(edit((j) => Object.assign(j.block.header, { height: 0 })))).toBe('limit');
    expect(code(edit((j) => Object.assign(j.block.header, { chainId: 'bad chain' })))).toBe('shape');
    expect(code(edit((j) => j.block.txs.push('')))).toBe('shape');
    expect(code(edit((j) => (j.block.txs = Array(defaultChainLimits.blockTxsMax + 1).fill('YQ'))))).toBe(
      'limit',
    );
    const huge = 'A'.repeat(Math.ceil(((defaultChainLimits.txBytesMax + 1) * 4) / 3));
    expect(code(edit((j) => (j.block.txs = [huge])))).toBe('limit');
    expect(code(edit((j) => (j.certificate.commits as unknown[]).reverse()))).toBe('votes-unsorted');

    // 32 bytes = 43 characters; the last one carries 2 unused bits: flip one of them.
    const good = toBase64Url(s.hash);
    const alphabet = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_';
    const twin = good.slice(0, 42) + alphabet[alphabet.indexOf(good[42]!) ^ 1];
    const bad = certificateFromJson({ ...(json().certificate as Json), blockHash: twin });
    expect(!bad.ok && bad.error.detail).toMatch(/not canonical/);
    expect(certificateFromJson({ ...(json().certificate as Json), blockHash: 'AA' }).ok).toBe(false);
    expect(certificateFromJson({ ...(json().certificate as Json), blockHash: `${'A'.repeat(42)}B` }).ok).toBe(
      false,
    );
  });
});
