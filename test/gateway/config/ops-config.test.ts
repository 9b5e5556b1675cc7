/**
 * The `ops:` and `health:` sections of gateway.yaml: loopback by default, and a health policy that
 * cannot silently never alarm (policy "critical" needs its devices, and they must exist).
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { ConfigError, loadConfig } from '../../../src/gateway/config/config.ts';
import { tempDir } from '../../helpers/tmp.ts';

function gatewayYaml(lines: string[]): string {
  const dir = tempDir('ops-config');
  mkdirSync(join(dir, 'devices'));
  writeFileSync(
    join(dir, 'devices', 'press1.yaml'),
    'id: press1\nstation: ST-20\nprotocol: modbus\nconnection: { transport: tcp, host: 127.0.0.1, port: 5020 }\ntags:\n  - { name: a, area: holding, address: 0 }\n',
  );
  const file = join(dir, 'gateway.yaml');
  writeFileSync(
    file,
    ['gateway: { id: gw-1, enterprise: acme, site: plant1, line: line1 }', ...lines, ''].join('\n'),
  );
  return file;
}

function problems(file: string): string[] {
  try {
    loadConfig(file);
    return [];
  } catch (err) {
    if (!(err instanceof ConfigError)) throw err;
    return err.issues.map((i) => `${i.field}: ${i.message}`);
  }
}

describe('ops and health configuration', () => {
  it('serves the status page on loopback by default, with the "any device down" policy', () => {
    const c = loadConfig(gatewayYaml([]));
    expect(c.gateway.ops).toEqual({ enabled: true, host: '127.0.0.1', port: 8090 });
    expect(c.gateway.health).toMatchObject({ devices: 'any', criticalDevices: [], finalityStaleMs: 120_000 });
  });

  it('refuses policy "critical" without devices, and critical devices that do not exist', () => {
    expect(problems(gatewayYaml(['health: { devices: critical }']))).toEqual([
      'health.criticalDevices: policy "critical" needs the ids of the critical devices',
    ]);
    expect(
      problems(gatewayYaml(['health: { devices: critical, criticalDevices: [press1, pres2] }'])),
    ).toEqual(['health.criticalDevices[1]: unknown device "pres2" (devices: press1)']);
    expect(problems(gatewayYaml(['health: { devices: critical, criticalDevices: [press1] }']))).toEqual([]);
  });
});
