/**
 * What CI prints at the end of a run: every skipped test with its reason, then one plain line
 * `N passed, N failed, N skipped`. The cases come from the run's reporter (ci-reporter.ts writes
 * them to a JSON file). A skip without a reason makes the run fail: a skipped test must say why
 * (a missing peer, say), or a machine without the peers looks as green as one with them.
 *
 * @example
 *   node test/helpers/ci-summary.ts .vitest-cases.json   # prints the summary; exit 1 on failures
 */
import { readFileSync } from 'node:fs';

export interface CaseResult {
  /** The test file, relative to the repository. */
  file: string;
  /** Suite names and the test's name, joined by ' > '. */
  name: string;
  state: 'passed' | 'failed' | 'skipped' | 'pending';
  /** The skip note (`ctx.skip(note)`), when one was given. */
  note?: string;
}

export interface Summary {
  lines: string[];
  passed: number;
  failed: number;
  skipped: number;
  /** Skipped tests that give no reason. */
  unexplained: number;
}

export function summarize(cases: readonly CaseResult[]): Summary {
  const lines: string[] = [];
  let passed = 0;
  let failed = 0;
  let skipped = 0;
  let unexplained = 0;
  for (const c of cases) {
    if (c.state === 'passed') passed++;
    // A test still pending when the run ended never finished: count it as failed.
    else if (c.state === 'failed' || c.state === 'pending') failed++;
    else {
      skipped++;
      const note = c.note?.trim();
      if (!note) unexplained++;
      lines.push(`skipped: ${c.file} > ${c.name}: ${note || 'NO REASON GIVEN'}`);
    }
  }
  if (unexplained > 0) lines.push(`ci: ${unexplained} skipped test(s) give no reason (use ctx.skip(reason))`);
  lines.push(`${passed} passed, ${failed} failed, ${skipped} skipped`);
  return { lines, passed, failed, skipped, unexplained };
}

export function parseCases(text: string): CaseResult[] {
  const data: unknown = JSON.parse(text);
  if (!Array.isArray(data)) throw new Error('the cases file holds no array');
  return data.map((c, i) => {
    const ok =
      typeof c === 'object' &&
      c !== null &&
      typeof c.file === 'string' &&
      typeof c.name === 'string' &&
      ['passed', 'failed', 'skipped', 'pending'].includes(c.state) &&
      (c.note === undefined || typeof c.note === 'string');
    if (!ok) throw new Error(`case ${i} is malformed: ${JSON.stringify(c)}`);
    return c as CaseResult;
  });
}

if (import.meta.main) {
  const file = process.argv[2];
  let summary: Summary;
  try {
    if (!file) throw new Error('usage: ci-summary.ts <cases.json>');
    summary = summarize(parseCases(readFileSync(file, 'utf8')));
  } catch (err) {
    console.log(`ci: no test results (${(err as Error).message})`);
    console.log('0 passed, 1 failed, 0 skipped');
    process.exit(1);
  }
  for (const line of summary.lines) console.log(line);
  process.exit(summary.failed > 0 || summary.unexplained > 0 ? 1 : 0);
}
