/**
 * What the canonical-JSON codec costs next to signature checks (docs/consensus.md, "Encoding"):
 *   node test/consensus/wire/bench-codec.ts
 */

import { blockHash, signMessage, txRootOf } from '../../../src/consensus/core/signing.ts';
import type { Block } from '../../../src/consensus/core/types.ts';
import { decodeMessage, encodeMessage } from '../../../src/consensus/wire/codec.ts';
import { sha256 } from '../../../src/crypto/hash.ts';
import { generateKey, nodeVerifier } from '../../../src/crypto/keys.ts';

const key = generateKey();
const txs = Array.from({ length: 1000 }, (_, i) => {
  const b = new Uint8Array(300);
  b.set(sha256(Uint8Array.of(i, i >> 8)), 0);
  return b;
});
const block: Block = {
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
const pp = signMessage(key, 'bench', {
  type: 'pre-prepare',
  view: 0,
  replica: 0,
  block,
  signature: new Uint8Array(64),
} as const);
const med = (f: () => void, reps = 15) => {
  const t: number[] = [];
  for (let i = 0; i < reps; i++) {
    const s = performance.now();
    f();
    t.push(performance.now() - s);
  }
  t.sort((a, b) => a - b);
  return t[Math.floor(reps / 2)]!;
};
let bytes: Uint8Array = new Uint8Array();
const enc = med(() => {
  bytes = encodeMessage(pp);
});
const dec = med(() => {
  const r = decodeMessage(bytes);
  if (!r.ok) throw new Error(r.error.detail);
});
const root = med(() => {
  txRootOf(txs.map((t) => sha256(t)));
});
const hash = med(() => {
  blockHash({ ...block.header });
}, 101);
const sigs = txs.map((t) => key.sign(t));
const ver = med(() => {
  for (let i = 0; i < txs.length; i++) nodeVerifier.verify('ed25519', key.publicKey, txs[i]!, sigs[i]!);
}, 5);
const raw = txs.reduce((a, t) => a + t.length, 0);
console.log(
  JSON.stringify({
    txs: 1000,
    txBytes: 300,
    rawBytes: raw,
    encodedBytes: bytes.length,
    overhead: +(bytes.length / raw).toFixed(3),
    encodeMs: +enc.toFixed(2),
    decodeMs: +dec.toFixed(2),
    merkleRootMs: +root.toFixed(2),
    headerHashMs: +hash.toFixed(3),
    ed25519Verify1000Ms: +ver.toFixed(1),
  }),
);
