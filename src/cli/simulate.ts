/**
 * `masbc-edge simulate`: the equipment simulators alone, in real time, on the ports and serial line
 * the device maps name (so the bundled config/devices/*.yaml read them unchanged). Run a gateway, a
 * second `masbc-edge run`, UaExpert, mbpoll or mosquitto_sub against them.
 *
 * @example
 *   masbc-edge simulate                      # ports from config/devices: 4840, 5020, 1883
 *   masbc-edge simulate --seed 7 --cycle-ms 500 --malformed 0.05
 *   mbpoll -m tcp -p 5020 -a 1 -0 -r 0 -c 10 -t 4 -1 127.0.0.1
 */
import { spawnSync } from 'node:child_process';
import { existsSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import type { Command } from 'commander';
import {
  isLink,
  portsFromDevices,
  rtuPathFromDevices,
  type SerialLine,
  startSerialLine,
} from '../devtools/equipment.ts';
import { defaultGatewayFile, loadConfig } from '../gateway/config/config.ts';
import { untilSignal } from './shared.ts';

interface SimulateOptions {
  config: string;
  seed?: string;
  cycleMs: string;
  malformed: string;
  statusMs: string;
  rtu: boolean;
  opcuaUser?: string;
}

export function registerSimulate(program: Command): void {
  program
    .command('simulate')
    .description(
      'Run the equipment simulators (OPC UA CNC, Modbus PLC over TCP and RTU, MQTT sensors) on the ports the device maps name',
    )
    .option(
      '-c, --config <file>',
      'gateway configuration whose device maps give the ports',
      defaultGatewayFile,
    )
    .option('--seed <n>', 'scenario seed (the same seed replays the same production)')
    .option('--cycle-ms <ms>', 'part cycle time in ms', '2000')
    .option(
      '--malformed <p>',
      'probability that a sensor or scanner message is followed by a malformed one',
      '0',
    )
    .option('--status-ms <ms>', 'print a status line this often (0: never)', '5000')
    .option('--no-rtu', 'do not create the virtual serial line even if a device map uses Modbus RTU')
    .option('--opcua-user <name:password>', 'accept this OPC UA user (besides anonymous)')
    .action(async (opts: SimulateOptions) => {
      const config = loadConfig(opts.config);
      const ports = portsFromDevices(config);
      const rtuPath = opts.rtu ? rtuPathFromDevices(config) : null;
      let line: SerialLine | null = null;
      if (rtuPath) {
        if (spawnSync('sh', ['-c', 'command -v socat']).status !== 0) {
          console.warn('socat is not installed: no Modbus RTU line (apt-get install -y socat)');
        } else {
          line = await startSerialLine(rtuPath);
        }
      }
      const users = opts.opcuaUser ? [parseUser(opts.opcuaUser)] : [];
      const { runSimulators } = await import('../../simulators/index.ts');
      const dataDir = join(config.paths.dataDir, 'simulators');
      let sims: Awaited<ReturnType<typeof runSimulators>>;
      try {
        sims = await runSimulators({
          ...(opts.seed === undefined ? {} : { seed: Number(opts.seed) }),
          dataDir,
          scenario: { cycleTimeMs: Number(opts.cycleMs), malformedProbability: Number(opts.malformed) },
          opcua: ports.opcua === undefined ? false : { port: ports.opcua, users },
          modbus:
            ports.modbus === undefined && !line
              ? false
              : {
                  tcp: ports.modbus === undefined ? false : { port: ports.modbus },
                  rtu: line ? { path: line.plcPath } : false,
                },
          mqtt: ports.mqtt === undefined ? false : { port: ports.mqtt },
          statusEveryMs: Number(opts.statusMs),
        });
      } catch (err) {
        await line?.stop();
        throw err;
      }
      if (line) console.log(`  Modbus RTU     ${line.gatewayPath}  (gateway end of the virtual serial line)`);
      console.log('running; Ctrl-C stops');
      await untilSignal();
      await sims.stop();
      await line?.stop();
      if (line && existsSync(line.gatewayPath) && isLink(line.gatewayPath)) rmSync(line.gatewayPath);
      console.log('stopped cleanly');
    });
}

function parseUser(spec: string): { username: string; password: string } {
  const i = spec.indexOf(':');
  if (i <= 0) throw new Error('--opcua-user expects name:password');
  return { username: spec.slice(0, i), password: spec.slice(i + 1) };
}
