import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts', 'src/**/*.test.ts'],
    // Integration tests start real protocol servers and child processes; run files in parallel
    // across the two cores but give slow ones room.
    testTimeout: 30_000,
    hookTimeout: 60_000,
    pool: 'forks',
    // CI_CASES=<file>: every test's result with its skip note, for .ci/run's summary (ci-summary.ts).
    reporters: process.env.CI_CASES ? ['default', './test/helpers/ci-reporter.ts'] : ['default'],
  },
});
