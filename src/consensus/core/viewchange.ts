/**
 * The view-change proof: checking VIEW-CHANGE and NEW-VIEW messages, and the deterministic choice
 * of what a new view must re-propose. docs/consensus.md ("Safety argument") explains why it is safe.
 *
 * Selection, for a quorum of valid VIEW-CHANGEs:
 * 1. base = the highest stable checkpoint among them (a committed block with its certificate, or
 *    the genesis).
 * 2. for h = base+1, base+2, …: among the prepared certificates for height h whose block extends the
 *    block chosen at h−1 (prevHash), take the one of the highest view; stop at the first height
 *    with none. Nothing above that height can have been committed anywhere.
 * The new primary re-proposes exactly these blocks, in the new view, before anything fresh.
 */
import { bytesEqual, sha256 } from '../../crypto/hash.ts';
import type { ConsensusError } from './errors.ts';
import { keyOf } from './io.ts';
import { quorumSize } from './quorum.ts';
import { blockHash, viewChangeSigningBytes } from './signing.ts';
import type { ChainLimits, CommitCertificate, NewView, PreparedCertificate, ViewChange } from './types.ts';
import {
  type VerifyContext,
  verifyCommitCertificate,
  verifyPreparedCertificate,
  verifySignedMessage,
} from './verify.ts';

export interface Reproposal {
  height: number;
  hash: Uint8Array;
  certificate: PreparedCertificate;
}

export interface Selection {
  /** Highest stable checkpoint in the quorum; height 0 with the genesis hash if none. */
  base: { height: number; hash: Uint8Array; certificate: CommitCertificate | null };
  /** Consecutive heights base+1 … in ascending order, each extending the previous one. */
  reproposals: Reproposal[];
}

function compareBytes(a: Uint8Array, b: Uint8Array): number {
  const n = Math.min(a.byteLength, b.byteLength);
  for (let i = 0; i < n; i++) if (a[i] !== b[i]) return a[i]! - b[i]!;
  return a.byteLength - b.byteLength;
}

/** Deterministic in its input: every replica computes the same selection from the same NEW-VIEW. */
export function selectReproposals(viewChanges: readonly ViewChange[], genesisHash: Uint8Array): Selection {
  let base: Selection['base'] = { height: 0, hash: genesisHash, certificate: null };
  for (const vc of viewChanges) {
    if (vc.checkpoint && vc.checkpoint.height > base.height) {
      base = { height: vc.checkpoint.height, hash: vc.checkpoint.blockHash, certificate: vc.checkpoint };
    }
  }
  const byHeight = new Map<number, { cert: PreparedCertificate; hash: Uint8Array }[]>();
  for (const vc of viewChanges) {
    for (const cert of vc.prepared) {
      const h = cert.header.height;
      if (h <= base.height) continue;
      let list = byHeight.get(h);
      if (!list) {
        list = [];
        byHeight.set(h, list);
      }
      list.push({ cert, hash: blockHash(cert.header) });
    }
  }
  const reproposals: Reproposal[] = [];
  let parent = base.hash;
  for (let h = base.height + 1; ; h++) {
    let best: { cert: PreparedCertificate; hash: Uint8Array } | undefined;
    for (const c of byHeight.get(h) ?? []) {
      if (!bytesEqual(c.cert.header.prevHash, parent)) continue;
      // Two different blocks prepared in one view need more than f faulty replicas; the tie-break
      // only keeps replicas in agreement about the selection if that ever happens.
      if (
        !best ||
        c.cert.view > best.cert.view ||
        (c.cert.view === best.cert.view && compareBytes(c.hash, best.hash) < 0)
      ) {
        best = c;
      }
    }
    if (!best) break;
    reproposals.push({ height: h, hash: best.hash, certificate: best.cert });
    parent = best.hash;
  }
  return { base, reproposals };
}

function invalid(code: 'view-change-invalid' | 'new-view-invalid', detail: string): ConsensusError {
  return { code, detail };
}

/**
 * A VIEW-CHANGE is valid if its sender signed it, its checkpoint certificate verifies, and each
 * prepared certificate verifies, was prepared in an earlier view, and lies in the window above the
 * checkpoint (one per height, ascending: the decoder already checked that).
 */
export function checkViewChange(
  ctx: VerifyContext,
  limits: ChainLimits,
  vc: ViewChange,
): ConsensusError | null {
  const sig = verifySignedMessage(ctx, vc);
  if (sig) return sig;
  const cp = vc.checkpoint;
  if (cp) {
    const e = verifyCommitCertificate(ctx, cp);
    if (e) return e;
  }
  const cpHeight = cp?.height ?? 0;
  for (const p of vc.prepared) {
    const h = p.header.height;
    if (h <= cpHeight || h > cpHeight + limits.windowHeights) {
      return invalid(
        'view-change-invalid',
        `prepared height ${h} outside ${cpHeight + 1}..${cpHeight + limits.windowHeights}`,
      );
    }
    if (p.view >= vc.view) return invalid('view-change-invalid', `prepared in view ${p.view} ≥ ${vc.view}`);
    const e = verifyPreparedCertificate(ctx, p);
    if (e) return e;
  }
  return null;
}

/**
 * A NEW-VIEW is valid if the primary of its view signed it and it carries valid VIEW-CHANGEs for
 * that view from a quorum of distinct replicas. Returns the selection it implies.
 * `known` holds {@link viewChangeKey}s of VIEW-CHANGEs already verified, to skip re-verifying them.
 */
export function checkNewView(
  ctx: VerifyContext,
  limits: ChainLimits,
  genesisHash: Uint8Array,
  nv: NewView,
  known: ReadonlySet<string>,
): { ok: true; selection: Selection } | { ok: false; error: ConsensusError } {
  const sig = verifySignedMessage(ctx, nv);
  if (sig) return { ok: false, error: sig };
  const q = quorumSize(ctx.validators.length);
  if (nv.viewChanges.length < q) {
    return {
      ok: false,
      error: invalid('new-view-invalid', `${nv.viewChanges.length} view-changes, ${q} needed`),
    };
  }
  for (const vc of nv.viewChanges) {
    if (vc.view !== nv.view) {
      return { ok: false, error: invalid('new-view-invalid', `carries a view-change for view ${vc.view}`) };
    }
    if (known.has(viewChangeKey(ctx.chainId, vc))) continue;
    const e = checkViewChange(ctx, limits, vc);
    if (e)
      return { ok: false, error: invalid('new-view-invalid', `view-change of ${vc.replica}: ${e.detail}`) };
  }
  return { ok: true, selection: selectReproposals(nv.viewChanges, genesisHash) };
}

/** Identifies a VIEW-CHANGE by its content and signature together (a signature alone could be reattached). */
export function viewChangeKey(chainId: string, vc: ViewChange): string {
  return keyOf(sha256(viewChangeSigningBytes(chainId, vc), vc.signature));
}
