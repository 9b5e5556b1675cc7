/** Small helpers shared by the benchmarks: medians over repeated runs and the machine's conditions. */
import { cpus, loadavg, totalmem } from 'node:os';

export interface Figure {
  name: string;
  value: number;
  unit: string;
  /** Every run's value, for the spread. */
  runs: number[];
  note?: string;
}

export function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
}

/** Runs `once` `runs` times (after one warm-up) and reports the median of its rates. */
export async function rate(
  name: string,
  unit: string,
  runs: number,
  once: () => number | Promise<number>,
  note?: string,
): Promise<Figure> {
  await once();
  const values: number[] = [];
  for (let i = 0; i < runs; i++) values.push(await once());
  return { name, value: median(values), unit, runs: values, note };
}

/** Operations per second of `n` operations done by `body`. */
export function perSecond(n: number, body: () => void): number {
  const t0 = process.hrtime.bigint();
  body();
  const s = Number(process.hrtime.bigint() - t0) / 1e9;
  return n / s;
}

export function machine(): string {
  const c = cpus();
  return `${c[0]?.model ?? 'cpu'} × ${c.length}, ${(totalmem() / 2 ** 30).toFixed(0)} GiB, node ${process.version}, load ${loadavg()
    .map((l) => l.toFixed(2))
    .join(' ')}`;
}

export function formatFigures(title: string, figures: Figure[]): string {
  const fmt = (v: number) => (v >= 100 ? Math.round(v).toLocaleString('en-US') : v.toFixed(2));
  const rows = figures.map(
    (f) =>
      `| ${f.name} | ${fmt(f.value)} ${f.unit} | ${f.runs.map((r) => fmt(r)).join(', ')} |${f.note ? ` ${f.note} |` : ' |'}`,
  );
  return [`### ${title}`, '', '| what | median | runs | note |', '|---|---|---|---|', ...rows, ''].join('\n');
}
