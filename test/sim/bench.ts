/**
 * CPU cost of the seeded simulator on a fixed range of seeds (not part of `npm test`): what the
 * CI sweep's size is budgeted from (docs/consensus.md, "Simulator").
 *
 *   node test/sim/bench.ts                       # n=4 seeds 1..400 and n=7 seeds 1..60, best of 3
 *   N=7 FIRST_SEED=1 SEEDS=200 REPEAT=5 node test/sim/bench.ts
 *
 * Reports process CPU time (user + system) per seed, the best of REPEAT passes over the same seeds:
 * on a shared machine other jobs inflate wall time and, less, CPU time; the minimum is the figure
 * least disturbed by them.
 */
import { runScenario } from './scenario.ts';

const ns = process.env.N ? [Number(process.env.N)] : [4, 7];
const first = Number(process.env.FIRST_SEED ?? 1);
const repeat = Number(process.env.REPEAT ?? 3);

for (const n of ns) {
  const seeds = Number(process.env.SEEDS ?? (n === 4 ? 400 : 60));
  const passes: number[] = [];
  for (let p = 0; p < repeat; p++) {
    const c0 = process.cpuUsage();
    for (let s = first; s < first + seeds; s++) runScenario({ seed: s, n });
    const c = process.cpuUsage(c0);
    passes.push((c.user + c.system) / 1000 / seeds);
  }
  console.log(
    `n=${n} seeds ${first}..${first + seeds - 1}: ${Math.min(...passes).toFixed(1)} ms CPU per seed (passes: ${passes.map((x) => x.toFixed(1)).join(', ')})`,
  );
}
