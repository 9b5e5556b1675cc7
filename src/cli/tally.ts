/**
 * `masbc-edge tally`: events per member, kind and period from committed envelopes (GET /v1/tally,
 * docs/api.md), as of a height: the same output at every validator for the same `--at`.
 *
 * @example
 *   masbc-edge tally --api http://127.0.0.1:8181 --credential reader.jwt --from 2026-12-01 --to 2027-01-01
 */
import type { Command } from 'commander';
import { type ApiOptions, apiCall, apiOptions } from './api-client.ts';
import { integer } from './shared.ts';

interface TallyAnswer {
  chainId: string;
  asOfHeight: number;
  blockHash: string;
  from: string;
  to: string;
  period: string;
  rows: { member: string; kind: string; period: string; count: number }[];
}

export function registerTally(program: Command): void {
  apiOptions(
    program
      .command('tally')
      .description('Output per member, kind and period, counted from committed envelopes'),
  )
    .requiredOption('--from <date>', 'first day (ISO date, UTC), inclusive')
    .requiredOption('--to <date>', 'last day (ISO date, UTC), exclusive')
    .option('--period <p>', 'day | month | all', 'day')
    .option(
      '--at <height>',
      'as of this height (default: the chain tip)',
      integer(0, Number.MAX_SAFE_INTEGER),
    )
    .option('--json', 'print the answer as JSON')
    .action(
      async (o: ApiOptions & { from: string; to: string; period: string; at?: number; json?: boolean }) => {
        const q = new URLSearchParams({ from: o.from, to: o.to, period: o.period });
        if (o.at !== undefined) q.set('at', String(o.at));
        const t = await apiCall<TallyAnswer>(o, `/v1/tally?${q}`);
        if (o.json) {
          console.log(JSON.stringify(t));
          return;
        }
        console.log(
          `${t.chainId} as of height ${t.asOfHeight} (block ${t.blockHash}), ${t.from} to ${t.to}, by ${t.period}`,
        );
        for (const r of t.rows) console.log(`${r.member}\t${r.period}\t${r.kind}\t${r.count}`);
      },
    );
}
