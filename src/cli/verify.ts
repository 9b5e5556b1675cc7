/**
 * `masbc-edge verify <bundle.json> --genesis <genesis.json>`: checks a proof bundle (docs/trace.md)
 * offline, with the genesis alone and no network: every body against its envelope's commitment,
 * every envelope against its id, every batch's signature by a key the genesis gives its gateway, each
 * event's path to its batch's root, each batch's path to its block's txRoot, each block's certificate
 * by a quorum of the genesis validators, and, for a closed order, that its events are exactly those
 * it was closed with. Exit 0 with a summary; 1 naming the first broken link (a stable code, the
 * event and block); 2 when a file cannot be read.
 *
 * @example
 *   masbc-edge verify trace-ORD-7.json --genesis genesis.json
 *   masbc-edge verify trace-ORD-7.json --genesis genesis.json --json
 */
import { readFileSync, statSync } from 'node:fs';
import type { Command } from 'commander';
import { proofBundleLimits } from '../api/proof/bundle.ts';
import { type BundleSummary, verifyProofBundle } from '../api/proof/verify.ts';
import { quorumSize } from '../consensus/core/quorum.ts';
import { loadGenesis } from '../consensus/genesis/genesis.ts';
import { nodeVerifier } from '../crypto/keys.ts';

interface VerifyCliOptions {
  genesis: string;
  json?: boolean;
}

export function registerVerify(program: Command): void {
  program
    .command('verify')
    .description(
      'Check a proof bundle (from GET /v1/trace) offline against the genesis: exit 0 with a summary, 1 naming the first broken link',
    )
    .argument('<bundle>', 'the proof bundle, JSON')
    .requiredOption('--genesis <file>', 'the alliance genesis (JSON or YAML)')
    .option('--json', 'print the verdict as JSON')
    .action((file: string, opts: VerifyCliOptions) => {
      const genesis = loadGenesis(opts.genesis);
      const bundle = readBundle(file);
      if (bundle instanceof Error) {
        console.error(`masbc-edge verify: ${bundle.message}`);
        process.exitCode = 2;
        return;
      }
      const r = verifyProofBundle(bundle, genesis.document, { verifier: nodeVerifier });
      if (opts.json) {
        console.log(JSON.stringify(r.ok ? { ok: true, summary: r.summary } : { ok: false, first: r.first }));
      } else if (r.ok) {
        console.log(describe(r.summary, genesis.n));
      } else {
        const where = [
          r.first.eventId ? `event ${r.first.eventId}` : '',
          r.first.height !== undefined ? `block ${r.first.height}` : '',
        ]
          .filter(Boolean)
          .join(', ');
        console.error(`NOT VERIFIED: ${r.first.code}: ${r.first.detail}${where ? ` (${where})` : ''}`);
      }
      if (!r.ok) process.exitCode = 1;
    });
}

/** A proof bundle's JSON, read with a bound on its size, or why it could not be read. */
function readBundle(file: string): unknown {
  let text: string;
  try {
    const size = statSync(file).size;
    if (size > proofBundleLimits.fileBytesMax) {
      return new Error(
        `${file}: ${size} bytes, more than a bundle may hold (${proofBundleLimits.fileBytesMax})`,
      );
    }
    text = readFileSync(file, 'utf8');
  } catch (err) {
    return new Error(`${file}: ${(err as Error).message}`);
  }
  try {
    return JSON.parse(text);
  } catch (err) {
    return new Error(`${file}: not JSON (${(err as Error).message})`);
  }
}

function describe(s: BundleSummary, validators: number): string {
  const scope = Object.entries(s.scope)
    .map(([k, v]) => `${k} ${v}`)
    .join('');
  const blocks = s.heights
    ? s.heights[0] === s.heights[1]
      ? `block ${s.heights[0]}`
      : `blocks ${s.heights[0]}–${s.heights[1]}`
    : 'no block';
  const lines = [
    `verified: ${scope} of ${s.member}, chain ${s.chainId} (genesis ${s.genesisHash.slice(0, 16)}…), as of block ${s.asOfHeight}`,
    `  ${s.events} events${s.lifecycle ? ` and ${s.lifecycle} life-cycle events` : ''} in ${s.batches} batches of ${s.gateways.join(', ') || 'no gateway'}, ${blocks}`,
    '  each body matches its envelope, each envelope its id, each batch is signed by a key the genesis gives its gateway,',
    `  each block is certified by a quorum (${quorumSize(validators)} of ${validators}) of the genesis validators`,
  ];
  if ('order' in s.scope) {
    lines.push(
      s.complete
        ? `  complete: the order was closed with exactly these ${s.events} events`
        : '  completeness not proven: the order is not closed',
    );
  }
  return lines.join('\n');
}
