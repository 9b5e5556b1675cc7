/**
 * `masbc-edge alliance init|up`: a local alliance on loopback for trying the chain out.
 *
 * - `init` writes (once; an existing alliance is reused after its keys are checked) member keys and
 *   the genesis with `createLocalAlliance`, with one test gateway per member (`gw-1`) registered in
 *   its `gateways:` list, the keys every validator accepts events from (docs/ledger.md), and each
 *   member's identity root (`keys/<member>/identity-root.key`, its public key in the genesis). Keys and
 *   data go to --dir (default data/alliance, which git ignores), never into the repository.
 * - `up` does `init` if needed and starts one `masbc-edge peer` OS process per member, prefixes
 *   their output with the member id, and on Ctrl-C stops them all: SIGTERM, then SIGKILL for any
 *   still running after --stop-timeout-ms. Each peer also runs with --stop-with-stdin on a pipe
 *   from this process, so if this process dies (even by SIGKILL) the pipe closes and every peer
 *   stops by itself: no orphans.
 *
 * @example
 *   masbc-edge alliance up --validators 4
 *   masbc-edge alliance init --validators 7 --dir /tmp/a7 --base-port 4100
 */
import { join } from 'node:path';
import type { Command } from 'commander';
import { initAlliance } from '../devtools/local-alliance.ts';
import { spawnPeer, stopProcess } from '../devtools/processes.ts';
import { registerAllianceFiles } from './alliance-files.ts';
import { integer, untilSignal } from './shared.ts';

interface AllianceOptions {
  validators: number;
  dir: string;
  basePort?: number;
  apiBasePort?: number;
  viewChangeTimeoutMs: number;
  statusEveryMs: number;
  stopTimeoutMs: number;
}

export function registerAlliance(program: Command): void {
  const alliance = program
    .command('alliance')
    .description(
      "A local alliance on loopback (init, up), or a real one's genesis from member files (member, genesis, inspect)",
    );
  registerAllianceFiles(alliance);
  const common = (c: Command) =>
    c
      .option('--validators <n>', 'number of members (validators)', integer(1, 64), 4)
      .option('--dir <dir>', 'keys, genesis and data folder (never inside the repository)', 'data/alliance')
      .option(
        '--base-port <port>',
        'member i listens on base-port + i (default: free ports)',
        integer(1, 65_000),
      )
      .option('--view-change-timeout-ms <ms>', 'T in a new genesis', integer(50, 600_000), 2_000);
  common(
    alliance.command('init').description('Write member keys, the genesis and test gateway keys (once)'),
  ).action(async (opts: AllianceOptions) => {
    const files = await initAlliance(opts);
    console.log(
      `genesis ${files.alliance.genesisFile} (chain ${files.alliance.genesis.chainId}, ${files.alliance.genesis.n} validators, hash ${files.alliance.genesis.hash.slice(0, 16)})`,
    );
    for (const [member, g] of files.gateways) console.log(`gateway ${member}/${g.gateway}: key ${g.keyFile}`);
    for (const [member, file] of files.identityRoots) console.log(`identity root ${member}: key ${file}`);
  });
  common(
    alliance.command('up').description('Start every validator as its own process; Ctrl-C stops them all'),
  )
    .option(
      '--api-base-port <port>',
      'member i serves the validator HTTP API on api-base-port + i (default: free ports)',
      integer(1, 65_000),
    )
    .option('--status-every-ms <ms>', 'status line period of each validator', integer(0, 3_600_000), 5_000)
    .option(
      '--stop-timeout-ms <ms>',
      'SIGKILL validators still running this long after SIGTERM',
      integer(100, 600_000),
      10_000,
    )
    .action(async (opts: AllianceOptions) => {
      const files = await initAlliance(opts);
      const { genesis, genesisFile, keyFiles } = files.alliance;
      console.log(`alliance ${genesis.chainId}: ${genesis.n} validators, genesis ${genesisFile}`);
      const apiBasePort = opts.apiBasePort;
      const children = genesis.validators.map((v, i) =>
        spawnPeer(v.memberId, [
          '--genesis',
          genesisFile,
          '--key',
          keyFiles.get(v.memberId)!,
          '--data',
          join(opts.dir, 'data', v.memberId),
          '--api-port',
          String(apiBasePort === undefined ? 0 : apiBasePort + i),
          '--status-every-ms',
          String(opts.statusEveryMs),
          '--stop-with-stdin',
        ]),
      );
      const anyExit = Promise.race(children.map((c) => c.exited.then(() => c.member)));
      const why = await Promise.race([untilSignal(), anyExit]);
      console.log(`stopping the alliance (${why})…`);
      await Promise.all(children.map((c) => stopProcess(c.process, opts.stopTimeoutMs)));
      console.log('all validators stopped');
    });
}
