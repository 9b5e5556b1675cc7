/**
 * A gateway hosting its member's validator (chain role `validator`, src/gateway/chain-link.ts) runs the
 * ledger with the gateway keys of the genesis and serves the same validator HTTP API as
 * `masbc-edge peer` (both through src/validator/validator.ts); a leftover `chain.gatewayKeys` (the
 * keys come from the genesis) is refused by validation. Real libp2p and
 * SQLite, a real socket; the other members are not running (nothing needs a quorum here).
 */
import { mkdirSync, readdirSync, readlinkSync, writeFileSync } from 'node:fs';
import { type AddressInfo, createServer } from 'node:net';
import { join, resolve } from 'node:path';
import { describe, expect, it } from 'vitest';
import { encodeSubmission, type SubmitVerdict } from '../../src/consensus/runtime/client.ts';
import type { NodeMetrics, NodeStatus } from '../../src/consensus/runtime/node.ts';
import { generateKey, loadKeyFile } from '../../src/crypto/keys.ts';
import { createLocalAlliance, type LocalAlliance } from '../../src/devtools/local-alliance.ts';
import { encodeBody } from '../../src/event/event.ts';
import { EventSigner, emptyHead } from '../../src/event/signer.ts';
import { openChainLink } from '../../src/gateway/chain-link.ts';
import { loadConfig } from '../../src/gateway/config/config.ts';
import { type Logger, silentLogger } from '../../src/log/logger.ts';
import { bearer, tokenFor } from '../api/credentials-fixture.ts';
import { tempDir } from '../helpers/tmp.ts';

/** A logger keeping its warnings. */
function recordingLogger(warnings: string[]): Logger {
  const log: Logger = { ...silentLogger, warn: (msg) => warnings.push(msg), child: () => log };
  return log;
}

/**
 * An alliance of four with acme's gateway gw-line1, and a gateway.yaml hosting acme's validator with
 * these extra `chain:` lines (given the alliance) and top-level lines.
 */
async function validatorGateway(
  name: string,
  chainLines: (alliance: LocalAlliance) => string[],
  topLines: string[] = [],
): Promise<{ file: string; alliance: LocalAlliance }> {
  const dir = tempDir(name);
  const alliance = await createLocalAlliance({
    dir: join(dir, 'alliance'),
    members: ['acme', 'bolt', 'cobalt', 'dyn'],
    chainId: 'embedded-test',
    gateways: { acme: ['gw-line1'] },
  });
  mkdirSync(join(dir, 'devices'));
  const file = join(dir, 'gateway.yaml');
  writeFileSync(
    file,
    [
      'gateway: { id: gw-line1, enterprise: acme, site: plant1, line: line1 }',
      'dataDir: data',
      'chain:',
      '  role: validator',
      `  genesis: ${alliance.genesisFile}`,
      ...chainLines(alliance).map((l) => `  ${l}`),
      ...topLines,
      '',
    ].join('\n'),
  );
  return { file, alliance };
}

describe.each([
  { thread: true, where: 'on its own worker thread' },
  { thread: false, where: "on the gateway's event loop" },
])("a gateway's embedded validator, $where", ({ thread }) => {
  it('runs the ledger with the genesis keys and serves the validator API', async () => {
    const { file, alliance } = await validatorGateway(
      'embedded',
      (a) => [`memberKeyFile: ${a.keyFiles.get('acme')}`, `thread: ${thread}`],
      ['api: { enabled: true, host: 127.0.0.1, port: 0 }'],
    );
    const link = (await openChainLink(loadConfig(file), silentLogger))!;
    try {
      expect(link.role).toBe('validator');
      const url = link.apiUrl!;
      const key = loadKeyFile(alliance.gatewayKeyFiles.get('acme/gw-line1')!);
      const own = new EventSigner(
        { enterprise: 'acme', site: 'plant1', line: 'line1', gateway: 'gw-line1' },
        key,
      );
      const { batch, events } = own.sign(
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
      );
      const mine = { tx: batch.tx, bodies: events.map((e) => encodeBody(e.body!)) };
      // A gateway of acme whose key the genesis does not register.
      const stranger = new EventSigner(
        { enterprise: 'acme', site: 'plant1', line: 'line1', gateway: 'gw-stranger' },
        generateKey(),
      ).sign(
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
      );
      const post = async (gateway: string, b: { tx: Uint8Array; bodies: string[] }) => {
        const token = await tokenFor(alliance, 'acme', { role: 'gateway', gateway });
        const res = await fetch(`${url}/v1/batches`, {
          method: 'POST',
          headers: { 'content-type': 'application/octet-stream', ...bearer(token) },
          body: encodeSubmission([b]) as Uint8Array<ArrayBuffer>,
        });
        return ((await res.json()) as { verdicts: SubmitVerdict[] }).verdicts[0]!;
      };
      expect(await post('gw-line1', mine)).toEqual({ accepted: true, bodiesKept: true });
      const refused = await post('gw-stranger', { tx: stranger.batch.tx, bodies: [] });
      expect(refused).toMatchObject({ accepted: false, bodiesKept: false });
      expect(refused.accepted === false && refused.detail).toMatch(/^unknown_key/);
      const reader = bearer(await tokenFor(alliance, 'acme'));
      const status = (await (await fetch(`${url}/v1/status`, { headers: reader })).json()) as NodeStatus;
      expect(status).toMatchObject({ memberId: 'acme', state: 'running', mempoolTxs: 1 });
      expect(status.invalidTxs).toEqual({ unknown_key: 1 });
      const metrics = (await (
        await fetch(`${url}/v1/metrics`, { headers: reader })
      ).json()) as NodeMetrics & {
        bodies: { bodies: number };
      };
      expect(metrics.app).toMatchObject({ height: 0, pending: 1, ready: 1 });
      expect(metrics.bodies.bodies).toBe(1);
      expect((await fetch(`${url}/health`)).status).toBe(503); // no quorum of peers
      // The gateway's own ChainClient reaches the same validator (over the worker's port, or directly).
      expect(link.node === null).toBe(thread);
      expect(await link.client.submit([mine])).toEqual([
        { accepted: false, reason: 'duplicate', detail: 'already pending', bodiesKept: true },
      ]);
      expect(await link.client.receipts([batch.txId])).toEqual([null]);
      expect(link.status()).toMatchObject({ memberId: 'acme', state: 'running' });
    } finally {
      await link.stop();
    }
  });
});

describe('the configuration of an embedded validator', () => {
  it('refuses a leftover chain.gatewayKeys, naming the field', async () => {
    const { file } = await validatorGateway('embedded-keys', (a) => [
      `memberKeyFile: ${a.keyFiles.get('acme')}`,
      'gatewayKeys: gateway-keys.json',
    ]);
    expect(() => loadConfig(file)).toThrow(/chain\.gatewayKeys/);
  });

  it('warns when the genesis registers no key for the hosting gateway', async () => {
    const { file } = await validatorGateway('embedded-unregistered', (a) => [
      `memberKeyFile: ${a.keyFiles.get('acme')}`,
      'thread: false',
    ]);
    const config = loadConfig(file);
    config.gateway.gateway.id = 'gw-line9';
    const warnings: string[] = [];
    const link = (await openChainLink(config, recordingLogger(warnings)))!;
    try {
      expect(warnings).toContainEqual(expect.stringMatching(/no key for this gateway \(acme\/gw-line9\)/));
    } finally {
      await link.stop();
    }
  });
});

describe.each([true, false])('an embedded validator that cannot start (thread: %s)', (thread) => {
  it('fails with the reason (here: the member key file does not exist), and leaves nothing running', async () => {
    // A key file that does not exist.
    const { file } = await validatorGateway('embedded-bad', (a) => [
      `memberKeyFile: ${a.keyFiles.get('acme')}.nope`,
      `thread: ${thread}`,
    ]);
    const config = loadConfig(file);
    const before = await settled(config.paths.dataDir);
    await expect(openChainLink(config, silentLogger)).rejects.toThrow(/\.nope/);
    await expectBackTo(before, config.paths.dataDir);
  });

  it('fails when its API port is taken, after its stores and libp2p opened, and leaves nothing running', async () => {
    const taken = createServer();
    await new Promise<void>((r) => taken.listen(0, '127.0.0.1', r));
    try {
      const port = (taken.address() as AddressInfo).port;
      const { file } = await validatorGateway(
        'embedded-port',
        (a) => [`memberKeyFile: ${a.keyFiles.get('acme')}`, `thread: ${thread}`],
        [`api: { enabled: true, host: 127.0.0.1, port: ${port} }`],
      );
      const config = loadConfig(file);
      const before = await settled(config.paths.dataDir);
      await expect(openChainLink(config, silentLogger)).rejects.toThrow(/EADDRINUSE/);
      await expectBackTo(before, config.paths.dataDir);
    } finally {
      await new Promise((r) => taken.close(r));
    }
  });
});

/**
 * What the process holds: its active handles by type (listening sockets, connections, worker
 * threads, timers), and its open files under `dataDir` (the SQLite stores and their WAL).
 */
async function running(dataDir: string): Promise<{ handles: Record<string, number>; files: string[] }> {
  const handles: Record<string, number> = {};
  for (const r of process.getActiveResourcesInfo()) handles[r] = (handles[r] ?? 0) + 1;
  const files: string[] = [];
  for (const fd of readdirSync('/proc/self/fd')) {
    try {
      const target = readlinkSync(`/proc/self/fd/${fd}`);
      if (target.startsWith(resolve(dataDir))) files.push(target);
    } catch {
      // closed since the listing
    }
  }
  return { handles, files: files.sort() };
}

/** What the process holds once it stops changing (ports probed while making the alliance close late). */
async function settled(dataDir: string): Promise<Awaited<ReturnType<typeof running>>> {
  let last = await running(dataDir);
  for (let i = 0; i < 100; i++) {
    await new Promise((r) => setTimeout(r, 50));
    const now = await running(dataDir);
    if (JSON.stringify(now) === JSON.stringify(last)) return now;
    last = now;
  }
  throw new Error(`the process's handles never settled: ${JSON.stringify(last)}`);
}

/**
 * Waits (up to 5 s: closing sockets and ending a worker take a few event-loop turns) until the process
 * holds no resource of any kind beyond what it held before, and no file under `dataDir`. (Fewer is
 * fine: timers of earlier tests run out meanwhile.)
 */
async function expectBackTo(before: Awaited<ReturnType<typeof running>>, dataDir: string): Promise<void> {
  const extra = (now: Awaited<ReturnType<typeof running>>) => ({
    handles: Object.entries(now.handles).filter(([kind, n]) => n > (before.handles[kind] ?? 0)),
    files: now.files.filter((f) => !before.files.includes(f)),
  });
  const none = { handles: [], files: [] };
  const deadline = Date.now() + 5_000;
  let now = extra(await running(dataDir));
  while (JSON.stringify(now) !== JSON.stringify(none) && Date.now() < deadline) {
    await new Promise((r) => setTimeout(r, 50));
    now = extra(await running(dataDir));
  }
  expect(now, `held before: ${JSON.stringify(before)}`).toEqual(none);
}
