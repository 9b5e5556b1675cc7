/**
 * `masbc-edge demo` (= `npm start`): the demo factory on embedded defaults. Creates a demo key on
 * first run, validates the bundled configuration, starts the equipment simulators on the ports the
 * device maps name, runs the gateway, and prints a live one-line status until Ctrl-C.
 */
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import type { Command } from 'commander';
import { generateKey, loadKeyFile, writeKeyFile } from '../crypto/keys.ts';
import { portsFromDevices } from '../devtools/equipment.ts';
import { createLocalAlliance } from '../devtools/local-alliance.ts';
import { spawnPeer, stopProcess } from '../devtools/processes.ts';
import { defaultGatewayFile, type LoadedConfig, loadConfig } from '../gateway/config/config.ts';
import { createLogger } from '../log/logger.ts';
import { integer, untilSignal } from './shared.ts';

/**
 * The demo's alliance: `members` validators on loopback, keys and genesis under
 * `<dataDir>/alliance` (made once, reused after). The first member is this gateway's enterprise and
 * runs in this process with the gateway (chain role validator); the others run as `masbc-edge peer`
 * processes, which stop with this one (their stdin is a pipe from it) even if it is killed.
 */
async function demoAlliance(config: LoadedConfig, members: number, basePort: number) {
  const dir = join(config.paths.dataDir, 'alliance');
  const g = config.gateway.gateway;
  const names = [
    g.enterprise,
    ...['borealis', 'cobalt', 'dynamo', 'ember', 'fjord', 'granite'].filter((m) => m !== g.enterprise),
  ];
  if (members < 1 || members > names.length) throw new Error(`--members must be 1 to ${names.length}`);
  // The genesis registers this gateway's own key: the alliance generator takes gateway keys from
  // its folder, so the key is placed there first (both copies stay under the git-ignored data folder).
  const registered = join(dir, 'keys', 'gateways', g.enterprise, `${g.id}.key`);
  if (!existsSync(registered)) writeKeyFile(registered, loadKeyFile(config.paths.keyFile));
  const alliance = await createLocalAlliance({
    dir,
    members: names.slice(0, members),
    basePort,
    gateways: { [g.enterprise]: [g.id] },
    ifExists: 'reuse',
  });
  Object.assign(config.gateway.chain, {
    role: 'validator',
    genesis: alliance.genesisFile,
    memberKeyFile: alliance.keyFiles.get(g.enterprise)!,
  });
  console.log(
    `alliance ${alliance.genesis.chainId}: ${alliance.genesis.n} validators (${alliance.genesis.validators.map((v) => v.memberId).join(', ')}), ` +
      `tolerating ${alliance.genesis.f} faulty; genesis ${alliance.genesisFile}`,
  );
  return {
    startOthers: () =>
      alliance.genesis.validators.slice(1).map((v) =>
        spawnPeer(
          v.memberId,
          [
            '--genesis',
            alliance.genesisFile,
            '--key',
            alliance.keyFiles.get(v.memberId)!,
            '--data',
            join(dir, 'data', v.memberId),
            '--status-every-ms',
            '0',
            '--stop-with-stdin',
          ],
          (line) => {
            if (!line.startsWith(`peer ${v.memberId} ready`) && line !== 'stopped')
              console.error(`[${v.memberId}] ${line}`);
          },
        ),
      ),
  };
}

/** Validators of the demo alliance listen on this port and the next ones (loopback only). */
const demoBasePort = 47_101;

export function rate(now: number, before: number, ms: number): string {
  return ms > 0 ? ((1000 * (now - before)) / ms).toFixed(0) : '0';
}

export function registerDemo(program: Command): void {
  program
    .command('demo')
    .description('Run the demo factory: simulators and the gateway on the bundled configuration (npm start)')
    .option('-c, --config <file>', 'gateway configuration', defaultGatewayFile)
    .option('--seed <n>', 'scenario seed (replays the same production)')
    .option('--cycle-ms <ms>', 'CNC cycle time in ms', '2000')
    .option('--members <n>', "alliance members (validators), one of them this gateway's", '4')
    .option('--no-chain', 'run without the alliance: events stay in the outbox')
    .option(
      '--base-port <port>',
      `validators listen on this port and the next ones (a new alliance only; default ${demoBasePort})`,
      integer(1, 65_000),
      demoBasePort,
    )
    .action(
      async (opts: {
        config: string;
        seed?: string;
        cycleMs: string;
        members: string;
        chain: boolean;
        basePort: number;
      }) => {
        const config = loadConfig(opts.config);
        console.log(
          `config ok: ${config.devices.length} device maps (${config.devices.map((d) => d.id).join(', ')})`,
        );
        const logFile = join(config.paths.dataDir, 'gateway.log');
        const log = createLogger(config.gateway.log.level, logFile);
        console.log(`data folder ${config.paths.dataDir}; gateway log ${logFile}`);
        if (!existsSync(config.paths.keyFile)) {
          const key = generateKey('ed25519');
          writeKeyFile(config.paths.keyFile, key);
          console.log(`created demo gateway key ${config.paths.keyFile} (keyId ${key.keyId})`);
        }
        const alliance = opts.chain ? await demoAlliance(config, Number(opts.members), opts.basePort) : null;

        const [{ runSimulators }, { Gateway }] = await Promise.all([
          import('../../simulators/index.ts'),
          import('../gateway/gateway.ts'),
        ]);
        const ports = portsFromDevices(config);
        // A virtual RS-485 line for Modbus RTU device maps needs socat; without it, those devices sit out.
        const { rtuPathFromDevices, startSerialLine } = await import('../devtools/equipment.ts');
        const rtuPath = rtuPathFromDevices(config);
        let line: Awaited<ReturnType<typeof startSerialLine>> | null = null;
        if (rtuPath) {
          try {
            line = await startSerialLine(rtuPath);
          } catch (err) {
            const rtu = config.devices.filter(
              (d) => d.protocol === 'modbus' && d.connection.transport === 'rtu',
            );
            for (const d of rtu) d.enabled = false;
            console.log(
              `note: ${(err as Error).message}; Modbus RTU device(s) ${rtu.map((d) => d.id).join(', ')} disabled for this run`,
            );
          }
        }
        const sims = await runSimulators({
          seed: opts.seed === undefined ? undefined : Number(opts.seed),
          dataDir: join(config.paths.dataDir, 'simulators'),
          scenario: { cycleTimeMs: Number(opts.cycleMs) },
          opcua: ports.opcua === undefined ? false : { port: ports.opcua },
          modbus:
            ports.modbus === undefined && !line
              ? false
              : {
                  tcp: ports.modbus === undefined ? false : { port: ports.modbus },
                  rtu: line ? { path: line.plcPath } : false,
                },
          mqtt: ports.mqtt === undefined ? false : { port: ports.mqtt },
          statusEveryMs: 0,
        });
        const peers = alliance?.startOthers() ?? [];
        const { startGatewayOps } = await import('../observe/start.ts');
        const { server: ops, problem } = await startGatewayOps(config, log);
        if (problem) console.log(`note: ${problem}`);
        let gateway: Awaited<ReturnType<typeof Gateway.start>>;
        try {
          gateway = await Gateway.start(config, { log, ...ops?.observer.gatewayHooks });
        } catch (err) {
          await ops?.close();
          throw err;
        }
        ops?.observer.attachGateway(gateway);
        if (ops) console.log(`status page ${ops.url} (Prometheus metrics at ${ops.url}metrics)`);
        console.log('running; Ctrl-C stops everything cleanly\n');

        let last = { t: Date.now(), readings: 0, stored: 0, committed: 0 };
        const tty = process.stdout.isTTY;
        const timer = setInterval(
          () => {
            const s = gateway.stats();
            const now = Date.now();
            const up = s.devices.filter((d) => d.state === 'connected').length;
            const committed = s.submitter?.committed ?? 0;
            const chain = s.chain
              ? ` | chain height ${s.chain.committedHeight} view ${s.chain.view}, peers ${s.chain.peersConnected}/${s.chain.peers.length}` +
                ` | committed/s ${rate(committed, last.committed, now - last.t)}` +
                ` | finality p50 ${s.submitter?.latencyMs.p50 ?? 0} ms p99 ${s.submitter?.latencyMs.p99 ?? 0} ms` +
                ` (chain ${s.submitter?.chainLatencyMs.p50 ?? 0}/${s.submitter?.chainLatencyMs.p99 ?? 0} ms)`
              : '';
            const line =
              `devices ${up}/${s.devices.length} up | readings/s ${rate(s.readings, last.readings, now - last.t)} | ` +
              `events/s ${rate(s.eventsStored, last.stored, now - last.t)} signed | outbox ${s.outbox.pending} pending` +
              chain +
              (s.draftsDropped ? ` | LOST ${s.draftsDropped}` : '');
            last = { t: now, readings: s.readings, stored: s.eventsStored, committed };
            if (tty) process.stdout.write(`\r\x1b[2K${line}`);
            else console.log(line);
          },
          tty ? 1_000 : 5_000,
        );
        await untilSignal();
        clearInterval(timer);
        console.log('\nstopping…');
        await ops?.close();
        await gateway.stop();
        await Promise.all(peers.map((p) => stopProcess(p.process, 10_000)));
        await sims.stop();
        await line?.stop();
        log.flush();
        console.log('stopped cleanly');
      },
    );
}
