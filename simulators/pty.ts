/**
 * A connected pair of pseudo-terminals made by socat: a virtual null-modem cable. The simulated PLC
 * opens one end as its RS-485 port; a Modbus RTU client (the gateway, mbpoll, pymodbus) opens the other.
 * Needs the `socat` binary (`apt-get install -y socat`).
 *
 * @example
 *   const pair = await createPtyPair();
 *   // server on pair.serverPath, client on pair.clientPath
 *   await pair.close();
 */

import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';

export interface PtyPair {
  /** Stable symlinks to the two /dev/pts devices (inside a private temp folder). */
  serverPath: string;
  clientPath: string;
  /** Stops socat (by its pid) and removes the temp folder. */
  close(): Promise<void>;
}

/** socat prints its PTY names within milliseconds; this bounds the wait when it cannot start. */
export const PTY_START_TIMEOUT_MS = 5_000;

export async function createPtyPair(options: { socatPath?: string } = {}): Promise<PtyPair> {
  const dir = await mkdtemp(path.join(tmpdir(), 'masbc-pty-'));
  const serverPath = path.join(dir, 'plc');
  const clientPath = path.join(dir, 'client');
  const child = spawn(
    options.socatPath ?? 'socat',
    ['-d', '-d', `pty,raw,echo=0,link=${serverPath}`, `pty,raw,echo=0,link=${clientPath}`],
    { stdio: ['ignore', 'ignore', 'pipe'] },
  );
  try {
    await waitForTransferLoop(child);
  } catch (err) {
    await stop(child);
    await rm(dir, { recursive: true, force: true });
    throw err;
  }
  // socat logs to stderr for its whole life; keep draining it so it never blocks on a full pipe.
  child.stderr?.resume();
  return {
    serverPath,
    clientPath,
    close: async () => {
      await stop(child);
      await rm(dir, { recursive: true, force: true });
    },
  };
}

/** Resolves once socat reports that both PTYs exist and it is copying bytes between them. */
function waitForTransferLoop(child: ChildProcess): Promise<void> {
  return new Promise((resolve, reject) => {
    let log = '';
    const timer = setTimeout(
      () => done(new Error(`socat did not start in ${PTY_START_TIMEOUT_MS} ms: ${log}`)),
      PTY_START_TIMEOUT_MS,
    );
    const onData = (chunk: Buffer) => {
      log = (log + chunk.toString()).slice(-4096);
      if (log.includes('starting data transfer loop')) done();
    };
    const onError = (err: Error) =>
      done(new Error(`cannot run socat (apt-get install -y socat): ${err.message}`));
    const onExit = (code: number | null) => done(new Error(`socat exited with ${code}: ${log}`));
    function done(err?: Error): void {
      clearTimeout(timer);
      child.stderr?.off('data', onData);
      child.off('error', onError);
      child.off('exit', onExit);
      if (err) reject(err);
      else resolve();
    }
    child.stderr?.on('data', onData);
    child.once('error', onError);
    child.once('exit', onExit);
  });
}

async function stop(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null || child.pid === undefined) return;
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  child.kill('SIGTERM');
  await exited;
}
