/**
 * The validator HTTP API: a gateway's path to finality through it (chain role `client`), real
 * ConsensusNodes running the ledger (n = 4, in-memory transport), a real socket between the gateway
 * and the API, the refusals every validator gives to forged, replayed and unknown-key events, raw
 * submissions (NDJSON), blocks and proofs checkable against the genesis alone, and its bounds.
 */
import { join } from 'node:path';
import type { FastifyInstance } from 'fastify';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildValidatorApi } from '../../src/api/validator-api.ts';
import { verifyCertifiedBlock } from '../../src/consensus/core/verify.ts';
import { inclusionProofFromJson, verifyInclusionProof } from '../../src/consensus/runtime/block-store.ts';
import type { CommittedBlockInfo } from '../../src/consensus/runtime/client.ts';
import { localChainClient } from '../../src/consensus/runtime/client.ts';
import { chainContext } from '../../src/consensus/runtime/node.ts';
import { certifiedBlockFromJson } from '../../src/consensus/wire/json.ts';
import { toHex } from '../../src/crypto/hash.ts';
import { encodeEvent, type SignedEvent } from '../../src/event/event.ts';
import { EventVerifier } from '../../src/event/verify.ts';
import { httpChainClient } from '../../src/gateway/http-chain.ts';
import { Submitter } from '../../src/gateway/submitter.ts';
import { silentLogger } from '../../src/log/logger.ts';
import { Outbox } from '../../src/store/outbox.ts';
import { type MemoryAlliance, memoryAlliance, until } from '../consensus/runtime/cluster-fixture.ts';
import { signEvents, strangerGateway } from '../consensus/runtime/events-fixture.ts';
import { tempDir } from '../helpers/tmp.ts';

let alliance: MemoryAlliance;
const apis: FastifyInstance[] = [];
const urls: string[] = [];

beforeAll(async () => {
  alliance = await memoryAlliance(4, { gateways: 3, signing: 'batch' });
  for (const m of alliance.members) {
    const node = await alliance.start(m);
    // member-1 serves it the way a gateway hosting the validator does (sharing its chain client).
    const api =
      m === 'member-1'
        ? buildValidatorApi({ node, chain: localChainClient(node) })
        : buildValidatorApi({ node });
    urls.push(await api.listen({ host: '127.0.0.1', port: 0 }));
    apis.push(api);
  }
}, 60_000);

afterAll(async () => {
  for (const a of apis) await a.close();
  await alliance?.stopAll();
});

async function post(url: string, events: unknown[]) {
  const res = await fetch(`${url}/v1/events`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify(events),
  });
  expect(res.status).toBe(200);
  return ((await res.json()) as { verdicts: { accepted: boolean; reason?: string; detail?: string }[] })
    .verdicts;
}

describe('validator HTTP API', () => {
  it('a client gateway reaches finality through it: every event final exactly once, marked in its outbox', async () => {
    const gw = alliance.gateways.gateways[0]!;
    const verifier = new EventVerifier(alliance.gateways.registry);
    const outbox = Outbox.open({
      path: join(tempDir('api'), 'outbox.db'),
      verifier,
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
    outbox.append(drafts, gw.signer);
    const chain = httpChainClient({ baseUrl: urls[1]!, pollWaitMs: 500 });
    const submitter = new Submitter({ outbox, chain, log: silentLogger, tickMs: 10 });
    submitter.start();
    try {
      await until(() => outbox.stats().pending === 0, 'every event final', 20_000);
      const final = outbox.byLot('LOT-API');
      expect(final).toHaveLength(300);
      expect(final.every((e) => e.committed && (e.height ?? 0) > 0)).toBe(true);
      // Same blocks everywhere, each event exactly once.
      const heights = alliance.members.map((m) => alliance.nodes.get(m)!.store.height);
      const h = Math.min(...heights);
      const ids = new Set<string>();
      let count = 0;
      for (let i = 1; i <= h; i++) {
        const blocks = alliance.members.map((m) => alliance.nodes.get(m)!.store.blockAt(i)!);
        for (const b of blocks) expect(b.block.header.txRoot).toEqual(blocks[0]!.block.header.txRoot);
        for (const tx of blocks[0]!.block.txs) {
          ids.add(JSON.parse(new TextDecoder().decode(tx)).id);
          count++;
        }
      }
      expect(count).toBe(ids.size);
      for (const e of final) expect(ids.has(e.event.id)).toBe(true);
      expect(submitter.stats().latencyMs.samples).toBe(300);
    } finally {
      await submitter.stop();
      outbox.close();
    }
  });

  it('every validator refuses a forged, a replayed and an unknown-key event, and counts the refusal', async () => {
    const gw = alliance.gateways.gateways[1]!;
    const { events } = signEvents(gw, 2);
    const first = await post(urls[0]!, [events[0]]);
    expect(first[0]).toMatchObject({ accepted: true });
    await until(
      () =>
        alliance.members.every((m) => alliance.nodes.get(m)!.store.hasTx(Buffer.from(events[0]!.id, 'hex'))),
      'event final',
    );

    const forged: SignedEvent = JSON.parse(encodeEvent(events[1]!));
    forged.sig = { t: 'event', sig: 'A'.repeat(86) };
    const unknown = signEvents(strangerGateway(), 1).events[0]!;

    for (const url of urls) {
      const [f, r, u] = await post(url, [forged, events[0], unknown]);
      expect(f).toMatchObject({ accepted: false, reason: 'invalid' });
      expect(f!.detail).toMatch(/^bad_signature/);
      expect(r).toMatchObject({ accepted: false, reason: 'committed' });
      expect(u).toMatchObject({ accepted: false, reason: 'invalid' });
      expect(u!.detail).toMatch(/^unknown_key/);
    }
    for (const m of alliance.members) {
      const s = alliance.nodes.get(m)!.status();
      expect(s.refusals.committed).toBeGreaterThanOrEqual(1);
      expect(s.invalidTxs.bad_signature).toBeGreaterThanOrEqual(1);
      expect(s.invalidTxs.unknown_key).toBeGreaterThanOrEqual(1);
    }
    const health = await fetch(`${urls[2]}/health`);
    expect(health.status).toBe(200);
  });

  it('takes exact bytes as NDJSON and serves blocks and proofs that check against the genesis alone', async () => {
    const node = alliance.nodes.get('member-3')!;
    const gw = alliance.gateways.gateways[2]!;
    const { events, bytes } = signEvents(gw, 5);
    const next = signEvents(gw, 1);
    const e = next.events[0]!;
    // The same event with its keys in another order: valid JSON, not its canonical bytes.
    const reordered = new TextEncoder().encode(
      JSON.stringify({ sig: e.sig, id: e.id, env: e.env, body: e.body }),
    );
    const body = Buffer.concat([
      ...bytes.slice(0, 4).flatMap((b) => [b, Buffer.from('\n')]),
      bytes[4]!,
      Buffer.from('\r\n'),
      reordered,
      Buffer.from('\n\n'),
      next.bytes[0]!,
    ]);
    const res = await fetch(`${urls[2]}/v1/txs`, {
      method: 'POST',
      headers: { 'content-type': 'application/x-ndjson' },
      body,
    });
    expect(res.status).toBe(200);
    const { results } = (await res.json()) as {
      results: { accepted: boolean; id?: string; reason?: string; detail?: string }[];
    };
    expect(results.slice(0, 5)).toEqual(events.map((x) => ({ accepted: true, id: x.id })));
    expect(results[5]).toMatchObject({ accepted: false, reason: 'invalid' });
    expect(results[5]!.detail).toMatch(/^malformed/);
    expect(results[6]).toEqual({ accepted: true, id: e.id });
    await until(() => node.store.hasTx(Buffer.from(e.id, 'hex')), 'the events final');

    const ctx = chainContext(alliance.alliance.genesis);
    const limits = alliance.alliance.genesis.chainLimits;
    const at = node.store.txLocation(Buffer.from(e.id, 'hex'))!;
    const block = await (await fetch(`${urls[2]}/v1/blocks/${at.height}`)).json();
    const decoded = certifiedBlockFromJson(block, limits);
    expect(decoded.ok && verifyCertifiedBlock(ctx, limits, decoded.value)).toBeNull();
    for (const id of [events[0]!.id, e.id]) {
      const proof = inclusionProofFromJson(await (await fetch(`${urls[2]}/v1/proofs/${id}`)).json(), limits);
      expect(verifyInclusionProof(ctx, proof)).toBeNull();
      expect(toHex(node.txId(proof.tx))).toBe(id);
      proof.index = (proof.index + 1) % proof.txCount;
      expect(verifyInclusionProof(ctx, proof)).not.toBeNull();
    }
    const api = apis[2]!;
    expect((await api.inject({ url: `/v1/proofs/${'0'.repeat(64)}` })).statusCode).toBe(404);
    expect((await api.inject({ url: '/v1/proofs/xyz' })).statusCode).toBe(400);
    expect((await api.inject({ url: `/v1/blocks/${node.store.height + 1}` })).statusCode).toBe(404);
    expect((await api.inject({ url: '/v1/blocks/0' })).statusCode).toBe(400);
    const metrics = (await api.inject({ url: '/v1/metrics' })).json();
    expect(metrics.status.committedHeight).toBe(metrics.app.height);
    expect(metrics.app.refusals.malformed).toBeGreaterThanOrEqual(1);
  });

  it('long-polls /v1/commits until a block is final, with a bound on waiting requests and on bodies', async () => {
    const node = alliance.nodes.get('member-4')!;
    const api = buildValidatorApi({
      node,
      limits: { commitWaitersMax: 1, bodyBytesMax: 4096, submitEventsMax: 2 },
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
      // Two requests wait for the next block; only one may: the other is refused at once.
      let firstDone = '';
      const poll = (name: string) =>
        api.inject({ url: `/v1/commits?after=${after}&waitMs=20000` }).then((r) => {
          firstDone ||= name;
          return r;
        });
      const a = poll('a');
      const b = poll('b');
      const refused = await Promise.race([a, b]);
      expect(refused.statusCode).toBe(503);
      const waiting = firstDone === 'a' ? b : a;
      const gw = alliance.gateways.gateways[2]!;
      const { events, bytes } = signEvents(gw, 1);
      node.submit(bytes);
      const answer = await waiting;
      expect(answer.statusCode).toBe(200);
      const { blocks } = answer.json() as { blocks: CommittedBlockInfo[] };
      expect(blocks[0]!.height).toBe(after + 1);
      await until(() => node.store.hasTx(Buffer.from(events[0]!.id, 'hex')), 'the event final');
      const page = (await api.inject({ url: `/v1/commits?after=0&limit=2` })).json() as {
        blocks: CommittedBlockInfo[];
      };
      expect(page.blocks.map((b) => b.height)).toEqual([1, 2]);

      const ndjson = { 'content-type': 'application/x-ndjson' };
      const big = await api.inject({
        method: 'POST',
        url: '/v1/txs',
        headers: ndjson,
        payload: 'x'.repeat(5000),
      });
      expect(big.statusCode).toBe(413);
      const many = await api.inject({
        method: 'POST',
        url: '/v1/txs',
        headers: ndjson,
        payload: 'a\nb\nc\n',
      });
      expect(many.statusCode).toBe(413);
      const typed = await api.inject({
        method: 'POST',
        url: '/v1/txs',
        headers: { 'content-type': 'text/plain' },
        payload: 'a',
      });
      expect(typed.statusCode).toBe(415);
    } finally {
      await api.close();
    }
  });

  it('answers bad requests with 400 and a reason', async () => {
    const res = await apis[0]!.inject({ method: 'POST', url: '/v1/events', payload: { not: 'an array' } });
    expect(res.statusCode).toBe(400);
    const c = await apis[0]!.inject({ method: 'GET', url: '/v1/commits?after=-1' });
    expect(c.statusCode).toBe(400);
    const r = await apis[0]!.inject({ method: 'POST', url: '/v1/receipts', payload: { ids: ['xyz'] } });
    expect(r.statusCode).toBe(400);
  });
});
