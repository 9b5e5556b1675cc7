/**
 * The runtime's default application: transactions are signed production events (src/edge/event.ts)
 * in their canonical JSON bytes, admitted only if `EventVerifier` accepts them against a registry
 * of gateway keys. Every replica runs `checkTx` on every transaction it admits or finds in a fresh
 * proposal, so a forged event (bad signature, unknown key, id or body not matching) never reaches
 * a block, and a replayed one is refused by the chain's index (`isCommitted`).
 *
 * The richer event-ledger rules (per-gateway seq/prev order as a block-level hook, keys from the
 * genesis) belong to the application layer; this is the part the runtime, its tests and its
 * benchmark need, and what `masbc-edge peer --gateway-keys` runs.
 *
 * @example
 *   const app = signedEventApplication({ keys: keyRegistry(gatewayKeys) });
 *   const node = new ConsensusNode({ ..., app });
 */

import { readFileSync } from 'node:fs';
import { z } from 'zod';
import { fromBase64Url, fromHex, sha256, toHex } from '../../crypto/hash.ts';
import { keyAlgorithms, keyIdOf, publicKeyBytes, type SignatureVerifier } from '../../crypto/keys.ts';
import { encodeEvent, eventBytesMax } from '../../edge/event.ts';
import {
  EventRejected,
  EventVerifier,
  type GatewayKey,
  type KeyRegistry,
  keyRegistry,
} from '../../edge/verify.ts';
import type { Application } from './application.ts';

export interface SignedEventApplicationOptions {
  keys: KeyRegistry;
  verifier?: SignatureVerifier;
}

const utf8 = new TextDecoder('utf-8', { fatal: true });
const hexId = /^[0-9a-f]{64}$/;
const idMember = Buffer.from('"id":"');

/**
 * The event id a transaction claims, found without parsing it: the last `"id":"<64 hex>"` in the
 * bytes. In canonical JSON a quote inside a string is escaped, so this can only be an object member;
 * in a valid event the members sort as body, env, id, sig and neither `env` nor `sig` has an `id`,
 * so the last one is the event's own (checkTx also checks that it is). Parsing JSON here cost 16%
 * of a validator's CPU in the benchmark: the core asks for ids of every transaction it sees,
 * duplicates and re-forwards included.
 */
function claimedId(tx: Uint8Array): Uint8Array | undefined {
  const buf = Buffer.from(tx.buffer, tx.byteOffset, tx.byteLength);
  const at = buf.lastIndexOf(idMember);
  const start = at + idMember.byteLength;
  if (at < 0 || buf[start + 64] !== 0x22) return undefined;
  const hex = buf.toString('latin1', start, start + 64);
  return hexId.test(hex) ? fromHex(hex) : undefined;
}

/**
 * Builds the hooks. Verdicts and ids are memoised per byte array (a WeakMap, so bounded by what the
 * core still holds): the same array travels from admission to proposal to commit.
 */
export function signedEventApplication(options: SignedEventApplicationOptions): Application {
  const verifier = new EventVerifier(options.keys, { verifier: options.verifier });
  const ids = new WeakMap<Uint8Array, Uint8Array>();
  const verdicts = new WeakMap<Uint8Array, string | null>();
  const parse = (tx: Uint8Array): unknown => {
    try {
      return JSON.parse(utf8.decode(tx));
    } catch {
      return undefined;
    }
  };
  return {
    txId(tx) {
      let id = ids.get(tx);
      if (id) return id;
      id = claimedId(tx) ?? sha256(tx);
      ids.set(tx, id);
      return id;
    },
    checkTx(tx) {
      const memo = verdicts.get(tx);
      if (memo !== undefined) return memo;
      let verdict: string | null = null;
      if (tx.byteLength > eventBytesMax) verdict = 'oversize';
      else {
        const input = parse(tx);
        if (input === undefined) verdict = 'malformed: not UTF-8 JSON';
        else {
          try {
            const event = verifier.verify(input, tx.byteLength);
            const claimed = claimedId(tx);
            if (!claimed || toHex(claimed) !== event.id)
              verdict = 'malformed: id is not the last "id" member';
            // One event, one byte string: the Merkle leaf is the canonical form and nothing else.
            else if (encodeEvent(event) !== utf8.decode(tx)) verdict = 'malformed: not canonical JSON';
          } catch (err) {
            if (!(err instanceof EventRejected)) throw err;
            verdict = `${err.code}: ${err.message}`;
          }
        }
      }
      verdicts.set(tx, verdict);
      return verdict;
    },
  };
}

const gatewayKeysSchema = z.strictObject({
  gateways: z
    .array(
      z.strictObject({
        enterprise: z.string().min(1).max(64),
        gateway: z.string().min(1).max(64),
        publicKey: z.strictObject({
          alg: z.enum(keyAlgorithms),
          keyId: z.string().regex(/^[0-9a-f]{32}$/),
          publicKey: z.string().regex(/^[A-Za-z0-9_-]+$/),
        }),
      }),
    )
    .max(100_000),
});

export type GatewayKeysDocument = z.input<typeof gatewayKeysSchema>;

/**
 * Reads a gateway key list (`{"gateways":[{enterprise, gateway, publicKey: <.pub record>}]}`),
 * checking every key's length and keyId. Throws with the first problem.
 */
export function loadGatewayKeys(file: string): KeyRegistry {
  const parsed = gatewayKeysSchema.safeParse(JSON.parse(readFileSync(file, 'utf8')));
  if (!parsed.success) {
    const first = parsed.error.issues[0]!;
    throw new Error(`${file}: ${first.path.join('.')}: ${first.message}`);
  }
  const keys: GatewayKey[] = parsed.data.gateways.map((g, i) => {
    const raw = fromBase64Url(g.publicKey.publicKey);
    if (
      raw.byteLength !== publicKeyBytes[g.publicKey.alg] ||
      keyIdOf(g.publicKey.alg, raw) !== g.publicKey.keyId
    ) {
      throw new Error(`${file}: gateways.${i}.publicKey: key length or keyId does not match`);
    }
    return {
      keyId: g.publicKey.keyId,
      alg: g.publicKey.alg,
      publicKey: raw,
      enterprise: g.enterprise,
      gateway: g.gateway,
    };
  });
  return keyRegistry(keys);
}
