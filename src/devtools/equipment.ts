/**
 * Equipment for the demo and `masbc-edge simulate`: the simulator ports the bundled device maps
 * name, and a virtual RS-485 line (socat) for the Modbus RTU PLC.
 */
import { spawn } from 'node:child_process';
import { lstatSync, mkdirSync, rmSync } from 'node:fs';
import { dirname, isAbsolute, join, resolve } from 'node:path';
import type { LoadedConfig } from '../gateway/config/config.ts';
import { stopProcess } from './processes.ts';

/** How long socat may take to create the pty pair. */
const socatStartMs = 5_000;

export interface DemoPorts {
  opcua?: number;
  modbus?: number;
  mqtt?: number;
}

/** The simulator ports the bundled device maps expect (so the maps stay the single source of truth). */
export function portsFromDevices(config: LoadedConfig): DemoPorts {
  const ports: DemoPorts = {};
  for (const d of config.devices) {
    if (!d.enabled) continue;
    if (d.protocol === 'opcua')
      ports.opcua ??= Number(new URL(d.connection.endpoint.replace(/^opc\.tcp:/, 'http:')).port || 4840);
    if (d.protocol === 'modbus' && d.connection.transport === 'tcp') ports.modbus ??= d.connection.port;
    if (d.protocol === 'mqtt')
      ports.mqtt ??= Number(new URL(d.connection.url.replace(/^mqtts?:/, 'http:')).port || 1883);
  }
  return ports;
}

export interface SerialLine {
  /** The end the simulated PLC opens. */
  plcPath: string;
  /** The end the gateway opens (what the RTU device map names). */
  gatewayPath: string;
  stop(): Promise<void>;
}

/**
 * A virtual RS-485 line: a socat pty pair with stable names, so a device map can name its end.
 * `gatewayPath` is a symlink socat creates (an existing stale link is replaced).
 */
export async function startSerialLine(gatewayPath: string): Promise<SerialLine> {
  const plcPath = join(dirname(gatewayPath), 'tty-plc');
  mkdirSync(dirname(gatewayPath), { recursive: true });
  for (const p of [gatewayPath, plcPath]) {
    if (isLink(p)) rmSync(p);
  }
  const child = spawn(
    'socat',
    ['-d', '-d', `pty,raw,echo=0,link=${plcPath}`, `pty,raw,echo=0,link=${gatewayPath}`],
    {
      stdio: ['ignore', 'ignore', 'pipe'],
    },
  );
  await new Promise<void>((resolveReady, reject) => {
    let text = '';
    const timer = setTimeout(
      () => fail(new Error(`socat did not start within ${socatStartMs} ms: ${text}`)),
      socatStartMs,
    );
    const fail = (err: Error) => {
      clearTimeout(timer);
      child.kill();
      reject(err);
    };
    child.once('error', (err) =>
      fail(new Error(`cannot run socat (apt-get install -y socat): ${err.message}`)),
    );
    child.once('exit', (code) => fail(new Error(`socat exited (${code}): ${text}`)));
    const onData = (chunk: Buffer) => {
      text += chunk.toString();
      if (!text.includes('starting data transfer loop')) return;
      clearTimeout(timer);
      // Ready: stop watching (socat's later messages, e.g. on exit, must not re-run this).
      child.stderr?.off('data', onData);
      child.stderr?.resume();
      child.removeAllListeners('exit');
      resolveReady();
    };
    child.stderr?.on('data', onData);
  });
  return { plcPath, gatewayPath, stop: () => stopProcess(child) };
}

export function isLink(p: string): boolean {
  try {
    return lstatSync(p).isSymbolicLink();
  } catch {
    return false;
  }
}

/** The gateway end of the serial line the first RTU device map expects, or null if none uses RTU. */
export function rtuPathFromDevices(config: LoadedConfig): string | null {
  for (const d of config.devices) {
    if (d.enabled && d.protocol === 'modbus' && d.connection.transport === 'rtu') {
      const p = d.connection.path;
      return isAbsolute(p) ? p : resolve(config.paths.dataDir, p);
    }
  }
  return null;
}
