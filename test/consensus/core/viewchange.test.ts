import { describe, expect, it } from 'vitest';
import { keyOf } from '../../../src/consensus/core/io.ts';
import { defaultChainLimits } from '../../../src/consensus/core/limits.ts';
import { quorumSize } from '../../../src/consensus/core/quorum.ts';
import { blockHash, signMessage, txRootOf, voteSigningBytes } from '../../../src/consensus/core/signing.ts';
import type {
  BlockHeader,
  CommitCertificate,
  NewView,
  PreparedCertificate,
  ViewChange,
} from '../../../src/consensus/core/types.ts';
import { checkNewView, selectReproposals } from '../../../src/consensus/core/viewchange.ts';
import { sha256 } from '../../../src/crypto/hash.ts';
import { nodeVerifier } from '../../../src/crypto/keys.ts';
import { chainId, genesisHash, Net } from './harness.ts';

const net = new Net(4);
const n = 4;
const zero = new Uint8Array(64);
const ctx = {
  chainId,
  validators: net.validators,
  verifier: nodeVerifier,
  txId: (tx: Uint8Array) => sha256(tx),
};

function header(height: number, view: number, prevHash: Uint8Array, salt: number): BlockHeader {
  const txs = [sha256(Uint8Array.of(1, salt, height, view))];
  return {
    version: 2,
    chainId,
    height,
    view,
    prevHash,
    timestampMs: 1_000 * height,
    txRoot: txRootOf(txs.map((t) => sha256(t))),
    txCount: 1,
    proposer: view % n,
  };
}

/** A prepared certificate with real signatures: the primary's pre-prepare and quorum−1 backups. */
function prepared(h: BlockHeader, view = h.view): PreparedCertificate {
  const hash = blockHash(h);
  const primary = view % n;
  const backups = [0, 1, 2, 3].filter((r) => r !== primary).slice(0, quorumSize(n) - 1);
  return {
    view,
    header: h,
    prePrepareSignature: net.signers[primary]!.sign(
      voteSigningBytes('pre-prepare', chainId, view, h.height, hash),
    ),
    prepares: backups.map((r) => ({
      replica: r,
      signature: net.signers[r]!.sign(voteSigningBytes('prepare', chainId, view, h.height, hash)),
    })),
  };
}

function certificate(h: BlockHeader, view = h.view): CommitCertificate {
  const hash = blockHash(h);
  return {
    height: h.height,
    view,
    blockHash: hash,
    commits: [0, 1, 2].map((r) => ({
      replica: r,
      signature: net.signers[r]!.sign(voteSigningBytes('commit', chainId, view, h.height, hash)),
    })),
  };
}

function vc(
  replica: number,
  view: number,
  checkpoint: CommitCertificate | null,
  certs: PreparedCertificate[],
): ViewChange {
  return signMessage(net.signers[replica]!, chainId, {
    type: 'view-change',
    view,
    replica,
    checkpoint,
    prepared: certs,
    signature: zero,
  });
}

const key = (h: BlockHeader) => keyOf(blockHash(h));

describe('view-change selection', () => {
  const y = header(1, 0, genesisHash, 1);
  const x = header(2, 0, blockHash(y), 2);

  it('takes, per height, the prepared block of the highest view', () => {
    const old = header(1, 0, genesisHash, 9);
    const newer = header(1, 2, genesisHash, 8);
    const s = selectReproposals(
      [vc(0, 3, null, [prepared(old)]), vc(1, 3, null, [prepared(newer)]), vc(2, 3, null, [])],
      genesisHash,
    );
    expect(s.reproposals.map((r) => keyOf(r.hash))).toEqual([key(newer)]);
    // Order of the VIEW-CHANGEs does not matter.
    const t = selectReproposals(
      [vc(1, 3, null, [prepared(newer)]), vc(0, 3, null, [prepared(old)])],
      genesisHash,
    );
    expect(t.reproposals.map((r) => keyOf(r.hash))).toEqual([key(newer)]);
  });

  it('walks the chain: a block counts only if it extends the block chosen below it', () => {
    const yNew = header(1, 3, genesisHash, 5); // a higher-view block at height 1, not X's parent
    const s = selectReproposals(
      [vc(0, 4, null, [prepared(y), prepared(x)]), vc(1, 4, null, [prepared(yNew)]), vc(2, 4, null, [])],
      genesisHash,
    );
    // Height 1 takes yNew (highest view); x does not extend it, so the selection stops there.
    expect(s.reproposals.map((r) => keyOf(r.hash))).toEqual([key(yNew)]);
    const both = selectReproposals(
      [vc(0, 4, null, [prepared(y), prepared(x)]), vc(2, 4, null, [])],
      genesisHash,
    );
    expect(both.reproposals.map((r) => r.height)).toEqual([1, 2]);
  });

  it('starts above the highest checkpoint and stops at the first height with nothing prepared', () => {
    const z = header(4, 0, sha256(Uint8Array.of(3)), 4); // height 3 unknown: a gap
    const s = selectReproposals(
      [vc(0, 1, certificate(y), [prepared(x), prepared(z)]), vc(1, 1, null, [])],
      genesisHash,
    );
    expect(s.base.height).toBe(1);
    expect(keyOf(s.base.hash)).toBe(key(y));
    expect(s.reproposals.map((r) => r.height)).toEqual([2]);
    const none = selectReproposals([vc(0, 1, null, []), vc(1, 1, null, [])], genesisHash);
    expect(none).toEqual({ base: { height: 0, hash: genesisHash, certificate: null }, reproposals: [] });
  });
});

describe('NEW-VIEW validation', () => {
  const y = header(1, 0, genesisHash, 1);
  const nv = (viewChanges: ViewChange[], view = 1): NewView =>
    signMessage(net.signers[view % n]!, chainId, {
      type: 'new-view',
      view,
      replica: view % n,
      viewChanges,
      signature: zero,
    });

  it('accepts a quorum of valid VIEW-CHANGEs and returns the selection', () => {
    const r = checkNewView(
      ctx,
      defaultChainLimits,
      genesisHash,
      nv([vc(0, 1, null, [prepared(y)]), vc(2, 1, null, []), vc(3, 1, null, [])]),
      new Set(),
    );
    expect(r.ok && r.selection.reproposals.map((p) => keyOf(p.hash))).toEqual([key(y)]);
  });

  it('refuses too few, wrong-view, tampered or out-of-window VIEW-CHANGEs', () => {
    const good = [vc(0, 1, null, []), vc(2, 1, null, []), vc(3, 1, null, [])];
    const code = (m: NewView) => {
      const r = checkNewView(ctx, defaultChainLimits, genesisHash, m, new Set());
      return r.ok ? 'ok' : r.error.code;
    };
    expect(code(nv(good))).toBe('ok');
    expect(code(nv(good.slice(0, 2)))).toBe('new-view-invalid');
    expect(code(nv([...good.slice(0, 2), vc(3, 2, null, [])]))).toBe('new-view-invalid');
    expect(code(nv([...good.slice(0, 2), { ...good[2]!, prepared: [prepared(y)] }]))).toBe(
      'new-view-invalid',
    );
    const far = header(9, 0, genesisHash, 7); // window is 4 above the checkpoint (0)
    expect(code(nv([...good.slice(0, 2), vc(3, 1, null, [prepared(far)])]))).toBe('new-view-invalid');
    const sameView = header(1, 1, genesisHash, 6); // prepared in the view being entered: impossible
    expect(code(nv([...good.slice(0, 2), vc(3, 1, null, [prepared(sameView)])]))).toBe('new-view-invalid');
    // Signed by a replica that is not the primary of view 1.
    const notPrimary = signMessage(net.signers[2]!, chainId, { ...nv(good), replica: 2 });
    expect(code(notPrimary)).toBe('not-primary');
  });
});
