/**
 * How a gateway reaches the alliance chain, per `chain.role` in gateway.yaml:
 * - `validator`: it hosts its member's validator (src/validator/validator.ts, the same assembly
 *   `masbc-edge peer` runs), on a worker thread of its own (chain-thread.ts) unless
 *   `chain.thread: false`, with its block store under `<dataDir>/chain` and, with `api.enabled`,
 *   the validator HTTP API for client gateways;
 * - `client`: it submits to its member's validator over that HTTP API (http-chain.ts), and believes a
 *   block final only once it checked it against the genesis;
 * - `none`: no chain; events stay in the outbox.
 */
import { readFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { loadGenesis } from '../consensus/genesis/genesis.ts';
import type { ChainClient } from '../consensus/runtime/client.ts';
import {
  type ConsensusNode,
  chainContext,
  type NodeMetrics,
  type NodeStatus,
} from '../consensus/runtime/node.ts';
import type { Logger } from '../log/logger.ts';
import { startValidator, type ValidatorSettings } from '../validator/validator.ts';
import type { LoadedConfig } from './config/config.ts';
import { httpChainClient } from './http-chain.ts';

export interface ChainLink {
  role: 'validator' | 'client';
  client: ChainClient;
  /** The hosted validator's node when it runs on this thread (null on a worker thread, or for a client). */
  node: ConsensusNode | null;
  /** URL of the validator API this process serves, if any. */
  apiUrl: string | null;
  /** The hosted validator's status (null for a client). */
  status(): NodeStatus | null;
  /** The hosted validator's counters (null for a client; on a thread, as of its last report). */
  metrics(): NodeMetrics | null;
  stop(): Promise<void>;
}

/** The validator options a gateway's configuration gives (role validator). */
export function hostedValidatorOptions(config: LoadedConfig): ValidatorSettings {
  const chain = config.gateway.chain;
  const api = config.gateway.api;
  return {
    genesisFile: resolve(dirname(resolve(config.gatewayFile)), chain.genesis!),
    keyFile: resolve(config.paths.dataDir, chain.memberKeyFile),
    dataDir: join(config.paths.dataDir, 'chain'),
    api: api.enabled ? { host: api.host, port: api.port } : undefined,
    bodies: { maxBytes: chain.bodies.maxBytes, retention: chain.bodies.retention },
    hostedBy: { enterprise: config.gateway.gateway.enterprise, gateway: config.gateway.gateway.id },
  };
}

export async function openChainLink(config: LoadedConfig, log: Logger): Promise<ChainLink | null> {
  const chain = config.gateway.chain;
  if (chain.role === 'none') return null;
  if (chain.role === 'client') {
    const genesis = loadGenesis(resolve(dirname(resolve(config.gatewayFile)), chain.genesis!));
    const credentialFile = resolve(config.paths.dataDir, chain.credentialFile!);
    const client = httpChainClient({
      baseUrl: chain.validatorUrl!,
      credential: () => readFileSync(credentialFile, 'utf8').trim(),
      verify: chainContext(genesis),
      onError: (err) => log.warn('validator unreachable; retrying', { err: err.message }),
    });
    return {
      role: 'client',
      client,
      node: null,
      apiUrl: null,
      status: () => null,
      metrics: () => null,
      stop: async () => {},
    };
  }
  const options = hostedValidatorOptions(config);
  const chainLog = log.child({ part: 'chain' });
  if (chain.thread) {
    const { openValidatorThread } = await import('./chain-thread.ts');
    const thread = await openValidatorThread(options, chainLog);
    return { role: 'validator', node: null, ...thread };
  }
  const v = await startValidator({ ...options, log: chainLog });
  return {
    role: 'validator',
    client: v.client,
    node: v.node,
    apiUrl: v.apiUrl,
    status: () => v.node.status(),
    metrics: () => v.node.metrics(),
    stop: () => v.stop(),
  };
}
