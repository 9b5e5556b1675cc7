/**
 * Merkle trees as in RFC 6962 §2.1 (Certificate Transparency): leaf hash H(0x00 ‖ leaf), interior
 * node H(0x01 ‖ left ‖ right), the left subtree holding the largest power of two below n. The domain
 * bytes stop a leaf from being passed off as an interior node (second-preimage attack).
 * Used for a block's transaction root and for a gateway's batch signature over event ids.
 *
 * @example
 *   const root = merkleRoot(leaves);
 *   const path = merklePath(leaves, 3);
 *   verifyMerklePath(leaves[3], 3, leaves.length, path, root) === true
 */
import { bytesEqual, sha256 } from './hash.ts';

const leafPrefix = Uint8Array.of(0);
const nodePrefix = Uint8Array.of(1);

export function leafHash(leaf: Uint8Array): Uint8Array {
  return sha256(leafPrefix, leaf);
}

export function nodeHash(left: Uint8Array, right: Uint8Array): Uint8Array {
  return sha256(nodePrefix, left, right);
}

/** Merkle tree hash of the leaves (raw leaf data, hashed here). Empty tree: SHA-256 of nothing. */
export function merkleRoot(leaves: readonly Uint8Array[]): Uint8Array {
  if (leaves.length === 0) return sha256();
  // Bottom-up over leaf hashes; carrying an odd node up unchanged gives exactly RFC 6962's tree.
  let level = leaves.map(leafHash);
  while (level.length > 1) {
    const next: Uint8Array[] = [];
    for (let i = 0; i + 1 < level.length; i += 2) next.push(nodeHash(level[i]!, level[i + 1]!));
    if (level.length % 2 === 1) next.push(level[level.length - 1]!);
    level = next;
  }
  return level[0]!;
}

/** Audit path (RFC 6962 §2.1.1) for leaf `index`, siblings from the leaf upwards. */
export function merklePath(leaves: readonly Uint8Array[], index: number): Uint8Array[] {
  if (!Number.isInteger(index) || index < 0 || index >= leaves.length) {
    throw new RangeError(`leaf index ${index} outside 0..${leaves.length - 1}`);
  }
  return pathOf(leaves.map(leafHash), index);
}

/** All audit paths at once, in O(n log n) hashing instead of O(n²). */
export function merklePaths(leaves: readonly Uint8Array[]): { root: Uint8Array; paths: Uint8Array[][] } {
  const paths: Uint8Array[][] = leaves.map(() => []);
  if (leaves.length === 0) return { root: sha256(), paths };
  // positions[i] = index of leaf i's ancestor at the current level.
  let level = leaves.map(leafHash);
  const positions = leaves.map((_, i) => i);
  while (level.length > 1) {
    const next: Uint8Array[] = [];
    for (let i = 0; i + 1 < level.length; i += 2) next.push(nodeHash(level[i]!, level[i + 1]!));
    const carried = level.length % 2 === 1;
    if (carried) next.push(level[level.length - 1]!);
    for (let leaf = 0; leaf < leaves.length; leaf++) {
      const pos = positions[leaf]!;
      const sibling = pos ^ 1;
      if (sibling < level.length) paths[leaf]!.push(level[sibling]!);
      positions[leaf] = pos >> 1;
    }
    level = next;
  }
  return { root: level[0]!, paths };
}

function pathOf(hashes: Uint8Array[], index: number): Uint8Array[] {
  const path: Uint8Array[] = [];
  let level = hashes;
  let pos = index;
  while (level.length > 1) {
    const sibling = pos ^ 1;
    if (sibling < level.length) path.push(level[sibling]!);
    const next: Uint8Array[] = [];
    for (let i = 0; i + 1 < level.length; i += 2) next.push(nodeHash(level[i]!, level[i + 1]!));
    if (level.length % 2 === 1) next.push(level[level.length - 1]!);
    level = next;
    pos >>= 1;
  }
  return path;
}

/**
 * Root implied by a leaf, its index, the tree size and its audit path (RFC 9162 §2.1.3.2), or
 * undefined when the path has the wrong length for that index and size. Needs no other leaves.
 */
export function rootFromPath(
  leaf: Uint8Array,
  index: number,
  size: number,
  path: readonly Uint8Array[],
): Uint8Array | undefined {
  return walkPath(leafHash(leaf), index, size, path, (siblingLeft, sibling, child) =>
    siblingLeft ? nodeHash(sibling, child) : nodeHash(child, sibling),
  );
}

/**
 * The walk of RFC 9162 §2.1.3.2 from a leaf hash up an audit path, with the interior-node hash left
 * to the caller (`parent`: H(sibling ‖ child) when `siblingLeft`, else H(child ‖ sibling); `step`
 * counts from the leaf), so that a verifier of many paths of one tree can memoise nodes. Path
 * elements may be in any form the caller's `parent` reads. Undefined when the path has the wrong
 * length for that index and size.
 */
export function walkPath<T>(
  leafHashValue: Uint8Array,
  index: number,
  size: number,
  path: readonly T[],
  parent: (siblingLeft: boolean, sibling: T, child: Uint8Array, step: number) => Uint8Array,
): Uint8Array | undefined {
  if (!Number.isInteger(index) || !Number.isInteger(size) || index < 0 || index >= size) return undefined;
  let fn = index;
  let sn = size - 1;
  let r = leafHashValue;
  for (const [step, p] of path.entries()) {
    if (sn === 0) return undefined;
    const siblingLeft = fn % 2 === 1 || fn === sn;
    if (siblingLeft) {
      while (fn % 2 === 0 && fn !== 0) {
        fn >>>= 1;
        sn >>>= 1;
      }
    }
    r = parent(siblingLeft, p, r, step);
    fn >>>= 1;
    sn >>>= 1;
  }
  return sn === 0 ? r : undefined;
}

/** True when the audit path proves `leaf` at `index` in the tree of `size` leaves with this root. */
export function verifyMerklePath(
  leaf: Uint8Array,
  index: number,
  size: number,
  path: readonly Uint8Array[],
  root: Uint8Array,
): boolean {
  const r = rootFromPath(leaf, index, size, path);
  return r !== undefined && bytesEqual(r, root);
}
