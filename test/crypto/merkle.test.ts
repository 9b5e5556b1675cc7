import { describe, expect, it } from 'vitest';
import { sha256, toHex } from '../../src/crypto/hash.ts';
import {
  leafHash,
  merklePath,
  merklePaths,
  merkleRoot,
  nodeHash,
  verifyMerklePath,
} from '../../src/crypto/merkle.ts';

const leaves = (n: number) => Array.from({ length: n }, (_, i) => Uint8Array.of(i, i >> 8, 0xaa));

/** RFC 6962 §2.1's recursive definition, written out literally as the oracle. */
function mth(d: Uint8Array[]): Uint8Array {
  if (d.length === 0) return sha256();
  if (d.length === 1) return leafHash(d[0]!);
  let k = 1;
  while (k * 2 < d.length) k *= 2;
  return nodeHash(mth(d.slice(0, k)), mth(d.slice(k)));
}

describe('RFC 6962 Merkle tree', () => {
  it('matches the recursive definition for every size up to 70', () => {
    for (let n = 0; n <= 70; n++) expect(toHex(merkleRoot(leaves(n)))).toBe(toHex(mth(leaves(n))));
  });

  it('verifies every leaf path for every size up to 40, and paths agree with the batch builder', () => {
    for (let n = 1; n <= 40; n++) {
      const d = leaves(n);
      const root = merkleRoot(d);
      const all = merklePaths(d);
      expect(toHex(all.root)).toBe(toHex(root));
      for (let i = 0; i < n; i++) {
        const path = merklePath(d, i);
        expect(all.paths[i]!.map(toHex)).toEqual(path.map(toHex));
        expect(verifyMerklePath(d[i]!, i, n, path, root)).toBe(true);
      }
    }
  });

  it('rejects a wrong leaf, index, size, root or path', () => {
    const d = leaves(13);
    const root = merkleRoot(d);
    const path = merklePath(d, 5);
    expect(verifyMerklePath(d[6]!, 5, 13, path, root)).toBe(false);
    expect(verifyMerklePath(d[5]!, 6, 13, path, root)).toBe(false);
    // A size whose tree has another shape fails. (Sizes with the same shape at this leaf, 9 to 16
    // here, verify alike: that is why signers sign the size together with the root.)
    expect(verifyMerklePath(d[5]!, 5, 8, path, root)).toBe(false);
    expect(verifyMerklePath(d[5]!, 5, 6, path, root)).toBe(false);
    expect(verifyMerklePath(d[5]!, 5, 13, path.slice(1), root)).toBe(false);
    expect(verifyMerklePath(d[5]!, 5, 13, [...path, root], root)).toBe(false);
    expect(verifyMerklePath(d[5]!, 5, 13, path, sha256(root))).toBe(false);
    expect(verifyMerklePath(d[5]!, 13, 13, path, root)).toBe(false);
    // A leaf must not verify as an interior node (domain separation).
    expect(verifyMerklePath(nodeHash(leafHash(d[0]!), leafHash(d[1]!)), 0, 7, [], root)).toBe(false);
  });
});
