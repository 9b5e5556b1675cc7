/**
 * A gateway's path to finality through a validator's HTTP API (chain role `client`): real
 * ConsensusNodes (n = 4, in-memory transport), a real socket between the gateway and the API, and
 * the refusals every validator gives to forged, replayed and unknown-key events.
 */
import { join } from 'node:path';
import type { FastifyInstance } from 'fastify';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildValidatorApi } from '../../src/api/validator-api.ts';
import { signedEventApplication } from '../../src/consensus/node/events.ts';
import { generateKey } from '../../src/crypto/keys.ts';
import { encodeEvent, type SignedEvent } from '../../src/edge/event.ts';
import { httpChainClient } from '../../src/edge/http-chain.ts';
import { localChainClient } from '../../src/edge/local-chain.ts';
import { silentLogger } from '../../src/edge/logger.ts';
import { EventSigner, emptyHead } from '../../src/edge/signer.ts';
import { Submitter } from '../../src/edge/submitter.ts';
import { EventVerifier } from '../../src/edge/verify.ts';
import { Outbox } from '../../src/store/outbox.ts';
import { type MemoryAlliance, memoryAlliance, until } from '../consensus/node/cluster-fixture.ts';
import { signEvents, testGateways } from '../consensus/node/events-fixture.ts';
import { tempDir } from '../helpers/tmp.ts';

const gateways = testGateways(2, 'batch');
let alliance: MemoryAlliance;
const apis: FastifyInstance[] = [];
const urls: string[] = [];

beforeAll(async () => {
  alliance = await memoryAlliance(4, gateways);
  for (const m of alliance.members) {
    const node = await alliance.start(m);
    const { txId } = signedEventApplication({ keys: gateways.registry });
    const api = buildValidatorApi({ node, txId, chain: localChainClient(node, txId) });
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
    const gw = gateways.gateways[0]!;
    const verifier = new EventVerifier(gateways.registry);
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
    const gw = gateways.gateways[1]!;
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
    const stranger = new EventSigner(
      { enterprise: 'intruder', site: 's', line: 'l', gateway: 'gw-x' },
      generateKey(),
      { mode: 'event' },
    );
    const unknown = stranger.sign(
      [
        {
          kind: 'part_completed',
          dataClass: 'process',
          station: 'S',
          device: 'd',
          sourceTimeMs: 1,
          values: {},
        },
      ],
      emptyHead,
    ).events[0]!;

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

  it('answers bad requests with 400 and a reason', async () => {
    const res = await apis[0]!.inject({ method: 'POST', url: '/v1/events', payload: { not: 'an array' } });
    expect(res.statusCode).toBe(400);
    const c = await apis[0]!.inject({ method: 'GET', url: '/v1/commits?after=-1' });
    expect(c.statusCode).toBe(400);
    const r = await apis[0]!.inject({ method: 'POST', url: '/v1/receipts', payload: { ids: ['xyz'] } });
    expect(r.statusCode).toBe(400);
  });
});
