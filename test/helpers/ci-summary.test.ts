/**
 * What CI prints at the end (.ci/run): the reporter's cases over a real vitest run, and the summary:
 * every skipped test with its reason, `N passed, N failed, N skipped`, failure on a skip without one.
 */
import { spawnSync } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { describe, expect, it } from 'vitest';
import { parseCases, summarize } from './ci-summary.ts';
import { tempDir } from './tmp.ts';

const summaryScript = resolve(import.meta.dirname, 'ci-summary.ts');
const vitestBin = resolve(import.meta.dirname, '../../node_modules/vitest/vitest.mjs');

describe('CI summary', () => {
  it('a real run: each outcome counted, the skip reason from ctx.skip listed, a reasonless skip flagged', () => {
    const dir = tempDir('ci-summary');
    const cases = join(dir, 'cases.json');
    const run = spawnSync(
      process.execPath,
      [vitestBin, 'run', '--config', join(import.meta.dirname, 'fixtures/ci-run/vitest.config.ts')],
      { env: { ...process.env, CI_CASES: cases }, encoding: 'utf8' },
    );
    expect(run.status, run.stdout + run.stderr).toBe(1); // the fixture has a failing test
    const parsed = parseCases(readFileSync(cases, 'utf8'));
    expect(parsed.map((c) => [c.name, c.state, c.note])).toEqual([
      ['outcomes > passes', 'passed', undefined],
      ['outcomes > fails', 'failed', undefined],
      ['outcomes > needs a peer', 'skipped', 'frobnicator is not installed (apt-get install -y frobnicator)'],
      ['outcomes > runs when nothing is missing', 'passed', undefined],
      ['outcomes > skips without a reason', 'skipped', undefined],
    ]);
    expect(new Set(parsed.map((c) => c.file))).toEqual(
      new Set(['test/helpers/fixtures/ci-run/cases.fixture.ts']),
    );
    const s = summarize(parsed);
    expect(s.lines).toEqual([
      'skipped: test/helpers/fixtures/ci-run/cases.fixture.ts > outcomes > needs a peer: frobnicator is not installed (apt-get install -y frobnicator)',
      'skipped: test/helpers/fixtures/ci-run/cases.fixture.ts > outcomes > skips without a reason: NO REASON GIVEN',
      'ci: 1 skipped test(s) give no reason (use ctx.skip(reason))',
      '2 passed, 1 failed, 2 skipped',
    ]);
  });

  it('the command prints the summary last and fails on a failed test, a reasonless skip, or no results', () => {
    const dir = tempDir('ci-summary');
    const summary = (cases: unknown) => {
      const file = join(dir, 'cases.json');
      writeFileSync(file, typeof cases === 'string' ? cases : JSON.stringify(cases));
      const r = spawnSync(process.execPath, [summaryScript, file], { encoding: 'utf8' });
      return { status: r.status, lines: r.stdout.trimEnd().split('\n') };
    };
    const pass = { file: 'a.test.ts', name: 'x', state: 'passed' };
    const skip = { file: 'b.test.ts', name: 'y', state: 'skipped', note: 'socat is not installed' };
    expect(summary([pass, skip])).toEqual({
      status: 0,
      lines: ['skipped: b.test.ts > y: socat is not installed', '1 passed, 0 failed, 1 skipped'],
    });
    expect(summary([pass, { ...pass, state: 'failed' }]).status).toBe(1);
    expect(summary([pass, { ...pass, state: 'pending' }]).lines.at(-1)).toBe('1 passed, 1 failed, 0 skipped');
    expect(summary([{ ...skip, note: '  ' }]).status).toBe(1);
    expect(summary('{"not":"a list"}')).toEqual({
      status: 1,
      lines: ['ci: no test results (the cases file holds no array)', '0 passed, 1 failed, 0 skipped'],
    });
    expect(summary([{ file: 'a', state: 'passed' }]).lines.at(-1)).toBe('0 passed, 1 failed, 0 skipped');
  });
});
