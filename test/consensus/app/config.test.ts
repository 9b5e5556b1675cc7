/**
 * Configuration transactions (src/consensus/app/config-tx.ts, registry.ts): a member registers or
 * revokes a gateway key, signed by its identity root, applied at its committed height by the
 * Ledger's hooks exactly as the core calls them.
 */
import { describe, expect, it } from 'vitest';
import { configPendingMax, configPendingPerMemberMax } from '../../../src/consensus/app/config-pool.ts';
import {
  configTxId,
  decodeConfigTx,
  encodeConfigTx,
  signConfigTx,
} from '../../../src/consensus/app/config-tx.ts';
import { Ledger, refusalCode } from '../../../src/consensus/app/ledger.ts';
import { GatewayRegistry, gatewayRegistryOf, registryBounds } from '../../../src/consensus/app/registry.ts';
import { txIdOf } from '../../../src/consensus/app/tx.ts';
import type { ChainContext } from '../../../src/consensus/core/config.ts';
import { blockHash } from '../../../src/consensus/core/signing.ts';
import type { Block } from '../../../src/consensus/core/types.ts';
import { gatewayKeysMax } from '../../../src/consensus/genesis/genesis.ts';
import { toHex } from '../../../src/crypto/hash.ts';
import { generateKey, loadKeyFile, publicKeyRecord } from '../../../src/crypto/keys.ts';
import { allianceFixture } from '../net/helpers.ts';
import { blockOf, genesisHash, TestGateway } from './fixtures.ts';

const chainId = 'ledger-test';
const code = (r: string | null) => (r === null ? null : r.slice(0, r.indexOf(':')));
const budget = { txsMax: 4096, bytesMax: 1 << 20 };

function setup(bounds?: { activeKeysMax: number; keysMax: number }) {
  const roots = { acme: generateKey('ed25519'), bolt: generateKey('ed25519') };
  const validatorKeys = { acme: generateKey('ed25519'), bolt: generateKey('ed25519'), cast: generateKey() };
  const a = new TestGateway('acme', 'gw-1');
  const genesis = {
    chainId,
    validators: [
      {
        memberId: 'acme',
        publicKey: publicKeyRecord(validatorKeys.acme),
        identityRoot: publicKeyRecord(roots.acme),
      },
      {
        memberId: 'bolt',
        publicKey: publicKeyRecord(validatorKeys.bolt),
        identityRoot: publicKeyRecord(roots.bolt),
      },
      { memberId: 'cast', publicKey: publicKeyRecord(validatorKeys.cast) }, // no identity root
    ],
    gateways: [a.entry()],
  };
  const registry = gatewayRegistryOf(genesis, bounds ?? registryBounds);
  const ledger = new Ledger({ registry, genesis, genesisHash });
  // A new production line of acme: its gateway generated its own key; only the public key moves.
  const line2 = new TestGateway('acme', 'gw-2');
  const register = (seq: number, gw: TestGateway = line2, signer = roots.acme, member = 'acme') =>
    signConfigTx(
      { v: 1, chainId, member, seq, op: 'register', gateway: gw.gateway, key: publicKeyRecord(gw.key) },
      signer,
    );
  const revoke = (seq: number, keyId: string, gateway = 'gw-2', signer = roots.acme, member = 'acme') =>
    signConfigTx({ v: 1, chainId, member, seq, op: 'revoke', gateway, keyId }, signer);
  let tip: Block | undefined;
  /** Commits a block of `txs` after checking it as a backup would. */
  const commit = (txs: Uint8Array[]) => {
    const height = ledger.height + 1;
    expect(ledger.checkBlock(txs, { appliedHeight: ledger.height, ancestors: [] })).toBeNull();
    tip = blockOf(height, tip ? blockHash(tip.header) : genesisHash, txs);
    return ledger.applyRows(tip);
  };
  const next = (txs: Uint8Array[]) =>
    blockOf(ledger.height + 1, tip ? blockHash(tip.header) : genesisHash, txs);
  return {
    roots,
    validatorKeys,
    a,
    line2,
    genesis,
    ledger,
    order: ledger.orderHooks(),
    register,
    revoke,
    commit,
    next,
  };
}

const tipOf = (ledger: Ledger): ChainContext => ({ appliedHeight: ledger.height, ancestors: [] });

describe('configuration transaction bytes', () => {
  it('round-trip; the id covers every byte; anything else is config_malformed, never a throw', () => {
    const { register, line2 } = setup();
    const tx = register(1);
    const d = decodeConfigTx(tx);
    expect(d.ok && d.config.payload).toEqual({
      v: 1,
      chainId,
      member: 'acme',
      seq: 1,
      op: 'register',
      gateway: 'gw-2',
      key: publicKeyRecord(line2.key),
    });
    expect(toHex(txIdOf(tx))).toBe(d.ok && d.config.id);
    for (let i = 0; i < tx.byteLength; i += 7) {
      const flipped = tx.slice();
      flipped[i]! ^= 1;
      expect(toHex(configTxId(flipped))).not.toBe(d.ok && d.config.id);
    }
    const payload = d.ok ? d.config.payloadBytes : new Uint8Array();
    const sig = d.ok ? d.config.signature : new Uint8Array();
    const text = new TextDecoder().decode(payload);
    const bad: [string, Uint8Array][] = [
      ['trailing byte', new Uint8Array([...tx, 0])],
      ['truncated', tx.subarray(0, tx.byteLength - 1)],
      ['not canonical', encodeConfigTx(new TextEncoder().encode(text.replace('{', '{ ')), sig)],
      ['unknown op', encodeConfigTx(new TextEncoder().encode(text.replace('"register"', '"promote"')), sig)],
      [
        'key id of another key',
        encodeConfigTx(new TextEncoder().encode(text.replace(/"keyId":"[0-9a-f]{2}/, '"keyId":"00')), sig),
      ],
      ['not JSON', encodeConfigTx(new Uint8Array([0xff, 0xfe]), sig)],
      ['only the tag', new Uint8Array([0xc1])],
    ];
    for (const [why, bytes] of bad) {
      const r = decodeConfigTx(bytes);
      expect(r.ok, why).toBe(false);
      expect(!r.ok && r.code, why).toBe('config_malformed');
    }
    expect(() =>
      signConfigTx(
        { v: 1, chainId, member: 'acme', seq: 0, op: 'revoke', gateway: 'gw-2', keyId: '0'.repeat(32) },
        generateKey(),
      ),
    ).toThrow(RangeError);
  });
});

describe('registering a gateway key', () => {
  it("a new gateway's events are refused before its registration commits and accepted after it", () => {
    const { ledger, order, line2, register, commit } = setup();
    const [e1] = line2.sign(1);
    // Unknown to the registry: refused where it is submitted.
    expect(code(ledger.checkTx(e1!.tx))).toBe('unknown_key');
    const reg = register(1);
    expect(ledger.checkTx(reg)).toBeNull();
    expect(order.admit(txIdOf(reg), reg, 0)).toBeNull();
    expect(order.readiness()).toEqual({ count: 1, oldestMs: 0 });
    expect(order.isReady(txIdOf(reg))).toBe(true);
    // Its key is known now (a pending registration): the signature checks, but the pool still
    // refuses it until the registration is committed.
    expect(ledger.checkTx(e1!.tx)).toBeNull();
    expect(code(order.admit(txIdOf(e1!.tx), e1!.tx, 0))).toBe('unknown_key');
    // A primary proposes the registration; a batch signed by the new key in the same block is
    // invalid (a change takes effect from the next block).
    expect(order.select(tipOf(ledger), budget).map(toHex)).toEqual([toHex(txIdOf(reg))]);
    expect(code(ledger.checkBlock([reg, e1!.tx], tipOf(ledger)))).toBe('unknown_key');
    const rows = commit([reg]);
    expect(rows.registry.map((r) => r.key)).toEqual([`#key:${line2.key.keyId}`, '#seq:acme']);
    expect(ledger.registry.get(line2.key.keyId)).toMatchObject({
      enterprise: 'acme',
      gateway: 'gw-2',
      since: 1,
      revokedAt: null,
    });
    expect(ledger.registry.sequence('acme')).toBe(1);
    order.removed(txIdOf(reg)); // the core drops what it committed
    expect(order.refresh(1, 5).map(toHex)).toEqual([]);
    expect(order.admit(txIdOf(e1!.tx), e1!.tx, 6)).toBeNull();
    expect(order.select(tipOf(ledger), budget).map(toHex)).toEqual([toHex(txIdOf(e1!.tx))]);
    commit([e1!.tx]);
    expect(ledger.head('acme/gw-2').seq).toBe(1);
    expect(ledger.metrics().registry).toEqual({ keys: 2, active: 2, configPending: 0 });
  });

  it('a batch of a key registered in an uncommitted ancestor is valid in the block after it', () => {
    const { ledger, line2, register, next } = setup();
    const reg = register(1);
    expect(ledger.checkTx(reg)).toBeNull();
    const ancestor = next([reg]);
    const [e1] = line2.sign(1);
    expect(ledger.checkTx(e1!.tx)).toBeNull();
    expect(ledger.checkBlock([e1!.tx], { appliedHeight: 0, ancestors: [ancestor] })).toBeNull();
    expect(code(ledger.checkBlock([e1!.tx], { appliedHeight: 0, ancestors: [] }))).toBe('unknown_key');
  });

  it("refuses a registration signed by the wrong member's root, for another chain, or by a member without a root; counted", () => {
    const { ledger, roots, register, line2 } = setup();
    const wrongRoot = register(1, line2, roots.bolt); // claims acme, signed by bolt's root
    expect(code(ledger.checkTx(wrongRoot))).toBe('config_bad_signature');
    expect(ledger.checkTx(wrongRoot)).toMatch(/not signed by the identity root of "acme"/);
    const asCast = register(1, line2, roots.acme, 'cast');
    expect(ledger.checkTx(asCast)).toBe(
      'config_no_identity_root: member "cast" has no identityRoot in the genesis: it can register no gateways',
    );
    const asZeta = register(1, line2, roots.acme, 'zeta');
    expect(code(ledger.checkTx(asZeta))).toBe('config_no_identity_root');
    const otherChain = signConfigTx(
      {
        v: 1,
        chainId: 'other',
        member: 'acme',
        seq: 1,
        op: 'register',
        gateway: 'gw-2',
        key: publicKeyRecord(line2.key),
      },
      roots.acme,
    );
    expect(code(ledger.checkTx(otherChain))).toBe('config_wrong_chain');
    const forged = register(1).slice();
    forged[forged.byteLength - 1]! ^= 1;
    expect(code(ledger.checkTx(forged))).toBe('config_bad_signature');
    expect(ledger.metrics().refusals).toMatchObject({
      config_bad_signature: 2, // counted once per transaction, however often it comes back
      config_no_identity_root: 2,
      config_wrong_chain: 1,
    });
    expect(refusalCode({ accepted: false, reason: 'invalid', detail: ledger.checkTx(wrongRoot)! })).toBe(
      'config_bad_signature',
    );
    // Nothing changed, and a wrongly signed registration never taught the ledger its key.
    const [e1] = line2.sign(1);
    expect(code(ledger.checkTx(e1!.tx))).toBe('unknown_key');
    expect(ledger.registry.sequence('acme')).toBe(0);
  });

  it('refuses replays and gaps of the member sequence, and a key that is or was anyone else’s', () => {
    const { ledger, order, a, line2, validatorKeys, roots, register, commit } = setup();
    const reg = register(1);
    commit([reg]);
    // The same registration again (re-signed: another id) is a replay of seq 1.
    const again = register(1);
    expect(ledger.checkTx(again)).toBeNull();
    expect(code(order.admit(txIdOf(again), again, 0))).toBe('config_replay');
    expect(code(ledger.checkBlock([again], tipOf(ledger)))).toBe('config_replay');
    const line3 = new TestGateway('acme', 'gw-3');
    expect(code(ledger.checkBlock([register(3, line3)], tipOf(ledger)))).toBe('config_seq_gap');
    // Keys: already registered (here or in the genesis), a validator key, an identity root.
    const taken = (key: ReturnType<typeof generateKey>, gateway = 'gw-9') =>
      signConfigTx(
        { v: 1, chainId, member: 'acme', seq: 2, op: 'register', gateway, key: publicKeyRecord(key) },
        roots.acme,
      );
    for (const key of [line2.key, a.key, validatorKeys.bolt, roots.bolt]) {
      const tx = taken(key);
      expect(code(order.admit(txIdOf(tx), tx, 0))).toBe('config_key_taken');
      expect(code(ledger.checkBlock([tx], tipOf(ledger)))).toBe('config_key_taken');
    }
    // Two in one block, in sequence order: valid; reversed: a gap.
    const r2 = register(2, line3);
    const line4 = new TestGateway('acme', 'gw-4');
    const r3 = register(3, line4);
    expect(ledger.checkBlock([r2, r3], tipOf(ledger))).toBeNull();
    expect(code(ledger.checkBlock([r3, r2], tipOf(ledger)))).toBe('config_seq_gap');
  });
});

describe('revoking a gateway key', () => {
  it("refuses the key's events in every block after the revocation, and drops its pooled ones", () => {
    const { ledger, order, line2, register, revoke, commit } = setup();
    commit([register(1)]);
    const [e1, e2, e3] = line2.sign(3);
    commit([e1!.tx]);
    for (const e of [e2!, e3!]) expect(order.admit(txIdOf(e.tx), e.tx, 0)).toBeNull();
    expect(order.readiness().count).toBe(2);
    const rev = revoke(2, line2.key.keyId);
    expect(ledger.checkTx(rev)).toBeNull();
    expect(order.admit(txIdOf(rev), rev, 0)).toBeNull();
    // In the revoking block itself the key still signs (the registry as of its parent).
    expect(ledger.checkBlock([rev, e2!.tx], tipOf(ledger))).toBeNull();
    const rows = commit([rev]);
    expect(rows.registry.map((r) => r.key)).toEqual([`#key:${line2.key.keyId}`, '#seq:acme']);
    expect(ledger.registry.get(line2.key.keyId)!.revokedAt).toBe(3);
    const stale = order.refresh(3, 1).map(toHex);
    expect(stale.sort()).toEqual([txIdOf(rev), txIdOf(e2!.tx), txIdOf(e3!.tx)].map(toHex).sort());
    for (const id of stale) order.removed(Buffer.from(id, 'hex'));
    expect(order.readiness()).toEqual({ count: 0, oldestMs: null });
    // Refused with a stable code at submission and in a block, and counted.
    expect(ledger.checkTx(e2!.tx)).toMatch(
      /^revoked_key: key [0-9a-f]{32} of acme\/gw-2 was revoked at height 3/,
    );
    expect(code(ledger.checkBlock([e2!.tx], tipOf(ledger)))).toBe('revoked_key');
    expect(ledger.metrics().refusals.revoked_key).toBe(2);
    expect(ledger.metrics().registry).toEqual({ keys: 2, active: 1, configPending: 0 });
    // A revoked key stays revoked and taken: not again, and not for another gateway.
    expect(code(ledger.checkBlock([revoke(3, line2.key.keyId)], tipOf(ledger)))).toBe(
      'config_already_revoked',
    );
    expect(code(ledger.checkBlock([register(3)], tipOf(ledger)))).toBe('config_key_taken');
  });

  it("a member cannot revoke another member's key, nor name the wrong gateway", () => {
    const { ledger, a, roots, revoke } = setup();
    const byBolt = revoke(1, a.key.keyId, 'gw-1', roots.bolt, 'bolt');
    expect(ledger.checkTx(byBolt)).toBeNull(); // well signed by bolt: the registry decides
    expect(ledger.checkBlock([byBolt], tipOf(ledger))).toMatch(
      /^config_not_owner: transaction 0: key [0-9a-f]{32} is acme's, not bolt's/,
    );
    expect(code(ledger.checkBlock([revoke(1, a.key.keyId, 'gw-7')], tipOf(ledger)))).toBe(
      'config_not_registered',
    );
    expect(code(ledger.checkBlock([revoke(1, '0'.repeat(32))], tipOf(ledger)))).toBe('config_not_registered');
    // A genesis key can be revoked like any other.
    expect(ledger.checkBlock([revoke(1, a.key.keyId, 'gw-1')], tipOf(ledger))).toBeNull();
  });
});

describe('bounds and determinism', () => {
  it('the registry is bounded (active and in all), with registry_full beyond; the bound is the genesis one', () => {
    expect(registryBounds.activeKeysMax).toBe(gatewayKeysMax);
    expect(registryBounds.keysMax).toBeGreaterThan(registryBounds.activeKeysMax);
    const { ledger, line2, register, revoke, commit } = setup({ activeKeysMax: 2, keysMax: 3 });
    commit([register(1)]); // genesis key + line2: 2 active
    const line3 = new TestGateway('acme', 'gw-3');
    expect(code(ledger.checkBlock([register(2, line3)], tipOf(ledger)))).toBe('registry_full');
    commit([revoke(2, line2.key.keyId)]); // 1 active, 2 in all
    commit([register(3, line3)]); // 2 active, 3 in all
    const line4 = new TestGateway('acme', 'gw-4');
    commit([revoke(4, line3.key.keyId, 'gw-3')]);
    expect(ledger.checkBlock([register(5, line4)], tipOf(ledger))).toMatch(
      /^registry_full: transaction 0: 1 active keys \(at most 2\), 3 in all \(at most 3\)/,
    );
  });

  it('pending configuration transactions are bounded, per member and in all; a second one for a pending seq is refused', () => {
    const { ledger, order, register } = setup();
    const first = register(1);
    expect(order.admit(txIdOf(first), first, 0)).toBeNull();
    const twin = register(1, new TestGateway('acme', 'gw-8'));
    expect(code(order.admit(txIdOf(twin), twin, 0))).toBe('config_replay');
    for (let s = 2; s <= configPendingPerMemberMax; s++) {
      const tx = register(s, new TestGateway('acme', `gw-${s + 10}`));
      expect(order.admit(txIdOf(tx), tx, 0)).toBeNull();
    }
    const over = register(configPendingPerMemberMax + 1, new TestGateway('acme', 'gw-over'));
    expect(code(order.admit(txIdOf(over), over, 0))).toBe('config_pending_full');
    expect(ledger.metrics().registry.configPending).toBe(configPendingPerMemberMax);
    // All of them fit one block, in sequence order, as a primary proposes them.
    expect(order.select(tipOf(ledger), budget)).toHaveLength(configPendingPerMemberMax);
    expect(configPendingMax).toBeGreaterThanOrEqual(configPendingPerMemberMax);
  });

  it('validators applying the same blocks hold the same registry; its rows load back to it', () => {
    const s = setup();
    const other = new Ledger({
      registry: gatewayRegistryOf(s.genesis, registryBounds),
      genesis: s.genesis,
      genesisHash,
    });
    const blocks: Block[] = [];
    const line3 = new TestGateway('acme', 'gw-3');
    const txs = [[s.register(1)], [s.register(2, line3)], [s.revoke(3, s.line2.key.keyId)]];
    const saved = new Map<string, string>();
    for (const list of txs) {
      blocks.push(s.next(list));
      for (const r of s.commit(list).registry) saved.set(r.key, r.data);
    }
    for (const b of blocks) other.apply(b);
    expect(other.registry.rows()).toEqual(s.ledger.registry.rows());
    const loaded = gatewayRegistryOf(s.genesis, registryBounds);
    for (const [k, v] of saved) loaded.loadRow(k, v);
    expect(loaded.rows()).toEqual(s.ledger.registry.rows());
    expect(loaded.activeCount).toBe(s.ledger.registry.activeCount);
    expect(() =>
      loaded.loadRow(
        `#key:${line3.key.keyId}`,
        saved.get(`#key:${line3.key.keyId}`)!.replace('"gw-3"', '"gw-x"'),
      ),
    ).toThrow(/rebinds a key/);
    expect(new GatewayRegistry([]).sequence('acme')).toBe(0);
    // A block applying a change that fails is a broken invariant (more than f faulty): it throws.
    const fresh = new Ledger({
      registry: gatewayRegistryOf(s.genesis, registryBounds),
      genesis: s.genesis,
      genesisHash,
    });
    expect(() => fresh.apply(blockOf(1, genesisHash, [s.register(2)]))).toThrow(/config_seq_gap/);
  });
});

describe('a ledger for a real genesis', () => {
  it("checks configuration transactions against the genesis's chain id and identity roots", async () => {
    const f = await allianceFixture({ members: ['acme', 'bolt', 'cast', 'dyna'] });
    try {
      const g = f.alliance.genesis;
      const ledger = Ledger.forGenesis(g);
      const line = new TestGateway('acme', 'gw-9');
      const payload = {
        v: 1 as const,
        chainId: g.chainId,
        member: 'acme',
        seq: 1,
        op: 'register' as const,
        gateway: 'gw-9',
        key: publicKeyRecord(line.key),
      };
      expect(
        ledger.checkTx(signConfigTx(payload, loadKeyFile(f.alliance.identityRootFiles.get('acme')!))),
      ).toBeNull();
      expect(
        code(ledger.checkTx(signConfigTx(payload, loadKeyFile(f.alliance.identityRootFiles.get('bolt')!)))),
      ).toBe('config_bad_signature');
      // The member's validator key is not its identity root.
      expect(code(ledger.checkTx(signConfigTx(payload, loadKeyFile(f.alliance.keyFiles.get('acme')!))))).toBe(
        'config_bad_signature',
      );
    } finally {
      f.cleanup();
    }
  });
});
