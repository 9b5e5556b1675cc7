/**
 * `npm run bench [suite…]`: runs the benchmarks and prints medians with the machine's conditions.
 * Suites: crypto, outbox (and more as the project grows). Figures are medians of several runs on a
 * shared machine: compare ratios, not absolute numbers, across machines.
 */
import { benchConsensus } from './consensus.ts';
import { benchCrypto } from './crypto.ts';
import { benchDrivers } from './drivers.ts';
import { type Figure, formatFigures, machine } from './lib.ts';
import { benchNet } from './net.ts';
import { benchOutbox } from './outbox.ts';

const suites: Record<string, { title: string; run: () => Promise<Figure[]> }> = {
  crypto: { title: 'Event signing and verification (one core)', run: () => benchCrypto() },
  outbox: { title: 'Outbox append (sign + SQLite insert)', run: () => benchOutbox() },
  drivers: { title: 'Acquisition: drivers and normaliser', run: () => benchDrivers() },
  consensus: {
    title: 'Consensus over libp2p: validators as processes, real signed events',
    run: () => benchConsensus(),
  },
  ledger: {
    title: 'Ledger: per-event cost at one validator (one core)',
    run: async () => (await import('./ledger.ts')).benchLedger(),
  },
  e2e: {
    title: 'End to end: MQTT source → gateway → 4 validators (all on this machine)',
    run: async () => (await import('./e2e.ts')).benchE2e(),
  },
  net: {
    title: 'libp2p transport between two validators (tcp + noise + yamux, loopback)',
    run: () => benchNet(),
  },
  proof: {
    title: 'Proof bundles: build and verify',
    run: async () => (await import('./proof.ts')).benchProof(),
  },
};

const wanted = process.argv.slice(2);
const unknown = wanted.filter((w) => !(w in suites));
if (unknown.length) {
  console.error(`unknown suite(s): ${unknown.join(', ')}; available: ${Object.keys(suites).join(', ')}`);
  process.exit(2);
}
console.log(`# masbc-edge benchmarks\n\n${new Date().toISOString()} on ${machine()}\n`);
for (const name of wanted.length ? wanted : Object.keys(suites)) {
  const s = suites[name]!;
  process.stderr.write(`running ${name}…\n`);
  console.log(formatFigures(s.title, await s.run()));
}
