/**
 * Long simulator run over fresh seeds (not part of `npm test`):
 *
 *   node test/sim/soak.ts                                 # 10 minutes, n=4 and n=7 alternately
 *   SOAK_SECONDS=3600 N=7 FIRST_SEED=100000 node test/sim/soak.ts
 *
 * Prints progress every 30 s and, for a failure, the seed with the command that reproduces it;
 * exits 1 if any seed failed.
 */
import { runScenario } from './scenario.ts';

const seconds = Number(process.env.SOAK_SECONDS ?? 600);
const ns = process.env.N ? [Number(process.env.N)] : [4, 7];
// Default: a starting seed from the clock, so repeated soaks explore new seeds; printed for reuse.
let seed = Number(process.env.FIRST_SEED ?? (Date.now() % 1_000_000_000) * 10);
console.log(`soak: ${seconds} s, n ∈ {${ns.join(', ')}}, first seed ${seed}`);
const t0 = performance.now();
let runs = 0;
let failures = 0;
let lastReport = t0;
let maxRecoveryMs = 0;
while (performance.now() - t0 < seconds * 1000) {
  const n = ns[runs % ns.length]!;
  try {
    const r = runScenario({ seed, n });
    maxRecoveryMs = Math.max(maxRecoveryMs, r.recoveryMs);
  } catch (e) {
    failures++;
    console.log(`FAIL ${(e as Error).message}`);
  }
  runs++;
  seed++;
  if (performance.now() - lastReport > 30_000) {
    lastReport = performance.now();
    console.log(
      `${Math.round((lastReport - t0) / 1000)} s: ${runs} seeds, ${failures} failed, worst recovery ${maxRecoveryMs} ms`,
    );
  }
}
console.log(
  `soak done: ${runs} seeds in ${Math.round((performance.now() - t0) / 1000)} s, ${failures} failed, worst recovery ${maxRecoveryMs} ms (simulated)`,
);
process.exit(failures > 0 ? 1 : 0);
