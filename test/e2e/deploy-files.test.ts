/**
 * The deployment files shipped in the repository agree with the program: the Dockerfile exposes
 * exactly the ports the app binds by default, compose.yaml and the systemd units pass only options
 * the commands have, publish the status servers to loopback only, and the units are hardened as
 * docs/deploy.md says. `systemd-analyze verify` checks the units' syntax where it is installed.
 */
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Command } from 'commander';
import { describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { validatorDefaultPort } from '../../src/cli/alliance-files.ts';
import { buildProgram } from '../../src/cli/main.ts';
import { loadConfig } from '../../src/gateway/config/config.ts';
import { apiSchema, opsDefaultPort } from '../../src/gateway/config/gateway-schema.ts';

const dockerfile = readFileSync('Dockerfile', 'utf8');
const compose = parse(readFileSync('compose.yaml', 'utf8')) as {
  services: Record<string, { command?: string[]; ports?: string[]; healthcheck?: { test: string[] } }>;
};
const units = ['masbc-edge.service', 'masbc-edge-peer.service'].map((name) => ({
  name,
  path: join('deploy', 'systemd', name),
  text: readFileSync(join('deploy', 'systemd', name), 'utf8'),
}));

/** Checks `args` against the command's options without running it: every option known, values accepted. */
function checkArgs(args: string[]): void {
  const program = buildProgram();
  const name = args[0]!;
  const cmd = program.commands.find((c) => c.name() === name) as Command | undefined;
  if (!cmd) throw new Error(`no command ${name}`);
  const { unknown, operands } = cmd.parseOptions(args.slice(1));
  expect(unknown, `unknown options in ${args.join(' ')}`).toEqual([]);
  expect(operands.length, `stray arguments in ${args.join(' ')}`).toBeLessThanOrEqual(
    cmd.registeredArguments.length,
  );
}

/** The arguments after `masbc-edge.js` on a unit's ExecStart (continuation lines joined). */
function execArgs(text: string, key: string): string[] {
  const joined = text.replace(/\\\n\s*/g, ' ');
  const line = new RegExp(`^${key}=(.*)$`, 'm').exec(joined)?.[1];
  if (!line) throw new Error(`no ${key}`);
  const words = line.trim().split(/\s+/);
  return words.slice(words.findIndex((w) => w.endsWith('masbc-edge.js')) + 1);
}

function unitValue(text: string, key: string): string[] {
  return [...text.matchAll(new RegExp(`^${key}=(.*)$`, 'gm'))].map((m) => m[1]!.trim());
}

describe('deployment files', () => {
  it('the Dockerfile exposes the ports the app binds by default, and its health check asks `health`', () => {
    const exposed = /^EXPOSE (.+)$/m
      .exec(dockerfile)![1]!
      .split(/\s+/)
      .map(Number)
      .sort((a, b) => a - b);
    const apiPort = apiSchema.parse({}).port;
    expect(exposed).toEqual([opsDefaultPort, apiPort, validatorDefaultPort].sort((a, b) => a - b));
    expect(dockerfile).toMatch(/HEALTHCHECK[\s\S]*"health", "--config", "\/app\/config\/gateway.yaml"/);
    checkArgs(['health', '--config', '/app/config/gateway.yaml']);
    checkArgs(['run', '--config', '/app/config/gateway.yaml']);
    // In the image the status server binds all interfaces (else no port could be published) …
    expect(dockerfile).toMatch(/MASBC_OPS_HOST=0\.0\.0\.0/);
    expect(loadConfig('config/gateway.yaml', { env: { MASBC_OPS_HOST: '0.0.0.0' } }).gateway.ops.host).toBe(
      '0.0.0.0',
    );
    // … and everywhere else loopback.
    expect(loadConfig('config/gateway.yaml', { env: {} }).gateway.ops).toMatchObject({
      host: '127.0.0.1',
      port: opsDefaultPort,
    });
  });

  it('compose.yaml runs options the commands have, publishes only exposed ports, status servers to loopback', () => {
    const exposed = new Set(/^EXPOSE (.+)$/m.exec(dockerfile)![1]!.split(/\s+/));
    const { validator, gateway } = compose.services;
    checkArgs(validator!.command!);
    expect(validator!.command![0]).toBe('peer');
    for (const service of [validator!, gateway!]) {
      for (const p of service.ports ?? []) {
        const parts = p.split(':');
        const container = parts[parts.length - 1]!;
        expect(exposed.has(container) || container === '8091', `${p} is not a port the image exposes`).toBe(
          true,
        );
        if (container !== String(validatorDefaultPort))
          expect(parts[0], `${p} must be loopback`).toBe('127.0.0.1');
      }
    }
    // The validator's status server: the port it is given, the one published, the one its health check asks.
    const opsPort = validator!.command!.find((a) => a.startsWith('--ops-port='))!.split('=')[1];
    expect(validator!.ports).toContain(`127.0.0.1:${opsPort}:${opsPort}`);
    expect(validator!.healthcheck!.test).toEqual([
      'CMD',
      'node',
      'bin/masbc-edge.js',
      'health',
      '--url',
      `http://127.0.0.1:${opsPort}/`,
    ]);
    checkArgs(validator!.healthcheck!.test.slice(3));
    // The validator API is for the member's gateways on the compose network: not published.
    expect(validator!.ports!.some((p) => p.endsWith(':8080'))).toBe(false);
  });

  it('the systemd units run valid commands as their own user, hardened, restarted on failure', () => {
    for (const u of units) {
      checkArgs(execArgs(u.text, 'ExecStart'));
      for (const [key, value] of [
        ['User', 'masbc'],
        ['Restart', 'on-failure'],
        ['ProtectSystem', 'strict'],
        ['ProtectHome', 'yes'],
        ['NoNewPrivileges', 'yes'],
        ['PrivateTmp', 'yes'],
        ['LimitNOFILE', '65536'],
        ['KillSignal', 'SIGTERM'],
      ])
        expect(unitValue(u.text, key!), `${u.name} ${key}`).toEqual([value]);
      expect(unitValue(u.text, 'StateDirectory').length, `${u.name}: a data folder of its own`).toBe(1);
    }
    const gateway = units[0]!.text;
    checkArgs(execArgs(gateway, 'ExecStartPre'));
    expect(execArgs(gateway, 'ExecStart')).toEqual(['run', '--config', '/etc/masbc-edge/gateway.yaml']);
    const peer = execArgs(units[1]!.text, 'ExecStart');
    expect(peer[peer.indexOf('--ops-host') + 1]).toBe('127.0.0.1');
  });

  it('systemd-analyze verify accepts the units (where systemd is installed)', (ctx) => {
    const which = spawnSync('sh', ['-c', 'command -v systemd-analyze']);
    if (which.status !== 0) {
      ctx.skip('systemd-analyze is not installed');
      return;
    }
    const r = spawnSync('systemd-analyze', ['verify', ...units.map((u) => `./${u.path}`)], {
      encoding: 'utf8',
    });
    expect(`${r.stdout}${r.stderr}`.trim()).toBe('');
    expect(r.status).toBe(0);
  });
});
