/**
 * `masbc-edge peer`: runs one validator of an alliance until SIGINT or SIGTERM (or, with
 * --stop-with-stdin, until its standard input closes, which is how `alliance up` makes sure no
 * validator outlives it).
 *
 * Prints one line when ready (member, peer id, listen and RPC addresses; tests and `alliance up`
 * read it), then a one-line status every --status-every-ms, and "stopped" after a clean stop.
 * Warnings and errors go to <data>/peer.log (JSON lines).
 *
 * @example
 *   masbc-edge peer --genesis data/alliance/genesis.json --key data/alliance/keys/member-1.key \
 *     --data data/alliance/data/member-1 --gateway-keys data/alliance/gateway-keys.json --rpc-port 4100
 */
import { join } from 'node:path';
import { type Command, InvalidArgumentError } from 'commander';
import { loadGenesis } from '../consensus/genesis.ts';
import { loadValidatorIdentity } from '../consensus/net/identity.ts';
import { Libp2pTransport } from '../consensus/net/libp2p.ts';
import { loadGatewayKeys, signedEventApplication } from '../consensus/node/events.ts';
import { startRpc } from '../consensus/node/rpc.ts';
import { ConsensusNode, chainContext, type NodeStatus } from '../consensus/node.ts';
import { loadKeyFile } from '../crypto/keys.ts';
import { createLogger, type LogLevel } from '../edge/logger.ts';
import { ChainStore, chainStorePath } from '../store/chain.ts';
import { untilSignal } from './run.ts';

export interface PeerOptions {
  genesis: string;
  key: string;
  data: string;
  member?: string;
  gatewayKeys: string;
  rpcHost: string;
  rpcPort: number;
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
    .requiredOption('--data <dir>', 'data folder: chain.db (blocks, votes) and peer.log')
    .requiredOption('--gateway-keys <file>', 'gateway public keys whose signed events this validator accepts')
    .option('--member <id>', 'member id in the genesis (default: the one whose key --key holds)')
    .option('--rpc-host <host>', 'address of the local HTTP endpoint (submit, status, proofs)', '127.0.0.1')
    .option('--rpc-port <port>', 'port of the local HTTP endpoint; 0 = any free port', integer(0, 65535), 0)
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
  const app = signedEventApplication({ keys: loadGatewayKeys(opts.gatewayKeys) });
  const identity = await loadValidatorIdentity(opts.key);
  const transport = new Libp2pTransport({ genesis, self: member, identity, logger: log });
  const store = ChainStore.open({
    path: chainStorePath(opts.data),
    chain: chainContext(genesis),
    txId: app.txId,
  });
  let node: ConsensusNode;
  try {
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
  const rpc = await startRpc(node, { host: opts.rpcHost, port: opts.rpcPort });
  console.log(
    `peer ${member} ready: peer id ${identity.peerId} | listen ${transport.multiaddrs.join(' ')} | rpc ${rpc.url} | height ${store.height}`,
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
      await rpc.close();
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
