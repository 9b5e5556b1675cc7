/**
 * `masbc-edge trace`: a scope's proof bundle from a member's API (GET /v1/trace, docs/api.md), to
 * check offline with `masbc-edge verify <bundle.json> --genesis <genesis.json>`.
 *
 * @example
 *   masbc-edge trace --api https://acme.example:8181 --credential globex.jwt --order PO-1001 --out po.json
 */
import { writeFileSync } from 'node:fs';
import type { Command } from 'commander';
import { type ApiOptions, apiCall, apiOptions } from './api-client.ts';
import { integer } from './shared.ts';

interface TraceOptions extends ApiOptions {
  order?: string;
  lot?: string;
  product?: string;
  out?: string;
  after?: number;
  waitMs?: number;
}

interface BundleShape {
  asOf: { height: number };
  events: { envelope: { kind: string } }[];
  lifecycle: { envelope: { kind: string } }[];
}

export function registerTrace(program: Command): void {
  apiOptions(
    program
      .command('trace')
      .description('Fetch the proof bundle of an order, lot or product (what your credential may read)'),
  )
    .option('--order <id>', 'an order')
    .option('--lot <id>', 'a lot')
    .option('--product <serial>', 'a product serial')
    .option('--out <file>', 'write the bundle here (default: standard output)')
    .option(
      '--after <height>',
      'wait for an event final above this height',
      integer(0, Number.MAX_SAFE_INTEGER),
    )
    .option('--wait-ms <ms>', 'with --after: how long to wait (at most 30000)', integer(0, 30_000))
    .action(async (o: TraceOptions) => {
      const given = (['order', 'lot', 'product'] as const).filter((k) => o[k] !== undefined);
      if (given.length !== 1) throw new Error('give exactly one of --order, --lot, --product');
      const key = given[0]!;
      const q = new URLSearchParams({ [key]: o[key]! });
      if (o.after !== undefined) q.set('after', String(o.after));
      if (o.waitMs !== undefined) q.set('waitMs', String(o.waitMs));
      const bundle = await apiCall<BundleShape>(o, `/v1/trace?${q}`, { timeoutMs: 90_000 });
      const text = `${JSON.stringify(bundle)}\n`;
      if (o.out) writeFileSync(o.out, text);
      else process.stdout.write(text);
      const closed = bundle.lifecycle.some((e) => e.envelope.kind === 'order_closed');
      console.error(
        `${key} ${o[key]}: ${bundle.events.length} events, ${bundle.lifecycle.length} life-cycle events` +
          `${closed ? ' (closed)' : ''}, as of height ${bundle.asOf.height}${o.out ? ` → ${o.out}` : ''}`,
      );
    });
}
