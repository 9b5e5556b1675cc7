/**
 * `masbc-edge peer`: runs one validator of an alliance until SIGINT or SIGTERM (or, with
 * --stop-with-stdin, until its standard input closes, which is how `alliance up` makes sure no
 * validator outlives it).
 *
 * The validator runs the ledger (docs/ledger.md): events signed by the gateway keys the genesis
 * registers (`gateways:`), each gateway's events in seq order. Its state is loaded from the block
 * store (`openLedger`). It serves the validator HTTP API (src/api/validator-api.ts) on --api-host
 * and --api-port. The validator is assembled by src/validator/validator.ts, as a gateway's is.
 *
 * Prints one line when ready (member, peer id, listen and API addresses; tests and `alliance up`
 * read it), then a one-line status every --status-every-ms, and "stopped" after a clean stop.
 * Warnings and errors go to <data>/peer.log (JSON lines).
 *
 * @example
 *   masbc-edge peer --genesis data/alliance/genesis.json --key data/alliance/keys/member-1.key \
 *     --data data/alliance/data/member-1 --api-port 4100
 */
import { join } from 'node:path';
import { type Command, Option } from 'commander';
import { type AdmissionMode, admissionModes } from '../consensus/net/admission.ts';
import type { ConsensusNode, NodeStatus } from '../consensus/runtime/node.ts';
import { createLogger, type LogLevel } from '../log/logger.ts';
import { startValidator } from '../validator/validator.ts';
import { integer, untilSignal } from './shared.ts';

const day = 86_400_000;

export interface PeerOptions {
  genesis: string;
  key: string;
  data: string;
  member?: string;
  /** Address of the validator HTTP API (default 127.0.0.1). */
  apiHost?: string;
  /** Its port (default 0: any free port, printed in the ready line). */
  apiPort?: number;
  /** PEM certificate and key of the API: serve HTTPS (required off loopback). */
  apiCert?: string;
  apiKey?: string;
  /** The member's office signer key (gateway `office`): the API records orders. */
  officeKey?: string;
  /** Address of the status page, /metrics, /health and /ready (default 127.0.0.1). */
  opsHost?: string;
  /** Its port (default 0: any free port, printed in the ready line); false: no such server. */
  opsPort?: number | false;
  statusEveryMs: number;
  statusIntervalMs?: number;
  /** Who may start a libp2p handshake (docs/security.md); default 'open'. */
  admission?: AdmissionMode;
  logLevel: LogLevel;
  stopWithStdin?: boolean;
  /** Disk budget of the member's body store, in MiB (default 8 GiB). */
  bodiesMaxMib?: number;
  /** Days bodies of process events are kept (0: forever, the default). */
  keepProcessDays?: number;
  /** Days bodies of equipment events are kept (0: forever; default 365). */
  keepEquipmentDays?: number;
}

export function registerPeer(program: Command): void {
  program
    .command('peer')
    .description('Run a validator of an alliance (IPBFT over libp2p) until Ctrl-C')
    .requiredOption('--genesis <file>', 'the alliance genesis (JSON or YAML)')
    .requiredOption('--key <file>', "this member's private key (also its libp2p identity)")
    .requiredOption('--data <dir>', 'data folder: chain.db (blocks, votes, ledger state) and peer.log')
    .option('--member <id>', 'member id in the genesis (default: the one whose key --key holds)')
    .option('--api-host <host>', 'address of the validator HTTP API (default 127.0.0.1)')
    .option(
      '--api-port <port>',
      'port of the validator HTTP API (default 0: any free port)',
      integer(0, 65535),
    )
    .option('--api-cert <file>', 'PEM certificate of the API: serve HTTPS (required off loopback)')
    .option('--api-key <file>', 'PEM private key of --api-cert')
    .option(
      '--office-key <file>',
      "the member's office signer key (gateway `office`): the API records orders",
    )
    .option(
      '--ops-host <host>',
      'address of the status page, /metrics, /health and /ready (default 127.0.0.1)',
    )
    .option(
      '--ops-port <port>',
      'port of the status page, /metrics, /health and /ready (default 0: any free port)',
      integer(0, 65535),
    )
    .option('--no-ops', 'serve no status page, /metrics, /health or /ready')
    .option(
      '--status-every-ms <ms>',
      'print a status line this often; 0 = never',
      integer(0, 3_600_000),
      5_000,
    )
    .option(
      '--status-interval-ms <ms>',
      'consensus heartbeat (STATUS, retransmissions, sync retries)',
      integer(10, 60_000),
    )
    .option(
      '--bodies-max-mib <mib>',
      "disk budget of the member's private body store in MiB (default 8192); when full, batches are refused and wait in the gateways' outboxes",
      integer(1, 16 * 1024 * 1024),
    )
    .option(
      '--keep-process-days <days>',
      'days the bodies of process events are kept, by source time (0: forever, the default)',
      integer(0, 36_500),
    )
    .option(
      '--keep-equipment-days <days>',
      'days the bodies of equipment events (status, alarms, gaps) are kept (0: forever; default 365)',
      integer(0, 36_500),
    )
    .addOption(
      new Option(
        '--admission <mode>',
        "who may start a libp2p handshake: 'open' (any address, bounded per address) or 'genesis-only' (only the hosts of the genesis addrs; docs/security.md)",
      ).choices(admissionModes),
    )
    .option('--log-level <level>', 'trace | debug | info | warn | error', 'warn')
    .option('--stop-with-stdin', 'stop cleanly when standard input closes (used by `alliance up`)')
    .action(async (opts: PeerOptions & { ops?: boolean }) => {
      const peer = await startPeer({ ...opts, opsPort: opts.ops === false ? false : opts.opsPort });
      const signal = peer.stopped.then(() => 'failed' as const);
      const stdinClosed = opts.stopWithStdin
        ? new Promise<'stdin'>((resolve) => {
            process.stdin.on('end', () => resolve('stdin')).on('close', () => resolve('stdin'));
            process.stdin.resume();
          })
        : new Promise<never>(() => {});
      const why = await Promise.race([untilSignal(), signal, stdinClosed]);
      if (why === 'failed') {
        console.error(`masbc-edge peer: ${peer.node.status().problem}`);
        process.exitCode = 1;
      }
      await peer.stop();
      console.log('stopped');
      if (opts.stopWithStdin) process.stdin.destroy();
    });
}

export interface RunningPeer {
  node: ConsensusNode;
  /** Resolves if the node stops on its own (a failed store, say). */
  stopped: Promise<void>;
  stop(): Promise<void>;
}

export async function startPeer(opts: PeerOptions): Promise<RunningPeer> {
  const log = createLogger(opts.logLevel, join(opts.data, 'peer.log'));
  // The status server binds first: a port in use stops here, before the validator starts.
  const ops =
    opts.opsPort === false
      ? null
      : await (await import('../observe/start.ts')).startValidatorOps({
          name: opts.member ?? 'validator',
          host: opts.opsHost ?? '127.0.0.1',
          port: opts.opsPort ?? 0,
          dataDir: opts.data,
          log,
        });
  let v: Awaited<ReturnType<typeof startValidator>>;
  try {
    v = await startValidator({
      genesisFile: opts.genesis,
      keyFile: opts.key,
      dataDir: opts.data,
      member: opts.member,
      api: {
        host: opts.apiHost ?? '127.0.0.1',
        port: opts.apiPort ?? 0,
        tls: opts.apiCert && opts.apiKey ? { certFile: opts.apiCert, keyFile: opts.apiKey } : undefined,
      },
      officeKeyFile: opts.officeKey,
      timing: opts.statusIntervalMs === undefined ? {} : { statusIntervalMs: opts.statusIntervalMs },
      admission: opts.admission,
      bodies: {
        maxBytes: opts.bodiesMaxMib === undefined ? undefined : opts.bodiesMaxMib * 1024 * 1024,
        retention: {
          ...(opts.keepProcessDays === undefined ? {} : { process: opts.keepProcessDays * day }),
          ...(opts.keepEquipmentDays === undefined ? {} : { equipment: opts.keepEquipmentDays * day }),
        },
      },
      log,
    });
  } catch (err) {
    await ops?.close();
    throw err;
  }
  ops?.observer.attachValidator(v);
  for (const w of v.warnings) console.error(`masbc-edge peer: ${w}`);
  const { node } = v;
  console.log(
    `peer ${v.member} ready: peer id ${v.peerId} | listen ${v.listen.join(' ')} | api ${v.apiUrl} | height ${node.store.height}` +
      (ops ? ` | status ${ops.url}` : ''),
  );
  let last = { atMs: Date.now(), txs: node.metrics().saves.txs };
  const timer =
    opts.statusEveryMs > 0
      ? setInterval(() => {
          const m = node.metrics();
          const now = Date.now();
          const rate = ((m.saves.txs - last.txs) * 1000) / Math.max(1, now - last.atMs);
          last = { atMs: now, txs: m.saves.txs };
          console.log(statusLine(m.status, rate));
        }, opts.statusEveryMs)
      : undefined;
  return {
    node,
    stopped: v.stopped,
    async stop() {
      clearInterval(timer);
      await ops?.close();
      await v.stop();
      log.flush();
    },
  };
}

export function statusLine(s: NodeStatus, committedPerSecond: number): string {
  const refused = Object.values(s.refusals).reduce((a, b) => a + b, 0);
  return (
    `${s.memberId} height ${s.committedHeight} | view ${s.view}${s.viewChanging ? ' (changing)' : ''} primary ${s.primary} | ` +
    `peers ${s.peersConnected}/${s.peers.length} | mempool ${s.mempoolTxs} | committed ${committedPerSecond.toFixed(0)} tx/s | ` +
    `refused ${refused}${s.problem ? ` | PROBLEM ${s.problem}` : ''}`
  );
}
