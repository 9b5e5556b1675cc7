#!/usr/bin/env node
// Entry point of the masbc-edge CLI. The sources are TypeScript run directly by Node's type
// stripping (on by default from Node 22.18/23.6); on 22.13–22.17 we re-run with the flag.
import { spawnSync } from 'node:child_process';

if (!process.features.typescript) {
  const r = spawnSync(
    process.execPath,
    ['--experimental-strip-types', '--no-warnings=ExperimentalWarning', ...process.argv.slice(1)],
    {
      stdio: 'inherit',
    },
  );
  process.exit(r.status ?? 1);
}
const { main } = await import('../src/cli/main.ts');
await main(process.argv);
