/**
 * A temporary folder removed when the current test finishes, or, when made outside a test (in a
 * beforeAll, say), when the test process exits.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { onTestFinished } from 'vitest';

const atExit: string[] = [];
process.once('exit', () => {
  for (const dir of atExit) rmSync(dir, { recursive: true, force: true });
});

export function tempDir(prefix: string): string {
  const dir = mkdtempSync(join(tmpdir(), `masbc-${prefix}-`));
  try {
    onTestFinished(() => rmSync(dir, { recursive: true, force: true }));
  } catch {
    atExit.push(dir);
  }
  return dir;
}
