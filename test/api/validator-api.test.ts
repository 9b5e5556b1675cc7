/**
 * The validator HTTP API: a gateway's path to finality through it (chain role `client`, checking
 * final blocks against the genesis), real ConsensusNodes running the ledger (n = 4, in-memory
 * transport) with their members' body stores, a real socket between the gateway and the API, the
 * refusals of forged, replayed and unknown-key batches and of another member's bodies, blocks and
 * proofs checkable against the genesis alone, and its bounds.
 */
import { join } from 'node:path';
import type { FastifyInstance } from 'fastify';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildValidatorApi } from '../../src/api/validator-api.ts';
import { verifyCertifiedBlock } from '../../src/consensus/core/verify.ts';
import { inclusionProofFromJson, verifyInclusionProof } from '../../src/consensus/runtime/block-store.ts';
import {
  type CommittedBlockInfo,
  encodeSubmission,
  localChainClient,
  type SubmitBatch,
  type SubmitVerdict,
} from '../../src/consensus/runtime/client.ts';
import { chainContext } from '../../src/consensus/runtime/node.ts';
import { certifiedBlockFromJson } from '../../src/consensus/wire/json.ts';
import { toHex } from '../../src/crypto/hash.ts';
import { decodeBatchTx } from '../../src/event/batch.ts';
import { BatchVerifier } from '../../src/event/verify.ts';
import { httpChainClient } from '../../src/gateway/http-chain.ts';
import { Submitter } from '../../src/gateway/submitter.ts';
import { silentLogger } from '../../src/log/logger.ts';
import { Outbox } from '../../src/store/outbox.ts';
import { type MemoryAlliance, memoryAlliance, until } from '../consensus/runtime/cluster-fixture.ts';
import { signEvents, strangerGateway } from '../consensus/runtime/events-fixture.ts';
import { tempDir } from '../helpers/tmp.ts';
import { bearer, tokenFor } from './credentials-fixture.ts';

let alliance: MemoryAlliance;
const apis: FastifyInstance[] = [];
const urls: string[] = [];

beforeAll(async () => {
  // gw-1, gw-2, gw-3 belong to member-1, member-2, member-3.
  alliance = await memoryAlliance(4, { gateways: 3 });
  for (const m of alliance.members) {
    const node = await alliance.start(m);
    const bodies = alliance.bodies.get(m)!;
    const api = buildValidatorApi({ node, chain: localChainClient(node, bodies), bodies });
    urls.push(await api.listen({ host: '127.0.0.1', port: 0 }));
    apis.push(api);
  }
}, 60_000);

afterAll(async () => {
  for (const a of apis) await a.close();
  await alliance?.stopAll();
});

/** A gateway credential for the gateway whose batch this is (issued by its member). */
async function gatewayToken(tx: Uint8Array): Promise<string> {
  const d = decodeBatchTx(tx);
  if (!d.ok) return tokenFor(alliance.alliance, 'member-1', { role: 'gateway', gateway: 'gw-1' });
  return tokenFor(alliance.alliance, d.batch.header.enterprise, {
    role: 'gateway',
    gateway: d.batch.header.gateway,
  });
}

async function submit(url: string, batches: SubmitBatch[], token?: string): Promise<Response> {
  return fetch(`${url}/v1/batches`, {
    method: 'POST',
    headers: {
      'content-type': 'application/octet-stream',
      ...bearer(token ?? (await gatewayToken(batches[0]!.tx))),
    },
    body: encodeSubmission(batches) as Uint8Array<ArrayBuffer>,
  });
}

async function post(url: string, batches: SubmitBatch[], token?: string): Promise<SubmitVerdict[]> {
  const res = await submit(url, batches, token);
  if (res.status !== 200) throw new Error(`HTTP ${res.status} ${await res.text()}`);
  return ((await res.json()) as { verdicts: SubmitVerdict[] }).verdicts;
}

const reader = (member: string) => tokenFor(alliance.alliance, member);

const committedEverywhere = (txId: string) =>
  alliance.members.every((m) => alliance.nodes.get(m)!.store.hasTx(Buffer.from(txId, 'hex')));

describe('validator HTTP API', () => {
  it('a client gateway reaches finality through it: every event final exactly once, its bodies with its member only', async () => {
    const gw = alliance.gateways.gateways[0]!;
    const outbox = Outbox.open({
      path: join(tempDir('api'), 'outbox.db'),
      verifier: new BatchVerifier(alliance.gateways.registry),
      maxBytes: 1 << 30,
      maxRows: 1e6,
    });
    const drafts = Array.from({ length: 300 }, (_, i) => ({
      kind: 'measurement' as const,
      dataClass: 'process' as const,
      station: 'S',
      device: 'oven1',
      sourceTimeMs: Date.now(),
      lot: 'LOT-API',
      values: { t: { v: 180 + i / 100, unit: 'degC', q: 'good' as const } },
    }));
    outbox.append(drafts, gw.signer, { batchEventsMax: 64 });
    const chain = httpChainClient({
      baseUrl: urls[0]!,
      credential: await tokenFor(alliance.alliance, 'member-1', { role: 'gateway', gateway: 'gw-1' }),
      verify: chainContext(alliance.alliance.genesis),
      pollWaitMs: 500,
    });
    const submitter = new Submitter({ outbox, chain, log: silentLogger, tickMs: 10 });
    submitter.start();
    try {
      await until(
        () => outbox.stats().pending === 0 && outbox.stats().bodiesUnconfirmed === 0,
        'every event final, its bodies kept',
        20_000,
      );
      const final = outbox.byLot('LOT-API');
      expect(final).toHaveLength(300);
      expect(final.every((e) => e.committed && (e.height ?? 0) > 0)).toBe(true);
      // Same blocks everywhere, each event exactly once.
      const heights = alliance.members.map((m) => alliance.nodes.get(m)!.store.height);
      const h = Math.min(...heights);
      const ids: string[] = [];
      for (let i = 1; i <= h; i++) {
        const blocks = alliance.members.map((m) => alliance.nodes.get(m)!.store.blockAt(i)!);
        for (const b of blocks) expect(b.block.header.txRoot).toEqual(blocks[0]!.block.header.txRoot);
        for (const tx of blocks[0]!.block.txs) {
          const d = decodeBatchTx(tx);
          if (!d.ok) throw new Error(d.message);
          ids.push(...d.batch.ids.map(toHex));
        }
      }
      expect(new Set(ids).size).toBe(ids.length);
      for (const e of final) expect(ids).toContain(e.event.id);
      expect(submitter.stats()).toMatchObject({ committed: 300, bodiesKept: 5 });
      expect(submitter.stats().latencyMs.samples).toBe(300);
      // The bodies: with member-1 (the gateway's) only.
      expect(alliance.bodies.get('member-1')!.byLot('LOT-API', 1000)).toHaveLength(300);
      for (const m of ['member-2', 'member-3', 'member-4'])
        expect(alliance.bodies.get(m)!.byLot('LOT-API', 1000)).toEqual([]);
    } finally {
      await submitter.stop();
      outbox.close();
    }
  });

  it("refuses a forged, a replayed and an unknown-key batch, and another member's bodies, each with a stable code", async () => {
    const gw = alliance.gateways.gateways[1]!; // member-2's
    const { batches, txIds } = signEvents(gw, 2);
    const first = await post(urls[1]!, [batches[0]!]);
    expect(first[0]).toEqual({ accepted: true, bodiesKept: true });
    await until(() => committedEverywhere(txIds[0]!), 'batch final');

    const forgedTx = batches[1]!.tx.slice();
    forgedTx[forgedTx.length - 8] = forgedTx[forgedTx.length - 8]! ^ 1; // a source-time digit
    const forged = { tx: forgedTx, bodies: batches[1]!.bodies };
    const unknown = signEvents(strangerGateway(), 1).batches[0]!; // claims member-1's gw-stranger
    const [f, r] = await post(urls[1]!, [forged, batches[0]!], await gatewayToken(batches[0]!.tx));
    expect(f).toMatchObject({ accepted: false, reason: 'invalid', bodiesKept: false });
    expect(f!.accepted === false && f!.detail).toMatch(/^root_mismatch/);
    expect(r).toMatchObject({ accepted: false, reason: 'committed', bodiesKept: true });
    const [u] = await post(urls[0]!, [unknown]);
    expect(u).toMatchObject({ accepted: false, reason: 'invalid', bodiesKept: false });
    expect(u!.accepted === false && u!.detail).toMatch(/^unknown_key/);
    // member-2's batch with its bodies, sent to every other member's validator: a gateway credential
    // of that member cannot submit it (403); with member-2's own, the bodies are refused, not kept.
    const nextSigned = signEvents(gw, 1);
    const next = nextSigned.batches[0]!;
    for (const [i, url] of [
      [0, urls[0]!],
      [2, urls[2]!],
      [3, urls[3]!],
    ] as const) {
      const own = await tokenFor(alliance.alliance, `member-${i + 1}`, {
        role: 'gateway',
        gateway: `gw-${i + 1}`,
      });
      const asOwn = await submit(url, [next], own);
      expect(asOwn.status).toBe(403);
      expect(((await asOwn.json()) as { code: string }).code).toBe('other_member_batch');
      const [v] = await post(url, [next]);
      expect(v).toMatchObject({ accepted: false, reason: 'foreign_body', bodiesKept: false });
    }
    for (const m of ['member-1', 'member-3', 'member-4']) {
      expect(alliance.bodies.get(m)!.stats().refused.foreign_body).toBeGreaterThanOrEqual(1);
      expect(alliance.bodies.get(m)!.byTx(nextSigned.txIds[0]!)).toEqual([]);
    }
    expect(alliance.nodes.get('member-2')!.status().invalidTxs.root_mismatch).toBeGreaterThanOrEqual(1);
    expect(alliance.nodes.get('member-1')!.status().invalidTxs.unknown_key).toBeGreaterThanOrEqual(1);
    const health = await fetch(`${urls[2]}/health`);
    expect(health.status).toBe(200);
  });

  it('serves blocks and proofs that check against the genesis alone, and the metrics of the body store', async () => {
    const node = alliance.nodes.get('member-3')!;
    const gw = alliance.gateways.gateways[2]!; // member-3's
    const { batches, txIds } = signEvents(gw, 12, 4);
    const verdicts = await post(urls[2]!, [
      ...batches,
      { tx: new TextEncoder().encode('not a batch'), bodies: [] },
    ]);
    expect(verdicts.slice(0, 3)).toEqual(batches.map(() => ({ accepted: true, bodiesKept: true })));
    expect(verdicts[3]).toMatchObject({ accepted: false, reason: 'invalid' });
    expect(verdicts[3]!.accepted === false && verdicts[3]!.detail).toMatch(/^malformed/);
    await until(() => txIds.every(committedEverywhere), 'the batches final');

    const ctx = chainContext(alliance.alliance.genesis);
    const limits = alliance.alliance.genesis.chainLimits;
    const at = node.store.txLocation(Buffer.from(txIds[2]!, 'hex'))!;
    // Any member's reader may read blocks and proofs (to verify): here member-1's at member-3's API.
    const other = bearer(await reader('member-1'));
    const block = await (await fetch(`${urls[2]}/v1/blocks/${at.height}`, { headers: other })).json();
    const decoded = certifiedBlockFromJson(block, limits);
    expect(decoded.ok && verifyCertifiedBlock(ctx, limits, decoded.value)).toBeNull();
    // What a block holds: envelopes only, never a body (the lot is in the bodies alone).
    expect(JSON.stringify(block)).not.toContain('LOT-');
    for (const id of [txIds[0]!, txIds[2]!]) {
      const proof = inclusionProofFromJson(
        await (await fetch(`${urls[2]}/v1/proofs/${id}`, { headers: other })).json(),
        limits,
      );
      expect(verifyInclusionProof(ctx, proof)).toBeNull();
      expect(toHex(node.txId(proof.tx))).toBe(id);
      proof.index = (proof.index + 1) % Math.max(2, proof.txCount);
      expect(verifyInclusionProof(ctx, proof)).not.toBeNull();
    }
    const api = apis[2]!;
    const headers = bearer(await reader('member-3'));
    expect((await api.inject({ url: `/v1/proofs/${'0'.repeat(64)}`, headers })).statusCode).toBe(404);
    expect((await api.inject({ url: '/v1/proofs/xyz', headers })).statusCode).toBe(400);
    expect((await api.inject({ url: `/v1/blocks/${node.store.height + 1}`, headers })).statusCode).toBe(404);
    expect((await api.inject({ url: '/v1/blocks/0', headers })).statusCode).toBe(400);
    const metrics = (await api.inject({ url: '/v1/metrics', headers })).json();
    expect(metrics.status.committedHeight).toBe(metrics.app.height);
    expect(metrics.app.refusals.malformed).toBeGreaterThanOrEqual(1);
    expect(metrics.bodies.bodies).toBeGreaterThanOrEqual(12);
  });

  it('long-polls /v1/commits until a block is final, with a bound on waiting requests and on bodies', async () => {
    const node = alliance.nodes.get('member-4')!;
    const bodies = alliance.bodies.get('member-4')!;
    const api = buildValidatorApi({
      node,
      chain: localChainClient(node, bodies),
      bodies,
      limits: { commitWaitersMax: 1, bodyBytesMax: 4096, submitBatchesMax: 2 },
    });
    try {
      await api.ready();
      // Quiet first: nothing left to commit anywhere, so the next block is the one submitted below.
      const nodes = [...alliance.nodes.values()];
      await until(
        () => nodes.every((n) => n.status().mempoolTxs === 0 && n.store.height === nodes[0]!.store.height),
        'a quiet alliance',
      );
      const after = node.store.height;
      const headers = bearer(await reader('member-4'));
      // Two requests wait for the next block; only one may: the other is refused at once.
      let firstDone = '';
      const poll = (name: string) =>
        api.inject({ url: `/v1/commits?after=${after}&waitMs=20000`, headers }).then((r) => {
          firstDone ||= name;
          return r;
        });
      const a = poll('a');
      const b = poll('b');
      const refused = await Promise.race([a, b]);
      expect(refused.statusCode).toBe(503);
      const waiting = firstDone === 'a' ? b : a;
      const gw = alliance.gateways.gateways[2]!;
      const { txIds, bytes } = signEvents(gw, 1);
      node.submit(bytes);
      const answer = await waiting;
      expect(answer.statusCode).toBe(200);
      const { blocks } = answer.json() as { blocks: CommittedBlockInfo[] };
      expect(blocks[0]!.height).toBe(after + 1);
      expect(blocks[0]!.txIds).toContain(txIds[0]);
      await until(() => node.store.hasTx(Buffer.from(txIds[0]!, 'hex')), 'the batch final');
      const page = (await api.inject({ url: `/v1/commits?after=0&limit=2`, headers })).json() as {
        blocks: CommittedBlockInfo[];
      };
      expect(page.blocks.map((x) => x.height)).toEqual([1, 2]);

      const binary = {
        'content-type': 'application/octet-stream',
        ...bearer(await tokenFor(alliance.alliance, 'member-4', { role: 'gateway', gateway: 'gw-4' })),
      };
      const big = await api.inject({
        method: 'POST',
        url: '/v1/batches',
        headers: binary,
        payload: Buffer.alloc(5000),
      });
      expect(big.statusCode).toBe(413);
      const three = signEvents(gw, 3).batches;
      const many = await api.inject({
        method: 'POST',
        url: '/v1/batches',
        headers: binary,
        payload: Buffer.from(encodeSubmission(three.map((x) => ({ tx: x.tx, bodies: [] })))),
      });
      expect(many.statusCode).toBe(413);
      const truncated = await api.inject({
        method: 'POST',
        url: '/v1/batches',
        headers: binary,
        payload: Buffer.of(0, 0, 9),
      });
      expect(truncated.statusCode).toBe(400);
      const typed = await api.inject({
        method: 'POST',
        url: '/v1/batches',
        headers: { ...binary, 'content-type': 'text/plain' },
        payload: 'a',
      });
      expect(typed.statusCode).toBe(415);
    } finally {
      await api.close();
    }
  });

  it('answers bad requests with 400 and a reason', async () => {
    const headers = bearer(await reader('member-1'));
    const c = await apis[0]!.inject({ method: 'GET', url: '/v1/commits?after=-1', headers });
    expect(c.statusCode).toBe(400);
    const r = await apis[0]!.inject({
      method: 'POST',
      url: '/v1/receipts',
      payload: { ids: ['xyz'] },
      headers,
    });
    expect(r.statusCode).toBe(400);
    expect(r.json().error).toMatch(/hex transaction ids/);
  });
});
