/**
 * The genesis file: which alliance this is, its protocol parameters, and its validators (member
 * id, signing public key, libp2p peer id, addresses). Every validator loads the same file; its
 * hash (SHA-256 of the RFC 8785 canonical JSON after defaults are applied) is part of the wire
 * protocol ids, so peers holding different genesis files cannot talk to each other at all.
 *
 * Parameters: the view-change timeout T, the consensus core's chain-wide limits (`ChainLimits`,
 * defaults from core/limits.ts), and the two size bounds of the network: the largest message (by
 * default, what the limits allow, wire/limits.ts `messageBytesMax`) and the largest block-sync answer.
 *
 * Fault tolerance (core/quorum.ts `faultsTolerated`, `quorumSize`): with n validators f = ⌊(n−1)/3⌋
 * and a quorum is ⌊(n+f)/2⌋+1, which is 2f+1 when n = 3f+1. For other n (5, 6, 8, …) 2f+1 is NOT
 * enough: two quorums of 2f+1 out of 3f+2 overlap in one validator, possibly the faulty one. The
 * general formula keeps the overlap at f+1 (one honest validator) and n−f ≥ quorum still holds,
 * so extra validators add no tolerance but cost no safety. Such sizes load, with
 * {@link Genesis.optimalSize} false.
 *
 * Validators are ordered as listed in the file; the order fixes replica indexes and primaries
 * (view v → validator v mod n) and is covered by the genesis hash.
 *
 * Gateways (optional, `gateways:`) are the event-signing keys each member registers for its
 * gateways: every validator checks every batch against this registry, so it is part of the genesis
 * (and of its hash) like the validators are. See docs/ledger.md. Adding a gateway key is a genesis
 * update.
 *
 * Version 2 is the ledger whose transactions are signed batches of envelopes, bodies kept off the
 * chain; a version 1 genesis (events with their bodies on the chain) is refused with that reason.
 *
 * A local alliance for tests and the demo (every key in one folder) is made by
 * src/devtools/local-alliance.ts.
 *
 * @example
 *   const genesis = loadGenesis('data/alliance/genesis.json');
 *   genesis.primary(7).memberId; genesis.quorum; genesis.byPeerId(remote.toString())?.memberId
 */
import { peerIdFromString } from '@libp2p/peer-id';
import { multiaddr } from '@multiformats/multiaddr';
import { z } from 'zod';
import { ConfigError, type ConfigIssue } from '../../config/errors.ts';
import { loadYaml } from '../../config/load.ts';
import { encodeCanonical } from '../../crypto/canonical.ts';
import { fromBase64Url, fromHex, sha256, toHex } from '../../crypto/hash.ts';
import { keyAlgorithms, keyIdOf, type PublicKeyRecord, publicKeyBytes } from '../../crypto/keys.ts';
import { assertChainLimits, defaultChainLimits } from '../core/limits.ts';
import { faultsTolerated, quorumSize } from '../core/quorum.ts';
import type { ChainLimits, Validator as CoreValidator } from '../core/types.ts';
import { assertEncodedLimits, messageBytesMax as codecMessageBytesMax } from '../wire/limits.ts';
import { derivedPeerId } from './identity.ts';

export const genesisVersion = 2;
/** Bounds on the document itself: a genesis is small, and is parsed before anything is trusted. */
export const validatorsMax = 64;
/** Registered gateway keys: bounds the registry every validator holds (and the genesis file's size). */
export const gatewayKeysMax = 4096;
const addrsPerValidatorMax = 8;
/** Largest message the transport will ever carry (the codec's own ceiling). */
export const messageBytesCeiling = 64 * 1024 * 1024;
/** The one algorithm of identity roots: credentials are JWS with EdDSA over Ed25519. */
export const identityRootAlg = 'ed25519';

const memberIdPattern = /^[a-z0-9][a-z0-9._-]{0,62}$/;
/** As gateway ids in the gateway configuration (src/config/common.ts `identifier`): no `/`. */
const gatewayIdPattern = /^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/;
/** Also appears in libp2p protocol ids, hence the narrow alphabet. */
const chainIdPattern = /^[a-z0-9][a-z0-9._-]{0,62}$/;

const memberId = z
  .string()
  .regex(memberIdPattern, 'expected 1-63 of a-z 0-9 . _ -, starting with a letter or digit')
  .describe('Alliance member (enterprise) id.');

const publicKeySchema = z
  .strictObject({
    alg: z.enum(keyAlgorithms),
    keyId: z.string().regex(/^[0-9a-f]{32}$/, 'expected 32 lower-case hex digits'),
    publicKey: z.string().regex(/^[A-Za-z0-9_-]+$/, 'expected base64url without padding'),
  })
  .describe('Signing public key, as in the `.pub` file keygen writes.');

const validatorSchema = z.strictObject({
  memberId,
  publicKey: publicKeySchema,
  peerId: z.string().min(1).describe('libp2p peer id (for Ed25519 keys, derived from publicKey).'),
  addrs: z
    .array(z.string())
    .min(1)
    .max(addrsPerValidatorMax)
    .describe('Multiaddrs the other validators dial, e.g. /ip4/10.0.0.5/tcp/4001.'),
  listen: z
    .array(z.string())
    .min(1)
    .max(addrsPerValidatorMax)
    .optional()
    .describe('Multiaddrs this validator binds (default: addrs), e.g. /ip4/0.0.0.0/tcp/4001.'),
  identityRoot: publicKeySchema
    .optional()
    .describe(
      "The member's identity root (Ed25519): signs its credentials and its gateway registrations. Its private key (`identity-root.key`) stays in the member's folder. Without it the member can issue no credentials and register no gateways.",
    ),
});

const gatewaySchema = z.strictObject({
  memberId: memberId.describe(
    "The member (a validator memberId) that runs the gateway: its events' `enterprise`.",
  ),
  gateway: z
    .string()
    .regex(gatewayIdPattern, 'expected 1-64 of A-Z a-z 0-9 . _ -, starting with a letter or digit')
    .describe("Gateway id: its events' `gateway` (the gateway configuration's gateway.id)."),
  publicKey: publicKeySchema,
});

const d = defaultChainLimits;
const count = (min: number, max: number, fallback: number) =>
  z.number().int().min(min).max(max).default(fallback);

/** Chain-wide limits of the consensus core (`ChainLimits` in types.ts): every validator must agree. */
const chainLimitsSchema = z
  .strictObject({
    validatorsMax: count(1, 1024, d.validatorsMax).describe('Largest validator set the codec accepts.'),
    txBytesMax: count(1, 64 * 1024 * 1024, d.txBytesMax).describe('Bytes of one transaction.'),
    blockTxsMax: count(1, 1_000_000, d.blockTxsMax).describe('Transactions in one block.'),
    blockBytesMax: count(1, 64 * 1024 * 1024, d.blockBytesMax).describe('Transaction bytes in one block.'),
    windowHeights: count(1, 64, d.windowHeights).describe('Heights a primary may have in flight.'),
    syncBlocksMax: count(1, 10_000, d.syncBlocksMax).describe('Blocks in one sync response.'),
    forwardTxsMax: count(1, 1_000_000, d.forwardTxsMax).describe('Transactions in one forwarding message.'),
  })
  .prefault({});

const paramsSchema = z
  .strictObject({
    viewChangeTimeoutMs: z
      .number()
      .int()
      .min(50)
      .max(600_000)
      .default(2_000)
      .describe('T: how long a backup waits for progress before it asks for a view change.'),
    limits: chainLimitsSchema,
    messageBytesMax: z
      .number()
      .int()
      .min(4096)
      .max(messageBytesCeiling)
      .optional()
      .describe(
        'Largest message a validator accepts (a peer sending more is dropped). Default: the largest message the limits allow.',
      ),
    syncResponseBytesMax: z
      .number()
      .int()
      .min(4096)
      .max(messageBytesCeiling)
      .default(8 * 1024 * 1024)
      .describe('Largest answer to a block-sync request.'),
  })
  .prefault({});

export const genesisSchema = z
  .strictObject({
    version: z
      .number()
      .int()
      .superRefine((v, ctx) => {
        if (v === genesisVersion) return;
        ctx.addIssue({
          code: 'custom',
          message:
            v === 1
              ? 'genesis version 1 is the format whose transactions carried event bodies; this release reads version 2 only (no migration: create a new alliance genesis, docs/ledger.md)'
              : `expected version ${genesisVersion}, got ${v}`,
        });
      }),
    chainId: z
      .string()
      .regex(chainIdPattern, 'expected 1-63 of a-z 0-9 . _ -, starting with a letter or digit'),
    genesisTime: z.iso.datetime({ offset: false }).describe('UTC, e.g. 2026-11-23T06:00:00.000Z'),
    params: paramsSchema,
    validators: z.array(validatorSchema).min(1).max(validatorsMax),
    gateways: z
      .array(gatewaySchema)
      .max(gatewayKeysMax)
      .optional()
      .describe(
        "Event-signing keys of the members' gateways (docs/ledger.md). A gateway may list several keys.",
      ),
  })
  .superRefine((doc, ctx) => {
    const issue = (path: PropertyKey[], message: string) => ctx.addIssue({ code: 'custom', path, message });
    const p = doc.params;
    try {
      assertChainLimits(p.limits);
      assertEncodedLimits(p.limits);
    } catch (err) {
      issue(['params', 'limits'], (err as Error).message);
      return;
    }
    const needed = codecMessageBytesMax(p.limits);
    if (p.messageBytesMax !== undefined && p.messageBytesMax < needed) {
      issue(['params', 'messageBytesMax'], `the limits allow messages of ${needed} bytes; use at least that`);
    }
    if (p.syncResponseBytesMax < (p.messageBytesMax ?? needed)) {
      issue(['params', 'syncResponseBytesMax'], 'must hold at least one largest message (messageBytesMax)');
    }
    if (doc.validators.length > p.limits.validatorsMax) {
      issue(['validators'], `${doc.validators.length} validators, more than limits.validatorsMax`);
    }
    const seen = { memberId: new Map<string, number>(), peerId: new Map<string, number>() };
    const seenKey = new Map<string, number>();
    const seenAddr = new Map<string, number>();
    const validatorKeys = new Map<string, number>();
    doc.validators.forEach((v, i) => {
      validatorKeys.set(v.publicKey.keyId, i);
    });
    const rootKeys = new Map<string, number>();
    doc.validators.forEach((v, i) => {
      if (!v.identityRoot) return;
      const issueAt = (field: string, message: string) =>
        issue(['validators', i, 'identityRoot', field], message);
      if (v.identityRoot.alg !== identityRootAlg) {
        issueAt('alg', `an identity root is an ${identityRootAlg} key (it signs EdDSA credentials)`);
      }
      checkKey(v.identityRoot, issueAt);
      const j = rootKeys.get(v.identityRoot.keyId);
      if (j !== undefined) issueAt('keyId', `identity root is also validators[${j}]'s`);
      rootKeys.set(v.identityRoot.keyId, i);
      const k = validatorKeys.get(v.identityRoot.keyId);
      if (k !== undefined)
        issueAt('keyId', `key is validators[${k}]'s signing key: an identity root is a key of its own`);
    });
    const gatewayKeys = new Map<string, number>();
    doc.gateways?.forEach((g, i) => {
      const at = (...rest: PropertyKey[]) => ['gateways', i, ...rest];
      if (!doc.validators.some((v) => v.memberId === g.memberId)) {
        issue(at('memberId'), `unknown member "${g.memberId}": not a validator of this genesis`);
      }
      checkKey(g.publicKey, (field, message) => issue(at('publicKey', field), message));
      const j = gatewayKeys.get(g.publicKey.keyId);
      if (j !== undefined) issue(at('publicKey', 'keyId'), `key is also gateways[${j}]'s`);
      gatewayKeys.set(g.publicKey.keyId, i);
      const v = validatorKeys.get(g.publicKey.keyId);
      if (v !== undefined)
        issue(at('publicKey', 'keyId'), `key is validators[${v}]'s: a gateway signs with a key of its own`);
      const r = rootKeys.get(g.publicKey.keyId);
      if (r !== undefined)
        issue(
          at('publicKey', 'keyId'),
          `key is validators[${r}]'s identity root: a gateway signs with a key of its own`,
        );
    });
    doc.validators.forEach((v, i) => {
      const at = (...rest: PropertyKey[]) => ['validators', i, ...rest];
      for (const field of ['memberId', 'peerId'] as const) {
        const j = seen[field].get(v[field]);
        if (j !== undefined) issue(at(field), `${field} "${v[field]}" is also validators[${j}]`);
        seen[field].set(v[field], i);
      }
      checkKey(v.publicKey, (field, message) => issue(at('publicKey', field), message));
      const j = seenKey.get(v.publicKey.keyId);
      if (j !== undefined) issue(at('publicKey', 'keyId'), `key is also validators[${j}]'s`);
      seenKey.set(v.publicKey.keyId, i);
      checkPeerId(v.peerId, v.publicKey, (message) => issue(at('peerId'), message));
      for (const field of ['addrs', 'listen'] as const) {
        v[field]?.forEach((a, k) => {
          const problem = checkAddr(a, v.peerId);
          if (problem) issue(at(field, k), problem);
          if (field === 'addrs') {
            const other = seenAddr.get(a);
            if (other !== undefined && other !== i)
              issue(at(field, k), `also validators[${other}]'s address`);
            seenAddr.set(a, i);
          }
        });
      }
    });
  });

export type GenesisDocument = z.output<typeof genesisSchema>;
export type ProtocolParams = GenesisDocument['params'];
export type Validator = GenesisDocument['validators'][number];
/** A registered gateway key (`gateways:` in the genesis). */
export type GatewayRegistration = NonNullable<GenesisDocument['gateways']>[number];

function checkKey(record: PublicKeyRecord, issue: (field: string, message: string) => void): void {
  const raw = fromBase64Url(record.publicKey);
  if (raw.byteLength !== publicKeyBytes[record.alg]) {
    issue(
      'publicKey',
      `a ${record.alg} public key is ${publicKeyBytes[record.alg]} bytes, got ${raw.byteLength}`,
    );
    return;
  }
  if (keyIdOf(record.alg, raw) !== record.keyId) issue('keyId', 'does not match the public key');
}

function checkPeerId(peerId: string, record: PublicKeyRecord, issue: (message: string) => void): void {
  try {
    const parsed = peerIdFromString(peerId);
    if (parsed.type !== 'Ed25519') {
      issue(`expected an Ed25519 peer id, got ${parsed.type}`);
      return;
    }
  } catch (err) {
    issue(`not a libp2p peer id (${(err as Error).message})`);
    return;
  }
  let expected: string | undefined;
  try {
    expected = derivedPeerId(record);
  } catch {
    return; // the key itself is reported by checkKey
  }
  if (expected !== undefined && expected !== peerId) {
    issue(`an Ed25519 member key is its own libp2p identity: expected ${expected}`);
  }
}

/** Only TCP over IP or DNS: the transport the validators use (docs/network.md). */
function checkAddr(text: string, peerId: string): string | undefined {
  let components: { name: string; value?: string }[];
  try {
    components = multiaddr(text).getComponents();
  } catch (err) {
    return `not a multiaddr (${(err as Error).message})`;
  }
  const [host, tcp, ...rest] = components;
  if (!host || !['ip4', 'ip6', 'dns', 'dns4', 'dns6'].includes(host.name) || tcp?.name !== 'tcp') {
    return 'expected /ip4|ip6|dns|dns4|dns6/<host>/tcp/<port>';
  }
  if (rest.length > 1 || (rest[0] && (rest[0].name !== 'p2p' || rest[0].value !== peerId))) {
    return "nothing may follow /tcp/<port> except this validator's own /p2p/<peerId>";
  }
  return undefined;
}

/** A validated genesis with the lookups consensus and the transport need. Immutable. */
export class Genesis {
  readonly document: GenesisDocument;
  /** Hex SHA-256 of the canonical JSON of {@link document}. */
  readonly hash: string;
  readonly validators: readonly Validator[];
  readonly n: number;
  readonly f: number;
  readonly quorum: number;
  /** n = 3f + 1: no validator beyond what the tolerated f requires. */
  readonly optimalSize: boolean;
  readonly #byMemberId = new Map<string, Validator>();
  readonly #byPeerId = new Map<string, Validator>();
  readonly #byKeyId = new Map<string, Validator>();
  readonly #index = new Map<string, number>();

  /** Use {@link parseGenesis} or {@link loadGenesis}; this assumes `document` passed the schema. */
  constructor(document: GenesisDocument) {
    this.document = deepFreeze(structuredClone(document));
    this.hash = toHex(sha256(encodeCanonical(this.document)));
    this.validators = this.document.validators;
    this.n = this.validators.length;
    this.f = faultsTolerated(this.n);
    this.quorum = quorumSize(this.n);
    this.optimalSize = this.n === 3 * this.f + 1;
    this.validators.forEach((v, i) => {
      this.#byMemberId.set(v.memberId, v);
      this.#byPeerId.set(v.peerId, v);
      this.#byKeyId.set(v.publicKey.keyId, v);
      this.#index.set(v.memberId, i);
    });
  }

  get chainId(): string {
    return this.document.chainId;
  }

  get params(): ProtocolParams {
    return this.document.params;
  }

  /** The chain-wide limits the consensus core checks blocks and messages against. */
  get chainLimits(): ChainLimits {
    return this.document.params.limits;
  }

  /** Largest message any validator sends or accepts: the explicit parameter, else what the limits allow. */
  get messageBytesMax(): number {
    return this.document.params.messageBytesMax ?? codecMessageBytesMax(this.chainLimits);
  }

  /** {@link hash} as bytes: what block 1 points to. */
  get hashBytes(): Uint8Array {
    return fromHex(this.hash);
  }

  /** The validator set as the consensus core takes it (index = replica number). */
  consensusValidators(): CoreValidator[] {
    return this.validators.map((v) => ({
      keyId: v.publicKey.keyId,
      alg: v.publicKey.alg,
      publicKey: fromBase64Url(v.publicKey.publicKey),
    }));
  }

  /** Milliseconds since the epoch. */
  get genesisTimeMs(): number {
    return Date.parse(this.document.genesisTime);
  }

  /** The primary of `view`: validators[view mod n]. */
  primary(view: number): Validator {
    if (!Number.isSafeInteger(view) || view < 0)
      throw new RangeError(`view must be a non-negative integer, got ${view}`);
    return this.validators[view % this.n]!;
  }

  byMemberId(memberId: string): Validator | undefined {
    return this.#byMemberId.get(memberId);
  }

  byPeerId(peerId: string): Validator | undefined {
    return this.#byPeerId.get(peerId);
  }

  byKeyId(keyId: string): Validator | undefined {
    return this.#byKeyId.get(keyId);
  }

  /** Position in the validator list (the order primaries rotate in), or -1. */
  indexOf(memberId: string): number {
    return this.#index.get(memberId) ?? -1;
  }

  /**
   * The member's identity root (its `identityRoot` in the genesis): the key its credentials and
   * gateway registrations are signed with. `undefined` for an unknown member or one whose genesis
   * entry has none (see {@link MissingIdentityRootError}).
   */
  identityRoot(memberId: string): PublicKeyRecord | undefined {
    return this.#byMemberId.get(memberId)?.identityRoot;
  }

  /** {@link identityRoot}, or a {@link MissingIdentityRootError} that says what the member cannot do. */
  requireIdentityRoot(memberId: string): PublicKeyRecord {
    const root = this.identityRoot(memberId);
    if (!root) throw new MissingIdentityRootError(memberId, this.#byMemberId.has(memberId));
    return root;
  }

  /** Registered gateway keys, in genesis order (empty if the genesis lists none). */
  get gateways(): readonly GatewayRegistration[] {
    return this.document.gateways ?? [];
  }

  /** Every validator but `memberId`. */
  others(memberId: string): Validator[] {
    return this.validators.filter((v) => v.memberId !== memberId);
  }
}

/** A member without an identity root in the genesis (or not a member at all). Stable code. */
export class MissingIdentityRootError extends Error {
  override name = 'MissingIdentityRootError';
  readonly code = 'identity_root_missing';
  readonly memberId: string;
  constructor(memberId: string, known: boolean) {
    super(
      known
        ? `member "${memberId}" has no identityRoot in the genesis: it can issue no credentials and register no gateways (a genesis with its identity root is needed; docs/deploy.md)`
        : `"${memberId}" is not a member of this alliance (no validator of the genesis has that memberId)`,
    );
    this.memberId = memberId;
  }
}

function deepFreeze<T>(value: T): T {
  if (value && typeof value === 'object') {
    for (const v of Object.values(value)) deepFreeze(v);
    Object.freeze(value);
  }
  return value;
}

/**
 * Validates a genesis document given as text (YAML or JSON; JSON is YAML). `file` names the source
 * in errors. Throws {@link ConfigError} listing every problem with line, column and field.
 */
export function parseGenesis(text: string, file = 'genesis'): Genesis {
  return fromLoaded(loadYaml(file, genesisSchema, { text, env: {} }));
}

/** Reads and validates a genesis file (.json, .yaml or .yml). Throws {@link ConfigError}. */
export function loadGenesis(file: string): Genesis {
  // An empty env: a genesis is hashed and shared, so it must not depend on who reads it.
  return fromLoaded(loadYaml(file, genesisSchema, { env: {} }));
}

function fromLoaded(loaded: { value: GenesisDocument | undefined; issues: ConfigIssue[] }): Genesis {
  if (!loaded.value) throw new ConfigError(loaded.issues);
  return new Genesis(loaded.value);
}

/** Validates a document built in code (e.g. by the local alliance generator). Throws ConfigError. */
export function genesisFromDocument(document: unknown, file = 'genesis'): Genesis {
  return parseGenesis(JSON.stringify(document), file);
}

/** JSON text of a genesis, as written to disk. */
export function encodeGenesis(genesis: Genesis): string {
  return `${JSON.stringify(genesis.document, null, 2)}\n`;
}
