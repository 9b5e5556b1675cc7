/**
 * `masbc-edge` as an operator runs it, for tests: a command to completion (exit code and output), or
 * a long-running one (`run`, `peer`, `simulate`, `demo`) started until a line says it is ready, and
 * ports that are free right now.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { createServer } from 'node:net';
import { resolve } from 'node:path';
import { createInterface } from 'node:readline';
import { stopProcess } from '../../src/devtools/processes.ts';

export const bin = resolve(import.meta.dirname, '../../bin/masbc-edge.js');

export interface CliResult {
  code: number | null;
  out: string;
  err: string;
}

/** Runs a command to completion (without blocking the test's event loop). */
export function runCli(args: string[], env: NodeJS.ProcessEnv = {}): Promise<CliResult> {
  return new Promise((done) => {
    const child = spawn(process.execPath, [bin, ...args], { env: { ...process.env, ...env } });
    let out = '';
    let err = '';
    child.stdout.on('data', (d) => {
      out += d;
    });
    child.stderr.on('data', (d) => {
      err += d;
    });
    child.once('close', (code) => done({ code, out, err }));
  });
}

export interface Started {
  child: ChildProcess;
  /** The ready line's match. */
  match: RegExpExecArray;
  /** Its output so far (bounded: the last 300 lines). */
  lines: string[];
  stop(): Promise<void>;
}

/** Starts a long-running command and resolves once a line matches `ready` (rejects if it exits first). */
export function startCli(args: string[], ready: RegExp, env: NodeJS.ProcessEnv = {}): Promise<Started> {
  const child = spawn(process.execPath, [bin, ...args], {
    env: { ...process.env, ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const lines: string[] = [];
  const stop = () => stopProcess(child, 15_000);
  running.add(stop);
  child.once('exit', () => running.delete(stop));
  return new Promise((done, fail) => {
    for (const s of [child.stdout!, child.stderr!]) {
      createInterface({ input: s }).on('line', (line) => {
        lines.push(line);
        if (lines.length > 300) lines.shift();
        const match = ready.exec(line);
        if (match) done({ child, match, lines, stop });
      });
    }
    child.once('exit', (code) =>
      fail(new Error(`masbc-edge ${args[0]} exited (${code}) before it was ready:\n${lines.join('\n')}`)),
    );
  });
}

const running = new Set<() => Promise<void>>();

/** Stops every command started by {@link startCli} that still runs (SIGTERM, then SIGKILL). */
export async function stopAllCli(): Promise<void> {
  await Promise.all([...running].map((stop) => stop()));
}

/** Ports free on 127.0.0.1 right now (held open together, so distinct, then released). */
export async function freePorts(n: number): Promise<number[]> {
  const servers = await Promise.all(
    Array.from(
      { length: n },
      () =>
        new Promise<ReturnType<typeof createServer>>((done) => {
          const s = createServer();
          s.listen(0, '127.0.0.1', () => done(s));
        }),
    ),
  );
  const ports = servers.map((s) => (s.address() as { port: number }).port);
  await Promise.all(servers.map((s) => new Promise((r) => s.close(r))));
  return ports;
}

/** Polls `check` until it returns something other than undefined/false; the deadline only bounds a failure. */
export async function eventually<T>(
  check: () => Promise<T | undefined | false> | T | undefined | false,
  what: string,
  timeoutMs: number,
  everyMs = 250,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await check();
    if (v !== undefined && v !== false) return v;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, everyMs));
  }
}
