/**
 * In-process alliances for the runtime's tests: n ConsensusNodes over the in-memory transport (or
 * libp2p), each with its own SQLite block store in a temporary folder, running the signed-event
 * application. Every `save` is also folded with the core's reference `applyRecord`, so a test can
 * check that the store's upserts give exactly the same persisted state.
 */
import { join } from 'node:path';
import { applyRecord, emptyPersistedState, type PersistedState } from '../../../src/consensus/core/io.ts';
import { createLocalAlliance, type LocalAlliance } from '../../../src/consensus/genesis.ts';
import { MemoryNetwork } from '../../../src/consensus/net/memory.ts';
import type { Transport } from '../../../src/consensus/net/types.ts';
import { signedEventApplication } from '../../../src/consensus/node/events.ts';
import { ConsensusNode, type ConsensusNodeInit, chainContext } from '../../../src/consensus/node.ts';
import { loadKeyFile } from '../../../src/crypto/keys.ts';
import { ChainStore } from '../../../src/store/chain.ts';
import { tempDir } from '../../helpers/tmp.ts';
import type { GatewaySet } from './events-fixture.ts';

export interface MemoryAlliance {
  alliance: LocalAlliance;
  dir: string;
  net: MemoryNetwork;
  members: string[];
  nodes: Map<string, ConsensusNode>;
  /** Per member: the state obtained by folding every saved record with `applyRecord`. */
  reference: Map<string, PersistedState>;
  start(member: string): Promise<ConsensusNode>;
  stopAll(): Promise<void>;
}

export async function memoryAlliance(
  n: number,
  gateways: GatewaySet,
  options: Partial<Pick<ConsensusNodeInit, 'timing' | 'local' | 'limits'>> & {
    viewChangeTimeoutMs?: number;
  } = {},
): Promise<MemoryAlliance> {
  const dir = tempDir('node');
  const alliance = await createLocalAlliance({
    dir,
    members: n,
    chainId: 'node-test',
    params: { viewChangeTimeoutMs: options.viewChangeTimeoutMs ?? 500 } as never,
  });
  const net = new MemoryNetwork(alliance.genesis, { delivery: 'auto' });
  const members = alliance.genesis.validators.map((v) => v.memberId);
  const nodes = new Map<string, ConsensusNode>();
  const reference = new Map<string, PersistedState>();
  const a: MemoryAlliance = {
    alliance,
    dir,
    net,
    members,
    nodes,
    reference,
    async start(member) {
      const node = openNode(
        alliance,
        member,
        net.transport(member),
        join(dir, 'data', member),
        gateways,
        options,
      );
      const ref = reference.get(member) ?? emptyPersistedState();
      reference.set(member, ref);
      const save = node.store.save.bind(node.store);
      node.store.save = (batch) => {
        save(batch);
        for (const r of batch.records) applyRecord(ref, r);
      };
      nodes.set(member, node);
      await node.start();
      return node;
    },
    async stopAll() {
      await Promise.all([...nodes.values()].map((node) => node.stop()));
    },
  };
  return a;
}

export function openNode(
  alliance: LocalAlliance,
  member: string,
  transport: Transport,
  dataDir: string,
  gateways: GatewaySet,
  options: Partial<Pick<ConsensusNodeInit, 'timing' | 'local' | 'limits'>> = {},
): ConsensusNode {
  const app = signedEventApplication({ keys: gateways.registry });
  const store = ChainStore.open({
    path: join(dataDir, 'chain.db'),
    chain: chainContext(alliance.genesis),
    txId: app.txId,
  });
  return new ConsensusNode({
    genesis: alliance.genesis,
    self: member,
    signer: loadKeyFile(alliance.keyFiles.get(member)!),
    transport,
    store,
    app,
    timing: { statusIntervalMs: 100, proposeDelayMs: 2, ...options.timing },
    local: options.local,
    limits: options.limits,
  });
}

/** Resolves when `check` holds, re-checking on every commit of any node and every 20 ms. */
export async function until(check: () => boolean, what: string, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}
