/**
 * Configuration: `gateway.yaml` plus one YAML device map per machine in its devices folder.
 * Loading validates everything and throws one {@link ConfigError} listing every problem.
 *
 * @example
 *   const config = loadConfig('config/gateway.yaml');
 *   config.devices.map((d) => d.id);
 */
import { readdirSync, statSync } from 'node:fs';
import { basename, dirname, join, resolve } from 'node:path';
import { ConfigError, type ConfigIssue } from '../../config/errors.ts';
import { type LoadOptions, loadYaml } from '../../config/load.ts';
import { crossCheckDevice, type DeviceConfig, deviceSchema } from './device-schema.ts';
import { type GatewayConfig, gatewaySchema } from './gateway-schema.ts';

export { ConfigError, type ConfigIssue, formatIssue } from '../../config/errors.ts';
export type { DeviceConfig, GatewayConfig };

export interface LoadedConfig {
  gatewayFile: string;
  gateway: GatewayConfig;
  devices: DeviceConfig[];
  /** Device id → file it came from. */
  deviceFiles: Map<string, string>;
  /** Absolute paths derived from the config. */
  paths: { dataDir: string; keyFile: string; devicesDir: string };
}

export const defaultGatewayFile = 'config/gateway.yaml';
const deviceFilesMax = 1000;

export function deviceFilesIn(dir: string): string[] {
  return readdirSync(dir)
    .filter((f) => /\.ya?ml$/.test(f))
    .sort()
    .map((f) => join(dir, f));
}

/** Loads and validates the gateway file and all its device maps; throws ConfigError with all problems. */
export function loadConfig(gatewayFile = defaultGatewayFile, options: LoadOptions = {}): LoadedConfig {
  const issues: ConfigIssue[] = [];
  const g = loadYaml(gatewayFile, gatewaySchema, options);
  issues.push(...g.issues);
  const baseDir = dirname(resolve(gatewayFile));
  const devicesDir = resolve(baseDir, g.value?.devices ?? 'devices');
  let files: string[] = [];
  try {
    if (!statSync(devicesDir).isDirectory()) throw new Error('not a folder');
    files = deviceFilesIn(devicesDir);
  } catch (err) {
    issues.push({
      file: gatewayFile,
      line: 0,
      col: 0,
      field: 'devices',
      message: `cannot read device folder ${devicesDir}: ${(err as Error).message}`,
    });
  }
  if (files.length > deviceFilesMax) {
    issues.push({
      file: devicesDir,
      line: 0,
      col: 0,
      field: '',
      message: `more than ${deviceFilesMax} device maps`,
    });
    files = files.slice(0, deviceFilesMax);
  }
  const { devices, deviceFiles } = loadDevices(files, issues, { env: options.env });
  // The health policy's critical devices must be devices of this gateway (a typo would never alarm).
  g.value?.health.criticalDevices.forEach((id, i) => {
    if (!deviceFiles.has(id))
      issues.push({
        file: gatewayFile,
        line: 0,
        col: 0,
        field: `health.criticalDevices[${i}]`,
        message: `unknown device "${id}" (devices: ${[...deviceFiles.keys()].join(', ') || 'none'})`,
      });
  });
  if (issues.length > 0 || !g.value) throw new ConfigError(issues);
  const dataDir = resolve(baseDir, g.value.dataDir);
  return {
    gatewayFile,
    gateway: g.value,
    devices,
    deviceFiles,
    paths: { dataDir, keyFile: resolve(dataDir, g.value.keyFile), devicesDir },
  };
}

function loadDevices(files: string[], issues: ConfigIssue[], options: LoadOptions) {
  const devices: DeviceConfig[] = [];
  const deviceFiles = new Map<string, string>();
  for (const file of files) {
    const d = loadDeviceMap(file, options);
    issues.push(...d.issues);
    if (!d.value) continue;
    const other = deviceFiles.get(d.value.id);
    if (other) {
      issues.push({
        file,
        line: 1,
        col: 1,
        field: 'id',
        message: `device id "${d.value.id}" is also used by ${other}`,
      });
      continue;
    }
    deviceFiles.set(d.value.id, file);
    devices.push(d.value);
  }
  return { devices, deviceFiles };
}

export function loadDeviceMap(file: string, options: LoadOptions = {}) {
  return loadYaml(file, deviceSchema, { ...options, crossCheck: crossCheckDevice });
}

/**
 * Validates the given files (a gateway file validates its device folder too; any other YAML is a
 * device map). Returns every problem; empty means valid.
 */
export function validateFiles(files: string[], options: LoadOptions = {}): ConfigIssue[] {
  const issues: ConfigIssue[] = [];
  const deviceMaps: string[] = [];
  for (const file of files) {
    if (basename(file).startsWith('gateway')) {
      try {
        loadConfig(file, options);
      } catch (err) {
        if (!(err instanceof ConfigError)) throw err;
        issues.push(...err.issues);
      }
    } else {
      deviceMaps.push(file);
    }
  }
  loadDevices(deviceMaps, issues, options);
  return issues;
}
