/**
 * `masbc-edge peer`: runs one validator of an alliance until SIGINT or SIGTERM (or, with
 * --stop-with-stdin, until its standard input closes, which is how `alliance up` makes sure no
 * validator outlives it).
 *
 * The validator runs the ledger (docs/ledger.md): events signed by the gateway keys the genesis
 * registers (`gateways:`), each gateway's events in seq order. Its state is loaded from the block
 * store (`openLedger`). It serves the validator HTTP API (src/api/validator-api.ts) on --api-host
 * and --api-port (`--rpc-host`/`--rpc-port` are the old names, still accepted).
 *
 * Prints one line when ready (member, peer id, listen and API addresses; tests and `alliance up`
 * read it), then a one-line status every --status-every-ms, and "stopped" after a clean stop.
 * Warnings and errors go to <data>/peer.log (JSON lines).
 *
 * `--gateway-keys <file>` is deprecated and ignored (with a warning): the keys come from the
 * genesis, the same at every validator; a local list could only make validators disagree.
 *
 * @example
 *   masbc-edge peer --genesis data/alliance/genesis.json --key data/alliance/keys/member-1.key \
 *     --data data/alliance/data/member-1 --api-port 4100
 */
import { join } from 'node:path';
import { type Command, InvalidArgumentError, Option } from 'commander';
import { buildValidatorApi } from '../api/validator-api.ts';
import { txIdOf } from '../consensus/app/tx.ts';
import { loadGenesis } from '../consensus/genesis/genesis.ts';
import { loadValidatorIdentity } from '../consensus/net/identity.ts';
import { Libp2pTransport } from '../consensus/net/libp2p.ts';
import { ChainStore, chainStorePath } from '../consensus/runtime/block-store.ts';
import { openLedger } from '../consensus/runtime/ledger.ts';
import { ConsensusNode, chainContext, type NodeStatus } from '../consensus/runtime/node.ts';
import { loadKeyFile } from '../crypto/keys.ts';
import { createLogger, type LogLevel } from '../log/logger.ts';
import { untilSignal } from './run.ts';

export interface PeerOptions {
  genesis: string;
  key: string;
  data: string;
  member?: string;
  /** Deprecated and ignored (a warning says so): gateway keys come from the genesis. */
  gatewayKeys?: string;
  /** Address of the validator HTTP API (default 127.0.0.1). */
  apiHost?: string;
  /** Its port (default 0: any free port, printed in the ready line). */
  apiPort?: number;
  /** Old names of apiHost and apiPort; the new ones win when both are given. */
  rpcHost?: string;
  rpcPort?: number;
  statusEveryMs: number;
  statusIntervalMs?: number;
  logLevel: LogLevel;
  stopWithStdin?: boolean;
}

function integer(min: number, max: number) {
  return (text: string) => {
    const v = Number(text);
    if (!Number.isInteger(v) || v < min || v > max)
      throw new InvalidArgumentError(`expected an integer from ${min} to ${max}`);
    return v;
  };
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
    .addOption(new Option('--rpc-host <host>', 'old name of --api-host').hideHelp())
    .addOption(
      new Option('--rpc-port <port>', 'old name of --api-port').argParser(integer(0, 65535)).hideHelp(),
    )
    .option(
      '--gateway-keys <file>',
      'deprecated and ignored: the validators accept the gateway keys the genesis registers',
    )
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
    .option('--log-level <level>', 'trace | debug | info | warn | error', 'warn')
    .option('--stop-with-stdin', 'stop cleanly when standard input closes (used by `alliance up`)')
    .action(async (opts: PeerOptions) => {
      const peer = await startPeer(opts);
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
  const genesis = loadGenesis(opts.genesis);
  const signer = loadKeyFile(opts.key);
  const member = opts.member ?? genesis.byKeyId(signer.keyId)?.memberId;
  if (!member)
    throw new Error(`${opts.key} holds key ${signer.keyId}, which no validator of ${opts.genesis} has`);
  const log = createLogger(opts.logLevel, join(opts.data, 'peer.log')).child({ member });
  if (opts.gatewayKeys !== undefined) {
    const warning = `--gateway-keys is deprecated and ignored: this validator accepts the ${genesis.gateways.length} gateway key(s) ${opts.genesis} registers`;
    console.error(`masbc-edge peer: ${warning}`);
    log.warn(warning);
  }
  if (genesis.gateways.length === 0) {
    const warning = `${opts.genesis} registers no gateway keys (gateways:): every event will be refused as unknown_key`;
    console.error(`masbc-edge peer: ${warning}`);
    log.warn(warning);
  }
  const identity = await loadValidatorIdentity(opts.key);
  const transport = new Libp2pTransport({ genesis, self: member, identity, logger: log });
  const store = ChainStore.open({
    path: chainStorePath(opts.data),
    chain: chainContext(genesis),
    txId: txIdOf,
  });
  let node: ConsensusNode;
  let replayedBlocks: number;
  try {
    const opened = openLedger(genesis, store);
    const app = opened.app;
    replayedBlocks = opened.replayedBlocks;
    node = new ConsensusNode({
      genesis,
      self: member,
      signer,
      transport,
      store,
      app,
      timing: opts.statusIntervalMs === undefined ? {} : { statusIntervalMs: opts.statusIntervalMs },
      logger: log,
    });
  } catch (err) {
    store.close();
    throw err;
  }
  await node.start();
  if (replayedBlocks > 0) log.info('ledger state rebuilt from stored blocks', { blocks: replayedBlocks });
  const api = buildValidatorApi({ node });
  let apiUrl: string;
  try {
    apiUrl = await api.listen({
      host: opts.apiHost ?? opts.rpcHost ?? '127.0.0.1',
      port: opts.apiPort ?? opts.rpcPort ?? 0,
    });
  } catch (err) {
    await api.close();
    await node.stop();
    throw err;
  }
  console.log(
    `peer ${member} ready: peer id ${identity.peerId} | listen ${transport.multiaddrs.join(' ')} | api ${apiUrl} | height ${store.height}`,
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
    stopped: node.closed,
    async stop() {
      clearInterval(timer);
      await api.close();
      await node.stop();
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
