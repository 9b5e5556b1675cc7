import { describe, expect, it } from 'vitest';
import { defaultChainLimits } from '../../../src/consensus/core/limits.ts';
import { quorumSize } from '../../../src/consensus/core/quorum.ts';
import { blockHash, signMessage, txRootOf, voteSigningBytes } from '../../../src/consensus/core/signing.ts';
import type {
  Block,
  Commit,
  Message,
  PrePrepare,
  Prepare,
  Validator,
} from '../../../src/consensus/core/types.ts';
import {
  type VerifyContext,
  verifyCertifiedBlock,
  verifyPreparedCertificate,
  verifySignedMessage,
} from '../../../src/consensus/core/verify.ts';
import {
  decodeCertifiedBlock,
  decodeMessage,
  encodeCertifiedBlock,
  encodeMessage,
} from '../../../src/consensus/wire/codec.ts';
import { messageBytesMax } from '../../../src/consensus/wire/limits.ts';
import { encodeCanonical } from '../../../src/crypto/canonical.ts';
import { sha256, toBase64Url } from '../../../src/crypto/hash.ts';
import { generateKey, nodeVerifier } from '../../../src/crypto/keys.ts';

const chainId = 'test-chain';
const keys = Array.from({ length: 4 }, () => generateKey('ed25519'));
const validators: Validator[] = keys.map((k) => ({ keyId: k.keyId, alg: k.alg, publicKey: k.publicKey }));
const ctx: VerifyContext = { chainId, validators, verifier: nodeVerifier, txId: (tx) => sha256(tx) };
const enc = new TextEncoder();

function block(height = 1, view = 0, txs = [enc.encode('a'), enc.encode('bc')]): Block {
  return {
    header: {
      version: 2,
      chainId,
      height,
      view,
      prevHash: sha256(),
      timestampMs: 1_767_000_000_000,
      txRoot: txRootOf(txs.map((t) => sha256(t))),
      txCount: txs.length,
      proposer: view % 4,
    },
    txs,
  };
}

const noSig = new Uint8Array(64);

describe('consensus codec', () => {
  it('round-trips every message type through canonical JSON', () => {
    const b = block();
    const h = blockHash(b.header);
    const pp = signMessage(keys[0]!, chainId, {
      type: 'pre-prepare',
      view: 0,
      replica: 0,
      block: b,
      signature: noSig,
    });
    const prepares = [1, 2].map((r) =>
      signMessage(keys[r]!, chainId, {
        type: 'prepare',
        view: 0,
        height: 1,
        blockHash: h,
        replica: r,
        signature: noSig,
      } satisfies Prepare),
    );
    const commits = [0, 1, 2].map((r) =>
      signMessage(keys[r]!, chainId, {
        type: 'commit',
        view: 0,
        height: 1,
        blockHash: h,
        replica: r,
        signature: noSig,
      } satisfies Commit),
    );
    const certificate = {
      height: 1,
      view: 0,
      blockHash: h,
      commits: commits.map((c) => ({ replica: c.replica, signature: c.signature })),
    };
    const prepared = {
      view: 0,
      header: b.header,
      prePrepareSignature: pp.signature,
      prepares: prepares.map((p) => ({ replica: p.replica, signature: p.signature })),
    };
    const vc = signMessage(keys[3]!, chainId, {
      type: 'view-change',
      view: 1,
      replica: 3,
      checkpoint: null,
      prepared: [prepared],
      signature: noSig,
    } as const);
    const nv = signMessage(keys[1]!, chainId, {
      type: 'new-view',
      view: 1,
      replica: 1,
      viewChanges: [vc],
      signature: noSig,
    } as const);
    const all: Message[] = [
      pp,
      ...prepares,
      ...commits,
      vc,
      nv,
      { type: 'status', view: 3, viewChanging: false, committedHeight: 9 },
      { type: 'sync-request', fromHeight: 2, count: 5 },
      { type: 'sync-response', blocks: [{ block: b, certificate }] },
      { type: 'proposal-request', height: 1, blockHash: h },
      { type: 'proposal-response', block: b },
      { type: 'txs', txs: [enc.encode('x')] },
    ];
    for (const m of all) {
      const bytes = encodeMessage(m);
      const r = decodeMessage(bytes);
      expect(r.ok, m.type).toBe(true);
      if (r.ok) expect(encodeMessage(r.value)).toEqual(bytes);
    }
    for (const m of [pp, ...prepares, ...commits, vc, nv]) expect(verifySignedMessage(ctx, m)).toBeNull();
    expect(verifyPreparedCertificate(ctx, prepared)).toBeNull();
    expect(verifyCertifiedBlock(ctx, defaultChainLimits, { block: b, certificate })).toBeNull();
    const cbBytes = encodeCertifiedBlock({ block: b, certificate });
    expect(decodeCertifiedBlock(cbBytes).ok).toBe(true);
  });

  it('never throws on garbage and names the problem', () => {
    const cases: [unknown, string][] = [
      ['not json', 'not-json'],
      [[1, 2], 'shape'],
      [{ type: 'nope' }, 'unknown-type'],
      [{ type: 'status', view: -1, viewChanging: false, committedHeight: 0 }, 'limit'],
      [{ type: 'status', view: 1.5, viewChanging: false, committedHeight: 0 }, 'shape'],
      [{ type: 'status', view: 1, viewChanging: false, committedHeight: 0, extra: 1 }, 'shape'],
      [{ type: 'proposal-request', height: 1, blockHash: 'AA' }, 'shape'],
      [{ type: 'proposal-request', height: 1, blockHash: `${'A'.repeat(42)}B` }, 'shape'],
      [{ type: 'sync-request', fromHeight: 1, count: 10_000 }, 'limit'],
      [{ type: 'txs', txs: [''] }, 'shape'],
      [{ type: '__proto__' }, 'unknown-type'],
    ];
    for (const [v, code] of cases) {
      const bytes = typeof v === 'string' ? enc.encode(v) : enc.encode(JSON.stringify(v));
      const r = decodeMessage(bytes);
      expect(r.ok).toBe(false);
      if (!r.ok) expect(r.error.code, JSON.stringify(v)).toBe(code);
    }
    expect(decodeMessage(Uint8Array.of(0xff, 0xfe)).ok).toBe(false);
    expect(decodeMessage(enc.encode('['.repeat(100_000))).ok).toBe(false);
    const big = new Uint8Array(messageBytesMax(defaultChainLimits) + 1);
    const r = decodeMessage(big);
    expect(!r.ok && r.error.code).toBe('too-large');
  });

  it('rejects votes that are unsorted, too few, by the wrong role, or signed for another purpose', () => {
    const b = block();
    const h = blockHash(b.header);
    const sig = (r: number, kind: 'prepare' | 'commit') =>
      keys[r]!.sign(voteSigningBytes(kind, chainId, 0, 1, h));
    // A PREPARE signature is no COMMIT signature (domain separation).
    const cert = {
      height: 1,
      view: 0,
      blockHash: h,
      commits: [0, 1, 2].map((r) => ({ replica: r, signature: sig(r, 'prepare') })),
    };
    expect(verifyCertifiedBlock(ctx, defaultChainLimits, { block: b, certificate: cert })?.code).toBe(
      'bad-signature',
    );
    const two = { ...cert, commits: [0, 1].map((r) => ({ replica: r, signature: sig(r, 'commit') })) };
    expect(verifyCertifiedBlock(ctx, defaultChainLimits, { block: b, certificate: two })?.code).toBe(
      'too-few-votes',
    );
    const dup = { ...cert, commits: [0, 1, 1].map((r) => ({ replica: r, signature: sig(r, 'commit') })) };
    expect(verifyCertifiedBlock(ctx, defaultChainLimits, { block: b, certificate: dup })?.code).toBe(
      'votes-unsorted',
    );
    const wrongChain = { ...ctx, chainId: 'other' };
    const good = { ...cert, commits: [0, 1, 2].map((r) => ({ replica: r, signature: sig(r, 'commit') })) };
    expect(verifyCertifiedBlock(ctx, defaultChainLimits, { block: b, certificate: good })).toBeNull();
    expect(verifyCertifiedBlock(wrongChain, defaultChainLimits, { block: b, certificate: good })?.code).toBe(
      'wrong-chain',
    );
    const pp: PrePrepare = signMessage(keys[1]!, chainId, {
      type: 'pre-prepare',
      view: 0,
      replica: 1,
      block: b,
      signature: noSig,
    });
    expect(verifySignedMessage(ctx, pp)?.code).toBe('not-primary');
    const prep: Prepare = signMessage(keys[0]!, chainId, {
      type: 'prepare',
      view: 0,
      height: 1,
      blockHash: h,
      replica: 0,
      signature: noSig,
    });
    expect(verifySignedMessage(ctx, prep)?.code).toBe('vote-by-primary');
    const tampered = { ...b, txs: [enc.encode('z'), enc.encode('bc')] };
    expect(verifyCertifiedBlock(ctx, defaultChainLimits, { block: tampered, certificate: good })?.code).toBe(
      'tx-root',
    );
  });

  it('writes vote payloads exactly as RFC 8785 would, and accepts only canonical base64url', () => {
    const h = sha256(enc.encode('x'));
    for (const [chain, view, height] of [
      ['test-chain', 0, 1],
      ['a.b:c-d_e', 123_456, 9_007_199_254_740_991],
    ] as const) {
      const bytes = voteSigningBytes('commit', chain, view, height, h);
      const tail = bytes.subarray(bytes.indexOf(0) + 1);
      expect(new TextDecoder().decode(tail)).toBe(
        new TextDecoder().decode(
          encodeCanonical({ blockHash: toBase64Url(h), chainId: chain, height, view }),
        ),
      );
    }
    const good = toBase64Url(h);
    const ok = decodeMessage(
      enc.encode(JSON.stringify({ type: 'proposal-request', height: 1, blockHash: good })),
    );
    expect(ok.ok).toBe(true);
    // 32 bytes = 43 characters; the last one carries 2 unused bits: flip one of them.
    const alphabet = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_';
    const twin = good.slice(0, 42) + alphabet[alphabet.indexOf(good[42]!) ^ 1];
    const bad = decodeMessage(
      enc.encode(JSON.stringify({ type: 'proposal-request', height: 1, blockHash: twin })),
    );
    expect(!bad.ok && bad.error.detail).toMatch(/not canonical/);
  });

  it('quorum is 2f+1 for n=3f+1 and intersects in f+1 otherwise', () => {
    expect([1, 4, 5, 6, 7, 10].map(quorumSize)).toEqual([1, 3, 4, 4, 5, 7]);
    for (let n = 1; n <= 64; n++) {
      const f = Math.floor((n - 1) / 3);
      const q = quorumSize(n);
      expect(2 * q - n).toBeGreaterThanOrEqual(f + 1);
      expect(q).toBeLessThanOrEqual(n - f);
    }
  });
});
