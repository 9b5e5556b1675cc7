/**
 * Issue 11's story, end to end with real processes on a 4-member alliance (four `masbc-edge peer`
 * processes over libp2p on loopback, acme's holding its office signer; acme's line gateway as a
 * `masbc-edge run` process in chain role client; the press on the Modbus simulator):
 *
 *   a customer order registered at acme (`orders create`), the customer's credential issued
 *   (`credential issue`), production on the simulator bound to it by the order tag the press map
 *   reads, the customer's trace over HTTP (`trace`) holding exactly its order's process events, each
 *   verifying offline (`verify`) and failing on a flipped byte, the order closed (`orders state …
 *   closed`) and its completeness proven; another customer and another member refused; the tally
 *   identical at all four validators (`tally`).
 */
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type Simulators, startSimulators } from '../../simulators/index.ts';
import { createLocalAlliance, type LocalAlliance } from '../../src/devtools/local-alliance.ts';
import { PeerProcess } from '../consensus/cluster/peers.ts';
import { runCli } from '../helpers/cli.ts';
import { tempDir } from '../helpers/tmp.ts';
import { GatewayProcess, waitUntil } from './fixtures.ts';

const members = ['acme', 'borealis', 'cobalt', 'dynamo'];
let dir: string;
let alliance: LocalAlliance;
let peers: PeerProcess[];
let sims: Simulators;
let gateway: GatewayProcess;
let timer: NodeJS.Timeout | undefined;
const file = (name: string) => join(dir, name);

async function cli(args: string[]): Promise<string> {
  const r = await runCli(args);
  if (r.code !== 0) throw new Error(`masbc-edge ${args.join(' ')} exited ${r.code}:\n${r.out}${r.err}`);
  return r.out;
}

/** Issues a credential with a member's identity root into `out` (as its operator would). */
async function issue(member: string, out: string, ...args: string[]): Promise<string> {
  const token = await cli([
    'credential',
    'issue',
    '--genesis',
    alliance.genesisFile,
    '--identity-root',
    alliance.identityRootFiles.get(member)!,
    ...args,
  ]);
  writeFileSync(file(out), token, { mode: 0o600 });
  return file(out);
}

beforeAll(async () => {
  dir = tempDir('story');
  alliance = await createLocalAlliance({
    dir: file('alliance'),
    members,
    chainId: 'story',
    gateways: { acme: ['gw-line1', 'office'] },
    params: { viewChangeTimeoutMs: 2_000 } as never,
  });
  peers = members.map(
    (m) =>
      new PeerProcess(m, [
        '--genesis',
        alliance.genesisFile,
        '--key',
        alliance.keyFiles.get(m)!,
        '--data',
        file(`data-${m}`),
        '--status-every-ms',
        '0',
        ...(m === 'acme' ? ['--office-key', alliance.gatewayKeyFiles.get('acme/office')!] : []),
      ]),
  );
  await Promise.all(peers.map((p) => p.start()));
  sims = await startSimulators({
    seed: 7,
    dataDir: file('sims'),
    scenario: { cycleTimeMs: 250, partsPerLot: 500 },
    opcua: false,
    modbus: { tcp: { port: 0 } },
    mqtt: false,
  });
}, 120_000);

afterAll(async () => {
  clearInterval(timer);
  await gateway?.stop();
  await sims?.stop();
  await Promise.all((peers ?? []).map((p) => p.stop()));
}, 60_000);

describe("a customer follows its order from acme's press, and proves what it sees", () => {
  it('registers, produces, traces, verifies, closes and proves completeness; others are refused', async () => {
    const [acme, borealis] = peers as [PeerProcess, PeerProcess];
    // The press starts its first lot: its order id is the simulator's (what its PLC register says).
    let simNow = sims.engine.nowMs;
    for (
      let i = 0;
      i < 100 && sims.groundTruth.query({ kind: 'lot_started', machine: 'PRESS1' }).length === 0;
      i++
    ) {
      simNow += 10;
      sims.step(simNow);
    }
    const firstLot = sims.groundTruth.query({ kind: 'lot_started', machine: 'PRESS1' })[0] as {
      lot: string;
      order: string;
    };
    expect(firstLot).toBeDefined();
    const order = firstLot.order;

    // 1. acme's operator registers the order, and issues the customer's credential for it.
    const ops = await issue('acme', 'ops.jwt', '--role', 'reader', '--subject', 'acme sales office');
    const api = ['--api', acme.url, '--credential', ops];
    expect(
      await cli([
        'orders',
        'create',
        ...api,
        '--order',
        order,
        '--customer',
        'globex',
        '--product',
        'BRACKET-B12',
        '--quantity',
        '500',
      ]),
    ).toContain(`order ${order} accepted`);
    const globex = await issue(
      'acme',
      'globex.jwt',
      '--role',
      'customer',
      '--subject',
      'globex',
      '--order',
      order,
    );
    const initech = await issue(
      'acme',
      'initech.jwt',
      '--role',
      'customer',
      '--subject',
      'initech',
      '--order',
      'ORD-OTHER',
    );
    const borealisReader = await issue(
      'borealis',
      'borealis.jwt',
      '--role',
      'reader',
      '--subject',
      'borealis ops',
    );

    // 2. The line gateway (chain role client, with its gateway credential) reads the press.
    const gwData = file('gateway-data');
    await issue('acme', 'gateway.jwt', '--role', 'gateway', '--subject', 'line 1', '--gateway', 'gw-line1');
    const devices = file('devices');
    mkdirSync(devices, { recursive: true });
    writeFileSync(
      join(devices, 'press1.yaml'),
      readFileSync('config/devices/press1.yaml', 'utf8').replace(
        /port: \d+/,
        `port: ${sims.endpoints.modbusTcpPort}`,
      ),
    );
    const yaml = readFileSync('config/gateway.yaml', 'utf8')
      .replace(/^dataDir: .*$/m, `dataDir: ${gwData}`)
      .replace(/^keyFile: .*$/m, `keyFile: ${alliance.gatewayKeyFiles.get('acme/gw-line1')}`)
      .replace(/^ {2}id: .*$/m, '  id: gw-line1')
      .replace(/^ {2}enterprise: .*$/m, '  enterprise: acme')
      .replace(/^ {2}port: 8090$/m, '  port: 0')
      .replace(
        /^chain:\n(?: .*\n)*/m,
        [
          'chain:',
          '  role: client',
          `  validatorUrl: ${acme.url}`,
          `  genesis: ${alliance.genesisFile}`,
          `  credentialFile: ${file('gateway.jwt')}`,
          '',
        ].join('\n'),
      );
    writeFileSync(file('gateway.yaml'), yaml);
    gateway = new GatewayProcess(file('gateway.yaml'), gwData);
    await gateway.start(60_000);
    await new Promise((r) => setTimeout(r, 1_000)); // a first poll: the press counter's baseline
    expect(await cli(['orders', 'state', order, 'in_production', ...api])).toContain('in_production');

    // 3. Production: the press runs its first lot (of this order) in real time, then stops.
    timer = setInterval(() => {
      simNow += 20;
      sims.step(simNow);
    }, 20);
    await new Promise((r) => setTimeout(r, 6_000));
    clearInterval(timer);
    const parts = sims.groundTruth
      .query({ kind: 'part_completed', machine: 'PRESS1' })
      .filter((p) => (p as { order: string }).order === order);
    expect(parts.length).toBeGreaterThan(5);

    // 4. The customer's trace over HTTP: exactly its order's process events, once all are final.
    const traceFile = file('trace.json');
    const partsTraced = async () => {
      await cli(['trace', '--api', acme.url, '--credential', globex, '--order', order, '--out', traceFile]);
      const b = JSON.parse(readFileSync(traceFile, 'utf8'));
      return b.events.filter((e: { envelope: { kind: string } }) => e.envelope.kind === 'part_completed')
        .length;
    };
    await waitUntil(
      async () => (await partsTraced()) === parts.length,
      `${parts.length} parts in the trace`,
      60_000,
    );
    const open = JSON.parse(readFileSync(traceFile, 'utf8'));
    for (const e of open.events) {
      expect(e.envelope.dataClass).toBe('process');
      expect(e.envelope.enterprise).toBe('acme');
      expect(e.body.order).toBe(order);
    }
    const verified = await runCli(['verify', traceFile, '--genesis', alliance.genesisFile]);
    expect(verified.code, verified.err).toBe(0);
    expect(verified.out).toMatch(/completeness not proven: the order is not closed/);

    // 5. Any flipped byte fails offline: a body value, an envelope, a batch signature, a Merkle path, a certificate.
    type Loose = {
      events: { body: { salt: string }; envelope: { sourceTimeMs: number } }[];
      batches: { signature: string; path: string[]; index: number }[];
      blocks: { certificate: unknown }[];
    };
    const flips: [string, (b: Loose) => void][] = [
      [
        'body',
        (b) => {
          b.events[0]!.body.salt = flipChar(b.events[0]!.body.salt);
        },
      ],
      [
        'envelope',
        (b) => {
          b.events[0]!.envelope.sourceTimeMs += 1;
        },
      ],
      [
        'signature',
        (b) => {
          b.batches[0]!.signature = flipChar(b.batches[0]!.signature);
        },
      ],
      [
        'path',
        (b) => {
          const batch = b.batches[0]!;
          if (batch.path.length > 0) batch.path[0] = flipChar(batch.path[0]!);
          else batch.index += 1;
        },
      ],
      [
        'certificate',
        (b) => {
          const text = JSON.stringify(b.blocks[0]!.certificate);
          b.blocks[0]!.certificate = JSON.parse(
            text.replace(/"[A-Za-z0-9_-]{40,}"/, (m) => `"${flipChar(m.slice(1, -1))}"`),
          );
        },
      ],
    ];
    for (const [what, flip] of flips) {
      const b = JSON.parse(readFileSync(traceFile, 'utf8')) as Loose;
      flip(b);
      writeFileSync(file(`flipped-${what}.json`), JSON.stringify(b));
      const r = await runCli(['verify', file(`flipped-${what}.json`), '--genesis', alliance.genesisFile]);
      expect(r.code, `${what}: ${r.out}`).toBe(1);
    }

    // 6. Closed: the member commits the summary; the customer's bundle proves nothing was withheld.
    const closed = await cli(['orders', 'state', order, 'closed', ...api]);
    expect(closed).toMatch(new RegExp(`order ${order} closed: \\d+ events, root [0-9a-f]{64}`));
    await cli(['trace', '--api', acme.url, '--credential', globex, '--order', order, '--out', traceFile]);
    const done = await runCli(['verify', traceFile, '--genesis', alliance.genesisFile]);
    expect(done.code, done.err).toBe(0);
    expect(done.out).toMatch(/complete: the order was closed with exactly these \d+ events/);
    const withheld = JSON.parse(readFileSync(traceFile, 'utf8'));
    withheld.events.pop();
    writeFileSync(file('withheld.json'), JSON.stringify(withheld));
    expect((await runCli(['verify', file('withheld.json'), '--genesis', alliance.genesisFile])).code).toBe(1);

    // 7. Another customer, and another member, are refused; borealis holds none of acme's bodies.
    const other = await runCli(['trace', '--api', acme.url, '--credential', initech, '--order', order]);
    expect([other.code, other.err]).toEqual([1, expect.stringMatching(/403 not_your_order/)]);
    const member = await runCli([
      'trace',
      '--api',
      acme.url,
      '--credential',
      borealisReader,
      '--order',
      order,
    ]);
    expect([member.code, member.err]).toEqual([1, expect.stringMatching(/403 other_member/)]);
    const atBorealis = JSON.parse(
      await cli(['trace', '--api', borealis.url, '--credential', borealisReader, '--order', order]),
    );
    expect(atBorealis.events).toEqual([]);

    // 8. The tally: the same output at all four validators, as of one height.
    const heights = await Promise.all(peers.map(async (p) => (await p.status()).committedHeight));
    const at = Math.min(...heights);
    const tallies = await Promise.all(
      peers.map(async (p) => {
        const reader = await issue(
          p.member,
          `${p.member}-reader.jwt`,
          '--role',
          'reader',
          '--subject',
          'tally',
        );
        return cli([
          'tally',
          '--api',
          p.url,
          '--credential',
          reader,
          '--from',
          '2000-01-01',
          '--to',
          '2100-01-01',
          '--period',
          'all',
          '--at',
          String(at),
        ]);
      }),
    );
    expect(new Set(tallies).size).toBe(1);
    expect(tallies[0]).toMatch(new RegExp(`^acme\\t\\S+\\tpart_completed\\t${parts.length}$`, 'm'));
  }, 480_000);
});

function flipChar(s: string): string {
  const i = Math.floor(s.length / 2);
  return s.slice(0, i) + (s[i] === 'A' ? 'B' : 'A') + s.slice(i + 1);
}
