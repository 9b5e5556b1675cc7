/** The CLI as a user runs it: a real process, real files, exit codes and output. */
import { spawnSync } from 'node:child_process';
import { cpSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { tempDir } from '../helpers/tmp.ts';

const bin = join(import.meta.dirname, '..', '..', 'bin', 'masbc-edge.js');

function cli(args: string[], env: NodeJS.ProcessEnv = {}) {
  const r = spawnSync(process.execPath, [bin, ...args], {
    encoding: 'utf8',
    env: { ...process.env, ...env },
  });
  return { code: r.status, out: r.stdout, err: r.stderr };
}

describe('masbc-edge CLI', () => {
  it('prints help for every command', () => {
    const top = cli(['--help']);
    expect(top.code).toBe(0);
    for (const cmd of ['validate', 'keygen', 'outbox', 'health', 'schema']) {
      expect(top.out).toContain(cmd);
      const r = cli([cmd, '--help']);
      expect(r.code, cmd).toBe(0);
      expect(r.out).toContain(`Usage: masbc-edge ${cmd}`);
    }
  });

  it('validate: ok on the bundled config, exit 2 listing every problem otherwise', () => {
    expect(cli(['validate'])).toMatchObject({ code: 0 });
    const dir = tempDir('cli');
    const file = join(dir, 'press.yaml');
    writeFileSync(
      file,
      'id: press1\nstation: ST-20\nprotocol: modbus\nconnection: { transport: tcp, host: plc }\ntags:\n  - { name: a, area: holding, address: "x" }\nrules:\n  - { name: r, trigger: counter, tg: a, kind: part_completed }\n',
    );
    const r = cli(['validate', file]);
    expect(r.code).toBe(2);
    expect(r.err).toContain(`${file}:6:40: tags[0].address: expected number, got "x"`);
    expect(r.err).toContain(`${file}:8:34: rules[0].tg: unknown key "tg" (did you mean "tag"?)`);
    expect(r.err).toMatch(/3 problems found/);
  });

  it('keygen writes a 0600 key, refuses to overwrite, rejects unknown algorithms', () => {
    const dir = tempDir('cli');
    const out = join(dir, 'k', 'gw.key');
    const r = cli(['keygen', '--out', out, '--alg', 'p256']);
    expect(r.code).toBe(0);
    expect(r.out).toMatch(/keyId [0-9a-f]{32} \(p256\)/);
    expect(statSync(out).mode & 0o777).toBe(0o600);
    const again = cli(['keygen', '--out', out]);
    expect(again.code).toBe(1);
    expect(again.err).toContain('refusing to overwrite');
    expect(cli(['keygen', '--out', join(dir, 'x.key'), '--alg', 'rsa']).err).toContain(
      'unknown key algorithm "rsa"',
    );
  });

  it('outbox and health explain a gateway that never ran', () => {
    const dir = tempDir('cli');
    cpSync('config', join(dir, 'config'), { recursive: true });
    const env = { MASBC_DATA_DIR: join(dir, 'data') };
    const h = cli(['health', '-c', join(dir, 'config', 'gateway.yaml')], env);
    expect(h.code).toBe(1);
    expect(h.err).toContain('unhealthy: no status from a running gateway');
    const o = cli(['outbox', '-c', join(dir, 'config', 'gateway.yaml')], env);
    expect(o.code).toBe(1);
    expect(o.err).toContain('cannot read public key');
    expect(cli(['keygen', '--out', join(dir, 'data', 'keys', 'gateway.key')]).code).toBe(0);
    const o2 = cli(['outbox', '-c', join(dir, 'config', 'gateway.yaml')], env);
    expect(o2.code).toBe(0);
    expect(o2.out).toMatch(/0 events \(0 pending, 0 final\), head seq 0/);
  });

  it('unknown commands and options are usage errors (exit 2)', () => {
    expect(cli(['frobnicate']).code).toBe(2);
    expect(cli(['validate', '--nope']).code).toBe(2);
  });
});
