/**
 * In-process alliances for the runtime's tests: n ConsensusNodes over the in-memory transport, each
 * with its own SQLite block store in a temporary folder, running the ledger with the gateways the
 * genesis registers. Every `save` is also folded with the core's reference `applyRecord`, so a test
 * can check that the store's upserts give exactly the same persisted state, and is checked to leave
 * the ledger state stored as of the store's tip.
 */
import { join } from 'node:path';
import { txIdOf } from '../../../src/consensus/app/tx.ts';
import { applyRecord, emptyPersistedState, type PersistedState } from '../../../src/consensus/core/io.ts';
import { MemoryNetwork } from '../../../src/consensus/net/memory.ts';
import type { Transport } from '../../../src/consensus/net/types.ts';
import { ChainStore } from '../../../src/consensus/runtime/block-store.ts';
import { openLedger } from '../../../src/consensus/runtime/ledger.ts';
import { ConsensusNode, type ConsensusNodeInit, chainContext } from '../../../src/consensus/runtime/node.ts';
import { loadKeyFile } from '../../../src/crypto/keys.ts';
import { createLocalAlliance, type LocalAlliance } from '../../../src/devtools/local-alliance.ts';
import { BodyStore, bodyStorePath } from '../../../src/store/bodies.ts';
import { tempDir } from '../../helpers/tmp.ts';
import { allianceGateways, type GatewaySet } from './events-fixture.ts';

export interface MemoryAlliance {
  alliance: LocalAlliance;
  dir: string;
  net: MemoryNetwork;
  members: string[];
  /** The gateways the genesis registers, with their signers. */
  gateways: GatewaySet;
  nodes: Map<string, ConsensusNode>;
  /** Per member: its body store (the bodies of its own gateways' events), kept as a validator keeps it. */
  bodies: Map<string, BodyStore>;
  /** Per member: the state obtained by folding every saved record with `applyRecord`. */
  reference: Map<string, PersistedState>;
  /** Saves after which the stored ledger state was not as of the store's tip (must stay empty). */
  stateLag: string[];
  start(member: string): Promise<ConsensusNode>;
  stopAll(): Promise<void>;
}

export interface MemoryAllianceOptions
  extends Partial<Pick<ConsensusNodeInit, 'timing' | 'local' | 'limits'>> {
  viewChangeTimeoutMs?: number;
  /** Gateways registered in the genesis, `gw-1` … spread over the members (default 2). */
  gateways?: number;
}

export async function memoryAlliance(
  n: number,
  options: MemoryAllianceOptions = {},
): Promise<MemoryAlliance> {
  const dir = tempDir('node');
  const members = Array.from({ length: n }, (_, i) => `member-${i + 1}`);
  const registered: Record<string, string[]> = {};
  for (let i = 0; i < (options.gateways ?? 2); i++) {
    const member = members[i % n]!;
    registered[member] = [...(registered[member] ?? []), `gw-${i + 1}`];
  }
  const alliance = await createLocalAlliance({
    dir,
    members,
    chainId: 'node-test',
    gateways: registered,
    params: { viewChangeTimeoutMs: options.viewChangeTimeoutMs ?? 500 } as never,
  });
  const net = new MemoryNetwork(alliance.genesis, { delivery: 'auto' });
  const nodes = new Map<string, ConsensusNode>();
  const bodies = new Map<string, BodyStore>();
  const reference = new Map<string, PersistedState>();
  const stateLag: string[] = [];
  const a: MemoryAlliance = {
    alliance,
    dir,
    net,
    members,
    gateways: allianceGateways(alliance),
    nodes,
    bodies,
    reference,
    stateLag,
    async start(member) {
      const node = openNode(alliance, member, net.transport(member), join(dir, 'data', member), options);
      const ref = reference.get(member) ?? emptyPersistedState();
      reference.set(member, ref);
      const save = node.store.save.bind(node.store);
      node.store.save = (batch) => {
        save(batch);
        for (const r of batch.records) applyRecord(ref, r);
        const stored = node.store.loadAppState().height;
        if (stored !== node.store.height)
          stateLag.push(`${member}: state ${stored}, tip ${node.store.height}`);
      };
      nodes.set(member, node);
      if (!bodies.has(member)) {
        const store = BodyStore.open({
          path: bodyStorePath(join(dir, 'data', member)),
          member,
          maxBytes: 1 << 30,
        });
        bodies.set(member, store);
      }
      const store = bodies.get(member)!;
      node.onCommitted((e) => {
        store.markCommitted(
          e.txIds.map((id) => Buffer.from(id).toString('hex')),
          e.height,
        );
      });
      await node.start();
      return node;
    },
    async stopAll() {
      await Promise.all([...nodes.values()].map((node) => node.stop()));
      for (const b of bodies.values()) b.close();
      bodies.clear();
    },
  };
  return a;
}

/** A validator with its store under `dataDir` and the ledger as of the store's tip. */
export function openNode(
  alliance: LocalAlliance,
  member: string,
  transport: Transport,
  dataDir: string,
  options: Partial<Pick<ConsensusNodeInit, 'timing' | 'local' | 'limits'>> = {},
): ConsensusNode {
  const store = ChainStore.open({
    path: join(dataDir, 'chain.db'),
    chain: chainContext(alliance.genesis),
    txId: txIdOf,
  });
  try {
    return new ConsensusNode({
      genesis: alliance.genesis,
      self: member,
      signer: loadKeyFile(alliance.keyFiles.get(member)!),
      transport,
      store,
      app: openLedger(alliance.genesis, store).app,
      timing: { statusIntervalMs: 100, proposeDelayMs: 2, ...options.timing },
      local: options.local,
      limits: options.limits,
    });
  } catch (err) {
    store.close();
    throw err;
  }
}

/** Resolves when `check` holds, re-checking every 20 ms. */
export async function until(check: () => boolean, what: string, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}
