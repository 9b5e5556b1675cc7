/**
 * OPC UA driver against the CNC simulator (node-opcua server) over real sockets: subscribe and poll,
 * status codes to quality, security modes with user name and X.509 user certificates, a server
 * restart mid-run (readings resume, no duplicate monitored items, no leaked handles), and a stop
 * while connecting. One server and one client PKI for the whole file (start-up costs ~0.7 s each).
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DataType } from 'node-opcua';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type Simulators, startSimulators } from '../../simulators/index.ts';
import { OpcuaDriver } from '../../src/drivers/opcua/driver.ts';
import { itUnless } from '../helpers/skip.ts';
import { deviceMap, testContext } from './helpers/context.ts';
import { startProxy } from './helpers/proxy.ts';

const root = mkdtempSync(join(tmpdir(), 'masbc-opcua-test-'));
const pkiFolder = join(root, 'client-pki');
let sims: Simulators;
let endpoint: string;

beforeAll(async () => {
  sims = await startSimulators({
    seed: 11,
    startMs: Date.UTC(2026, 0, 5, 6),
    scenario: { cycleTimeMs: 100, downProbability: 0 },
    opcua: {
      pkiDir: join(root, 'server-pki'),
      users: [{ username: 'operator', password: 'op-secret' }],
      // A controller publishing single-precision values (issue 14, item 7).
      extraVariables: [
        { name: 'Torque', dataType: DataType.Float, value: 1211.4 },
        { name: 'Feed', dataType: DataType.Float, value: 0.1 },
      ],
    },
    modbus: false,
    mqtt: false,
    dataDir: join(root, 'sim'),
  });
  endpoint = sims.endpoints.opcua!;
});

afterAll(async () => {
  await sims?.stop();
  rmSync(root, { recursive: true, force: true });
});

const tags = [
  { name: 'state', nodeId: 'ns=1;s=CNC1.State' },
  { name: 'lot', nodeId: 'ns=1;s=CNC1.Job.LotId' },
  { name: 'count', nodeId: 'ns=1;s=CNC1.Job.PartCount' },
  { name: 'diameter', nodeId: 'ns=1;s=CNC1.Quality.Diameter' },
  { name: 'speed', nodeId: 'ns=1;s=CNC1.Spindle.Speed', mode: 'poll', pollIntervalMs: 100 },
];

function cnc(connection: Record<string, unknown> = {}, extraTags: Record<string, unknown>[] = []) {
  return deviceMap('opcua', {
    id: 'cnc1',
    connection: { endpoint, reconnectMaxDelayMs: 500, requestTimeoutMs: 2_000, ...connection },
    tags: [...tags, ...extraTags],
  });
}

/** Advances the simulation by `ms` of simulated time in small steps, letting I/O run between them. */
async function advance(ms: number, stepMs = 50): Promise<void> {
  for (let t = 0; t < ms; t += stepMs) {
    sims.step(sims.engine.nowMs + stepMs);
    await new Promise((r) => setImmediate(r));
  }
}

describe('opcua driver against the CNC simulator', () => {
  it('subscribes and polls; status codes become quality with the status name as reason', async () => {
    const t = testContext({ pkiFolder });
    const driver = new OpcuaDriver(
      cnc({}, [
        { name: 'ghost', nodeId: 'ns=1;s=CNC1.NoSuchNode' },
        { name: 'ghostPolled', nodeId: 'ns=1;s=CNC1.AlsoMissing', mode: 'poll', pollIntervalMs: 100 },
      ]),
      t.ctx,
    );
    await driver.start();
    try {
      await t.waitFor(
        () => t.latest('state') !== undefined && t.latest('speed') !== undefined,
        'first values',
      );
      expect(t.latest('ghost')).toMatchObject({ quality: 'bad', reason: 'BadNodeIdUnknown', value: null });
      await t.waitFor(() => t.latest('ghostPolled') !== undefined, 'polled ghost');
      expect(t.latest('ghostPolled')).toMatchObject({ quality: 'bad', reason: 'BadNodeIdUnknown' });
      const before = sims.engine.status('CNC1') as { partCount: number };
      await advance(1_000);
      const after = sims.engine.status('CNC1') as { partCount: number; lot: string };
      await t.waitFor(() => t.latest('count')?.value === after.partCount, 'count to follow the engine');
      expect(after.partCount).not.toBe(before.partCount);
      expect(t.latest('lot')?.value).toBe(after.lot);
      // Every part is seen (samplingInterval 0, queue): the count never skips while connected.
      const counts = t.readings.filter((r) => r.tag === 'count').map((r) => r.value as number);
      for (let i = 1; i < counts.length; i++) expect([counts[i - 1]! + 1, 0]).toContain(counts[i]);
      // Source timestamps are the simulator's (simulated time), not the gateway's clock.
      expect(Math.abs(t.latest('count')!.sourceTimeMs - sims.engine.nowMs)).toBeLessThan(1_000);
      // Bad readings are emitted when the reason changes, not on every poll.
      expect(t.readings.filter((r) => r.tag === 'ghostPolled')).toHaveLength(1);
      const h = driver.health();
      expect(h).toMatchObject({ state: 'connected', errors: { 'monitored-item': 1 } });
      expect(h.detail).toMatchObject({ monitoredItems: 4 });
    } finally {
      await driver.stop();
      t.cleanup();
    }
  });

  it('stores a Float as the shortest decimal that reads back as the same float32 (issue 14, item 7)', async () => {
    const t = testContext({ pkiFolder });
    const driver = new OpcuaDriver(
      deviceMap('opcua', {
        connection: { endpoint, reconnectMaxDelayMs: 500 },
        tags: [
          { name: 'torque', nodeId: 'ns=1;s=Extras.Torque' },
          { name: 'feed', nodeId: 'ns=1;s=Extras.Feed', mode: 'poll', pollIntervalMs: 100 },
        ],
      }),
      t.ctx,
    );
    await driver.start();
    try {
      await t.waitFor(
        () => t.latest('torque') !== undefined && t.latest('feed') !== undefined,
        'both values',
      );
      // On the wire a Float is 32 bits: 1211.4 arrives as 1211.4000244140625 unless written back short.
      expect(t.latest('torque')).toMatchObject({ value: 1211.4, quality: 'good' });
      expect(t.latest('feed')).toMatchObject({ value: 0.1, quality: 'good' });
    } finally {
      await driver.stop();
      t.cleanup();
    }
  });

  const secure = [
    ['Sign', 'Basic256Sha256'],
    ['SignAndEncrypt', 'Basic256Sha256'],
  ] as const;
  for (const [securityMode, securityPolicy] of secure) {
    it(`connects with ${securityMode} ${securityPolicy} and a user name`, async () => {
      const t = testContext({ pkiFolder });
      const driver = new OpcuaDriver(
        cnc({
          securityMode,
          securityPolicy,
          auth: { type: 'username', username: 'operator', password: 'op-secret' },
        }),
        t.ctx,
      );
      await driver.start();
      try {
        await t.waitFor(() => t.latest('state')?.quality === 'good', `a reading over ${securityMode}`);
      } finally {
        await driver.stop();
        t.cleanup();
      }
    });
  }

  it('refuses a wrong password: counted, backing off, no readings', async () => {
    const t = testContext({ pkiFolder });
    const driver = new OpcuaDriver(
      cnc({
        securityMode: 'SignAndEncrypt',
        securityPolicy: 'Basic256Sha256',
        auth: { type: 'username', username: 'operator', password: 'wrong' },
      }),
      t.ctx,
    );
    await driver.start();
    try {
      await t.waitFor(() => (driver.health().errors.session ?? 0) >= 1, 'a refused session');
      expect(driver.health().lastError).toMatch(/BadUserAccessDenied|BadIdentityTokenRejected|access/i);
      expect(t.readings).toHaveLength(0);
    } finally {
      await driver.stop();
      t.cleanup();
    }
  });

  it('with serverCertificate trusted-only, refuses a server certificate it does not trust', async () => {
    const t = testContext({ pkiFolder: join(root, 'strict-pki') });
    const driver = new OpcuaDriver(
      cnc({ securityMode: 'Sign', securityPolicy: 'Basic256Sha256', serverCertificate: 'trusted-only' }),
      t.ctx,
    );
    await driver.start();
    try {
      await t.waitFor(() => (driver.health().errors.connect ?? 0) >= 1, 'a refused connection');
      expect(t.readings).toHaveLength(0);
    } finally {
      await driver.stop();
      t.cleanup();
    }
  });

  it('reconnects after server restarts: readings resume, no duplicate monitored items, no leaked handles', async () => {
    const t = testContext({ pkiFolder });
    const driver = new OpcuaDriver(cnc(), t.ctx);
    await driver.start();
    try {
      await t.waitFor(() => t.latest('count')?.quality === 'good', 'first values');
      await advance(300);
      const resourcesBefore = resourceCounts();
      for (let round = 1; round <= 2; round++) {
        await sims.faults.restartOpcua({ downMs: 200 });
        await t.waitFor(() => t.latest('count')?.reason === 'disconnected', `bad on disconnect (${round})`);
        await t.waitFor(
          () => driver.health().reconnects === round && t.latest('count')?.quality === 'good',
          'back',
        );
        const from = t.readings.length;
        await advance(1_000);
        const target = (sims.engine.status('CNC1') as { partCount: number }).partCount;
        await t.waitFor(() => t.latest('count')?.value === target, 'count after restart');
        // Each change arrives once: duplicated monitored items would deliver every value twice.
        const counts = t.readings
          .slice(from)
          .filter((r) => r.tag === 'count')
          .map((r) => r.value);
        expect(new Set(counts).size).toBe(counts.length);
        expect(driver.health().detail).toMatchObject({ monitoredItems: 4 });
      }
      // Sockets, timers and handles of the old sessions are gone: no kind of resource outnumbers what
      // the process held before the restarts (waited for: closing and immediates take a few turns).
      const leaked = () =>
        Object.entries(resourceCounts()).filter(([kind, n]) => n > (resourcesBefore[kind] ?? 0));
      await t
        .waitFor(() => leaked().length === 0, 'the old sessions released')
        .catch((err) => {
          throw new Error(
            `${(err as Error).message}: ${JSON.stringify(leaked())} more than ${JSON.stringify(resourcesBefore)}`,
          );
        });
    } finally {
      await driver.stop();
      t.cleanup();
    }
  });

  it('keeps a quiet subscription connected, the socket idle far longer than requestTimeoutMs (issue 14, item 1)', async () => {
    const t = testContext({ pkiFolder });
    // Publishing every second, keep-alive count 10: the server says nothing for 10 s when nothing
    // changes. The request timeout is 300 ms: it must not be the socket's idle timeout.
    const driver = new OpcuaDriver(
      deviceMap('opcua', {
        connection: { endpoint, requestTimeoutMs: 300, publishingIntervalMs: 1_000 },
        tags: [
          { name: 'nominal', nodeId: 'ns=1;s=CNC1.Quality.DiameterNominal' },
          { name: 'tolerance', nodeId: 'ns=1;s=CNC1.Quality.DiameterTolerance' },
        ],
      }),
      t.ctx,
    );
    const before = sims.opcua!.sessions();
    await driver.start();
    try {
      await t.waitFor(() => t.latest('nominal')?.quality === 'good', 'first values');
      // Eight request timeouts of silence (the issue saw a drop every ~6 s with 5 s).
      await new Promise((r) => setTimeout(r, 8 * 300));
      const h = driver.health();
      expect({ reconnects: h.reconnects, errors: h.errors, state: h.state }).toEqual({
        reconnects: 0,
        errors: {},
        state: 'connected',
      });
      expect(t.readings.filter((r) => r.reason === 'disconnected')).toEqual([]);
      // One session created for it, and it is still the one open.
      expect(sims.opcua!.sessions().created - before.created).toBe(1);
    } finally {
      await driver.stop();
      t.cleanup();
    }
  });

  it('keeps the first values of a publish that arrives in the same socket read as the items it is for', async () => {
    // The server's bytes reach the client in 300 ms chunks: the CreateMonitoredItems response and the
    // first publish response (the items' initial values) arrive together.
    const proxy = await startProxy(Number(new URL(endpoint.replace('opc.tcp', 'http')).port), '127.0.0.1', {
      coalesceMs: 300,
    });
    const t = testContext({ pkiFolder });
    const driver = new OpcuaDriver(
      deviceMap('opcua', {
        connection: { endpoint: `opc.tcp://127.0.0.1:${proxy.port}`, requestTimeoutMs: 2_000 },
        tags: [
          { name: 'nominal', nodeId: 'ns=1;s=CNC1.Quality.DiameterNominal' },
          { name: 'tolerance', nodeId: 'ns=1;s=CNC1.Quality.DiameterTolerance' },
        ],
      }),
      t.ctx,
    );
    await driver.start();
    try {
      // Constant values: their initial notification is the only one they ever get.
      await t.waitFor(
        () => t.latest('nominal')?.quality === 'good' && t.latest('tolerance')?.quality === 'good',
        'the initial values',
      );
    } finally {
      await driver.stop();
      await proxy.close();
      t.cleanup();
    }
  });

  it('refuses at construction a publishing interval the session would not outlive; allows 60 s by default', () => {
    const t = testContext({ pkiFolder });
    const map = (connection: Record<string, unknown>) =>
      deviceMap('opcua', { connection: { endpoint, ...connection }, tags: [tags[0]] });
    expect(
      () => new OpcuaDriver(map({ publishingIntervalMs: 60_000, sessionTimeoutMs: 30_000 }), t.ctx),
    ).toThrow(/publishingIntervalMs 60000 needs sessionTimeoutMs of at least as much/);
    const slow = new OpcuaDriver(map({ publishingIntervalMs: 60_000 }), t.ctx);
    expect(slow.health().detail).toMatchObject({ keepAliveMs: 5_000, transportTimeoutMs: 15_000 });
    t.cleanup();
  });

  it('detects a connection gone silent (pulled cable) within three keep-alive periods and reconnects', async () => {
    const proxy = await startProxy(Number(new URL(endpoint.replace('opc.tcp', 'http')).port));
    const t = testContext({ pkiFolder });
    // Publishing 100 ms x keep-alive count 10: the server answers at least every second.
    const driver = new OpcuaDriver(
      deviceMap('opcua', {
        connection: {
          endpoint: `opc.tcp://127.0.0.1:${proxy.port}`,
          requestTimeoutMs: 1_000,
          reconnectMaxDelayMs: 500,
        },
        tags: tags.filter((tag) => tag.mode !== 'poll'),
      }),
      t.ctx,
    );
    await driver.start();
    try {
      await t.waitFor(() => t.latest('state')?.quality === 'good', 'first values');
      // The bound comes from the driver's own keep-alive period: three of them, plus the request
      // timeout of the last keep-alive, twice over for a loaded machine.
      const { keepAliveMs } = driver.health().detail as { keepAliveMs: number };
      const detectMs = 2 * (3 * keepAliveMs + 1_000);
      proxy.freeze();
      const frozenAt = performance.now();
      await t.waitFor(() => t.latest('state')?.reason === 'disconnected', 'the stall detected', 2 * detectMs);
      expect(performance.now() - frozenAt).toBeLessThan(detectMs);
      await t.waitFor(
        () => driver.health().reconnects === 1 && t.latest('state')?.quality === 'good',
        'back',
      );
      const e = driver.health().errors;
      expect((e.stalled ?? 0) + (e.disconnected ?? 0)).toBeGreaterThanOrEqual(1);
    } finally {
      await driver.stop();
      await proxy.close();
      t.cleanup();
    }
  });

  it('stops promptly while connecting to a server that never answers, leaving no socket open', async () => {
    const closed: Promise<void>[] = [];
    const sockets = new Set<Socket>();
    const silent = createServer((s) => {
      s.resume(); // read (and ignore) the client's HEL, so its FIN is seen
      sockets.add(s);
      closed.push(new Promise((r) => s.on('close', () => r())));
    });
    await new Promise<void>((r) => silent.listen(0, '127.0.0.1', r));
    const port = (silent.address() as { port: number }).port;
    const t = testContext({ pkiFolder });
    const requestTimeoutMs = 60_000;
    const driver = new OpcuaDriver(
      deviceMap('opcua', {
        connection: { endpoint: `opc.tcp://127.0.0.1:${port}`, requestTimeoutMs },
        tags: [tags[0]],
      }),
      t.ctx,
    );
    await driver.start();
    await new Promise<void>((r) => silent.once('connection', () => r()));
    const started = performance.now();
    await driver.stop();
    // Promptly: not waiting for the silent server (a stop that did would take the request timeout).
    expect(performance.now() - started).toBeLessThan(requestTimeoutMs / 4);
    expect(t.readings).toHaveLength(0);
    let timer: NodeJS.Timeout | undefined;
    const outcome = await Promise.race([
      Promise.all(closed).then(() => 'closed'),
      new Promise((r) => {
        timer = setTimeout(() => r('still open'), 3_000);
      }),
    ]);
    clearTimeout(timer);
    expect(outcome).toBe('closed');
    for (const s of sockets) s.destroy();
    await new Promise<void>((r) => silent.close(() => r()));
    t.cleanup();
  });
});

/** node-opcua-pki sets OPENSSL_CONF in this process (to "undefined" when unset): give openssl a clean one. */
function opensslEnv(): NodeJS.ProcessEnv {
  const { OPENSSL_CONF: _ignored, ...env } = process.env;
  return env;
}

describe('opcua X.509 user certificate', () => {
  const noOpenssl = (() => {
    try {
      execFileSync('openssl', ['version']);
      return null;
    } catch {
      return 'openssl is not installed (apt-get install -y openssl)';
    }
  })();

  itUnless(noOpenssl)(
    'authenticates with a user certificate and key from files under the data folder',
    async () => {
      const t = testContext({ pkiFolder });
      execFileSync(
        'openssl',
        [
          'req',
          '-x509',
          '-newkey',
          'rsa:2048',
          '-nodes',
          '-days',
          '2',
          '-subj',
          '/CN=masbc-operator',
          '-keyout',
          join(t.ctx.dataDir, 'user.key'),
          '-out',
          join(t.ctx.dataDir, 'user.crt'),
        ],
        { stdio: 'pipe', env: opensslEnv() },
      );
      const driver = new OpcuaDriver(
        cnc({
          securityMode: 'SignAndEncrypt',
          securityPolicy: 'Basic256Sha256',
          auth: { type: 'certificate', certificateFile: 'user.crt', privateKeyFile: 'user.key' },
        }),
        t.ctx,
      );
      await driver.start();
      try {
        await t.waitFor(
          () => t.latest('state')?.quality === 'good' || (driver.health().errors.session ?? 0) > 0,
          'a reading or a refusal',
        );
        expect(driver.health().lastError ?? '').toBe('');
        expect(t.latest('state')?.quality).toBe('good');
      } finally {
        await driver.stop();
        t.cleanup();
      }
    },
  );
});

/** The process's active resources (sockets, servers, timers, …) by type. */
function resourceCounts(): Record<string, number> {
  const out: Record<string, number> = {};
  for (const r of process.getActiveResourcesInfo()) out[r] = (out[r] ?? 0) + 1;
  return out;
}
