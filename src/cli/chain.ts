/**
 * `masbc-edge chain`: read a validator's copy of the alliance chain.
 *
 * - `verify`: checks the whole chain from the genesis alone: every block's checksum, its link,
 *   its transaction root and its commit certificate (a quorum of the genesis validators), then every
 *   batch: its envelopes' ids and root, a signature by a key registered in the genesis, and each
 *   gateway's seq/prev chain, gap-free and in order; then that the ledger state the validator
 *   saved with its blocks (each gateway's head) is the one those batches give. Envelopes are all it
 *   needs: any member verifies any block without another member's bodies. With the member's body
 *   store in the folder, it also checks that every body of the member's own final events is there and
 *   matches its commitment. This needs no trust in the validator that served the file. It exits 1 on
 *   the first problem and prints where.
 * - `lot <lot>`: the lot's events from the member's own body store, with their block heights: a
 *   member holds only its own bodies.
 * - `status`: height, tip, time of the last block, transactions, and the ledger state.
 *
 * The store is given with `--data <dir>` (a `peer` data folder, or `<gateway dataDir>/chain`) and
 * `--genesis <file>`, or derived from a gateway configuration with `chain.role: validator`.
 */
import { dirname, join, resolve } from 'node:path';
import type { Command } from 'commander';
import {
  configSignatureProblem,
  decodeConfigTx,
  gatewayRegistryOf,
  isConfigTx,
  registryBounds,
  txIdOf,
} from '../consensus/app/index.ts';
import { type Genesis, loadGenesis } from '../consensus/genesis/genesis.ts';
import { ChainStore, chainStorePath } from '../consensus/runtime/block-store.ts';
import { ledgerStateFromRows, registryFromRows } from '../consensus/runtime/ledger.ts';
import { chainContext } from '../consensus/runtime/node.ts';
import { EventRejected } from '../event/errors.ts';
import { type ChainHead, emptyHead } from '../event/signer.ts';
import { BatchVerifier, checkBody, checkLink } from '../event/verify.ts';
import { loadConfig } from '../gateway/config/config.ts';
import { BodyStore, bodyStorePath } from '../store/bodies.ts';
import { formatValue } from './shared.ts';

interface Where {
  data?: string;
  genesis?: string;
  config?: string;
}

function openChain(where: Where) {
  let data = where.data;
  let genesisFile = where.genesis;
  if (!data || !genesisFile) {
    if (!where.config)
      throw new Error('give --data and --genesis, or --config of a gateway with chain.role validator');
    const config = loadConfig(where.config);
    if (config.gateway.chain.role !== 'validator' || !config.gateway.chain.genesis) {
      throw new Error(
        `${where.config}: chain.role is ${config.gateway.chain.role}; this gateway keeps no chain`,
      );
    }
    data ??= join(config.paths.dataDir, 'chain');
    genesisFile ??= resolve(dirname(resolve(where.config)), config.gateway.chain.genesis);
  }
  const genesis = loadGenesis(genesisFile);
  const store = ChainStore.open({ path: chainStorePath(data), chain: chainContext(genesis), txId: txIdOf });
  return { genesis, store, data };
}

/** The member's body store in the data folder, if it has one. */
function openBodies(data: string): BodyStore | undefined {
  const path = bodyStorePath(data);
  const member = BodyStore.memberAt(path);
  return member === undefined
    ? undefined
    : BodyStore.open({ path, member, maxBytes: Number.MAX_SAFE_INTEGER });
}

/** The ledger state saved with the blocks (checked: a damaged row throws ChainCorruptionError). */
function savedLedgerState(genesis: Genesis, store: ChainStore) {
  const saved = store.loadAppState();
  return ledgerStateFromRows(saved, new Set(registryFromRows(genesis, saved.rows).chains()));
}

function whereOptions(cmd: Command): Command {
  return cmd
    .option('--data <dir>', 'validator data folder holding chain.db')
    .option('--genesis <file>', 'the alliance genesis')
    .option('-c, --config <file>', 'or: a gateway configuration with chain.role validator');
}

export function registerChain(program: Command): void {
  const chain = program
    .command('chain')
    .description("Read and verify a validator's copy of the alliance chain");

  whereOptions(chain.command('verify'))
    .description(
      "Verify the chain from the genesis alone: blocks, certificates, every event and each gateway's seq/prev chain",
    )
    .action((opts: Where) => {
      const { genesis, store, data } = openChain(opts);
      // One snapshot: the validator may be committing while we read.
      try {
        store.snapshot(() => {
          const t0 = Date.now();
          let lastReport = t0;
          const height = store.verifyChain({
            onProgress: (h) => {
              if (Date.now() - lastReport > 2_000) {
                lastReport = Date.now();
                console.error(`blocks verified: ${h}/${store.height}`);
              }
            },
          });
          // The registry as the chain makes it: the genesis's keys, then each configuration
          // transaction at its height; a batch is checked against the registry as of its block's parent.
          const registry = gatewayRegistryOf(genesis, registryBounds);
          const verifier = new BatchVerifier(registry);
          const heads = new Map<string, ChainHead>();
          let count = 0;
          let batches = 0;
          let configs = 0;
          for (let h = 1; h <= height; h++) {
            const cb = store.blockAt(h)!;
            const changes = [];
            for (const [i, tx] of cb.block.txs.entries()) {
              if (isConfigTx(tx)) {
                const d = decodeConfigTx(tx);
                const problem = !d.ok
                  ? { code: d.code, message: d.message }
                  : (configSignatureProblem(genesis, d.config) ?? registry.problem(d.config.payload));
                if (problem) {
                  console.error(`block ${h} tx ${i}: ${problem.code}: ${problem.message}`);
                  process.exitCode = 1;
                  return;
                }
                changes.push((d as Extract<typeof d, { ok: true }>).config.payload);
                configs++;
                continue;
              }
              try {
                const b = verifier.verify(tx);
                const unauthorized = registry.authorize(
                  b.header.keyId,
                  `${b.header.enterprise}/${b.header.gateway}`,
                );
                if (unauthorized)
                  throw new EventRejected('unknown_key', `${unauthorized.code}: ${unauthorized.message}`);
                const key = `${b.header.enterprise}/${b.header.gateway}`;
                checkLink(heads.get(key) ?? emptyHead, b.header);
                heads.set(key, {
                  seq: b.header.firstSeq + b.header.count - 1,
                  id: Buffer.from(b.ids[b.ids.length - 1]!).toString('hex'),
                });
                count += b.header.count;
                batches++;
              } catch (err) {
                if (!(err instanceof EventRejected)) throw err;
                console.error(`block ${h} tx ${i}: ${err.code}: ${err.message}`);
                process.exitCode = 1;
                return;
              }
            }
            // In block order, after the block's batches: a change takes effect from the next block.
            for (const p of changes) registry.apply(p, h);
          }
          const saved = savedLedgerState(genesis, store);
          let stateNote = `ledger state saved at height ${saved.height} matches`;
          if (saved.height === height) {
            for (const chain of new Set([...heads.keys(), ...saved.heads.keys()])) {
              const want = heads.get(chain);
              const got = saved.heads.get(chain);
              if (want?.seq !== got?.seq || want?.id !== got?.id) {
                console.error(
                  `ledger state: ${chain} is saved at seq ${got?.seq ?? 0}, the chain's events end at seq ${want?.seq ?? 0}`,
                );
                process.exitCode = 1;
                return;
              }
            }
          } else {
            // Only a store written before the state was kept, or copied mid-write: the validator
            // replays the blocks above it when it starts.
            stateNote = `ledger state saved at height ${saved.height} of ${height} (rebuilt when the validator starts)`;
          }
          console.log(
            `chain ${genesis.chainId} verified: ${height} blocks with valid certificates, ${batches} signed batches of ${count} events, ` +
              `${configs} configuration transactions (${registry.activeCount} gateway keys active), ` +
              `${heads.size} gateway chains gap-free and in order, ${stateNote} (${((Date.now() - t0) / 1000).toFixed(1)} s)`,
          );
          for (const [gw, head] of [...heads].sort()) console.log(`  ${gw}: seq 1..${head.seq}`);
          const bodies = openBodies(data);
          if (bodies) {
            try {
              const problem = checkOwnBodies(store, bodies, height, verifier);
              if (problem) {
                console.error(problem);
                process.exitCode = 1;
                return;
              }
            } finally {
              bodies.close();
            }
          }
        });
      } finally {
        store.close();
      }
    });

  whereOptions(chain.command('lot').argument('<lot>', 'lot id'))
    .description("A lot's events from this member's own body store, with their block heights")
    .option('--json', 'print JSON lines')
    .action((lot: string, opts: Where & { json?: boolean }) => {
      const { store, data } = openChain(opts);
      const bodies = openBodies(data);
      try {
        if (!bodies) {
          console.log(
            `no body store in ${data}: this folder holds no event bodies (only envelopes are on the chain)`,
          );
          return;
        }
        const events = bodies.byLot(lot, lotEventsMax);
        for (const e of events) {
          if (opts.json) {
            console.log(
              JSON.stringify({
                height: e.height,
                txId: e.txId,
                event: { id: e.id, env: e.env, body: e.body },
              }),
            );
            continue;
          }
          const b = e.body;
          const values = Object.entries(b.values)
            .map(([k, v]) => formatValue(k, v))
            .join(' ');
          const where = e.height === null ? 'not final' : `block ${String(e.height).padStart(6)}`;
          console.log(
            `${where}  ${new Date(e.env.sourceTimeMs).toISOString()}  ${e.env.enterprise}/${e.env.gateway} #${e.env.seq}  ` +
              `${e.env.kind.padEnd(17)} ${b.station}/${b.device} ${[b.product, b.order, b.step].filter(Boolean).join(' ')}  ${values}`,
          );
        }
        if (events.length === 0)
          console.log(
            `no events of lot ${lot} in ${bodies.member}'s body store (height ${store.height}); a member holds only its own bodies`,
          );
      } finally {
        bodies?.close();
        store.close();
      }
    });

  whereOptions(chain.command('status'))
    .description('Height, tip and size of the chain')
    .action((opts: Where) => {
      const { genesis, store } = openChain(opts);
      try {
        const tip = store.height > 0 ? store.blockAt(store.height) : undefined;
        const saved = savedLedgerState(genesis, store);
        console.log(
          `chain ${genesis.chainId}: height ${store.height}, ${store.txCount()} transactions (signed batches), ` +
            (tip ? `last block ${new Date(tip.block.header.timestampMs).toISOString()}` : 'no block yet') +
            `; ledger state at height ${saved.height}, ${saved.heads.size} gateway chains`,
        );
      } finally {
        store.close();
      }
    });
}

/** Events `chain lot` prints at most. */
const lotEventsMax = 100_000;

/**
 * Every body of the member's own final batches is in its body store and matches its commitment
 * (bodies older than the store's retention may have been deleted: those are counted, not errors).
 */
function checkOwnBodies(
  store: ChainStore,
  bodies: BodyStore,
  height: number,
  verifier: BatchVerifier,
): string | null {
  let held = 0;
  let missing = 0;
  for (let h = 1; h <= height; h++) {
    for (const tx of store.blockAt(h)!.block.txs) {
      if (isConfigTx(tx)) continue;
      const b = verifier.verify(tx);
      if (b.header.enterprise !== bodies.member) continue;
      const txId = Buffer.from(b.txId).toString('hex');
      const kept = new Map(bodies.byTx(txId).map((k) => [k.id, k]));
      for (const [i, env] of b.envelopes.entries()) {
        const k = kept.get(Buffer.from(b.ids[i]!).toString('hex'));
        if (!k) {
          missing++;
          continue;
        }
        try {
          checkBody(k.bodyText, env.body, env.kind, i);
        } catch (err) {
          if (!(err instanceof EventRejected)) throw err;
          return `body store: event ${env.enterprise}/${env.gateway} #${env.seq} (block ${h}): ${err.code}: ${err.message}`;
        }
        held++;
      }
    }
  }
  console.log(
    `  ${bodies.member}'s body store: ${held} bodies of its final events, each matching its commitment` +
      (missing > 0 ? `; ${missing} not held (deleted past their retention, or never kept)` : ''),
  );
  return null;
}
