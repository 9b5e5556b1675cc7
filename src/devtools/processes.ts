/**
 * Child processes of the development tools: `masbc-edge peer` as an OS process of its own, for the
 * demo and `alliance up` (its output lines go to a callback; it runs in its own process group so
 * that a terminal's Ctrl-C reaches only the parent, which stops each peer with one SIGTERM: a
 * second signal would make it exit at once), and stopping any child cleanly.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { dirname, resolve } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';

const binPath = resolve(dirname(fileURLToPath(import.meta.url)), '../../bin/masbc-edge.js');

export interface PeerChild {
  member: string;
  process: ChildProcess;
  exited: Promise<number | null>;
}

export function spawnPeer(
  member: string,
  args: string[],
  onLine: (line: string) => void = (line) => console.log(`[${member}] ${line}`),
): PeerChild {
  // Own process group: a terminal's Ctrl-C reaches only this process, which stops the peers one
  // SIGTERM each (a second signal would make a peer exit at once instead of cleanly).
  const child = spawn(process.execPath, [binPath, 'peer', ...args], {
    stdio: ['pipe', 'pipe', 'pipe'],
    detached: true,
  });
  for (const stream of [child.stdout!, child.stderr!]) {
    createInterface({ input: stream }).on('line', onLine);
  }
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  return { member, process: child, exited };
}

/** Stops a child process: SIGTERM, then SIGKILL if it is still running after `timeoutMs`. */
export async function stopProcess(child: ChildProcess, timeoutMs = 2_000): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise<void>((done) => child.once('exit', () => done()));
  child.kill('SIGTERM');
  const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
  await exited;
  clearTimeout(timer);
}
