/**
 * `masbc-edge outbox`: what the gateway's outbox holds, for an operator at a terminal: counts and
 * the newest events (`--last`), one lot's events (`--lot`), the lots newest first with their counts
 * (`--lots`), or the dead letters with the reason each payload was refused (`--dead-letters`).
 *
 * @example
 *   masbc-edge outbox --lots
 *   masbc-edge outbox --lot LOT-2026-0042
 *   masbc-edge outbox --dead-letters --last 100
 */
import type { Command } from 'commander';
import { defaultGatewayFile, loadConfig } from '../gateway/config/config.ts';
import { ownBatchVerifier } from '../gateway/identity.ts';
import { type LotSummary, Outbox, outboxPath, type StoredEvent } from '../store/outbox.ts';
import { formatValue } from './shared.ts';

interface OutboxOptions {
  config: string;
  lot?: string;
  last: string;
  json?: boolean;
  deadLetters?: boolean;
  lots?: boolean;
}

function lotLine(l: LotSummary): string {
  const span = `${new Date(l.firstSourceMs).toISOString()} … ${new Date(l.lastSourceMs).toISOString()}`;
  return `${l.lot.padEnd(24)} ${String(l.events).padStart(6)} events (${l.final} final)  ${span}`;
}

function line(e: StoredEvent): string {
  const { env, body } = e.event;
  const where = body ? `${body.station}/${body.device}` : '-';
  const ctx = body
    ? [body.lot, body.product, body.order, body.step].filter(Boolean).join(' ')
    : '(body withheld)';
  const values = body
    ? Object.entries(body.values)
        .map(([k, v]) => formatValue(k, v))
        .join(', ')
    : '';
  const state = e.committed ? `block ${e.height}` : 'pending';
  return `${String(e.seq).padStart(8)}  ${new Date(env.sourceTimeMs).toISOString()}  ${env.kind.padEnd(17)} ${where.padEnd(14)} ${ctx}  ${values}  [${state}]`;
}

export function registerOutbox(program: Command): void {
  program
    .command('outbox')
    .description(
      "Inspect the outbox: counts, the newest events, or one lot's events with their block heights",
    )
    .option('-c, --config <file>', 'gateway configuration', defaultGatewayFile)
    .option('-l, --lot <lot>', 'show the events of this lot')
    .option('-n, --last <n>', 'show the newest n events', '20')
    .option('--json', 'print JSON lines (full signed events)')
    .option('--dead-letters', 'show the newest malformed or unmappable payloads, with their reason, instead')
    .option('--lots', 'list the lots with the newest events first, with their event counts')
    .action((opts: OutboxOptions) => {
      const config = loadConfig(opts.config);
      const outbox = Outbox.open({
        path: outboxPath(config.paths.dataDir),
        verifier: ownBatchVerifier(config),
        maxBytes: config.gateway.store.maxBytes,
        maxRows: config.gateway.store.maxRows,
        onCorrupt: (seq, reason) => console.error(`CORRUPT seq ${seq}: ${reason}`),
      });
      try {
        if (opts.deadLetters) {
          const letters = outbox.deadLetters(Number(opts.last)).reverse();
          if (letters.length === 0 && !opts.json) console.log('no dead letters');
          for (const d of letters) {
            console.log(
              opts.json
                ? JSON.stringify(d)
                : `${new Date(d.receivedMs).toISOString()}  ${d.device}  ${d.source}  ${d.reason}  ${JSON.stringify(d.payload.slice(0, 120))}`,
            );
          }
          return;
        }
        if (opts.lots) {
          const lots = outbox.lots(Number(opts.last));
          if (opts.json) for (const l of lots) console.log(JSON.stringify(l));
          else if (lots.length === 0) console.log('no lots: no event in the outbox names one');
          else for (const l of lots) console.log(lotLine(l));
          return;
        }
        const events = opts.lot ? outbox.byLot(opts.lot) : outbox.last(Number(opts.last)).reverse();
        if (opts.json) {
          for (const e of events)
            console.log(
              JSON.stringify({ seq: e.seq, committed: e.committed, height: e.height, event: e.event }),
            );
          return;
        }
        const s = outbox.stats();
        console.log(
          `outbox ${outboxPath(config.paths.dataDir)}: ${s.rows} events (${s.pending} pending, ${s.committed} final), head seq ${s.head.seq}, ` +
            `${(s.usedBytes / 1e6).toFixed(1)} MB of ${(s.maxBytes / 1e6).toFixed(0)} MB` +
            (s.pendingGap ? `, ${s.pendingGap.droppedCount} drafts lost awaiting a gap event` : ''),
        );
        for (const e of events) console.log(line(e));
        if (opts.lot && events.length === 0) console.log(`no events for lot ${opts.lot}`);
      } finally {
        outbox.close();
      }
    });
}
