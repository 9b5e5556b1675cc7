/**
 * A production line joins and leaves a running alliance without a new genesis: four `masbc-edge peer`
 * OS processes over libp2p on loopback; the new gateway's key is generated on "its PC" with
 * `masbc-edge keygen`; its member registers it with `masbc-edge gateway register` (signed by the
 * member's identity-root.key, submitted to its validator's API), its events commit; it is revoked
 * with `masbc-edge gateway revoke`, and its new events are refused by every validator — including
 * one that was down the whole time and caught up by block sync, and one restarted (registry loaded
 * from its store). A registration signed by another member's root is refused and counted.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { signConfigTx } from '../../../src/consensus/app/config-tx.ts';
import type { LedgerMetrics } from '../../../src/consensus/app/ledger.ts';
import { loadPublicKeyFile } from '../../../src/consensus/genesis/members.ts';
import { loadKeyFile } from '../../../src/crypto/keys.ts';
import { encodeBody } from '../../../src/event/event.ts';
import { type ChainHead, EventSigner, emptyHead } from '../../../src/event/signer.ts';
import { runCli } from '../../helpers/cli.ts';
import {
  type Cluster,
  credentialOf,
  type PeerProcess,
  partCompleted,
  startCluster,
  waitFor,
} from './peers.ts';

const T = 1_000;
let dir: string;
let cluster: Cluster;

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'masbc-gwkeys-'));
  cluster = await startCluster(dir, 4, { viewChangeTimeoutMs: T, statusIntervalMs: 100 });
}, 120_000);

afterAll(async () => {
  await cluster?.stopAll();
  rmSync(dir, { recursive: true, force: true });
});

/** A gateway on its own PC: its key from `keygen` there, signing batches of one event. */
class LineGateway {
  readonly #signer: EventSigner;
  #head: ChainHead = emptyHead;
  #n = 0;
  constructor(keyFile: string, member: string, gateway: string) {
    this.#signer = new EventSigner(
      { enterprise: member, site: 'site-1', line: 'line-2', gateway },
      loadKeyFile(keyFile),
    );
  }
  next(): { tx: Uint8Array; id: string; bodies: string[] } {
    const { batch, events, head } = this.#signer.sign([partCompleted(++this.#n)], this.#head);
    this.#head = head;
    return { tx: batch.tx, id: batch.txId, bodies: events.map((e) => encodeBody(e.body!)) };
  }
}

/** A reader credential of the peer's member (every API route but /health needs one: docs/api.md). */
const reader = async (p: PeerProcess) => ({
  authorization: `Bearer ${await credentialOf(p.genesisFile, p.member, 'reader')}`,
});
const committedAt = async (p: PeerProcess, id: string) => {
  const res = await fetch(`${p.url}/v1/receipts`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', ...(await reader(p)) },
    body: JSON.stringify({ ids: [id] }),
  });
  return ((await res.json()) as { receipts: ({ height: number } | null)[] }).receipts[0]?.height ?? null;
};
const registryOf = async (p: PeerProcess) =>
  (await (await fetch(`${p.url}/v1/config/member-1`, { headers: await reader(p) })).json()) as {
    sequence: number;
    keys: { gateway: string; keyId: string; since: number; revokedAt: number | null }[];
  };
const ledgerMetrics = async (p: PeerProcess) => (await p.metrics()).app as LedgerMetrics;

describe('gateways join and leave a running alliance without a new genesis', () => {
  it('registers a new gateway by a configuration transaction, commits its events, revokes it, and every validator refuses its new events', async () => {
    const [acme, bolt, cast, late] = cluster.peers as [PeerProcess, PeerProcess, PeerProcess, PeerProcess];
    const { genesisFile } = cluster.files.alliance;
    const roots = cluster.files.identityRoots;
    // member-4 is down for the whole registration and revocation: it catches up by block sync.
    await late.kill();

    // 1. The line's PC generates its key; only the .pub moves to the member's operator.
    const keyFile = join(dir, 'line2-pc', 'gateway.key');
    const keygen = await runCli(['keygen', '--out', keyFile]);
    expect(keygen.code, keygen.err).toBe(0);
    const pub = loadPublicKeyFile(`${keyFile}.pub`);
    const line = new LineGateway(keyFile, 'member-1', 'gw-line2');
    const early = line.next();
    const [refusedEarly] = await acme.submit([early.tx], [early.bodies]);
    expect(refusedEarly!.accepted === false && refusedEarly!.detail).toMatch(
      /^unknown_key: key [0-9a-f]{32} is not registered/,
    );

    // 2. A registration signed by another member's identity root is refused with a stable code, and counted.
    const forged = signConfigTx(
      {
        v: 1,
        chainId: cluster.files.alliance.genesis.chainId,
        member: 'member-1',
        seq: 1,
        op: 'register',
        gateway: 'gw-line2',
        key: pub,
      },
      loadKeyFile(roots.get('member-2')!),
    );
    const refused = await fetch(`${acme.url}/v1/config`, {
      method: 'POST',
      headers: { 'content-type': 'application/octet-stream', ...(await reader(acme)) },
      body: forged as Uint8Array<ArrayBuffer>,
    });
    expect(refused.status).toBe(422);
    expect(await refused.json()).toMatchObject({ code: 'config_bad_signature' });
    expect((await ledgerMetrics(acme)).refusals.config_bad_signature).toBe(1);
    // The CLI refuses a root that is not the member's own (here: not in the genesis at all).
    const notARoot = await runCli([
      'gateway',
      'register',
      '--genesis',
      genesisFile,
      '--identity-root',
      keyFile,
      '--gateway',
      'gw-line2',
      '--key',
      `${keyFile}.pub`,
      '--validator',
      acme.url,
    ]);
    expect(notARoot.code).toBe(1);
    expect(notARoot.err).toMatch(/is not the identity root of any member of this genesis/);

    // 3. The member registers it with its own identity root.
    const reg = await runCli([
      'gateway',
      'register',
      '--genesis',
      genesisFile,
      '--identity-root',
      roots.get('member-1')!,
      '--gateway',
      'gw-line2',
      '--key',
      `${keyFile}.pub`,
      '--validator',
      acme.url,
    ]);
    expect(reg.code, reg.err).toBe(0);
    const registeredAt = Number(
      /registered member-1\/gw-line2 key [0-9a-f]{32} at height (\d+)/.exec(reg.out)![1],
    );

    // 4. Its events commit (the first one, refused before, now too), at every running validator.
    const events = [early, line.next(), line.next()];
    const answers = await acme.submit(
      events.map((e) => e.tx),
      events.map((e) => e.bodies),
    );
    expect(answers.filter((a) => !a.accepted)).toEqual([]);
    for (const p of [acme, bolt, cast])
      await waitFor(
        async () => (await committedAt(p, events[2]!.id)) !== null,
        `${p.member} commits the new gateway's events`,
        20 * T,
      );
    const heightOf = await committedAt(acme, events[0]!.id);
    expect(heightOf).toBeGreaterThan(registeredAt);

    // 5. Revoked: its new events are refused by every running validator, with a stable code.
    const rev = await runCli([
      'gateway',
      'revoke',
      '--genesis',
      genesisFile,
      '--identity-root',
      roots.get('member-1')!,
      '--gateway',
      'gw-line2',
      '--key',
      `${keyFile}.pub`,
      '--validator',
      acme.url,
    ]);
    expect(rev.code, rev.err).toBe(0);
    const revokedAt = Number(/revoked member-1\/gw-line2 key [0-9a-f]{32} at height (\d+)/.exec(rev.out)![1]);
    const after = line.next();
    for (const p of [acme, bolt, cast]) {
      await waitFor(
        async () => (await registryOf(p)).keys.some((k) => k.revokedAt === revokedAt),
        `${p.member} applies the revocation`,
        20 * T,
      );
      const [a] = await p.submit([after.tx], p === acme ? [after.bodies] : undefined);
      expect(a!.accepted === false && a!.detail, p.member).toMatch(/^revoked_key: /);
      expect((await ledgerMetrics(p)).refusals.revoked_key, p.member).toBeGreaterThanOrEqual(1);
    }
    // A replay of the registration is refused (the sequence moved on).
    const again = await runCli([
      'gateway',
      'register',
      '--genesis',
      genesisFile,
      '--identity-root',
      roots.get('member-1')!,
      '--gateway',
      'gw-line2',
      '--key',
      `${keyFile}.pub`,
      '--validator',
      acme.url,
    ]);
    expect(again.code).toBe(1);
    expect(again.err).toMatch(/already revoked for member-1\/gw-line2/);

    // 6. The validator that was down catches up by block sync and holds the same registry; a
    //    restarted one loads it from its store. Both refuse the revoked key's events.
    await late.start();
    const restarted = bolt;
    await restarted.kill();
    await restarted.start();
    const expected = await registryOf(acme);
    expect(expected.sequence).toBe(2);
    expect(expected.keys.find((k) => k.gateway === 'gw-line2')).toEqual({
      gateway: 'gw-line2',
      keyId: pub.keyId,
      alg: 'ed25519',
      since: registeredAt,
      revokedAt,
    });
    for (const p of [late, restarted]) {
      await waitFor(
        async () => (await p.status()).committedHeight >= revokedAt,
        `${p.member} catches up`,
        30 * T,
      );
      expect(await registryOf(p)).toEqual(expect.objectContaining({ sequence: 2, keys: expected.keys }));
      const [a] = await p.submit([after.tx]);
      expect(a!.accepted === false && a!.detail, p.member).toMatch(/^revoked_key: /);
    }
    // The old events stay valid on the chain: every validator verifies it from the genesis.
    await cluster.stopAll();
    for (const p of cluster.peers) {
      const v = await runCli(['chain', 'verify', '--data', p.dataDir, '--genesis', genesisFile]);
      expect(v.code, `${p.member}: ${v.err}`).toBe(0);
      expect(v.out).toMatch(/2 configuration transactions/);
      expect(v.out).toContain('member-1/gw-line2: seq 1..3');
    }
  }, 180_000);
});
