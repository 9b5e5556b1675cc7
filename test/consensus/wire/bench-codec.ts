/**
 * What the consensus codec costs, per message and per byte, next to the work a validator does anyway
 * (Merkle root, header hash, Ed25519 checks): docs/consensus.md, "Encoding", keeps the figures.
 *
 *   node test/consensus/wire/bench-codec.ts           # REPS=31 for more repetitions
 *
 * Cases: a pre-prepare of a 1,000-transaction block (300 B each); a pre-prepare and a stored
 * certified block holding one 200 KiB transaction (an opaque gateway batch); a forwarding message of
 * 100 transactions; a COMMIT. Each is encoded, then decoded with the chain's checks; medians (and
 * 10th percentiles) of REPS runs, with the machine's load average, since the machine is shared.
 */
import { loadavg } from 'node:os';
import { defaultChainLimits } from '../../../src/consensus/core/limits.ts';
import { blockHash, signMessage, txRootOf } from '../../../src/consensus/core/signing.ts';
import type { Block, CertifiedBlock, ChainLimits, Message } from '../../../src/consensus/core/types.ts';
import {
  decodeCertifiedBlock,
  decodeMessage,
  encodeCertifiedBlock,
  encodeMessage,
} from '../../../src/consensus/wire/codec.ts';
import { sha256 } from '../../../src/crypto/hash.ts';
import { generateKey, nodeVerifier } from '../../../src/crypto/keys.ts';

const reps = Number(process.env.REPS ?? 15);
const key = generateKey();
const limits: ChainLimits = { ...defaultChainLimits, txBytesMax: 256 * 1024 };

function filled(bytes: number, seed: number): Uint8Array {
  const b = new Uint8Array(bytes);
  for (let at = 0; at < bytes; at += 32)
    b.set(sha256(Uint8Array.of(seed, seed >> 8, at, at >> 8)).subarray(0, bytes - at), at);
  return b;
}

function blockOf(txs: Uint8Array[]): Block {
  return {
    header: {
      version: 2,
      chainId: 'bench',
      height: 1,
      view: 0,
      prevHash: sha256(),
      timestampMs: 1_767_000_000_000,
      txRoot: txRootOf(txs.map((t) => sha256(t))),
      txCount: txs.length,
      proposer: 0,
    },
    txs,
  };
}

const prePrepareOf = (block: Block) =>
  signMessage(key, 'bench', {
    type: 'pre-prepare',
    view: 0,
    replica: 0,
    block,
    signature: new Uint8Array(64),
  } as const);

function certified(block: Block): CertifiedBlock {
  const blockHashBytes = blockHash(block.header);
  return {
    block,
    certificate: {
      height: 1,
      view: 0,
      blockHash: blockHashBytes,
      commits: [0, 1, 2].map((replica) => ({ replica, signature: key.sign(blockHashBytes) })),
    },
  };
}

/** Sorted times of n runs, ms. */
function times(f: () => void, n = reps): number[] {
  const t: number[] = [];
  for (let i = 0; i < n; i++) {
    const s = performance.now();
    f();
    t.push(performance.now() - s);
  }
  return t.sort((a, b) => a - b);
}
const med = (f: () => void, n = reps) => times(f, n)[Math.floor(n / 2)]!;
/** Median and 10th percentile: large buffers make the times bimodal (allocation and GC under load). */
const medP10 = (f: () => void) => {
  const t = times(f);
  return [t[Math.floor(reps / 2)]!, t[Math.floor(reps / 10)]!] as const;
};

const ms = (x: number) => +x.toFixed(3);

function measure(name: string, encode: () => Uint8Array, decode: (b: Uint8Array) => boolean, raw: number) {
  let bytes = encode();
  for (let i = 0; i < 3; i++) if (!decode(encode())) throw new Error(`${name}: does not decode`); // warm-up
  const [encodeMs, encodeP10Ms] = medP10(() => {
    bytes = encode();
  });
  const [decodeMs, decodeP10Ms] = medP10(() => {
    if (!decode(bytes)) throw new Error(`${name}: does not decode`);
  });
  return {
    case: name,
    rawTxBytes: raw,
    encodedBytes: bytes.byteLength,
    overhead: raw > 0 ? +(bytes.byteLength / raw).toFixed(4) : null,
    encodeMs: ms(encodeMs),
    decodeMs: ms(decodeMs),
    encodeP10Ms: ms(encodeP10Ms),
    decodeP10Ms: ms(decodeP10Ms),
  };
}

const decodesMessage = (b: Uint8Array) => decodeMessage(b, limits).ok;
const sum = (txs: Uint8Array[]) => txs.reduce((a, t) => a + t.byteLength, 0);

const small = Array.from({ length: 1000 }, (_, i) => filled(300, i));
const smallBlock = blockOf(small);
const bigTx = [filled(200 * 1024, 7)];
const bigBlock = blockOf(bigTx);
const commit: Message = signMessage(key, 'bench', {
  type: 'commit',
  view: 3,
  height: 12_345,
  blockHash: blockHash(smallBlock.header),
  replica: 2,
  signature: new Uint8Array(64),
} as const);
const forward: Message = { type: 'txs', txs: small.slice(0, 100) };

const [smallPrePrepare, bigPrePrepare] = [prePrepareOf(smallBlock), prePrepareOf(bigBlock)];
const [smallCertified, bigCertified] = [certified(smallBlock), certified(bigBlock)];
const loadBefore = loadavg()[0]!;
const results = [
  measure(
    'pre-prepare, 1,000 txs of 300 B',
    () => encodeMessage(smallPrePrepare),
    decodesMessage,
    sum(small),
  ),
  measure('pre-prepare, one tx of 200 KiB', () => encodeMessage(bigPrePrepare), decodesMessage, sum(bigTx)),
  measure(
    'stored block + certificate, 1,000 txs of 300 B',
    () => encodeCertifiedBlock(smallCertified),
    (b) => decodeCertifiedBlock(b, limits).ok,
    sum(small),
  ),
  measure(
    'stored block + certificate, one tx of 200 KiB',
    () => encodeCertifiedBlock(bigCertified),
    (b) => decodeCertifiedBlock(b, limits).ok,
    sum(bigTx),
  ),
  measure('txs, 100 of 300 B', () => encodeMessage(forward), decodesMessage, sum(forward.txs)),
  measure('commit', () => encodeMessage(commit), decodesMessage, 0),
];
const root = med(() => {
  txRootOf(small);
});
const hash = med(() => {
  blockHash({ ...smallBlock.header });
}, 101);
const sigs = small.map((t) => key.sign(t));
const ver = med(() => {
  for (let i = 0; i < small.length; i++) nodeVerifier.verify('ed25519', key.publicKey, small[i]!, sigs[i]!);
}, 5);
for (const r of results) console.log(JSON.stringify(r));
console.log(
  JSON.stringify({
    reference: '1,000 txs of 300 B',
    merkleRootMs: ms(root),
    headerHashMs: ms(hash),
    ed25519Verify1000Ms: +ver.toFixed(1),
    reps,
    load1: [+loadBefore.toFixed(2), +loadavg()[0]!.toFixed(2)],
  }),
);
