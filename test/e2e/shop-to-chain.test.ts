/**
 * Shop floor to finality, exactly once, through outages. Real sockets and processes throughout:
 * simulators (Modbus TCP press, MQTT scanner) → a gateway process (`masbc-edge run`, hosting the
 * first member's validator) → 4 validators over libp2p (three `masbc-edge peer` processes).
 *
 * One alliance goes through the scenarios in order; after each, the whole chain is checked:
 * every event the gateway stored is on chain exactly once, in seq order, linked, with a valid
 * signature and a valid certificate on its block (by `masbc-edge chain verify` on every validator),
 * and what the scenario engine produced (parts, scans) equals what is on chain, event for event.
 */
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { gatewayRegistryOf } from '../../src/consensus/app/index.ts';
import { ChainStore, chainStorePath } from '../../src/consensus/runtime/block-store.ts';
import { chainContext } from '../../src/consensus/runtime/node.ts';
import { fromHex } from '../../src/crypto/hash.ts';
import { generateKey } from '../../src/crypto/keys.ts';
import { encodeEvent, type SignedEvent } from '../../src/event/event.ts';
import { EventSigner, emptyHead } from '../../src/event/signer.ts';
import { EventVerifier } from '../../src/event/verify.ts';
import { Outbox, outboxPath } from '../../src/store/outbox.ts';
import { tempDir } from '../helpers/tmp.ts';
import {
  type E2eAlliance,
  enterprise,
  GatewayProcess,
  gatewayId,
  startAlliance,
  startShopFloor,
  verifyChainCli,
  waitUntil,
  writeGatewayConfig,
} from './fixtures.ts';

const T = 1_000;
const gatewayKills = Number(process.env.E2E_GATEWAY_KILLS ?? 30);
let root: string;
let alliance: E2eAlliance;
let floor: Awaited<ReturnType<typeof startShopFloor>>;
let gateway: GatewayProcess;

beforeAll(async () => {
  root = tempDir('e2e');
  alliance = await startAlliance(join(root, 'alliance'), T);
  floor = await startShopFloor(4242, join(root, 'simulators'));
  const file = writeGatewayConfig(join(root, 'gateway'), alliance, floor.sims);
  gateway = new GatewayProcess(file, join(root, 'gateway', 'data'));
  await gateway.start();
  // The press's first poll is the counter's baseline: production starts only after it.
  await waitUntil(
    () => (gateway.status()?.devices ?? []).some((d) => d.device === 'press1' && d.lastGoodReadMs !== null),
    'first press poll',
    10_000,
  );
  floor.run();
}, 90_000);

afterAll(async () => {
  await gateway?.stop();
  await Promise.all(alliance?.peers.map((p) => p.stop()) ?? []);
  await floor?.stop();
});

const decoder = new TextDecoder();

/** Stops production, lets the gateway read the last values, and waits until everything is final. */
async function settle(timeoutMs = 60_000): Promise<void> {
  floor.pause();
  const pausedAt = Date.now();
  await waitUntil(
    () => {
      const s = gateway.status();
      const press = s?.devices.find((d) => d.device === 'press1');
      return (
        s !== null &&
        (press?.lastGoodReadMs ?? 0) > pausedAt + 300 &&
        s.outbox.pending === 0 &&
        s.submitter?.inFlight === 0
      );
    },
    'every stored event final',
    timeoutMs,
  );
  const height = gateway.status()!.chain!.committedHeight;
  await waitUntil(
    async () =>
      (await Promise.all(alliance.peers.map((p) => p.status()))).every((s) => s.committedHeight >= height),
    "every validator at the gateway validator's height",
    timeoutMs,
  );
}

/** The chain as one validator stores it: every event, in block order. */
function chainEvents(dataDir: string): SignedEvent[] {
  const txId = (tx: Uint8Array) => fromHex((JSON.parse(decoder.decode(tx)) as { id: string }).id);
  const store = ChainStore.open({
    path: chainStorePath(dataDir),
    chain: chainContext(alliance.alliance.genesis),
    txId,
  });
  try {
    const out: SignedEvent[] = [];
    for (let h = 1; h <= store.height; h++) {
      for (const tx of store.blockAt(h)!.block.txs) out.push(JSON.parse(decoder.decode(tx)) as SignedEvent);
    }
    return out;
  } finally {
    store.close();
  }
}

/** The gateway's outbox, read beside the running gateway (SQLite WAL allows it). */
function outboxEvents(): { seq: number; id: string; committed: boolean }[] {
  const outbox = Outbox.open({
    path: outboxPath(gateway.dataDir),
    verifier: new EventVerifier(gatewayRegistryOf(alliance.alliance.genesis)),
    maxBytes: 1 << 30,
    maxRows: 1e7,
  });
  try {
    const out = [];
    for (let after = 0; ; ) {
      const rows = [];
      for (let seq = after + 1; seq <= outbox.head.seq && rows.length < 1000; seq++)
        rows.push(outbox.get(seq)!);
      if (rows.length === 0) break;
      out.push(...rows.map((r) => ({ seq: r.seq, id: r.event.id, committed: r.committed })));
      after = rows.at(-1)!.seq;
    }
    return out;
  } finally {
    outbox.close();
  }
}

/**
 * The whole-chain checks of the module comment. Period rules keep producing events while the
 * simulators are paused, so the comparison is: everything final in the outbox is on every chain,
 * each chain holds a gap-free prefix of the outbox (same ids), and parts and scans match production.
 */
async function checkChain(): Promise<void> {
  await settle();
  // Read before the chains: everything final by now must be on every chain.
  const before = outboxEvents();
  const finalSeq = before.filter((e) => e.committed).at(-1)?.seq ?? 0;
  expect(
    before.slice(0, finalSeq).every((e) => e.committed),
    'final events form a prefix of the outbox',
  ).toBe(true);
  const verified: number[] = [];
  for (const p of alliance.peers) {
    // Blocks, certificates, every event's signature, the gateway's seq/prev chain from 1, in order.
    const out = await verifyChainCli(p.dataDir, alliance.alliance.genesisFile);
    const k = Number(new RegExp(`${enterprise}/${gatewayId}: seq 1\\.\\.(\\d+)`).exec(out)?.[1]);
    expect(k, `${p.member}: ${out}`).toBeGreaterThanOrEqual(finalSeq);
    expect(out).toMatch(new RegExp(` ${k} events with valid signatures`));
    verified.push(k);
  }
  const events = chainEvents(alliance.peers[0]!.dataDir);
  // Read after the chains: nothing can be on chain that the gateway had not stored.
  const after = outboxEvents();
  expect(Math.max(...verified), 'nothing on chain that the gateway did not store').toBeLessThanOrEqual(
    after.length,
  );
  expect(
    events.map((e) => e.id),
    "the chain holds the outbox's events, in order, once",
  ).toEqual(after.slice(0, events.length).map((e) => e.id));
  const gt = floor.sims.groundTruth;
  const parts = events.filter((e) => e.env.kind === 'part_completed' && e.body?.device === 'press1');
  expect(parts.length, 'press parts on chain vs produced').toBe(
    gt.query({ kind: 'part_completed', machine: 'PRESS1' }).length,
  );
  const scans = events.filter((e) => e.env.kind === 'material_consumed');
  expect(scans.length, 'scans on chain vs produced').toBe(gt.query({ kind: 'material_consumed' }).length);
  expect(parts.length).toBeGreaterThan(0);
  expect(scans.length).toBeGreaterThan(0);
}

async function produceFor(ms: number): Promise<void> {
  floor.run();
  await new Promise((r) => setTimeout(r, ms));
}

describe('shop floor to finality through outages (real sockets and processes)', { timeout: 180_000 }, () => {
  it('every produced event reaches a final block exactly once, in per-gateway seq order', async () => {
    await produceFor(5_000);
    await checkChain();
  });

  it('no quorum (2 of 4 validators stopped): acquisition goes on, nothing lost or doubled, the backlog drains', async () => {
    floor.run();
    const [, cobalt, dynamo] = alliance.peers as [
      never,
      (typeof alliance.peers)[number],
      (typeof alliance.peers)[number],
    ];
    await Promise.all([cobalt.stop(), dynamo.stop()]);
    const heightAtOutage = gateway.status()!.chain!.committedHeight;
    const storedAtOutage = gateway.status()!.outbox.head.seq;
    await new Promise((r) => setTimeout(r, 5_000));
    const during = gateway.status()!;
    expect(during.outbox.head.seq, 'acquisition continued').toBeGreaterThan(storedAtOutage);
    expect(during.outbox.pending, 'a backlog built up').toBeGreaterThan(0);
    expect(during.chain!.committedHeight, 'no block without a quorum').toBeLessThanOrEqual(
      heightAtOutage + 1,
    );
    await Promise.all([cobalt.start(), dynamo.start()]);
    await produceFor(2_000);
    await checkChain();
  });

  it('a validator killed mid-run catches up after a restart, and the alliance keeps committing', async () => {
    floor.run();
    const borealis = alliance.peers[0]!;
    await borealis.kill();
    const before = gateway.status()!.chain!.committedHeight;
    await waitUntil(
      () => gateway.status()!.chain!.committedHeight > before + 5,
      'commits with one validator down',
      20_000,
    );
    await borealis.start();
    await produceFor(2_000);
    await checkChain();
  });

  it(`the gateway killed with SIGKILL ${gatewayKills} times at random moments loses nothing acknowledged and doubles nothing`, {
    timeout: 600_000,
  }, async () => {
    for (let i = 0; i < gatewayKills; i++) {
      floor.run();
      await new Promise((r) => setTimeout(r, 200 + Math.floor(Math.random() * 1_500)));
      await gateway.kill();
      // Production goes on while the gateway is down: counters jump, scans queue at the broker.
      await new Promise((r) => setTimeout(r, Math.floor(Math.random() * 500)));
      await gateway.start();
    }
    await produceFor(1_000);
    await checkChain();
  });

  it('a forged, a replayed and an unknown-key event are refused by every validator, and counted', async () => {
    const events = chainEvents(alliance.peers[1]!.dataDir);
    const replayed = JSON.stringify(events[0]);
    const forged = JSON.parse(replayed) as SignedEvent;
    forged.body!.values = { diameter: { v: 99, unit: 'mm', q: 'good' } };
    // Signed correctly, but by a key the genesis does not register.
    const rogue = new EventSigner({ enterprise, site: 's', line: 'l', gateway: 'gw-rogue' }, generateKey(), {
      mode: 'event',
    });
    const unknown = rogue.sign(
      [
        {
          kind: 'part_completed',
          dataClass: 'process',
          station: 'ST-20',
          device: 'press1',
          sourceTimeMs: Date.now(),
          values: {},
        },
      ],
      emptyHead,
    ).events[0]!;
    const enc = new TextEncoder();
    const canonical = (e: SignedEvent) => enc.encode(encodeEvent(e));
    for (const p of alliance.peers) {
      const [f, r, u] = await p.submit([canonical(forged), enc.encode(replayed), canonical(unknown)]);
      expect(f?.accepted, `${p.member} forged`).toBe(false);
      expect(r?.accepted, `${p.member} replayed`).toBe(false);
      expect(u?.accepted, `${p.member} unknown key`).toBe(false);
      expect(u && !u.accepted && u.detail, `${p.member} names the unknown key`).toMatch(/unknown_key/);
      const s = await p.status();
      const refused = Object.values(s.refusals).reduce((a, b) => a + b, 0);
      expect(refused).toBeGreaterThanOrEqual(3);
    }
  });
});
