/**
 * POST /v1/config and GET /v1/config/<member> (src/api/config-routes.ts) over four real
 * ConsensusNodes running the ledger (in-memory transport, block stores on disk): a registration
 * commits at every validator and is saved in each store's state rows; every refusal has its code.
 */
import type { FastifyInstance } from 'fastify';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildValidatorApi } from '../../src/api/validator-api.ts';
import { signConfigTx } from '../../src/consensus/app/config-tx.ts';
import { localChainClient } from '../../src/consensus/runtime/client.ts';
import { registryFromRows } from '../../src/consensus/runtime/ledger.ts';
import { generateKey, loadKeyFile, publicKeyRecord } from '../../src/crypto/keys.ts';
import { type MemoryAlliance, memoryAlliance, until } from '../consensus/runtime/cluster-fixture.ts';
import { bearer, tokenFor } from './credentials-fixture.ts';

let alliance: MemoryAlliance;
/** A reader credential of member-1 (every API route but /health needs one: docs/api.md). */
let reader: Record<string, string> = {};
let api: FastifyInstance;

beforeAll(async () => {
  alliance = await memoryAlliance(4, { gateways: 1 });
  for (const m of alliance.members) await alliance.start(m);
  reader = bearer(await tokenFor(alliance.alliance, 'member-1'));
  const node = alliance.nodes.get('member-1')!;
  const bodies = alliance.bodies.get('member-1')!;
  // The registry as this validator's store holds it (what `startValidator` passes is the ledger's own).
  const registry = {
    sequence: (m: string) =>
      registryFromRows(alliance.alliance.genesis, node.store.loadAppState().rows).sequence(m),
    keysOf: (m: string) =>
      registryFromRows(alliance.alliance.genesis, node.store.loadAppState().rows).keysOf(m),
  };
  api = buildValidatorApi({ node, chain: localChainClient(node, bodies), bodies, registry });
}, 60_000);

afterAll(async () => {
  await api?.close();
  await alliance?.stopAll();
});

const post = (tx: Uint8Array | string, type = 'application/octet-stream') =>
  api.inject({
    method: 'POST',
    url: '/v1/config',
    headers: { 'content-type': type, ...reader },
    payload: Buffer.from(tx),
  });

describe('configuration routes', () => {
  it('a registration commits at every validator and is in every store; each refusal has its stable code', async () => {
    const genesis = alliance.alliance.genesis;
    const root = loadKeyFile(alliance.alliance.identityRootFiles.get('member-1')!);
    const key = publicKeyRecord(generateKey());
    const payload = {
      v: 1 as const,
      chainId: genesis.chainId,
      member: 'member-1',
      seq: 1,
      op: 'register' as const,
      gateway: 'gw-line9',
      key,
    };
    const tx = signConfigTx(payload, root);

    const wrongRoot = await post(
      signConfigTx(payload, loadKeyFile(alliance.alliance.identityRootFiles.get('member-2')!)),
    );
    expect(wrongRoot.statusCode).toBe(422);
    expect(wrongRoot.json()).toMatchObject({ code: 'config_bad_signature' });
    const garbage = await post(new Uint8Array([0xc1, 0, 1, 7]));
    expect([garbage.statusCode, garbage.json().code]).toEqual([422, 'config_malformed']);
    const notConfig = await post('{"hello":1}');
    expect([notConfig.statusCode, notConfig.json().code]).toEqual([400, 'config_malformed']);

    const ok = await post(tx);
    expect(ok.statusCode).toBe(202);
    const id = ok.json().id as string;
    await until(
      () => alliance.members.every((m) => alliance.nodes.get(m)!.store.hasTx(Buffer.from(id, 'hex'))),
      'the registration committed everywhere',
    );
    // Saved in every validator's store, identically.
    const rows = alliance.members.map((m) =>
      JSON.stringify(registryFromRows(genesis, alliance.nodes.get(m)!.store.loadAppState().rows).rows()),
    );
    expect(new Set(rows).size).toBe(1);
    const listed = await api.inject({ method: 'GET', url: '/v1/config/member-1', headers: reader });
    expect(listed.json()).toMatchObject({
      member: 'member-1',
      sequence: 1,
      keys: expect.arrayContaining([
        { gateway: 'gw-line9', keyId: key.keyId, alg: 'ed25519', since: expect.any(Number), revokedAt: null },
      ]),
    });
    // The same bytes again: on the chain already; re-signed for the same seq: a replay.
    const again = await post(tx);
    expect([again.statusCode, again.json().code]).toEqual([409, 'config_replay']);
    const resigned = await post(
      signConfigTx({ ...payload, gateway: 'gw-line8', key: publicKeyRecord(generateKey()) }, root),
    );
    expect([resigned.statusCode, resigned.json().code]).toEqual([409, 'config_replay']);
    const taken = await post(signConfigTx({ ...payload, seq: 2, gateway: 'gw-line8' }, root));
    expect([taken.statusCode, taken.json().code]).toEqual([422, 'config_key_taken']);
    expect(
      (await api.inject({ method: 'GET', url: '/v1/config/NOT A MEMBER', headers: reader })).statusCode,
    ).toBe(400);
    const counted = (alliance.nodes.get('member-1')!.metrics().app as { refusals: Record<string, number> })
      .refusals;
    expect(counted).toMatchObject({ config_bad_signature: 1, config_replay: 1, config_key_taken: 1 });
  });
});
