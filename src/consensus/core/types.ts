/**
 * Consensus data shared by the pure core (`core/`), the wire codec (`src/consensus/wire`), the network adapter
 * (`net/`), the runtime (`node.ts`) and the block store (`src/consensus/runtime/block-store.ts`).
 *
 * Conventions:
 * - Byte fields are `Uint8Array` in memory, raw bytes in the binary wire form (wire/codec.ts), and
 *   base64url (no padding) in the canonical JSON that is hashed and signed (forms.ts).
 * - A validator is named by its `replica` index: its position in the genesis validator list. The
 *   list never changes in this version, so an index is stable for the life of the chain.
 * - `height` 0 is the genesis; blocks start at height 1. `view` starts at 0; the primary of view v
 *   is `validators[v mod n]`.
 * - n validators tolerate f = ⌊(n−1)/3⌋ byzantine ones; a quorum is ⌊(n+f)/2⌋+1 (= 2f+1 when
 *   n = 3f+1). See `faultsTolerated` / `quorumSize` in quorum.ts.
 *
 * @example
 *   const header: BlockHeader = { version: 2, chainId: 'alliance-1', height: 1, view: 0,
 *     prevHash: genesisHash, timestampMs: 1_767_000_000_000, txRoot: merkleRoot(txs),
 *     txCount: txs.length, proposer: 0 };
 */
import type { KeyAlgorithm } from '../../crypto/keys.ts';

/**
 * Version of the block header layout and meaning (and of the signing domains in signing.ts).
 * 2: `txRoot` is the Merkle root over the transactions' ids, not their bytes (docs/ledger.md).
 */
export const blockVersion = 2;

/** One member of the genesis validator set (produced by genesis.ts). */
export interface Validator {
  /** `keyIdOf(alg, publicKey)`; informative, the raw key is what signatures are checked against. */
  keyId: string;
  alg: KeyAlgorithm;
  publicKey: Uint8Array;
}

/**
 * Limits every replica of a chain must agree on: they decide whether a block is valid, so they are
 * part of the chain's configuration (genesis), not a local tuning knob.
 */
export interface ChainLimits {
  /** Largest validator set the codec accepts (bounds certificates and NEW-VIEW sizes). */
  validatorsMax: number;
  /** Bytes of one transaction. */
  txBytesMax: number;
  /** Transactions in one block. */
  blockTxsMax: number;
  /** Sum of transaction bytes in one block. */
  blockBytesMax: number;
  /**
   * In-flight heights: a primary may propose heights c+1 … c+windowHeights where c is its highest
   * committed height. Also bounds the prepared certificates in a VIEW-CHANGE.
   */
  windowHeights: number;
  /** Blocks in one sync response. */
  syncBlocksMax: number;
  /** Transactions in one `txs` forwarding message. */
  forwardTxsMax: number;
}

export interface BlockHeader {
  version: number;
  chainId: string;
  height: number;
  /** View in which the block was first proposed (a re-proposal after a view change keeps it). */
  view: number;
  /** Hash of the block at height−1; the genesis hash for height 1. */
  prevHash: Uint8Array;
  /** Proposer's clock, ms since the epoch; never below the parent's (see docs/consensus.md). */
  timestampMs: number;
  /** RFC 6962 Merkle root over the transactions' bytes, in block order. */
  txRoot: Uint8Array;
  /** Number of transactions: the tree size an inclusion proof needs. */
  txCount: number;
  /** Replica index of the proposer: the primary of `view`. */
  proposer: number;
}

/** A block: its header and its transactions as opaque bytes (ids come from the application hook). */
export interface Block {
  header: BlockHeader;
  txs: Uint8Array[];
}

/** A signature by replica `replica` over a vote (see `voteSigningBytes` in signing.ts). */
export interface Vote {
  replica: number;
  signature: Uint8Array;
}

/**
 * Proof that a block is final: a quorum of COMMIT signatures, all cast in the same view, over
 * (chainId, view, height, blockHash). Votes are sorted by replica, one per replica.
 *
 * Why the view is signed, not only (chainId, height, blockHash): COMMITs from different views
 * must not be added up. PBFT only locks a value once a quorum commits it *in one view*; a replica may
 * legitimately commit X in view 1 and then X' in view 2 when X never became committed. Adding up
 * COMMITs across views lets two different blocks both reach a "quorum" at one height; docs/consensus.md
 * gives a 4-replica execution that does it.
 */
export interface CommitCertificate {
  height: number;
  view: number;
  blockHash: Uint8Array;
  commits: Vote[];
}

/** A block with its certificate: what is stored, served to lagging replicas and exported. */
export interface CertifiedBlock {
  block: Block;
  certificate: CommitCertificate;
}

/**
 * Proof that a block was prepared in `view`: the primary's PRE-PREPARE signature plus quorum−1
 * PREPAREs from distinct backups (the pre-prepare counts as the primary's prepare, exactly as in
 * Castro & Liskov §4.2; the primary never sends a PREPARE). Carries the header, not the body: the
 * header is what the view-change selection needs (height, prevHash) and it hashes to the digest.
 */
export interface PreparedCertificate {
  /** View in which the block was prepared (≥ header.view when it is a re-proposal). */
  view: number;
  header: BlockHeader;
  /** Signature of primary(view) over the pre-prepare (chainId, view, height, blockHash). */
  prePrepareSignature: Uint8Array;
  /** Sorted by replica, distinct, none from primary(view). */
  prepares: Vote[];
}

// ---------------------------------------------------------------------------------------------
// Messages. Signed ones carry `replica` (the signer) and `signature`; the signature is what makes
// them transferable (relayed inside certificates and NEW-VIEWs). Unsigned ones are only ever
// accepted from the authenticated transport peer that sent them.

/** Primary of `view` proposes `block` at `block.header.height`. Signed over (chainId, view, height, hash). */
export interface PrePrepare {
  type: 'pre-prepare';
  view: number;
  replica: number;
  block: Block;
  signature: Uint8Array;
}

/** A backup accepted the pre-prepare for (view, height, blockHash). */
export interface Prepare {
  type: 'prepare';
  view: number;
  height: number;
  blockHash: Uint8Array;
  replica: number;
  signature: Uint8Array;
}

/** The sender is prepared for (view, height, blockHash). */
export interface Commit {
  type: 'commit';
  view: number;
  height: number;
  blockHash: Uint8Array;
  replica: number;
  signature: Uint8Array;
}

/**
 * The sender leaves its view and asks to move to `view`. It proves its stable checkpoint (highest
 * committed height, with the block's commit certificate; `null` = genesis) and lists, for each height
 * above it, the prepared certificate of the highest view it holds.
 */
export interface ViewChange {
  type: 'view-change';
  view: number;
  replica: number;
  checkpoint: CommitCertificate | null;
  prepared: PreparedCertificate[];
  signature: Uint8Array;
}

/**
 * The primary of `view` starts it with a quorum of VIEW-CHANGEs for `view` (distinct senders, sorted
 * by replica). What it must re-propose follows deterministically from them (`selectReproposals` in
 * core/viewchange.ts); every replica recomputes it, so it is not repeated here.
 */
export interface NewView {
  type: 'new-view';
  view: number;
  replica: number;
  viewChanges: ViewChange[];
  signature: Uint8Array;
}

/** Periodic heartbeat: lets a lagging peer notice it must sync or learn the current view. Unsigned. */
export interface Status {
  type: 'status';
  /** The sender's view; with `viewChanging`, the view it asked to move to and awaits a NEW-VIEW for. */
  view: number;
  viewChanging: boolean;
  committedHeight: number;
}

/** Asks for committed blocks fromHeight … fromHeight+count−1 with their certificates. Unsigned. */
export interface SyncRequest {
  type: 'sync-request';
  fromHeight: number;
  count: number;
}

/** Committed blocks in ascending consecutive heights, each verified by its certificate. Unsigned. */
export interface SyncResponse {
  type: 'sync-response';
  blocks: CertifiedBlock[];
}

/** Asks for the body of a block known only by a prepared certificate (the new primary needs it). */
export interface ProposalRequest {
  type: 'proposal-request';
  height: number;
  blockHash: Uint8Array;
}

/** A block body; the receiver checks it hashes to what it asked for. Unsigned. */
export interface ProposalResponse {
  type: 'proposal-response';
  block: Block;
}

/** Client transactions forwarded to the primary (each is checked by the application hook). Unsigned. */
export interface ForwardTxs {
  type: 'txs';
  txs: Uint8Array[];
}

export type SignedMessage = PrePrepare | Prepare | Commit | ViewChange | NewView;
export type Message =
  | SignedMessage
  | Status
  | SyncRequest
  | SyncResponse
  | ProposalRequest
  | ProposalResponse
  | ForwardTxs;
export type MessageType = Message['type'];
