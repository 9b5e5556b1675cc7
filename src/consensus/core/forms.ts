/**
 * The canonical forms of consensus data: the JSON objects whose RFC 8785 bytes are hashed and
 * signed (signing.ts), with byte fields as unpadded base64url. Validators send and store a binary
 * encoding of the same fields (src/consensus/wire/codec.ts), which never enters a hash or a
 * signature; the validator API serves these forms as they are (src/consensus/wire/json.ts).
 */
import { toBase64Url } from '../../crypto/hash.ts';
import type {
  BlockHeader,
  CommitCertificate,
  NewView,
  PreparedCertificate,
  ViewChange,
  Vote,
} from './types.ts';

export type Json = Record<string, unknown>;
const b64 = toBase64Url;

export function headerToJson(h: BlockHeader): Json {
  return {
    chainId: h.chainId,
    height: h.height,
    prevHash: b64(h.prevHash),
    proposer: h.proposer,
    timestampMs: h.timestampMs,
    txCount: h.txCount,
    txRoot: b64(h.txRoot),
    version: h.version,
    view: h.view,
  };
}

export const votesToJson = (votes: readonly Vote[]) =>
  votes.map((v) => ({ replica: v.replica, signature: b64(v.signature) }));

export function certificateToJson(c: CommitCertificate): Json {
  return { blockHash: b64(c.blockHash), commits: votesToJson(c.commits), height: c.height, view: c.view };
}

export function preparedToJson(p: PreparedCertificate): Json {
  return {
    header: headerToJson(p.header),
    prePrepareSignature: b64(p.prePrepareSignature),
    prepares: votesToJson(p.prepares),
    view: p.view,
  };
}

export function viewChangeToJson(vc: ViewChange): Json {
  return {
    checkpoint: vc.checkpoint ? certificateToJson(vc.checkpoint) : null,
    prepared: vc.prepared.map(preparedToJson),
    replica: vc.replica,
    signature: b64(vc.signature),
    type: vc.type,
    view: vc.view,
  };
}

/** The signed body of a NEW-VIEW (its signature field included; signing bytes leave it out). */
export function newViewToJson(m: NewView): Json {
  return {
    replica: m.replica,
    signature: b64(m.signature),
    type: m.type,
    view: m.view,
    viewChanges: m.viewChanges.map(viewChangeToJson),
  };
}
