import { afterEach, describe, expect, it, vi } from 'vitest';
import { errorCodes, type Result } from '../../../src/consensus/core/errors.ts';
import { headerToJson } from '../../../src/consensus/core/forms.ts';
import { defaultChainLimits } from '../../../src/consensus/core/limits.ts';
import { quorumSize } from '../../../src/consensus/core/quorum.ts';
import {
  blockHash,
  signingBytes,
  signMessage,
  voteSigningBytes,
} from '../../../src/consensus/core/signing.ts';
import type {
  Block,
  BlockHeader,
  CertifiedBlock,
  ChainLimits,
  CommitCertificate,
  Message,
  PrePrepare,
  Prepare,
  PreparedCertificate,
  ViewChange,
  Vote,
} from '../../../src/consensus/core/types.ts';
import {
  type VerifyContext,
  verifyBlockBody,
  verifyCertifiedBlock,
  verifyPreparedCertificate,
  verifySignedMessage,
} from '../../../src/consensus/core/verify.ts';
import {
  decodeCertifiedBlock,
  decodeMessage,
  decodePrepared,
  decodeStateTip,
  decodeViewRecord,
  decodeVoteRecord,
  encodeCertifiedBlock,
  encodeMessage,
  encodePrepared,
  encodeStateTip,
  encodeViewRecord,
  encodeVoteRecord,
  messageTags,
  recordTags,
  wireFormat,
} from '../../../src/consensus/wire/codec.ts';
import {
  blockBytesEncodedMax,
  certificateBytesMax,
  certifiedBlockBytesMax,
  chainIdBytesMax,
  envelopeBytes,
  messageBytesMax,
  preparedBytesMax,
  syncResponseBytesTarget,
  syncResponseEnvelopeBytes,
  viewChangeBytesMax,
} from '../../../src/consensus/wire/limits.ts';
import { encodeCanonical } from '../../../src/crypto/canonical.ts';
import { bytesEqual, sha256, toBase64Url, toHex } from '../../../src/crypto/hash.ts';
import { block, chainId, ctx, keys, noSig, samples, sign } from './fixtures.ts';

const enc = new TextEncoder();
const limits = defaultChainLimits;

// ---------------------------------------------------------------------------------------------
// The layout written out by hand, independently of codec.ts: docs/consensus.md's table as code.

const cat = (...parts: Uint8Array[]) => new Uint8Array(Buffer.concat(parts));
const u8 = (v: number) => Uint8Array.of(v);
const u16 = (v: number) => Uint8Array.of(v >> 8, v & 0xff);
function u32(v: number): Uint8Array {
  const b = new Uint8Array(4);
  new DataView(b.buffer).setUint32(0, v);
  return b;
}
function u64(v: number): Uint8Array {
  const b = new Uint8Array(8);
  new DataView(b.buffer).setUint32(0, Math.floor(v / 2 ** 32));
  new DataView(b.buffer).setUint32(4, v % 2 ** 32);
  return b;
}
const latin1 = (s: string) => new Uint8Array(Buffer.from(s, 'latin1'));
const specHeader = (h: BlockHeader) =>
  cat(
    u16(h.version),
    u8(h.chainId.length),
    latin1(h.chainId),
    u64(h.height),
    u64(h.view),
    h.prevHash,
    u64(h.timestampMs),
    h.txRoot,
    u32(h.txCount),
    u16(h.proposer),
  );
const specTxs = (txs: Uint8Array[]) => cat(u32(txs.length), ...txs.flatMap((t) => [u32(t.byteLength), t]));
const specBlock = (b: Block) => cat(specHeader(b.header), specTxs(b.txs));
const specVotes = (votes: Vote[]) =>
  cat(u32(votes.length), ...votes.flatMap((v) => [u16(v.replica), v.signature]));
const specCertificate = (c: CommitCertificate) =>
  cat(u64(c.height), u64(c.view), c.blockHash, specVotes(c.commits));
const specPrepared = (p: PreparedCertificate) =>
  cat(u64(p.view), specHeader(p.header), p.prePrepareSignature, specVotes(p.prepares));
const specViewChange = (vc: ViewChange) =>
  cat(
    u64(vc.view),
    u16(vc.replica),
    u8(vc.checkpoint ? 1 : 0),
    vc.checkpoint ? specCertificate(vc.checkpoint) : new Uint8Array(0),
    u32(vc.prepared.length),
    ...vc.prepared.map(specPrepared),
    vc.signature,
  );

function specBody(m: Message): Uint8Array {
  switch (m.type) {
    case 'pre-prepare':
      return cat(u64(m.view), u16(m.replica), m.signature, specBlock(m.block));
    case 'prepare':
    case 'commit':
      return cat(u64(m.view), u64(m.height), m.blockHash, u16(m.replica), m.signature);
    case 'view-change':
      return specViewChange(m);
    case 'new-view':
      return cat(
        u64(m.view),
        u16(m.replica),
        u32(m.viewChanges.length),
        ...m.viewChanges.map(specViewChange),
        m.signature,
      );
    case 'status':
      return cat(u64(m.view), u8(m.viewChanging ? 1 : 0), u64(m.committedHeight));
    case 'sync-request':
      return cat(u64(m.fromHeight), u32(m.count));
    case 'sync-response':
      return cat(
        u32(m.blocks.length),
        ...m.blocks.flatMap((cb) => [specBlock(cb.block), specCertificate(cb.certificate)]),
      );
    case 'proposal-request':
      return cat(u64(m.height), m.blockHash);
    case 'proposal-response':
      return specBlock(m.block);
    case 'txs':
      return specTxs(m.txs);
  }
}

/** A message as the layout says, whatever its values (the hand-made invalid inputs below). */
const spec = (m: Message) => cat(u8(wireFormat), u8(messageTags[m.type]), specBody(m));

function refusal(r: Result<unknown>) {
  return r.ok ? 'accepted' : r.error.code;
}

/** Whether verification notices that `m` is not what its sender signed (where the format can tell). */
function detected(
  ctx: VerifyContext,
  original: Message,
  m: Message,
  l: ChainLimits = limits,
): boolean | null {
  switch (m.type) {
    case 'pre-prepare':
      return verifySignedMessage(ctx, m) !== null || verifyBlockBody(ctx, l, m.block) !== null;
    case 'prepare':
    case 'commit':
    case 'view-change':
    case 'new-view':
      return verifySignedMessage(ctx, m) !== null;
    case 'sync-response':
      return m.blocks.some((cb) => verifyCertifiedBlock(ctx, l, cb) !== null);
    case 'proposal-response': {
      // The receiver asked for a block by hash and checks the body against it.
      const asked = blockHash((original as typeof m).block.header);
      return !bytesEqual(blockHash(m.block.header), asked) || verifyBlockBody(ctx, l, m.block) !== null;
    }
    default:
      return null; // unsigned: nothing in the format can tell a changed value from a sent one
  }
}

afterEach(() => {
  vi.restoreAllMocks();
});

describe('consensus codec (binary)', () => {
  it('round-trips every message type and record, byte for byte, in the documented layout', () => {
    const s = samples();
    for (const m of s.messages) {
      const bytes = encodeMessage(m);
      expect(toHex(bytes), m.type).toBe(toHex(spec(m)));
      expect([bytes[0], bytes[1]]).toEqual([wireFormat, messageTags[m.type]]);
      const r = decodeMessage(bytes);
      expect(r.ok, m.type).toBe(true);
      if (!r.ok) continue;
      expect(r.value).toEqual(m);
      expect(encodeMessage(r.value)).toEqual(bytes);
    }
    // A prepare in full: format 1, tag 2, view 2, height 7, the block hash, replica 3, the signature.
    expect(toHex(encodeMessage(s.prepare))).toBe(
      `0102${'0000000000000002'}${'0000000000000007'}${toHex(s.hash)}0003${toHex(s.prepare.signature)}`,
    );

    const cbBytes = encodeCertifiedBlock(s.certified);
    expect(toHex(cbBytes)).toBe(
      toHex(
        cat(
          u8(wireFormat),
          u8(recordTags.certifiedBlock),
          specBlock(s.block),
          specCertificate(s.certificate),
        ),
      ),
    );
    const cb = decodeCertifiedBlock(cbBytes);
    expect(cb.ok && cb.value).toEqual(s.certified);
    const prepared = encodePrepared({ certificate: s.prepared, block: s.block });
    expect(toHex(prepared)).toBe(
      toHex(cat(u8(wireFormat), u8(recordTags.prepared), specPrepared(s.prepared), specBlock(s.block))),
    );
    expect(decodePrepared(prepared)).toEqual({
      ok: true,
      value: { certificate: s.prepared, block: s.block },
    });
    for (const [vote, code] of [
      ['pre-prepare', 1],
      ['prepare', 2],
      ['commit', 3],
    ] as const) {
      const record = { kind: 'vote', vote, view: 4, height: 9, blockHash: s.hash } as const;
      const bytes = encodeVoteRecord(record);
      expect(toHex(bytes)).toBe(toHex(cat(u8(1), u8(recordTags.vote), u8(code), u64(4), u64(9), s.hash)));
      expect(decodeVoteRecord(bytes)).toEqual({ ok: true, value: record });
    }
    const view = encodeViewRecord({ view: 2 ** 53 - 1, viewChanging: true });
    expect(toHex(view)).toBe(toHex(cat(u8(1), u8(recordTags.view), u64(2 ** 53 - 1), u8(1))));
    expect(decodeViewRecord(view)).toEqual({ ok: true, value: { view: 2 ** 53 - 1, viewChanging: true } });
    // Decoded bytes are copies: a transaction kept in the mempool does not pin, or change with, its message.
    const forwarded = encodeMessage({ type: 'txs', txs: [enc.encode('kept')] });
    const decoded = decodeMessage(forwarded);
    forwarded.fill(0);
    expect(decoded.ok && decoded.value.type === 'txs' && decoded.value.txs[0]).toEqual(enc.encode('kept'));
    expect(decoded.ok && decoded.value.type === 'txs' && decoded.value.txs[0]!.buffer).not.toBe(
      forwarded.buffer,
    );
    const tip = encodeStateTip({ height: 0, blockHash: s.hash });
    expect(decodeStateTip(tip)).toEqual({ ok: true, value: { height: 0, blockHash: s.hash } });
  });

  it('leaves hashes and signatures as they were: over the canonical JSON forms, never the wire bytes', () => {
    // Values computed by the canonical JSON codec (the release before the binary one, block version 2:
    // its domain tags say v2, its txRoot is over transaction ids) for the same fixtures.
    const pinned = {
      blockHash: '0544fca6330c43c201c865c6bbefc367ebcc900b063d005dc7320f353a11a9f9',
      'pre-prepare': [
        '1629e8b2635b5d6480621f9a7f32d434d79ea166a49779f784019732170fbe02',
        '2b11a07d1fd1b2a8899a6f0889896ddba96de4785ff045f3470a8a1a65bde4c3575bffa87e55b2e56556c1a9d1a4d1599d225c7ef773353108b6dcabf0071e0b',
      ],
      prepare: [
        '93653353d49a1c3ea9f17d418fd4fd863f3db95e703ac6ad34f7c3e8f68d3f68',
        '8dce620c312e4347d47a4c1bfba4e78f86f2ea119f5f91f1456bc421deeb2287a082301e12cfc1047b1e980318cd810c6387caf67db0490f1cea2446b719230b',
      ],
      commit: [
        'ad0776f1215a1af37b625f283a47645ec8dbeb2581c3d2135dd942da148ef4b5',
        '2db547f7eb71eea1d84f88c12316c08a200dc3dc0ea19645bf47d59d6e544524eda0c430e73be2241d112bab0f13c0ce31e397f2dc603d88fe423f5a6701a70d',
      ],
      'view-change': [
        '8d4bb878b96d256c4cab4ecb123b80a5fd50f8ccf556903cf80b150f06d00cee',
        '199d5479aae2643a7c13c630fb7da450c9d9d0e17f7da70d154e035f1d5d6c512089b5207ed053d80f2a148cb6bfa3ebf044125adf5a73bb7ac6b5c79f0e8c00',
      ],
      'new-view': [
        '9d0ba6cef6206c6abab00ef733ff7eba7caeadd0cc9f22f24d56c47442ef7d68',
        'd90e07255f4e76acf2703e846331a0ea8bb2f7ea087661edfc947ba2ea7da2ac5d39336f8f966af888dfe30496f6099b5413c529d4423a7a576e967dd8cad50a',
      ],
    } as const;
    const s = samples();
    const domain = enc.encode('masbc-edge/ipbft/v2/block-header\0');
    expect(toHex(sha256(domain, encodeCanonical(headerToJson(s.block.header))))).toBe(pinned.blockHash);
    for (const m of [s.pp, s.prepare, s.commit, s.viewChange, s.newView]) {
      const r = decodeMessage(encodeMessage(m));
      if (!r.ok || r.value.type !== m.type) throw new Error(`${m.type} does not round-trip`);
      const decoded = r.value;
      const [signed, signature] = pinned[m.type];
      expect(toHex(sha256(signingBytes(chainId, decoded))), m.type).toBe(signed);
      expect(toHex(decoded.signature), m.type).toBe(signature);
      expect(verifySignedMessage(ctx, decoded), m.type).toBeNull();
      if (decoded.type === 'pre-prepare')
        expect(toHex(blockHash(decoded.block.header))).toBe(pinned.blockHash);
    }
    const cb = decodeCertifiedBlock(encodeCertifiedBlock(s.certified));
    expect(cb.ok && verifyCertifiedBlock(ctx, limits, cb.value)).toBeNull();
    expect(cb.ok && toHex(blockHash(cb.value.block.header))).toBe(pinned.blockHash);
    const p = decodePrepared(encodePrepared({ certificate: s.prepared, block: s.block }));
    expect(p.ok && verifyPreparedCertificate(ctx, p.value.certificate)).toBeNull();
  });

  it('never throws on garbage and names the problem', () => {
    const s = samples();
    const status = { type: 'status', view: 1, viewChanging: false, committedHeight: 0 } as const;
    const statusBody = specBody(status);
    const withTag = (tag: number, body = statusBody) => cat(u8(wireFormat), u8(tag), body);
    const reversed = { ...s.certificate, commits: [...s.certificate.commits].reverse() };
    const twice = { ...s.certificate, commits: [s.certificate.commits[0]!, s.certificate.commits[0]!] };
    const vc = s.viewChange;
    const cases: [string, Uint8Array, string, RegExp?][] = [
      ['empty', new Uint8Array(0), 'shape'],
      ['JSON of the former format', enc.encode(JSON.stringify(status)), 'shape', /JSON/],
      ['not a format byte', Uint8Array.of(0xff, 0xfe), 'shape', /format byte 255/],
      ['deep JSON', enc.encode('['.repeat(100_000)), 'shape'],
      ['another format', cat(u8(2), u8(messageTags.status), statusBody), 'shape', /format byte 2/],
      ['unknown tag', withTag(0x7f), 'unknown-type'],
      ['tag 0', withTag(0), 'unknown-type'],
      ['a stored record is no message', encodeCertifiedBlock(s.certified), 'unknown-type'],
      ['u64 above 2^53−1', spec({ ...status, view: 2 ** 53 }), 'limit'],
      [
        'u64 all ones',
        withTag(messageTags.status, cat(u32(0xffff_ffff), u32(0xffff_ffff), u8(0), u64(0))),
        'limit',
      ],
      ['a flag of 2', withTag(messageTags.status, cat(u64(1), u8(2), u64(0))), 'shape', /flag/],
      ['a trailing byte', cat(spec(status), u8(0)), 'shape', /trailing/],
      [
        'a short hash',
        withTag(messageTags['proposal-request'], cat(u64(1), Uint8Array.of(0, 0))),
        'shape',
        /truncated/,
      ],
      ['height 0', spec({ type: 'proposal-request', height: 0, blockHash: s.hash }), 'limit'],
      ['too many blocks asked', spec({ type: 'sync-request', fromHeight: 1, count: 10_000 }), 'limit'],
      ['no block asked', spec({ type: 'sync-request', fromHeight: 1, count: 0 }), 'limit'],
      [
        'an empty transaction',
        spec({ type: 'txs', txs: [new Uint8Array(0), enc.encode('abcdef')] }),
        'shape',
        /empty/,
      ],
      [
        'an empty transaction, nothing after',
        spec({ type: 'txs', txs: [new Uint8Array(0)] }),
        'shape',
        /cannot fit/,
      ],
      ['a replica outside the set', spec({ ...s.prepare, replica: limits.validatorsMax }), 'limit'],
      [
        'a chain id with a space',
        spec({ ...s.pp, block: block({ chainId: 'bad chain' }) }),
        'shape',
        /chain id/,
      ],
      ['an empty chain id', spec({ ...s.pp, block: block({ chainId: '' }) }), 'shape', /chain id/],
      [
        'a chain id in Latin-1',
        spec({ ...s.pp, block: block({ chainId: 'caf\u00e9' }) }),
        'shape',
        /chain id/,
      ],
      ['a block at height 0', spec({ ...s.pp, block: block({ height: 0 }) }), 'limit'],
      [
        'txCount above the limit',
        spec({ ...s.pp, block: block({ txCount: limits.blockTxsMax + 1 }) }),
        'limit',
      ],
      [
        'commits out of order',
        spec({ type: 'sync-response', blocks: [{ block: s.block, certificate: reversed }] }),
        'votes-unsorted',
      ],
      [
        'a commit twice',
        spec({ type: 'sync-response', blocks: [{ block: s.block, certificate: twice }] }),
        'votes-unsorted',
      ],
      [
        'prepares out of order',
        spec({ ...vc, prepared: [{ ...s.prepared, prepares: [...s.prepared.prepares].reverse() }] }),
        'votes-unsorted',
      ],
      [
        'view changes out of order',
        spec({ ...s.newView, viewChanges: [...s.newView.viewChanges].reverse() }),
        'votes-unsorted',
      ],
      [
        'prepared heights repeated',
        spec({ ...vc, prepared: [s.prepared, s.prepared] }),
        'shape',
        /ascending/,
      ],
      [
        'prepared certificates beyond the window',
        spec({ ...vc, prepared: Array.from({ length: limits.windowHeights + 1 }, () => s.prepared) }),
        'limit',
      ],
      [
        'a checkpoint flag of 2',
        withTag(messageTags['view-change'], cat(u64(3), u16(1), u8(2), u32(0), noSig)),
        'shape',
        /flag/,
      ],
      [
        'blocks not consecutive',
        spec({ type: 'sync-response', blocks: [s.certified, s.certified] }),
        'shape',
        /consecutive/,
      ],
      [
        'more blocks than a sync answer holds',
        withTag(messageTags['sync-response'], u32(limits.syncBlocksMax + 1)),
        'limit',
      ],
      [
        'more votes than validators',
        withTag(messageTags['view-change'], cat(u64(3), u16(1), u8(1), u64(6), u64(1), s.hash, u32(65))),
        'limit',
      ],
      [
        'more view changes than validators',
        withTag(messageTags['new-view'], cat(u64(3), u16(3), u32(65))),
        'limit',
      ],
      [
        'more transactions than forwarded at once',
        withTag(messageTags.txs, u32(limits.forwardTxsMax + 1)),
        'limit',
      ],
      [
        'more transactions than a block holds',
        withTag(
          messageTags['proposal-response'],
          cat(specHeader(s.block.header), u32(limits.blockTxsMax + 1)),
        ),
        'limit',
      ],
      [
        'a transaction above txBytesMax',
        withTag(messageTags.txs, cat(u32(1), u32(limits.txBytesMax + 1), u8(1))),
        'limit',
      ],
      ['a declared length of 4 GiB', withTag(messageTags.txs, cat(u32(1), u32(0xffff_ffff), u8(1))), 'limit'],
      [
        'a declared length beyond the input',
        withTag(messageTags.txs, cat(u32(1), u32(limits.txBytesMax), u8(1))),
        'shape',
        /truncated/,
      ],
      [
        'a declared count beyond the input',
        withTag(messageTags.txs, cat(u32(limits.forwardTxsMax), u32(1), u8(1))),
        'shape',
        /cannot fit/,
      ],
    ];
    for (const [what, bytes, code, detail] of cases) {
      const r = decodeMessage(bytes);
      expect(refusal(r), what).toBe(code);
      if (!r.ok) {
        expect(r.error.detail, what).not.toMatch(/decoder failure/);
        if (detail) expect(r.error.detail, what).toMatch(detail);
      }
    }
    // More transaction bytes in total than a block holds (each one within txBytesMax).
    const small: ChainLimits = { ...limits, txBytesMax: 3, blockBytesMax: 4 };
    const over = decodeMessage(spec({ type: 'txs', txs: [enc.encode('abc'), enc.encode('de')] }), small);
    expect(refusal(over)).toBe('limit');
    const big = new Uint8Array(messageBytesMax(limits) + 1);
    expect(refusal(decodeMessage(big))).toBe('too-large');
    expect(
      refusal(decodeCertifiedBlock(new Uint8Array(envelopeBytes + certifiedBlockBytesMax(limits) + 1))),
    ).toBe('too-large');
    // Stored records: each decoder takes only its own record.
    expect(refusal(decodeCertifiedBlock(encodeMessage(s.pp)))).toBe('unknown-type');
    expect(refusal(decodePrepared(encodeCertifiedBlock(s.certified)))).toBe('unknown-type');
    const preparedMax = envelopeBytes + preparedBytesMax(limits) + blockBytesEncodedMax(limits);
    expect(refusal(decodePrepared(new Uint8Array(preparedMax + 1)))).toBe('too-large');
    expect(refusal(decodePrepared(new Uint8Array(preparedMax)))).toBe('shape');
    expect(refusal(decodeCertifiedBlock(enc.encode('{"block":{}}')))).toBe('shape');
    expect(refusal(decodeVoteRecord(cat(u8(1), u8(recordTags.vote), u8(4), u64(1), u64(1), s.hash)))).toBe(
      'shape',
    );
    expect(refusal(decodeVoteRecord(cat(u8(1), u8(recordTags.vote), u8(0), u64(1), u64(1), s.hash)))).toBe(
      'shape',
    );
    expect(refusal(decodeViewRecord(cat(u8(1), u8(recordTags.view), u64(1), u8(2))))).toBe('shape');
    expect(refusal(decodeStateTip(cat(u8(1), u8(recordTags.stateTip), u64(1), s.hash, u8(0))))).toBe(
      'too-large',
    );
    expect(refusal(decodeStateTip(cat(u8(1), u8(recordTags.stateTip), u64(1), s.hash.subarray(1))))).toBe(
      'shape',
    );
    expect(refusal(decodeStateTip(cat(u8(1), u8(recordTags.vote), u64(1), s.hash)))).toBe('unknown-type');
  });

  it('refuses input truncated at every length, and trailing bytes, with shape', () => {
    const s = samples();
    const inputs: [string, Uint8Array, (b: Uint8Array) => Result<unknown>][] = [
      ...s.messages.map((m): [string, Uint8Array, (b: Uint8Array) => Result<unknown>] => [
        m.type,
        encodeMessage(m),
        (b) => decodeMessage(b),
      ]),
      ['certified block', encodeCertifiedBlock(s.certified), (b) => decodeCertifiedBlock(b)],
      ['prepared', encodePrepared({ certificate: s.prepared, block: s.block }), (b) => decodePrepared(b)],
      [
        'vote',
        encodeVoteRecord({ kind: 'vote', vote: 'commit', view: 1, height: 2, blockHash: s.hash }),
        (b) => decodeVoteRecord(b),
      ],
      ['view', encodeViewRecord({ view: 1, viewChanging: false }), (b) => decodeViewRecord(b)],
      ['state tip', encodeStateTip({ height: 1, blockHash: s.hash }), (b) => decodeStateTip(b)],
    ];
    let checked = 0;
    for (const [what, bytes, decode] of inputs) {
      expect(decode(bytes).ok, what).toBe(true);
      const wrong: string[] = [];
      for (let n = 0; n < bytes.byteLength; n++) {
        const r = decode(bytes.subarray(0, n));
        if (r.ok || r.error.code !== 'shape' || /decoder failure/.test(r.error.detail)) {
          wrong.push(`${n}: ${refusal(r)}`);
        }
        checked++;
      }
      // Fixed-size records are as large as they may be: more is too large before it is trailing.
      const fixedSize = ['vote', 'view', 'state tip'].includes(what);
      for (const extra of [u8(0), u8(0xff), new Uint8Array(100)]) {
        const r = decode(cat(bytes, extra));
        const ok = fixedSize
          ? refusal(r) === 'too-large'
          : !r.ok && r.error.code === 'shape' && /trailing/.test(r.error.detail);
        if (!ok) wrong.push(`+${extra.byteLength}: ${refusal(r)}`);
      }
      expect(wrong, what).toEqual([]);
    }
    expect(checked).toBeGreaterThan(3000);
  });

  it('a bit flipped anywhere is refused, or decodes to the one message those bytes encode, which verification refuses where the format can tell', () => {
    const s = samples();
    // Most accepted flips leave most signatures as they were: check each (key, bytes, signature) once.
    const verdicts = new Map<string, boolean>();
    const memo: VerifyContext = {
      ...ctx,
      verifier: {
        verify: (alg, publicKey, message, signature) => {
          const key = `${toHex(publicKey)}:${toHex(sha256(message))}:${toHex(signature)}`;
          const known = verdicts.get(key);
          if (known !== undefined) return known;
          const v = ctx.verifier.verify(alg, publicKey, message, signature);
          verdicts.set(key, v);
          return v;
        },
      },
    };
    const tally = { refused: 0, accepted: 0, detected: 0, unsigned: 0 };
    const bugs: string[] = [];
    // Every sample but two whose bytes other samples already hold: the full VIEW-CHANGE is flipped
    // inside the NEW-VIEW, and the two-block sync answer's blocks as one sync block and one record.
    const flipped = s.messages.filter(
      (m) => m !== s.viewChange && !(m.type === 'sync-response' && m.blocks.length > 1),
    );
    const samplesOf: [Message | CertifiedBlock, Uint8Array][] = [
      ...flipped.map((m) => [m, encodeMessage(m)] as [Message, Uint8Array]),
      [
        { type: 'sync-response', blocks: [s.certified] },
        encodeMessage({ type: 'sync-response', blocks: [s.certified] }),
      ],
      [s.certified, encodeCertifiedBlock(s.certified)],
    ];
    for (const [original, bytes] of samplesOf) {
      const isMessage = 'type' in original;
      const what = isMessage ? original.type : 'certified block';
      for (let bit = 0; bit < bytes.byteLength * 8; bit++) {
        const flipped = bytes.slice();
        flipped[bit >> 3]! ^= 1 << (bit & 7);
        const r = isMessage ? decodeMessage(flipped) : decodeCertifiedBlock(flipped);
        if (!r.ok) {
          tally.refused++;
          if (!errorCodes.includes(r.error.code) || /decoder failure/.test(r.error.detail)) {
            bugs.push(`${what} bit ${bit}: ${r.error.code} ${r.error.detail}`);
          }
          continue;
        }
        tally.accepted++;
        // One encoding per value: what was accepted is exactly what those bytes mean.
        const again = isMessage
          ? encodeMessage(r.value as Message)
          : encodeCertifiedBlock(r.value as CertifiedBlock);
        if (!bytesEqual(again, flipped)) bugs.push(`${what} bit ${bit}: a second encoding of one value`);
        const seen = isMessage
          ? detected(memo, original as Message, r.value as Message)
          : verifyCertifiedBlock(memo, limits, r.value as CertifiedBlock) !== null;
        if (seen === null) tally.unsigned++;
        else if (seen) tally.detected++;
        else bugs.push(`${what} bit ${bit}: a changed message that verifies`);
      }
    }
    expect(bugs).toEqual([]);
    // Not vacuous: flips in signatures, hashes and transactions decode and are caught by verification.
    expect(tally.refused).toBeGreaterThan(1000);
    expect(tally.detected).toBeGreaterThan(10_000);
    expect(tally.unsigned).toBeGreaterThan(100);
  });

  it('checks counts and lengths against the limits and the bytes left before allocating anything for them', () => {
    const slice = vi.spyOn(Uint8Array.prototype, 'slice');
    const copiesFor = (bytes: Uint8Array, l: ChainLimits = limits) => {
      slice.mockClear();
      const r = decodeMessage(bytes, l);
      return { code: refusal(r), copies: slice.mock.calls.length };
    };
    const txs = (...parts: Uint8Array[]) => cat(u8(wireFormat), u8(messageTags.txs), ...parts);
    // A count of 2^32−1 and nothing behind it.
    expect(copiesFor(txs(u32(0xffff_ffff)))).toEqual({ code: 'limit', copies: 0 });
    // A count within the limit that the bytes left cannot hold.
    expect(copiesFor(txs(u32(limits.forwardTxsMax), u32(1), u8(7)))).toEqual({ code: 'shape', copies: 0 });
    // A declared length of 4 GiB, of txBytesMax with one byte behind it.
    expect(copiesFor(txs(u32(1), u32(0xffff_ffff), u8(7)))).toEqual({ code: 'limit', copies: 0 });
    expect(copiesFor(txs(u32(1), u32(limits.txBytesMax), u8(7)))).toEqual({ code: 'shape', copies: 0 });
    // The block's byte budget is checked before the transaction that breaks it is copied.
    const small: ChainLimits = { ...limits, txBytesMax: 3, blockBytesMax: 5 };
    expect(
      copiesFor(txs(u32(3), u32(3), latin1('abc'), u32(1), u8(1), u32(3), latin1('def')), small),
    ).toEqual({
      code: 'limit',
      copies: 2,
    });
    // Votes, view changes, prepared certificates, synced blocks: the same before their first item.
    const s = samples();
    const many = (tag: number, ...head: Uint8Array[]) =>
      cat(u8(wireFormat), u8(tag), ...head, u32(0xffff_ffff));
    for (const bytes of [
      many(messageTags['new-view'], u64(3), u16(3)),
      many(messageTags['view-change'], u64(3), u16(1), u8(0)),
      many(messageTags['view-change'], u64(3), u16(1), u8(1), u64(6), u64(1), s.hash),
      many(messageTags['sync-response']),
    ]) {
      expect(copiesFor(bytes).code).toBe('limit');
    }
    // Counts at their limits, eight bytes behind them. Before the certificate's votes, its hash was copied.
    const full = (tag: number, max: number, ...head: Uint8Array[]) =>
      cat(u8(wireFormat), u8(tag), ...head, u32(max), new Uint8Array(8));
    for (const [bytes, copies] of [
      [full(messageTags['new-view'], limits.validatorsMax, u64(3), u16(3)), 0],
      [full(messageTags['view-change'], limits.windowHeights, u64(3), u16(1), u8(0)), 0],
      [full(messageTags['sync-response'], limits.syncBlocksMax), 0],
      [
        full(messageTags['view-change'], limits.validatorsMax, u64(3), u16(1), u8(1), u64(6), u64(1), s.hash),
        1,
      ],
    ] as const) {
      expect(copiesFor(bytes)).toEqual({ code: 'shape', copies });
    }
  });

  it('sizes its bounds exactly: the largest values the limits allow encode to them and decode', () => {
    const vote = (replica: number) => ({ replica, signature: new Uint8Array(64).fill(replica + 1) });
    for (const l of [
      {
        ...limits,
        validatorsMax: 4,
        blockTxsMax: 3,
        txBytesMax: 5,
        blockBytesMax: 10,
        windowHeights: 2,
        syncBlocksMax: 2,
        forwardTxsMax: 3,
      },
      // Fewer transactions than bytes allow: the count bounds the bytes.
      {
        ...limits,
        validatorsMax: 5,
        blockTxsMax: 2,
        txBytesMax: 3,
        blockBytesMax: 10,
        windowHeights: 1,
        syncBlocksMax: 1,
        forwardTxsMax: 1,
      },
    ] satisfies ChainLimits[]) {
      // As many transactions as allowed, filled greedily: each as large as allowed, one byte left for each later one.
      const fill = (countMax: number) => {
        const count = Math.min(countMax, l.blockBytesMax);
        let left = l.blockBytesMax;
        return Array.from({ length: count }, (_, i) => {
          const n = Math.min(l.txBytesMax, left - (count - 1 - i));
          left -= n;
          return new Uint8Array(n).fill(i + 1);
        });
      };
      const txs = fill(l.blockTxsMax);
      const votes = Array.from({ length: l.validatorsMax }, (_, r) => vote(r));
      const header = (height: number): BlockHeader => ({
        version: 0xffff,
        chainId: `c${'x'.repeat(chainIdBytesMax - 1)}`,
        height,
        view: 2 ** 53 - 1,
        prevHash: sha256(),
        timestampMs: 2 ** 53 - 1,
        txRoot: sha256(),
        txCount: l.blockTxsMax,
        proposer: l.validatorsMax - 1,
      });
      const biggest: Block = { header: header(1), txs };
      const certificate = { height: 1, view: 1, blockHash: sha256(), commits: votes };
      const prepared = (height: number) => ({
        view: 1,
        header: header(height),
        prePrepareSignature: noSig,
        prepares: votes,
      });
      const vc = (replica: number): ViewChange => ({
        type: 'view-change',
        view: 1,
        replica,
        checkpoint: certificate,
        prepared: Array.from({ length: l.windowHeights }, (_, i) => prepared(i + 1)),
        signature: noSig,
      });
      const q = quorumSize(l.validatorsMax);
      const nv: Message = {
        type: 'new-view',
        view: 1,
        replica: 0,
        viewChanges: Array.from({ length: q }, (_, r) => vc(r)),
        signature: noSig,
      };
      const pp: Message = { type: 'pre-prepare', view: 1, replica: 0, block: biggest, signature: noSig };
      const forward: Message = { type: 'txs', txs: fill(l.forwardTxsMax) };
      const exact: [string, Uint8Array, number][] = [
        [
          'block',
          encodeMessage({ type: 'proposal-response', block: biggest }),
          envelopeBytes + blockBytesEncodedMax(l),
        ],
        [
          'certified block',
          encodeCertifiedBlock({ block: biggest, certificate }),
          envelopeBytes + certifiedBlockBytesMax(l),
        ],
        [
          'certificate',
          encodeCertifiedBlock({ block: biggest, certificate }).subarray(
            envelopeBytes + blockBytesEncodedMax(l),
          ),
          certificateBytesMax(l),
        ],
        [
          'prepared',
          encodePrepared({ certificate: prepared(1), block: biggest }),
          envelopeBytes + preparedBytesMax(l) + blockBytesEncodedMax(l),
        ],
        ['view-change', encodeMessage(vc(0)), envelopeBytes + viewChangeBytesMax(l)],
        ['new-view', encodeMessage(nv), envelopeBytes + 8 + 2 + 4 + q * viewChangeBytesMax(l) + 64],
      ];
      for (const [what, bytes, bound] of exact) expect(bytes.byteLength, what).toBe(bound);
      const ppBytes = encodeMessage(pp);
      const forwardBytes = encodeMessage(forward);
      expect(messageBytesMax(l)).toBe(
        Math.max(
          ppBytes.byteLength,
          exact[5]![1].byteLength,
          syncResponseEnvelopeBytes + syncResponseBytesTarget(l),
          forwardBytes.byteLength,
        ),
      );
      for (const m of [pp, nv, vc(0), forward]) {
        const r = decodeMessage(encodeMessage(m), l);
        expect(r.ok, m.type).toBe(true);
      }
      expect(decodeCertifiedBlock(encodeCertifiedBlock({ block: biggest, certificate }), l).ok).toBe(true);
      // One byte more in any transaction breaks a limit.
      const grown = { ...biggest, txs: [new Uint8Array(txs[0]!.byteLength + 1), ...txs.slice(1)] };
      expect(refusal(decodeMessage(encodeMessage({ type: 'proposal-response', block: grown }), l))).toBe(
        'limit',
      );
      // The sync target holds one largest certified block (a sync answer always carries at least one).
      expect(syncResponseBytesTarget(l)).toBeGreaterThanOrEqual(certifiedBlockBytesMax(l));
    }
    expect(chainIdBytesMax).toBe(64);
    expect(messageBytesMax(defaultChainLimits)).toBe(2_097_158);
  });

  it('refuses to encode what the form cannot hold (a bug in the caller)', () => {
    const s = samples();
    expect(() => encodeMessage({ ...s.prepare, view: 1.5 })).toThrow(RangeError);
    expect(() => encodeMessage({ ...s.prepare, height: -1 })).toThrow(RangeError);
    expect(() => encodeMessage({ ...s.prepare, height: 2 ** 53 })).toThrow(RangeError);
    expect(() => encodeMessage({ ...s.prepare, blockHash: new Uint8Array(31) })).toThrow(RangeError);
    expect(() => encodeMessage({ ...s.prepare, signature: new Uint8Array(65) })).toThrow(RangeError);
    expect(() => encodeMessage({ ...s.prepare, replica: 0x1_0000 })).toThrow(RangeError);
    expect(() => encodeMessage({ ...s.pp, block: block({ chainId: 'x'.repeat(256) }) })).toThrow(RangeError);
  });

  it('rejects votes that are unsorted, too few, by the wrong role, or signed for another purpose', () => {
    const b = block({ height: 1, view: 0 });
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
    const prep: Prepare = sign(0, {
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

  it('writes vote payloads exactly as RFC 8785 would', () => {
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
