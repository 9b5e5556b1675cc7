/**
 * The gateway key registry: which keys may sign events, and for which gateway of which member.
 * Gateways are not validators; each alliance member registers its gateways' public keys in the
 * genesis (`gateways:` in genesis.ts), so every validator holds the same registry and reaches the
 * same verdict on every event. Adding or replacing a gateway key is a genesis update in this version
 * (docs/ledger.md, "Key registry"), as is any change of the validator set.
 */
import { fromBase64Url } from '../../crypto/hash.ts';
import { keyIdOf, type PublicKeyRecord } from '../../crypto/keys.ts';
import type { GatewayKey, KeyRegistry } from '../../event/verify.ts';
import { chainKeyOf } from './tx.ts';

/** One registered gateway key, as listed in the genesis. */
export interface GatewayEntry {
  /** The alliance member (validator `memberId`) that runs the gateway: the events' `enterprise`. */
  memberId: string;
  /** The gateway's id: the events' `gateway`. */
  gateway: string;
  publicKey: PublicKeyRecord;
}

export class GatewayRegistry implements KeyRegistry {
  readonly #byKeyId = new Map<string, GatewayKey>();
  readonly #chains = new Set<string>();

  /** Throws RangeError on a key that does not match its keyId or is listed twice (genesis.ts checks this with positions). */
  constructor(entries: Iterable<GatewayEntry>) {
    for (const g of entries) {
      const publicKey = fromBase64Url(g.publicKey.publicKey);
      if (keyIdOf(g.publicKey.alg, publicKey) !== g.publicKey.keyId) {
        throw new RangeError(`gateway ${g.memberId}/${g.gateway}: keyId does not match the public key`);
      }
      if (this.#byKeyId.has(g.publicKey.keyId))
        throw new RangeError(`gateway key ${g.publicKey.keyId} listed twice`);
      this.#byKeyId.set(g.publicKey.keyId, {
        keyId: g.publicKey.keyId,
        alg: g.publicKey.alg,
        publicKey,
        enterprise: g.memberId,
        gateway: g.gateway,
      });
      this.#chains.add(chainKeyOf(g.memberId, g.gateway));
    }
  }

  get(keyId: string): GatewayKey | undefined {
    return this.#byKeyId.get(keyId);
  }

  /** Registered keys. */
  get size(): number {
    return this.#byKeyId.size;
  }

  /** Gateway chains (`member/gateway`) with at least one key, sorted. */
  chains(): string[] {
    return [...this.#chains].sort();
  }
}

/** The registry a genesis lists (`genesis.gateways`). */
export function gatewayRegistryOf(genesis: { readonly gateways: readonly GatewayEntry[] }): GatewayRegistry {
  return new GatewayRegistry(genesis.gateways);
}
