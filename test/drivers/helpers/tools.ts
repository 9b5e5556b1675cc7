/**
 * External peers for interop tests: pymodbus (Debian python3-pymodbus), socat pty pairs, mosquitto.
 * A test that needs a missing tool is skipped with the reason (`itUnless(missing(…))`).
 */
import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir, userInfo } from 'node:os';
import { join } from 'node:path';

const python = '/usr/bin/python3';

function commandExists(cmd: string): boolean {
  return spawnSync('sh', ['-c', `command -v ${cmd}`]).status === 0;
}

export const tools = {
  pymodbus: existsSync(python) && spawnSync(python, ['-c', 'import pymodbus, serial_asyncio']).status === 0,
  socat: commandExists('socat'),
  mbpoll: commandExists('mbpoll'),
  mosquitto: existsSync('/usr/sbin/mosquitto'),
  openssl: commandExists('openssl'),
};

/** Why a test that needs `tool` is skipped, or null when it is installed (for `itUnless`). */
export function missing(tool: keyof typeof tools, install: string): string | null {
  return tools[tool] ? null : `${tool} is not installed (${install})`;
}

/** Resolves with the first stdout/stderr line matching `pattern`, or rejects on exit or timeout. */
function waitForLine(
  child: ChildProcess,
  pattern: RegExp,
  what: string,
  timeoutMs = 10_000,
): Promise<RegExpExecArray> {
  return new Promise((resolve, reject) => {
    let buffer = '';
    const onData = (chunk: Buffer) => {
      buffer += chunk.toString();
      const m = pattern.exec(buffer);
      if (m) {
        cleanup();
        resolve(m);
      }
    };
    const onExit = (code: number | null) => {
      cleanup();
      reject(new Error(`${what} exited (${code}) before it was ready: ${buffer.slice(-500)}`));
    };
    const timer = setTimeout(() => {
      cleanup();
      reject(new Error(`${what} not ready after ${timeoutMs} ms: ${buffer.slice(-500)}`));
    }, timeoutMs);
    const cleanup = () => {
      clearTimeout(timer);
      child.stdout?.off('data', onData);
      child.stderr?.off('data', onData);
      child.off('exit', onExit);
    };
    child.stdout?.on('data', onData);
    child.stderr?.on('data', onData);
    child.on('exit', onExit);
  });
}

function stopChild(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve();
  return new Promise((resolve) => {
    const timer = setTimeout(() => child.kill('SIGKILL'), 2_000);
    child.once('exit', () => {
      clearTimeout(timer);
      resolve();
    });
    child.stdin?.end();
    child.kill('SIGTERM');
  });
}

export interface PymodbusConfig {
  mode: 'tcp' | 'rtu';
  /** TCP port (default an ephemeral one): to restart the peer where a client expects it. */
  port?: number;
  device?: string;
  baudrate?: number;
  parity?: 'N' | 'E' | 'O';
  units: Record<string, Partial<Record<'hr' | 'ir' | 'co' | 'di', Record<string, number[]>>>>;
  /** Every `ms`, set these holding registers of every unit to a growing counter. */
  tick?: { ms: number; hr: number[] };
}

export async function startPymodbus(
  config: PymodbusConfig,
): Promise<{ port: number; pid: number; stop(): Promise<void> }> {
  const script = join(import.meta.dirname, '..', 'fixtures', 'pymodbus_server.py');
  const child = spawn(python, [script, JSON.stringify(config)], { stdio: ['pipe', 'pipe', 'pipe'] });
  const m = await waitForLine(child, /READY ?(\d*)\r?\n/, 'pymodbus').catch(async (err) => {
    await stopChild(child);
    throw err;
  });
  return { port: Number(m[1] || 0), pid: child.pid!, stop: () => stopChild(child) };
}

/** A connected pair of pseudo-terminals (a virtual null-modem cable). */
export async function startSocatPair(): Promise<{ a: string; b: string; stop(): Promise<void> }> {
  const dir = mkdtempSync(join(tmpdir(), 'masbc-pty-'));
  const a = join(dir, 'ttyA');
  const b = join(dir, 'ttyB');
  const child = spawn('socat', ['-d', '-d', `pty,raw,echo=0,link=${a}`, `pty,raw,echo=0,link=${b}`], {
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  await waitForLine(child, /starting data transfer loop/, 'socat');
  return {
    a,
    b,
    stop: async () => {
      await stopChild(child);
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

export async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as { port: number }).port;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

/** A Debian mosquitto broker on an ephemeral port, with an optional TLS listener. */
export async function startMosquitto(
  options: {
    tls?: { ca: string; cert: string; key: string; requireClientCert?: boolean };
    /** A mosquitto_passwd file: anonymous clients are then refused. */
    passwordFile?: string;
    /** More mosquitto.conf lines (e.g. `max_inflight_messages 100`). */
    extraLines?: string[];
    /** Listen here (default a free port): to restart a broker where clients expect it. */
    port?: number;
  } = {},
): Promise<{ port: number; tlsPort?: number; stop(): Promise<void> }> {
  const dir = mkdtempSync(join(tmpdir(), 'masbc-mosquitto-'));
  const port = options.port ?? (await freePort());
  const lines = [
    // Started as root, mosquitto drops to user "mosquitto", who cannot read our 0700 temp folders.
    `user ${userInfo().username}`,
    'per_listener_settings false',
    ...(options.passwordFile
      ? [`password_file ${options.passwordFile}`, 'allow_anonymous false']
      : ['allow_anonymous true']),
    'persistence false',
    ...(options.extraLines ?? []),
    `listener ${port} 127.0.0.1`,
  ];
  let tlsPort: number | undefined;
  if (options.tls) {
    tlsPort = await freePort();
    lines.push(
      `listener ${tlsPort} 127.0.0.1`,
      `cafile ${options.tls.ca}`,
      `certfile ${options.tls.cert}`,
      `keyfile ${options.tls.key}`,
      `require_certificate ${options.tls.requireClientCert ? 'true' : 'false'}`,
    );
  }
  const conf = join(dir, 'mosquitto.conf');
  writeFileSync(conf, `${lines.join('\n')}\n`);
  const child = spawn('/usr/sbin/mosquitto', ['-c', conf, '-v'], { stdio: ['ignore', 'pipe', 'pipe'] });
  try {
    await waitForLine(child, /mosquitto version \S+ running/, 'mosquitto');
  } catch (err) {
    await stopChild(child);
    rmSync(dir, { recursive: true, force: true });
    throw err;
  }
  return {
    port,
    ...(tlsPort ? { tlsPort } : {}),
    stop: async () => {
      await stopChild(child);
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
