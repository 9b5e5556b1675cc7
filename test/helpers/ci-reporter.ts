/**
 * A vitest reporter for CI: writes every test's result (file, name, state, skip note) to the JSON
 * file named by CI_CASES, for ci-summary.ts to list the skipped tests with their reasons and count.
 * vitest's own JSON reporter leaves the skip notes out.
 */
import { writeFileSync } from 'node:fs';
import { relative } from 'node:path';
import type { Reporter, TestModule } from 'vitest/node';
import type { CaseResult } from './ci-summary.ts';

export default class CiReporter implements Reporter {
  onTestRunEnd(modules: ReadonlyArray<TestModule>): void {
    const out = process.env.CI_CASES;
    if (!out) return;
    const cases: CaseResult[] = [];
    for (const m of modules) {
      const file = relative(process.cwd(), m.moduleId);
      for (const t of m.children.allTests()) {
        const r = t.result();
        const state =
          r.state === 'passed' || r.state === 'failed' || r.state === 'skipped' ? r.state : 'pending';
        const note = r.state === 'skipped' ? r.note : undefined;
        cases.push({ file, name: t.fullName, state, ...(note ? { note } : {}) });
      }
      // A file that failed before collecting its tests (an import error, a failing beforeAll with no
      // test) still counts as a failure.
      if (m.state() === 'failed' && ![...m.children.allTests()].some((t) => t.result().state === 'failed'))
        cases.push({ file, name: '(the file itself)', state: 'failed' });
    }
    writeFileSync(out, JSON.stringify(cases));
  }
}
