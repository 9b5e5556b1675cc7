/**
 * The gateway key registry: which keys may sign events, for which gateway of which member, and
 * from which height to which. It starts as the genesis's `gateways:` list (height 0) and changes
 * only by configuration transactions (config-tx.ts) on the committed chain: a member registers or
 * revokes one of its gateways' keys, signed by its identity root. So the registry is a function of
 * the committed chain, like the gateway heads, and every honest validator holds the same one at every
 * height (docs/ledger.md, "Configuration transactions").
 *
 * Rules, each refusal with a stable code:
 * - a configuration transaction names the alliance's chain id (`config_wrong_chain`), a member with
 *   an identity root in the genesis (`config_no_identity_root`), and is signed by that root
 *   (`config_bad_signature`: a registration signed by another member's root is this);
 * - its `seq` is the member's last + 1 (`config_replay` at or below it, `config_seq_gap` above);
 * - a key is registered once, ever: not a key the registry holds or held (revoked keys stay, to
 *   verify the batches they signed), nor a validator key or identity root (`config_key_taken`);
 * - a revocation names a key registered to that member's gateway (`config_not_registered`, or
 *   `config_not_owner` for another member's key) that is not revoked yet (`config_already_revoked`);
 * - bounds (genesis.ts): at most `gatewayKeysMax` active keys and `registryKeysMax` keys in all
 *   (revoked ones count: they are kept); a registration beyond either is refused (`registry_full`).
 *   A revocation frees an active slot; nothing frees a slot of the total but a new genesis.
 *
 * A change takes effect from the block after the one that commits it: batches in a block are checked
 * against the registry as of its parent. The key binding (key id → member, gateway, public key) never
 * changes once made, so a signature check is a pure function of the bytes and the key id.
 */
import { canonicalJson } from '../../crypto/canonical.ts';
import { fromBase64Url, toBase64Url } from '../../crypto/hash.ts';
import {
  type KeyAlgorithm,
  keyIdOf,
  nodeVerifier,
  type PublicKeyRecord,
  type SignatureVerifier,
} from '../../crypto/keys.ts';
import type { GatewayKey, KeyRegistry } from '../../event/verify.ts';
import { type ConfigPayload, type ConfigTx, configSigningBytes } from './config-tx.ts';
import { chainKeyOf } from './tx.ts';

/** One registered gateway key, as listed in the genesis. */
export interface GatewayEntry {
  /** The alliance member (validator `memberId`) that runs the gateway: the events' `enterprise`. */
  memberId: string;
  /** The gateway's id: the events' `gateway`. */
  gateway: string;
  publicKey: PublicKeyRecord;
}

/** A key of the registry and its life: registered at `since` (0: the genesis), revoked at `revokedAt`. */
export interface RegisteredKey extends GatewayKey {
  since: number;
  /** Height of the block that revoked it; batches in later blocks are refused. */
  revokedAt: number | null;
}

export const configRefusalCodes = [
  'config_malformed',
  'config_wrong_chain',
  'config_no_identity_root',
  'config_bad_signature',
  'config_replay',
  'config_seq_gap',
  'config_key_taken',
  'config_not_registered',
  'config_not_owner',
  'config_already_revoked',
  'registry_full',
  'config_pending_full',
] as const;
export type ConfigRefusalCode = (typeof configRefusalCodes)[number];
export type ConfigProblem = { code: ConfigRefusalCode; message: string };

/** What the registry needs from the genesis (genesis.ts `Genesis`). */
export interface RegistryGenesis {
  readonly chainId: string;
  readonly gateways: readonly GatewayEntry[];
  readonly validators: readonly {
    memberId: string;
    publicKey: PublicKeyRecord;
    identityRoot?: PublicKeyRecord;
  }[];
}

/**
 * The registry's bounds, one place: active keys as many as a genesis may list (genesis.ts
 * `gatewayKeysMax`, asserted equal by a test: this layer cannot import the genesis), and four times
 * that in all, revoked keys included (they stay, to verify what they signed).
 */
export const registryBounds: Readonly<RegistryBounds> = Object.freeze({
  activeKeysMax: 4096,
  keysMax: 16_384,
});

export interface RegistryBounds {
  /** Active (not revoked) keys. */
  activeKeysMax: number;
  /** Keys in all, revoked ones included. */
  keysMax: number;
}

/** One state row to persist (the block store's `app_state`): key, canonical JSON data. */
export interface RegistryRow {
  key: string;
  data: string;
}

/** Row keys: never a gateway chain (`member/gateway`), whose member ids cannot start with `#`. */
export const registryKeyRowPrefix = '#key:';
export const registrySeqRowPrefix = '#seq:';

/**
 * The pure checks of a configuration transaction, against the genesis alone: chain id, the member's
 * identity root, its signature. Null, or the problem.
 */
export function configSignatureProblem(
  genesis: RegistryGenesis,
  c: ConfigTx,
  verifier: SignatureVerifier = nodeVerifier,
): ConfigProblem | null {
  const p = c.payload;
  if (p.chainId !== genesis.chainId)
    return { code: 'config_wrong_chain', message: `for chain ${p.chainId}, not ${genesis.chainId}` };
  const v = genesis.validators.find((x) => x.memberId === p.member);
  if (!v?.identityRoot)
    return {
      code: 'config_no_identity_root',
      message: v
        ? `member "${p.member}" has no identityRoot in the genesis: it can register no gateways`
        : `"${p.member}" is not a member of this alliance`,
    };
  const root = v.identityRoot;
  if (
    !verifier.verify(root.alg, fromBase64Url(root.publicKey), configSigningBytes(c.payloadBytes), c.signature)
  )
    return { code: 'config_bad_signature', message: `not signed by the identity root of "${p.member}"` };
  return null;
}

export class GatewayRegistry implements KeyRegistry {
  readonly #keys = new Map<string, RegisteredKey>();
  readonly #seqs = new Map<string, number>();
  readonly #chains = new Set<string>();
  /** Validator keys and identity roots: never a gateway's. */
  readonly #reserved: ReadonlySet<string>;
  readonly #bounds: RegistryBounds;
  #active = 0;

  /** Throws RangeError on a key that does not match its keyId or is listed twice (genesis.ts checks this with positions). */
  constructor(
    entries: Iterable<GatewayEntry>,
    options: { reserved?: Iterable<string>; bounds?: RegistryBounds } = {},
  ) {
    this.#reserved = new Set(options.reserved ?? []);
    this.#bounds = options.bounds ?? {
      activeKeysMax: Number.MAX_SAFE_INTEGER,
      keysMax: Number.MAX_SAFE_INTEGER,
    };
    for (const g of entries) {
      const publicKey = fromBase64Url(g.publicKey.publicKey);
      if (keyIdOf(g.publicKey.alg, publicKey) !== g.publicKey.keyId) {
        throw new RangeError(`gateway ${g.memberId}/${g.gateway}: keyId does not match the public key`);
      }
      if (this.#keys.has(g.publicKey.keyId))
        throw new RangeError(`gateway key ${g.publicKey.keyId} listed twice`);
      this.#put({
        keyId: g.publicKey.keyId,
        alg: g.publicKey.alg,
        publicKey,
        enterprise: g.memberId,
        gateway: g.gateway,
        since: 0,
        revokedAt: null,
      });
    }
  }

  /** A copy to fold uncommitted blocks into (a block being checked or built). */
  clone(): GatewayRegistry {
    const c = new GatewayRegistry([], { reserved: this.#reserved, bounds: this.#bounds });
    for (const k of this.#keys.values()) c.#put({ ...k });
    for (const [m, s] of this.#seqs) c.#seqs.set(m, s);
    return c;
  }

  /** Any key the registry holds or held (revoked ones too): the binding never changes. */
  get(keyId: string): RegisteredKey | undefined {
    return this.#keys.get(keyId);
  }

  /** Keys held, revoked ones included. */
  get size(): number {
    return this.#keys.size;
  }

  get activeCount(): number {
    return this.#active;
  }

  /** Gateway chains (`member/gateway`) with at least one key ever, sorted. */
  chains(): string[] {
    return [...this.#chains].sort();
  }

  /** The member's last committed configuration sequence (0 before its first). */
  sequence(member: string): number {
    return this.#seqs.get(member) ?? 0;
  }

  /** Keys of a member's gateways (all, revoked ones too), by gateway then registration. */
  keysOf(member: string): RegisteredKey[] {
    return [...this.#keys.values()]
      .filter((k) => k.enterprise === member)
      .sort((a, b) => (a.gateway < b.gateway ? -1 : a.gateway > b.gateway ? 1 : a.since - b.since));
  }

  /**
   * Whether `keyId` may sign a batch of `chain` (`member/gateway`) in the next block: null, or the
   * refusal (`unknown_key`, `revoked_key`).
   */
  authorize(keyId: string, chain: string): { code: 'unknown_key' | 'revoked_key'; message: string } | null {
    const k = this.#keys.get(keyId);
    if (!k) return { code: 'unknown_key', message: `key ${keyId} is not registered` };
    const own = chainKeyOf(k.enterprise, k.gateway);
    if (own !== chain)
      return { code: 'unknown_key', message: `key ${keyId} belongs to ${own}, not ${chain}` };
    if (k.revokedAt !== null)
      return {
        code: 'revoked_key',
        message: `key ${keyId} of ${chain} was revoked at height ${k.revokedAt}`,
      };
    return null;
  }

  /** The state rules for a configuration payload whose signature checked (see the module comment). */
  problem(p: ConfigPayload): ConfigProblem | null {
    const last = this.sequence(p.member);
    if (p.seq <= last)
      return { code: 'config_replay', message: `seq ${p.seq} of ${p.member} is not after its last, ${last}` };
    if (p.seq > last + 1)
      return {
        code: 'config_seq_gap',
        message: `seq ${p.seq} of ${p.member} skips ${p.seq - last - 1} after ${last}`,
      };
    if (p.op === 'register') {
      const id = p.key.keyId;
      const held = this.#keys.get(id);
      if (held || this.#reserved.has(id))
        return {
          code: 'config_key_taken',
          message: held
            ? `key ${id} is (or was) registered to ${held.enterprise}/${held.gateway}: a key is registered once`
            : `key ${id} is a validator key or an identity root`,
        };
      if (this.#active >= this.#bounds.activeKeysMax || this.#keys.size >= this.#bounds.keysMax)
        return {
          code: 'registry_full',
          message: `${this.#active} active keys (at most ${this.#bounds.activeKeysMax}), ${this.#keys.size} in all (at most ${this.#bounds.keysMax})`,
        };
      return null;
    }
    const k = this.#keys.get(p.keyId);
    if (!k) return { code: 'config_not_registered', message: `key ${p.keyId} is not registered` };
    if (k.enterprise !== p.member)
      return { code: 'config_not_owner', message: `key ${p.keyId} is ${k.enterprise}'s, not ${p.member}'s` };
    if (k.gateway !== p.gateway)
      return {
        code: 'config_not_registered',
        message: `key ${p.keyId} is ${k.enterprise}/${k.gateway}'s, not ${p.gateway}'s`,
      };
    if (k.revokedAt !== null)
      return {
        code: 'config_already_revoked',
        message: `key ${p.keyId} was revoked at height ${k.revokedAt}`,
      };
    return null;
  }

  /**
   * Applies a payload that passed {@link problem} (a bug otherwise: asserts), committed in the block
   * at `height`. Returns the rows it changed.
   */
  apply(p: ConfigPayload, height: number): RegistryRow[] {
    const problem = this.problem(p);
    if (problem)
      throw new Error(`bug: applying a configuration change that fails: ${problem.code}: ${problem.message}`);
    this.#seqs.set(p.member, p.seq);
    let key: RegisteredKey;
    if (p.op === 'register') {
      key = {
        keyId: p.key.keyId,
        alg: p.key.alg,
        publicKey: fromBase64Url(p.key.publicKey),
        enterprise: p.member,
        gateway: p.gateway,
        since: height,
        revokedAt: null,
      };
      this.#put(key);
    } else {
      key = this.#keys.get(p.keyId)!;
      key.revokedAt = height;
      this.#active--;
    }
    return [keyRow(key), seqRow(p.member, p.seq)];
  }

  /** Loads a persisted row over the genesis registry. Throws RangeError on a row that is not one. */
  loadRow(key: string, data: string): void {
    const v = JSON.parse(data) as Record<string, unknown>;
    if (key.startsWith(registrySeqRowPrefix)) {
      const member = key.slice(registrySeqRowPrefix.length);
      if (!Number.isSafeInteger(v.seq) || (v.seq as number) < 1) throw new RangeError('seq');
      this.#seqs.set(member, v.seq as number);
      if (seqRow(member, v.seq as number).data !== data) throw new RangeError('not in canonical form');
      return;
    }
    const keyId = key.slice(registryKeyRowPrefix.length);
    const alg = v.alg as KeyAlgorithm;
    const publicKey = typeof v.publicKey === 'string' ? fromBase64Url(v.publicKey) : new Uint8Array();
    if (v.keyId !== keyId || keyIdOf(alg, publicKey) !== keyId)
      throw new RangeError('key does not match its id');
    const k: RegisteredKey = {
      keyId,
      alg,
      publicKey,
      enterprise: String(v.member),
      gateway: String(v.gateway),
      since: v.since as number,
      revokedAt: v.revokedAt as number | null,
    };
    if (keyRow(k).data !== data) throw new RangeError('not in canonical form');
    const old = this.#keys.get(keyId);
    if (old) {
      if (old.enterprise !== k.enterprise || old.gateway !== k.gateway) throw new RangeError('rebinds a key');
      if (old.revokedAt === null) this.#active--;
      this.#keys.delete(keyId);
    }
    this.#put(k);
  }

  /** Every key and sequence as rows (sorted): to compare two registries. */
  rows(): RegistryRow[] {
    const rows = [...this.#keys.values()].map(keyRow);
    for (const [m, s] of this.#seqs) rows.push(seqRow(m, s));
    return rows.sort((a, b) => (a.key < b.key ? -1 : 1));
  }

  #put(k: RegisteredKey): void {
    this.#keys.set(k.keyId, k);
    if (k.revokedAt === null) this.#active++;
    this.#chains.add(chainKeyOf(k.enterprise, k.gateway));
  }
}

function keyRow(k: RegisteredKey): RegistryRow {
  return {
    key: `${registryKeyRowPrefix}${k.keyId}`,
    data: canonicalJson({
      alg: k.alg,
      gateway: k.gateway,
      keyId: k.keyId,
      member: k.enterprise,
      publicKey: toBase64Url(k.publicKey),
      revokedAt: k.revokedAt,
      since: k.since,
    }),
  };
}

function seqRow(member: string, seq: number): RegistryRow {
  return { key: `${registrySeqRowPrefix}${member}`, data: canonicalJson({ seq }) };
}

/** Whether a state row is the registry's (else it is a gateway head). */
export function isRegistryRow(key: string): boolean {
  return key.startsWith(registryKeyRowPrefix) || key.startsWith(registrySeqRowPrefix);
}

/** The registry a genesis lists (`genesis.gateways`), with the genesis's keys reserved and its bounds. */
export function gatewayRegistryOf(
  genesis: RegistryGenesis | { readonly gateways: readonly GatewayEntry[] },
  bounds?: RegistryBounds,
): GatewayRegistry {
  const validators = 'validators' in genesis ? genesis.validators : [];
  const reserved = validators.flatMap((v) => [
    v.publicKey.keyId,
    ...(v.identityRoot ? [v.identityRoot.keyId] : []),
  ]);
  return new GatewayRegistry(genesis.gateways, { reserved, ...(bounds ? { bounds } : {}) });
}
