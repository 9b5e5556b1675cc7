/**
 * One transaction's validity (src/consensus/app/tx.ts, over src/event/batch.ts): every refusal code,
 * ids that commit to every byte, and caches that never change a verdict. The shapes themselves
 * are checked against the zod schemas in test/event/shape.test.ts.
 */
import { describe, expect, it } from 'vitest';
import { GatewayRegistry } from '../../../src/consensus/app/registry.ts';
import { TxChecker, type TxVerdict, txIdOf } from '../../../src/consensus/app/tx.ts';
import { canonicalJson } from '../../../src/crypto/canonical.ts';
import { sha256, toHex } from '../../../src/crypto/hash.ts';
import type { SignatureVerifier, Signer } from '../../../src/crypto/keys.ts';
import { merkleRoot } from '../../../src/crypto/merkle.ts';
import {
  type BatchHeader,
  batchSigningBytes,
  decodeBatchTx,
  encodeBatchHeader,
  encodeBatchTx,
} from '../../../src/event/batch.ts';
import { batchTxBytesMax, envelopeBytesMax } from '../../../src/event/bounds.ts';
import { registryOf, type SignedTx, TestGateway } from './fixtures.ts';

const gw = new TestGateway('acme', 'gw-line1');
const other = new TestGateway('bolt', 'gw-1', 'p256');
const registry = registryOf(gw, other);
const utf8 = new TextEncoder();

function code(v: TxVerdict): string {
  return v.ok ? 'ok' : v.code;
}

// biome-ignore lint/suspicious/noExplicitAny: the mutations reach into untyped JSON on purpose
type Loose = Record<string, any>;

/**
 * A batch rebuilt from a signed one after `change` edits its header and envelopes (as objects), and
 * re-signed by `key` (the gateway's own by default) unless `sign` is false: so a refusal is about
 * what was changed, not about a signature that no longer fits.
 */
function rebuild(
  from: SignedTx,
  change: (h: Loose, envs: Loose[]) => void,
  options: {
    key?: Signer;
    sign?: boolean;
    fixRoot?: boolean;
    envelopeText?: (e: Loose, i: number) => string;
  } = {},
): Uint8Array {
  const d = decodeBatchTx(from.tx);
  if (!d.ok) throw new Error(d.message);
  const header = structuredClone(d.batch.header) as Loose;
  const envs = d.batch.envelopes.map((e) => structuredClone(e) as Loose);
  change(header, envs);
  const envBytes = envs.map((e, i) =>
    utf8.encode(options.envelopeText ? options.envelopeText(e, i) : canonicalJson(e)),
  );
  if (options.fixRoot ?? true) {
    header.root = toHex(merkleRoot(envBytes.map((b) => sha256(b))));
    header.envelopeBytes = envBytes.reduce((n, b) => n + b.byteLength, 0);
  }
  const headerBytes = encodeBatchHeader(header as BatchHeader);
  const signature =
    options.sign === false ? d.batch.signature : (options.key ?? gw.key).sign(batchSigningBytes(headerBytes));
  return encodeBatchTx(headerBytes, signature, envBytes);
}

/** A batch whose first envelope is declared (and is) longer than envelopeBytesMax: framed by hand. */
function withLongEnvelope(from: SignedTx): Uint8Array {
  const d = decodeBatchTx(from.tx);
  if (!d.ok) throw new Error(d.message);
  const long = Buffer.alloc(envelopeBytesMax + 1, 0x20);
  const u16 = (n: number) => Buffer.of(n >> 8, n & 0xff);
  return Buffer.concat([
    Buffer.of(2),
    u16(d.batch.headerBytes.byteLength),
    d.batch.headerBytes,
    d.batch.signature,
    u16(long.byteLength),
    long,
  ]);
}

describe('batch transactions', () => {
  it('accepts batches of one and many events, Ed25519 and P-256, with a gap event; one signature per batch', () => {
    const checker = new TxChecker({ registry });
    const batches = [
      ...gw.sign(1),
      ...gw.sign(40, 40),
      ...other.sign(3, 3),
      ...gw.sign(1, 1, {
        kind: 'gap',
        dataClass: 'equipment',
        values: {},
        gap: {
          droppedCount: 12,
          firstSourceTimeMs: 1_763_880_000_000,
          lastSourceTimeMs: 1_763_880_009_000,
          afterSeq: 7,
          byKind: { part_completed: 10, measurement: 2 },
          reason: 'outbox full',
        },
      }),
    ];
    for (const b of batches) {
      expect(checker.check(b.tx)).toEqual({
        ok: true,
        batch: {
          id: b.txId,
          chain: `${b.header.enterprise}/${b.header.gateway}`,
          firstSeq: b.header.firstSeq,
          lastSeq: b.header.firstSeq + b.header.count - 1,
          prev: b.header.prev,
          lastId: b.id,
          keyId: b.header.keyId,
          count: b.header.count,
          bytes: b.tx.byteLength,
        },
      });
      expect(toHex(txIdOf(b.tx))).toBe(b.txId);
    }
    expect(checker.stats().signatureVerifications).toBe(batches.length);
    // Bodies are never in the transaction: the salt, lot and values do not appear in its bytes.
    const text = Buffer.from(batches[1]!.tx).toString('latin1');
    expect(text).not.toContain('LOT-2026-000123');
    expect(text).not.toContain(batches[1]!.events[0]!.body!.salt);
  });

  it('refuses with a stable code whatever is wrong with it', () => {
    const checker = new TxChecker({ registry });
    const [a] = gw.sign(3, 3);
    const [single] = gw.sign(1);
    const unsigned = rebuild(a!, () => {}, { sign: false });
    expect(code(checker.check(unsigned))).toBe('ok'); // rebuilding changes nothing by itself
    const truncated = a!.tx.slice(0, a!.tx.byteLength - 1);
    const trailing = Buffer.concat([a!.tx, Buffer.of(0)]);
    const cases: [string, Uint8Array][] = [
      ['oversize', new Uint8Array(batchTxBytesMax + 1)],
      ['malformed', utf8.encode('{"not":"a batch"}')],
      ['malformed', Uint8Array.of(1, ...a!.tx.subarray(1))], // version 1
      ['malformed', truncated],
      ['malformed', trailing],
      ['malformed', rebuild(a!, (h) => (h.count = 2), { fixRoot: false })],
      ['malformed', rebuild(a!, (h) => (h.envelopeBytes += 1), { fixRoot: false })],
      ['malformed', rebuild(a!, (h) => (h.extra = 1))],
      ['malformed', rebuild(a!, (_h, e) => (e[1]!.gateway = 'gw-line2'))], // not the header's gateway
      ['malformed', rebuild(a!, (_h, e) => (e[1]!.keyId = '0'.repeat(32)))], // not the header's key
      ['malformed', rebuild(a!, (_h, e) => (e[0]!.extra = 1))],
      // Not canonical: keys out of order, or a space.
      [
        'malformed',
        rebuild(a!, () => {}, {
          envelopeText: (e, i) => (i === 1 ? JSON.stringify({ v: e.v, ...e }) : canonicalJson(e)),
        }),
      ],
      [
        'malformed',
        rebuild(a!, () => {}, { envelopeText: (e, i) => canonicalJson(e) + (i === 2 ? ' ' : '') }),
      ],
      ['oversize', withLongEnvelope(a!)],
      ['body_on_chain', rebuild(a!, (_h, e) => (e[1]!.lot = 'LOT-2026-000123'))],
      ['body_on_chain', rebuild(a!, (_h, e) => (e[2]!.values = {}))],
      ['seq_gap', rebuild(a!, (_h, e) => (e[1]!.seq += 1))],
      ['non_monotonic_seq', rebuild(a!, (_h, e) => (e[2]!.seq -= 1))],
      ['broken_prev', rebuild(a!, (_h, e) => (e[1]!.prev = '1'.repeat(64)))],
      ['broken_prev', rebuild(a!, (h) => (h.prev = '1'.repeat(64)))], // the header's prev is the first's
      // The envelopes changed but not the root it signed: the root check catches it.
      ['root_mismatch', rebuild(a!, (_h, e) => (e[2]!.sourceTimeMs += 1), { fixRoot: false, sign: false })],
      ['unknown_key', new TestGateway('zeta', 'gw-x').sign(1)[0]!.tx],
      ['bad_signature', rebuild(a!, (_h, e) => (e[2]!.kind = 'measurement'), { sign: false })], // root re-made, not re-signed
      ['bad_signature', rebuild(single!, () => {}, { key: other.key })],
    ];
    for (const [expected, bytes] of cases)
      expect([expected, code(checker.check(bytes))]).toEqual([expected, expected]);
    // A registered key speaks only for its own gateway: gw-line2's key registered as gw-line1's.
    const impostor = new TestGateway('acme', 'gw-line2');
    const misfiled = new GatewayRegistry([{ ...impostor.entry(), gateway: 'gw-line1' }]);
    const v = new TxChecker({ registry: misfiled }).check(impostor.sign(1)[0]!.tx);
    expect(v).toMatchObject({ ok: false, code: 'unknown_key' });
    expect((v as { message: string }).message).toMatch(/belongs to acme\/gw-line1, not acme\/gw-line2/);
    // A batch claiming another member's gateway, signed with that member's... own key: unknown_key.
    const claim = rebuild(single!, (h, e) => {
      h.enterprise = 'bolt';
      h.gateway = 'gw-1';
      for (const x of e) {
        x.enterprise = 'bolt';
        x.gateway = 'gw-1';
      }
    });
    expect(code(checker.check(claim))).toBe('unknown_key');
  });

  it('a copy of checked bytes gets their id and verdict; a copy with the same header and signature over other envelopes does not', () => {
    const checker = new TxChecker({ registry });
    const [a] = gw.sign(8, 8);
    expect(code(checker.check(a!.tx))).toBe('ok');
    // What a proposal or a forwarded message delivers: new bytes, equal to the checked ones.
    const copy = a!.tx.slice();
    expect(toHex(txIdOf(copy))).toBe(toHex(txIdOf(a!.tx)));
    expect(code(checker.check(copy))).toBe('ok');
    // The same framing (header and signature) over a changed envelope: its own id, and refused.
    const text = Buffer.from(a!.tx).toString('latin1');
    const at = text.lastIndexOf('"body":"') + 8;
    const twin = a!.tx.slice();
    twin[at] = text[at] === 'a' ? 0x62 : 0x61;
    expect(toHex(txIdOf(twin))).not.toBe(toHex(txIdOf(a!.tx)));
    expect(code(checker.check(twin))).toBe('root_mismatch');
    // And the other way round: the twin first, then a copy of the genuine batch.
    const [b] = gw.sign(8, 8);
    const twinB = b!.tx.slice();
    const textB = Buffer.from(b!.tx).toString('latin1');
    const atB = textB.lastIndexOf('"body":"') + 8;
    twinB[atB] = textB[atB] === 'a' ? 0x62 : 0x61;
    expect(code(checker.check(twinB))).toBe('root_mismatch');
    expect(code(checker.check(b!.tx.slice()))).toBe('ok');
  });

  it('gives every byte string its own id: a flipped byte anywhere changes the id', () => {
    const [a] = gw.sign(4, 4);
    const ids = new Set<string>([toHex(txIdOf(a!.tx))]);
    for (let at = 0; at < a!.tx.byteLength; at += 7) {
      const c = a!.tx.slice();
      c[at] = c[at]! ^ 0x01;
      ids.add(toHex(txIdOf(c)));
    }
    expect(ids.size).toBe(1 + Math.ceil(a!.tx.byteLength / 7));
  });

  it('gives the same verdicts with its caches cold, warm or thrashing, in any order', () => {
    const good = [...gw.sign(64, 16), ...gw.sign(3)].map((b) => b.tx);
    const broken = good.map((b, i) => {
      const c = b.slice();
      const at = (i * 97) % c.length;
      c[at] = c[at]! ^ (1 << (i % 7));
      return c;
    });
    const all = [...good, ...broken];
    const fresh = all.map((b) => code(new TxChecker({ registry }).check(b.slice())));
    const tiny = new TxChecker({ registry, verdictsMax: 1 });
    const warm = new TxChecker({ registry });
    for (const b of all) warm.check(b);
    const shuffled = [...all.keys()].sort((x, y) => ((x * 7919) % 131) - ((y * 7919) % 131));
    const got = new Map<number, string>();
    for (const i of shuffled) got.set(i, code(tiny.check(all[i]!)));
    expect(all.map((_, i) => got.get(i))).toEqual(fresh);
    expect(all.map((b) => code(warm.check(b)))).toEqual(fresh);
    expect(fresh.slice(0, good.length)).toEqual(good.map(() => 'ok'));
    expect(fresh.slice(good.length).filter((c) => c === 'ok')).toEqual([]);
  });

  it("uses the registry's verifier: a signature that verifies nowhere else is refused here too", () => {
    const never: SignatureVerifier = { verify: () => false };
    const [a] = gw.sign(1);
    expect(code(new TxChecker({ registry, verifier: never }).check(a!.tx))).toBe('bad_signature');
  });
});
