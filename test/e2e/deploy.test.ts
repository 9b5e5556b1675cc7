/**
 * docs/deploy.md, followed end to end with the real commands: four members, each generating its keys
 * in its own folder (its own machine), each writing its public member file; a genesis assembled from
 * those four public files only (no private key is ever copied anywhere); each member's validator
 * (`masbc-edge peer`) started from it; acme's line gateway (`masbc-edge run`, chain role client)
 * reading the press PLC simulator; its events committed by the alliance, health checked on the
 * gateway and every validator, and the chain verified at another member from the genesis alone.
 *
 * Step numbers are docs/deploy.md's. Bounded: about a minute here; no soak.
 */
import { copyFileSync, mkdirSync, readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { type Simulators, startSimulators } from '../../simulators/index.ts';
import { eventually, freePorts, runCli, type Started, startCli, stopAllCli } from '../helpers/cli.ts';
import { parsePrometheus, sampleValue } from '../helpers/prometheus.ts';
import { tempDir } from '../helpers/tmp.ts';

const members = ['acme', 'borealis', 'cobalt', 'dynamo'] as const;
/** Start-up of four validators and a gateway, and the first final blocks (T = 2 s), with slack. */
const settleMs = 90_000;

let sims: Simulators | undefined;
afterAll(async () => {
  await stopAllCli();
  await sims?.stop();
}, 60_000);

async function ok(args: string[], env: NodeJS.ProcessEnv = {}): Promise<string> {
  const r = await runCli(args, env);
  if (r.code !== 0) throw new Error(`masbc-edge ${args.join(' ')} exited ${r.code}:\n${r.out}${r.err}`);
  return r.out;
}

/** Every file under `dir`, relative. */
function files(dir: string): string[] {
  return readdirSync(dir, { recursive: true, encoding: 'utf8' }).filter((f) =>
    statSync(join(dir, f)).isFile(),
  );
}

describe('docs/deploy.md, end to end', () => {
  it('builds a 4-member alliance from separately generated keys and a genesis from public files only, and commits events', async () => {
    const root = tempDir('deploy');
    const machine = (m: string) => join(root, m);
    const gatewayPc = join(root, 'acme-line1');
    const coordinator = join(root, 'coordinator');
    const ports = await freePorts(4 * 3 + 1);
    const p2p = (i: number) => ports[i]!;
    const api = (i: number) => ports[4 + i]!;
    const opsPort = (i: number) => ports[8 + i]!;
    const gatewayOps = ports[12]!;

    // 2. Keys, each on its own machine: a member key per validator, a key per gateway on its PC.
    await Promise.all([
      ...members.map((m) => ok(['keygen', '--out', join(machine(m), 'peer', 'keys', 'member.key')])),
      ok(['keygen', '--out', join(gatewayPc, 'data', 'keys', 'gateway.key')]),
    ]);
    // The gateway's public key goes to its member's validator machine (public: it can be mailed).
    copyFileSync(
      join(gatewayPc, 'data', 'keys', 'gateway.key.pub'),
      join(machine('acme'), 'gw-line1.key.pub'),
    );

    // 3. Each member writes its member file.
    await Promise.all(
      members.map((m, i) =>
        ok([
          'alliance',
          'member',
          '--id',
          m,
          '--key',
          join(machine(m), 'peer', 'keys', 'member.key'),
          '--addr',
          `/ip4/127.0.0.1/tcp/${p2p(i)}`,
          ...(m === 'acme' ? ['--gateway', `gw-line1=${join(machine('acme'), 'gw-line1.key.pub')}`] : []),
          '--out',
          join(machine(m), `${m}.pub.json`),
        ]),
      ),
    );
    for (const m of members) {
      const text = readFileSync(join(machine(m), `${m}.pub.json`), 'utf8');
      expect(text).not.toMatch(/PRIVATE|BEGIN/);
    }

    // 4. One member assembles the genesis from the four public files it received, and nothing else.
    mkdirSync(coordinator);
    for (const m of members)
      copyFileSync(join(machine(m), `${m}.pub.json`), join(coordinator, `${m}.pub.json`));
    const assemble = (dir: string, out: string) =>
      ok([
        'alliance',
        'genesis',
        '--chain-id',
        'deploy-test',
        '--genesis-time',
        '2026-12-01T06:00:00.000Z',
        ...members.flatMap((m) => ['--member', join(dir, `${m}.pub.json`)]),
        '--out',
        out,
      ]);
    await assemble(coordinator, join(coordinator, 'genesis.json'));
    expect(files(coordinator).filter((f) => f.endsWith('.key') || f.endsWith('.libp2p'))).toEqual([]);
    // Anyone assembling the same files gets the same genesis, byte for byte.
    mkdirSync(join(machine('borealis'), 'received'));
    for (const m of members)
      copyFileSync(
        join(coordinator, `${m}.pub.json`),
        join(machine('borealis'), 'received', `${m}.pub.json`),
      );
    await assemble(
      join(machine('borealis'), 'received'),
      join(machine('borealis'), 'received', 'genesis.json'),
    );
    expect(readFileSync(join(machine('borealis'), 'received', 'genesis.json'), 'utf8')).toBe(
      readFileSync(join(coordinator, 'genesis.json'), 'utf8'),
    );

    // 5. Each member installs the genesis and checks its hash and its own entry.
    const hashes = await Promise.all(
      members.map(async (m) => {
        const genesis = join(machine(m), 'etc', 'genesis.json');
        mkdirSync(join(machine(m), 'etc'), { recursive: true });
        copyFileSync(join(coordinator, 'genesis.json'), genesis);
        const out = await ok(['alliance', 'inspect', '--genesis', genesis]);
        const own = JSON.parse(readFileSync(join(machine(m), `${m}.pub.json`), 'utf8')) as {
          publicKey: { keyId: string };
          peerId: string;
        };
        expect(out).toContain(`validator ${m}: key ${own.publicKey.keyId}, peer id ${own.peerId}`);
        return /genesis hash ([0-9a-f]{64})/.exec(out)![1];
      }),
    );
    expect(new Set(hashes).size).toBe(1);

    // 6. Each member starts its validator.
    const peers: Started[] = await Promise.all(
      members.map((m, i) =>
        startCli(
          [
            'peer',
            '--genesis',
            join(machine(m), 'etc', 'genesis.json'),
            '--key',
            join(machine(m), 'peer', 'keys', 'member.key'),
            '--data',
            join(machine(m), 'peer', 'chain'),
            '--api-host',
            '127.0.0.1',
            '--api-port',
            String(api(i)),
            '--ops-port',
            String(opsPort(i)),
            '--status-every-ms',
            '0',
          ],
          / api (http:\/\/\S+) .* \| status (http:\/\/\S+)$/,
        ),
      ),
    );
    const acmeApi = peers[0]!.match[1]!;
    const statusUrls = peers.map((p) => p.match[2]!);

    // 7. acme's line gateway: its configuration, checked, read once, then run (chain role client).
    sims = await startSimulators({
      seed: 11,
      dataDir: join(root, 'sims'),
      scenario: { cycleTimeMs: 500 },
      clock: { realTime: { tickMs: 50 } },
      opcua: false,
      modbus: { tcp: { port: 0 } },
      mqtt: false,
    });
    const etc = join(gatewayPc, 'etc');
    mkdirSync(join(etc, 'devices'), { recursive: true });
    // The line PC gets its own copy of the genesis: it checks every final block against it.
    copyFileSync(join(coordinator, 'genesis.json'), join(etc, 'genesis.json'));
    writeFileSync(
      join(etc, 'devices', 'press1.yaml'),
      readFileSync('config/devices/press1.yaml', 'utf8').replace(
        /port: \d+/,
        `port: ${sims.endpoints.modbusTcpPort}`,
      ),
    );
    // acme issues the line gateway's credential with its identity root (in acme's folder only).
    const credential = await ok([
      'credential',
      'issue',
      '--genesis',
      join(machine('acme'), 'etc', 'genesis.json'),
      '--identity-root',
      join(machine('acme'), 'peer', 'keys', 'identity-root.key'),
      '--role',
      'gateway',
      '--subject',
      'line 1 gateway',
      '--gateway',
      'gw-line1',
    ]);
    mkdirSync(join(gatewayPc, 'data'), { recursive: true });
    writeFileSync(join(gatewayPc, 'data', 'gateway.jwt'), credential, { mode: 0o600 });
    const gatewayYaml = join(etc, 'gateway.yaml');
    writeFileSync(
      gatewayYaml,
      readFileSync('config/gateway.yaml', 'utf8')
        .replace(
          /^ {2}role: none$/m,
          `  role: client\n  validatorUrl: ${acmeApi}\n  genesis: genesis.json\n  credentialFile: gateway.jwt`,
        )
        .replace(/^ {2}port: 8090$/m, `  port: ${gatewayOps}`),
    );
    const env = { MASBC_DATA_DIR: join(gatewayPc, 'data') };
    await ok(['validate', gatewayYaml], env);
    expect(await ok(['run', '--once', '-c', gatewayYaml], env)).toContain(
      '1 of 1 devices answered completely',
    );
    const gateway = await startCli(['run', '-c', gatewayYaml], /"msg":"gateway starting"/, env);

    // 8. Health: the gateway is ready, every validator is ready, and the events become final.
    await eventually(
      async () => (await runCli(['health', '-c', gatewayYaml], env)).code === 0,
      'gateway ready',
      settleMs,
      1_000,
    );
    for (const url of statusUrls) {
      const r = await eventually(
        async () => {
          const x = await runCli(['health', '--url', url]);
          return x.code === 0 ? x : undefined;
        },
        `validator at ${url} ready`,
        settleMs,
        1_000,
      );
      expect(r.out).toMatch(/^healthy: ready \(validator (acme|borealis|cobalt|dynamo), pid \d+\)/);
    }
    const final = await eventually(
      async () => {
        const out = (await runCli(['outbox', '-c', gatewayYaml, '--last', '50'], env)).out;
        return /\[block \d+\]/.test(out) ? out : undefined;
      },
      'events of the gateway final in a block',
      settleMs,
      1_000,
    );
    expect(final).toMatch(/part_completed|step_started|equipment_status/);
    const metrics = parsePrometheus(await (await fetch(`${statusUrls[1]}metrics`)).text());
    expect(sampleValue(metrics, 'masbc_consensus_height')).toBeGreaterThan(0);
    expect(sampleValue(metrics, 'masbc_consensus_peers', { state: 'connected' })).toBe(3);
    expect(sampleValue(metrics, 'masbc_build_info', { kind: 'validator', name: 'borealis' })).toBe(1);
    // The validator's status page data: its chain, no devices.
    const page = (await (await fetch(`${statusUrls[1]}api/status`)).json()) as {
      kind: string;
      devices: unknown;
      chain: { role: string; memberId: string; peersConnected: number; height: number };
    };
    expect(page).toMatchObject({
      kind: 'validator',
      devices: null,
      chain: { role: 'peer', memberId: 'borealis', peersConnected: 3 },
    });
    expect(page.chain.height).toBeGreaterThan(0);

    // Logs: one JSON object per line on the gateway's stdout.
    const logLines = gateway.lines.filter((l) => l.trim() !== '');
    for (const l of logLines) expect(() => JSON.parse(l), l).not.toThrow();

    // 9. Stopped, each member's copy of the chain verifies from the genesis alone, acme's events in it.
    await gateway.stop();
    await Promise.all(peers.map((p) => p.stop()));
    const verified = await ok([
      'chain',
      'verify',
      '--data',
      join(machine('borealis'), 'peer', 'chain'),
      '--genesis',
      join(machine('borealis'), 'etc', 'genesis.json'),
    ]);
    expect(verified).toMatch(/acme\/gw-line1/);
  }, 300_000);
});
