import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts', 'src/**/*.test.ts'],
    // Integration tests start real protocol servers and child processes; run files in parallel
    // across the two cores but give slow ones room.
    testTimeout: 30_000,
    hookTimeout: 60_000,
    pool: 'forks',
    // Two files at a time: most of a file's time is spent waiting on child processes and sockets,
    // and vitest's default on a 2-core machine (cores - 1) ran the suite one file at a time.
    maxWorkers: 2,
    // CI_CASES=<file>: every test's result with its skip note, for .ci/run's summary (ci-summary.ts).
    reporters: process.env.CI_CASES ? ['default', './test/helpers/ci-reporter.ts'] : ['default'],
  },
});
