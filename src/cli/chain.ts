/**
 * `masbc-edge chain`: read a validator's copy of the alliance chain.
 *
 * - `verify`: checks the whole chain from the genesis alone: every block's checksum, its link,
 *   its transaction root and its commit certificate (a quorum of the genesis validators), then every
 *   event: schema, id, body commitment, a signature by a key registered in the genesis, and each
 *   gateway's seq/prev chain, gap-free and in order; then that the ledger state the validator
 *   saved with its blocks (each gateway's head) is the one those events give. This needs no trust
 *   in the validator that served the file. It exits 1 on the first problem and prints where.
 * - `lot <lot>`: the lot's events across all gateways, with their block heights.
 * - `status`: height, tip, time of the last block, events, and the ledger state's height and gateways.
 *
 * The store is given with `--data <dir>` (a `peer` data folder, or `<gateway dataDir>/chain`) and
 * `--genesis <file>`, or derived from a gateway configuration with `chain.role: validator`.
 */
import { dirname, join, resolve } from 'node:path';
import type { Command } from 'commander';
import { gatewayRegistryOf, txIdOf } from '../consensus/app/index.ts';
import { type Genesis, loadGenesis } from '../consensus/genesis/genesis.ts';
import { ChainStore, chainStorePath } from '../consensus/runtime/block-store.ts';
import { ledgerStateFromRows } from '../consensus/runtime/ledger.ts';
import { chainContext } from '../consensus/runtime/node.ts';
import type { SignedEvent } from '../event/event.ts';
import { type ChainHead, emptyHead } from '../event/signer.ts';
import { EventRejected, EventVerifier } from '../event/verify.ts';
import { loadConfig } from '../gateway/config/config.ts';

interface Where {
  data?: string;
  genesis?: string;
  config?: string;
}

const decoder = new TextDecoder();

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
  return { genesis, store };
}

/** The ledger state saved with the blocks (checked: a damaged row throws ChainCorruptionError). */
function savedLedgerState(genesis: Genesis, store: ChainStore) {
  return ledgerStateFromRows(store.loadAppState(), new Set(gatewayRegistryOf(genesis).chains()));
}

function* events(
  store: ChainStore,
): Generator<{ height: number; index: number; event: unknown; bytes: number }> {
  for (let h = 1; h <= store.height; h++) {
    const cb = store.blockAt(h)!;
    for (let i = 0; i < cb.block.txs.length; i++) {
      const tx = cb.block.txs[i]!;
      yield { height: h, index: i, event: JSON.parse(decoder.decode(tx)), bytes: tx.byteLength };
    }
  }
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
      const { genesis, store } = openChain(opts);
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
          const verifier = new EventVerifier(gatewayRegistryOf(genesis));
          const heads = new Map<string, ChainHead>();
          let count = 0;
          for (const e of events(store)) {
            let event: SignedEvent;
            try {
              event = verifier.verify(e.event, e.bytes);
              const key = `${event.env.enterprise}/${event.env.gateway}`;
              verifier.checkLink(heads.get(key) ?? emptyHead, event);
              heads.set(key, { seq: event.env.seq, id: event.id });
            } catch (err) {
              if (!(err instanceof EventRejected)) throw err;
              console.error(`block ${e.height} tx ${e.index}: ${err.code}: ${err.message}`);
              process.exitCode = 1;
              return;
            }
            count++;
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
            `chain ${genesis.chainId} verified: ${height} blocks with valid certificates, ${count} events with valid signatures, ` +
              `${heads.size} gateway chains gap-free and in order, ${stateNote} (${((Date.now() - t0) / 1000).toFixed(1)} s)`,
          );
          for (const [gw, head] of [...heads].sort()) console.log(`  ${gw}: seq 1..${head.seq}`);
        });
      } finally {
        store.close();
      }
    });

  whereOptions(chain.command('lot').argument('<lot>', 'lot id'))
    .description("A lot's events across all gateways, with their block heights")
    .option('--json', 'print JSON lines')
    .action((lot: string, opts: Where & { json?: boolean }) => {
      const { store } = openChain(opts);
      try {
        let n = 0;
        for (const e of events(store)) {
          const ev = e.event as SignedEvent;
          if (ev.body?.lot !== lot) continue;
          n++;
          if (opts.json) {
            console.log(JSON.stringify({ height: e.height, index: e.index, event: ev }));
            continue;
          }
          const b = ev.body;
          const values = Object.entries(b.values)
            .map(([k, v]) => `${k}=${v.v}${v.unit ?? ''}`)
            .join(' ');
          console.log(
            `block ${String(e.height).padStart(6)}  ${new Date(ev.env.sourceTimeMs).toISOString()}  ${ev.env.enterprise}/${ev.env.gateway} #${ev.env.seq}  ` +
              `${ev.env.kind.padEnd(17)} ${b.station}/${b.device} ${[b.product, b.order, b.step].filter(Boolean).join(' ')}  ${values}`,
          );
        }
        if (n === 0) console.log(`no events of lot ${lot} on chain (height ${store.height})`);
      } finally {
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
          `chain ${genesis.chainId}: height ${store.height}, ${store.txCount()} events, ` +
            (tip ? `last block ${new Date(tip.block.header.timestampMs).toISOString()}` : 'no block yet') +
            `; ledger state at height ${saved.height}, ${saved.heads.size} gateway chains`,
        );
      } finally {
        store.close();
      }
    });
}
