/**
 * How a gateway reaches the alliance chain, per `chain.role` in gateway.yaml:
 * - `validator`: it hosts its member's validator in the same process: ConsensusNode over libp2p,
 *   on a worker thread of its own (chain-thread.ts) unless `chain.thread: false`, running the ledger
 *   with the gateway keys the genesis registers, block store and ledger state under
 *   `<dataDir>/chain`, optionally serving the validator HTTP API (the one `masbc-edge peer` serves)
 *   to client gateways. `chain.gatewayKeys` is deprecated and ignored, with a warning;
 * - `client`: it submits to its member's validator over that HTTP API;
 * - `none`: no chain; events stay in the outbox.
 */
import { dirname, join, resolve } from 'node:path';
import type { FastifyInstance } from 'fastify';
import { buildValidatorApi } from '../api/validator-api.ts';
import { txIdOf } from '../consensus/app/tx.ts';
import { loadGenesis } from '../consensus/genesis/genesis.ts';
import { loadValidatorIdentity } from '../consensus/net/identity.ts';
import { Libp2pTransport } from '../consensus/net/libp2p.ts';
import { ChainStore, chainStorePath } from '../consensus/runtime/block-store.ts';
import { localChainClient } from '../consensus/runtime/client.ts';
import { openLedger } from '../consensus/runtime/ledger.ts';
import { ConsensusNode, chainContext, type NodeStatus } from '../consensus/runtime/node.ts';
import { loadKeyFile } from '../crypto/keys.ts';
import type { Logger } from '../log/logger.ts';
import type { LoadedConfig } from './config/config.ts';
import { httpChainClient } from './http-chain.ts';
import type { ChainClient } from './submitter-types.ts';

export interface ChainLink {
  role: 'validator' | 'client';
  client: ChainClient;
  /** The embedded validator (role validator on the gateway's own thread; null on a worker thread). */
  node: ConsensusNode | null;
  /** URL of the validator API this process serves, if any. */
  apiUrl: string | null;
  status(): NodeStatus | null;
  stop(): Promise<void>;
}

export async function openChainLink(config: LoadedConfig, log: Logger): Promise<ChainLink | null> {
  const chain = config.gateway.chain;
  if (chain.role === 'none') return null;
  if (chain.role === 'client') {
    const client = httpChainClient({
      baseUrl: chain.validatorUrl!,
      onError: (err) => log.warn('validator unreachable; retrying', { err: err.message }),
    });
    return { role: 'client', client, node: null, apiUrl: null, status: () => null, stop: async () => {} };
  }
  if (chain.thread) {
    const { openValidatorThread } = await import('./chain-thread.ts');
    return openValidatorThread(config, log);
  }
  return openEmbeddedValidator(config, log);
}

/** The member's validator on this thread's event loop (role validator; see chain-thread.ts for the worker). */
export async function openEmbeddedValidator(config: LoadedConfig, log: Logger): Promise<ChainLink> {
  const chain = config.gateway.chain;
  const baseDir = dirname(resolve(config.gatewayFile));
  const genesisFile = resolve(baseDir, chain.genesis!);
  const genesis = loadGenesis(genesisFile);
  const keyFile = resolve(config.paths.dataDir, chain.memberKeyFile);
  const signer = loadKeyFile(keyFile);
  const member = genesis.byKeyId(signer.keyId)?.memberId;
  if (!member)
    throw new Error(`${keyFile} holds key ${signer.keyId}, which no validator of ${genesisFile} has`);
  const nodeLog = log.child({ part: 'chain', member });
  if (chain.gatewayKeys !== undefined) {
    nodeLog.warn(
      `chain.gatewayKeys is deprecated and ignored: the validator accepts the ${genesis.gateways.length} gateway key(s) the genesis registers; remove it from ${config.gatewayFile}`,
    );
  }
  const self = config.gateway.gateway;
  if (!genesis.gateways.some((g) => g.memberId === self.enterprise && g.gateway === self.id)) {
    nodeLog.warn(
      `the genesis registers no key for this gateway (${self.enterprise}/${self.id}): the alliance will refuse its events (unknown_key)`,
    );
  }
  const identity = await loadValidatorIdentity(keyFile);
  const transport = new Libp2pTransport({ genesis, self: member, identity, logger: nodeLog });
  const store = ChainStore.open({
    path: chainStorePath(join(config.paths.dataDir, 'chain')),
    chain: chainContext(genesis),
    txId: txIdOf,
  });
  let node: ConsensusNode;
  try {
    const { app, replayedBlocks } = openLedger(genesis, store);
    if (replayedBlocks > 0)
      nodeLog.info('ledger state rebuilt from stored blocks', { blocks: replayedBlocks });
    node = new ConsensusNode({ genesis, self: member, signer, transport, store, app, logger: nodeLog });
  } catch (err) {
    store.close();
    throw err;
  }
  await node.start();
  const client = localChainClient(node);
  let api: FastifyInstance | null = null;
  let apiUrl: string | null = null;
  if (config.gateway.api.enabled) {
    api = buildValidatorApi({ node, chain: client });
    try {
      apiUrl = await api.listen({ host: config.gateway.api.host, port: config.gateway.api.port });
    } catch (err) {
      await api.close();
      await node.stop();
      throw err;
    }
  }
  nodeLog.info('validator started', {
    peerId: identity.peerId,
    listen: transport.multiaddrs,
    api: apiUrl,
    height: store.height,
  });
  return {
    role: 'validator',
    client,
    node,
    apiUrl,
    status: () => node.status(),
    async stop() {
      await api?.close();
      await node.stop();
    },
  };
}
