/**
 * Consensus data for codec and block store tests: four validators with Ed25519 keys derived from
 * fixed seeds (signatures are deterministic, so their values can be pinned), and one correctly
 * signed sample of every message type and stored record.
 */
import { blockHash, signingBytes, txRootOf, voteSigningBytes } from '../../../src/consensus/core/signing.ts';
import type {
  Block,
  BlockHeader,
  CertifiedBlock,
  CommitCertificate,
  Message,
  NewView,
  PreparedCertificate,
  SignedMessage,
  Validator,
  ViewChange,
} from '../../../src/consensus/core/types.ts';
import type { VerifyContext } from '../../../src/consensus/core/verify.ts';
import { sha256 } from '../../../src/crypto/hash.ts';
import { nodeVerifier, type Signer, signerFromPem } from '../../../src/crypto/keys.ts';

export const chainId = 'test-chain';
const enc = new TextEncoder();

/** An Ed25519 key whose 32-byte seed is `seed` repeated (PKCS#8 prefix of RFC 8410 + seed). */
export function seededKey(seed: number): Signer {
  const der = Buffer.concat([Buffer.from('302e020100300506032b657004220420', 'hex'), Buffer.alloc(32, seed)]);
  return signerFromPem(`-----BEGIN PRIVATE KEY-----\n${der.toString('base64')}\n-----END PRIVATE KEY-----\n`);
}

export const keys = [1, 2, 3, 4].map(seededKey);
export const validators: Validator[] = keys.map((k) => ({
  keyId: k.keyId,
  alg: k.alg,
  publicKey: k.publicKey,
}));
export const ctx: VerifyContext = { chainId, validators, verifier: nodeVerifier, txId: (tx) => sha256(tx) };
export const noSig = new Uint8Array(64);

export function header(
  over: Partial<BlockHeader> = {},
  txs = [enc.encode('a'), enc.encode('bc')],
): BlockHeader {
  return {
    version: 2,
    chainId,
    height: 7,
    view: 2,
    prevHash: sha256(enc.encode('prev')),
    timestampMs: 1_767_000_000_000,
    txRoot: txRootOf(txs.map((t) => sha256(t))),
    txCount: txs.length,
    proposer: (over.view ?? 2) % 4,
    ...over,
  };
}

export function block(over: Partial<BlockHeader> = {}, txs = [enc.encode('a'), enc.encode('bc')]): Block {
  return { header: header(over, txs), txs };
}

export const sign = <T extends SignedMessage>(replica: number, m: T): T => ({
  ...m,
  signature: keys[replica]!.sign(signingBytes(chainId, m)),
});

export function certificateFor(b: Block, view: number, replicas = [0, 1, 3]): CommitCertificate {
  const h = blockHash(b.header);
  return {
    height: b.header.height,
    view,
    blockHash: h,
    commits: replicas.map((r) => ({
      replica: r,
      signature: keys[r]!.sign(voteSigningBytes('commit', chainId, view, b.header.height, h)),
    })),
  };
}

export function preparedFor(b: Block, view: number, prePrepareSignature: Uint8Array): PreparedCertificate {
  const h = blockHash(b.header);
  const primary = view % 4;
  return {
    view,
    header: b.header,
    prePrepareSignature,
    prepares: [0, 1, 2, 3]
      .filter((r) => r !== primary)
      .slice(0, 2)
      .map((r) => ({
        replica: r,
        signature: keys[r]!.sign(voteSigningBytes('prepare', chainId, view, b.header.height, h)),
      })),
  };
}

/** One correctly signed sample of each message type, and the data behind them. */
export function samples() {
  const b = block();
  const h = blockHash(b.header);
  const pp = sign(2, { type: 'pre-prepare', view: 2, replica: 2, block: b, signature: noSig } as const);
  const prepare = sign(3, {
    type: 'prepare',
    view: 2,
    height: 7,
    blockHash: h,
    replica: 3,
    signature: noSig,
  } as const);
  const commit = sign(0, {
    type: 'commit',
    view: 2,
    height: 7,
    blockHash: h,
    replica: 0,
    signature: noSig,
  } as const);
  const parent = block({ height: 6, view: 1 });
  const checkpoint = certificateFor(parent, 1);
  const certificate = certificateFor(b, 2);
  const prepared = preparedFor(b, 2, pp.signature);
  const viewChange: ViewChange = sign(1, {
    type: 'view-change',
    view: 3,
    replica: 1,
    checkpoint,
    prepared: [prepared],
    signature: noSig,
  });
  const bare: ViewChange = sign(0, {
    type: 'view-change',
    view: 3,
    replica: 0,
    checkpoint: null,
    prepared: [],
    signature: noSig,
  });
  const newView: NewView = sign(3, {
    type: 'new-view',
    view: 3,
    replica: 3,
    viewChanges: [bare, viewChange],
    signature: noSig,
  });
  const certified: CertifiedBlock = { block: b, certificate };
  const synced: CertifiedBlock[] = [{ block: parent, certificate: checkpoint }, certified];
  const messages: Message[] = [
    pp,
    prepare,
    commit,
    viewChange,
    bare,
    newView,
    { type: 'status', view: 3, viewChanging: true, committedHeight: 9 },
    { type: 'sync-request', fromHeight: 2, count: 5 },
    { type: 'sync-response', blocks: synced },
    { type: 'sync-response', blocks: [] },
    { type: 'proposal-request', height: 7, blockHash: h },
    { type: 'proposal-response', block: b },
    { type: 'txs', txs: [enc.encode('x'), enc.encode('yz')] },
  ];
  return {
    block: b,
    hash: h,
    pp,
    prepare,
    commit,
    certificate,
    prepared,
    viewChange,
    newView,
    certified,
    messages,
  };
}
