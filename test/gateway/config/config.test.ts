import { cpSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { submitter } from '../../../src/gateway/bounds.ts';
import {
  ConfigError,
  formatIssue,
  loadConfig,
  loadDeviceMap,
  validateFiles,
} from '../../../src/gateway/config/config.ts';
import { Submitter } from '../../../src/gateway/submitter.ts';
import { silentLogger } from '../../../src/log/logger.ts';
import { tempDir } from '../../helpers/tmp.ts';

const good = `id: press1
station: ST-20
protocol: modbus
connection:
  transport: tcp
  host: 127.0.0.1
tags:
  - { name: lotId, area: holding, address: 0, type: string, length: 20 }
  - { name: partCount, area: holding, address: 10, type: uint32 }
context:
  lot: lotId
rules:
  - { name: part, trigger: counter, tag: partCount, kind: part_completed }
`;

/** Loads a device map from text and returns its problems formatted as the CLI prints them. */
function problems(text: string, env: NodeJS.ProcessEnv = {}): string[] {
  return loadDeviceMap('dev.yaml', { text, env }).issues.map(formatIssue);
}

describe('device map validation', () => {
  it('accepts a valid map and applies defaults', () => {
    const r = loadDeviceMap('dev.yaml', { text: good });
    expect(r.issues).toEqual([]);
    expect(r.value?.protocol).toBe('modbus');
    if (r.value?.protocol !== 'modbus') throw new Error('unreachable');
    expect(r.value.connection).toMatchObject({ transport: 'tcp', port: 502 });
    expect(r.value.tags[0]?.unitId).toBe(1);
    expect(r.value.enabled).toBe(true);
  });

  // Each case: a mistake, and the exact file:line:col, field and message fragment it must produce.
  const cases: [string, string, string][] = [
    [
      'wrong type',
      good.replace('address: 10', 'address: "ten"'),
      'dev.yaml:9:48: tags[1].address: expected number, got "ten"',
    ],
    [
      'unknown key with suggestion',
      good.replace('station: ST-20', 'station: ST-20\nstaton: x'),
      'dev.yaml:3:1: staton: unknown key "staton" (did you mean "station"?)',
    ],
    [
      'unknown nested key',
      good.replace('host: 127.0.0.1', 'host: 127.0.0.1\n  prot: 502'),
      'dev.yaml:7:3: connection.prot: unknown key "prot" (did you mean "port"?)',
    ],
    [
      'missing field',
      good.replace('station: ST-20\n', ''),
      'dev.yaml:1:1: station: required field is missing (expected string)',
    ],
    [
      'bad enum',
      good.replace('type: uint32', 'type: uint31'),
      'dev.yaml:9:58: tags[1].type: expected "bit" | "int16"',
    ],
    [
      'bad discriminator',
      good.replace('protocol: modbus', 'protocol: profinet'),
      'dev.yaml:3:11: protocol: expected "opcua" | "modbus" | "mqtt", got "profinet"',
    ],
    [
      'duplicate tag names',
      good.replace('name: partCount', 'name: lotId'),
      'dev.yaml:9:13: tags[1].name: duplicate tag name "lotId" (first defined at tags[0])',
    ],
    [
      'rule names an unknown tag',
      good.replace('tag: partCount', 'tag: partcount'),
      'dev.yaml:13:42: rules[0].tag: no tag named "partcount" in this device',
    ],
    [
      'context names an unknown tag',
      good.replace('lot: lotId', 'lot: lot'),
      'dev.yaml:11:8: context.lot: no tag named "lot" in this device',
    ],
    [
      'unset environment variable',
      good.replace('host: 127.0.0.1', 'host: ${env:PLC_HOST}'),
      'dev.yaml:6:9: connection.host: environment variable PLC_HOST is not set',
    ],
    [
      'missing secret file',
      good.replace('host: 127.0.0.1', 'host: ${file:/nonexistent/plc-host}'),
      'dev.yaml:6:9: connection.host: secret file /nonexistent/plc-host does not exist',
    ],
    [
      'unknown reference kind',
      good.replace('host: 127.0.0.1', 'host: ${vault:plc}'),
      'dev.yaml:6:9: connection.host: unknown reference',
    ],
    [
      'out of range',
      good.replace('address: 10', 'address: 70000'),
      'dev.yaml:9:48: tags[1].address: Too big: expected number to be <=65535',
    ],
    [
      'string without length',
      good.replace(', length: 20', ''),
      'dev.yaml:8:5: tags[0].length: a string tag needs its length in characters',
    ],
    // The first line the parser cannot read: the flow sequence opened on 'tags:' holds a block item.
    [
      'YAML syntax error',
      good.replace('tags:\n', 'tags: [\n'),
      'dev.yaml:8:3: YAML syntax: Block collections',
    ],
    [
      'duplicate key',
      good.replace('station: ST-20', 'station: ST-20\nstation: ST-21'),
      'dev.yaml:3:1: duplicate key',
    ],
    [
      'trigger needs its own field',
      good.replace('trigger: counter, tag: partCount', 'trigger: period'),
      'dev.yaml:13:5: rules[0].everyMs: required field is missing',
    ],
  ];
  for (const [kind, text, expected] of cases) {
    it(`reports ${kind} with file:line:col and field`, () => {
      const got = problems(text);
      expect(
        got.some((p) => p.startsWith(expected)),
        `got:\n${got.join('\n')}`,
      ).toBe(true);
    });
  }

  it('uses the default of ${env:NAME:-default} only when the variable is unset', () => {
    const text = good.replace('host: 127.0.0.1', 'host: ${env:PLC_HOST:-10.0.0.5}');
    expect(loadDeviceMap('dev.yaml', { text, env: {} }).value?.connection).toMatchObject({
      host: '10.0.0.5',
    });
    expect(loadDeviceMap('dev.yaml', { text, env: { PLC_HOST: 'plc7' } }).value?.connection).toMatchObject({
      host: 'plc7',
    });
  });

  it('types a substitution by its field: ${env:PORT:-15020} fills a number (issue 14, item 9)', () => {
    const text = good.replace(
      'host: 127.0.0.1',
      'host: ${env:PLC_HOST:-127.0.0.1}\n  port: ${env:PLC_PORT:-15020}\n  pollIntervalMs: "${env:POLL_MS}"',
    );
    const connection = (env: NodeJS.ProcessEnv) => {
      const r = loadDeviceMap('dev.yaml', { text, env });
      expect(r.issues.map(formatIssue)).toEqual([]);
      return r.value?.connection;
    };
    expect(connection({ POLL_MS: '250' })).toMatchObject({
      host: '127.0.0.1',
      port: 15020,
      pollIntervalMs: 250,
    });
    expect(connection({ PLC_PORT: '5021', POLL_MS: '1e3' })).toMatchObject({
      port: 5021,
      pollIntervalMs: 1000,
    });
    // A boolean field, and a string field that keeps digits as text.
    const flags = good
      .replace('station: ST-20', 'station: ST-20\nenabled: ${env:PRESS_ENABLED:-false}')
      .replace('host: 127.0.0.1', 'host: ${env:PLC_HOST}');
    const r = loadDeviceMap('dev.yaml', { text: flags, env: { PLC_HOST: '10' } });
    expect(r.issues.map(formatIssue)).toEqual([]);
    expect(r.value).toMatchObject({ enabled: false, connection: { host: '10' } });
    // A value that does not fit names the variable it came from.
    expect(problems(text, { PLC_PORT: 'five', POLL_MS: '250' })).toEqual([
      'dev.yaml:7:9: connection.port: ${env:PLC_PORT} is "five": expected a number',
    ]);
    expect(problems(text, { PLC_PORT: '70000', POLL_MS: '250' })).toEqual([
      'dev.yaml:7:9: connection.port: Too big: expected number to be <=65535 (from ${env:PLC_PORT} = "70000")',
    ]);
    // Text around a reference stays text: it is not a number, and says so with its source.
    expect(
      problems(text.replace('${env:PLC_PORT:-15020}', '"1${env:PLC_PORT:-5020}"'), { POLL_MS: '250' }),
    ).toEqual([
      'dev.yaml:7:9: connection.port: expected number, got "15020" (from "1${env:PLC_PORT:-5020}")',
    ]);
    // An unset variable is one problem, not a second one for the text left in its place.
    expect(problems(text)).toEqual([
      'dev.yaml:8:19: connection.pollIntervalMs: environment variable POLL_MS is not set (referenced as ${env:POLL_MS})',
    ]);
  });

  it('refuses a literal password and accepts a reference', () => {
    const opcua = (password: string) => `id: cnc1
station: ST-10
protocol: opcua
connection:
  endpoint: opc.tcp://127.0.0.1:4840
  auth: { type: username, username: op, password: ${password} }
tags:
  - { name: state, nodeId: "ns=1;s=CNC1.State" }
`;
    expect(problems(opcua('hunter2'))).toEqual([
      'dev.yaml:6:51: connection.auth.password: secrets never live in YAML: write ${env:NAME} or ${file:PATH} instead of a literal password',
    ]);
    const r = loadDeviceMap('dev.yaml', { text: opcua('"${env:CNC_PW}"'), env: { CNC_PW: 's3cret' } });
    expect(r.issues).toEqual([]);
    expect(r.value?.connection).toMatchObject({ auth: { password: 's3cret' } });
  });

  it('lists all problems at once, in file order', () => {
    const text = good
      .replace('station: ST-20', 'station: ST 20')
      .replace('type: uint32', 'type: uint31')
      .replace('tag: partCount', 'tag: nope');
    const got = problems(text);
    expect(got).toHaveLength(3);
    expect(got.map((p) => p.split(':')[1])).toEqual(['2', '9', '13']);
  });
});

describe('gateway config', () => {
  it('loads the bundled config with all its device maps', () => {
    const c = loadConfig('config/gateway.yaml');
    expect(c.devices.map((d) => d.id).sort()).toEqual(['cnc1', 'oven1', 'oven1-plc', 'press1']);
    expect(c.gateway.store.synchronous).toBe('full');
    expect(c.paths.keyFile.endsWith('data/keys/gateway.key')).toBe(true);
  });

  it('reports problems of the gateway file and of every device map together', () => {
    const dir = tempDir('config');
    cpSync('config', dir, { recursive: true });
    writeFileSync(
      join(dir, 'gateway.yaml'),
      'gateway: { id: gw1, enterprise: acme, site: p1, line: l1 }\nstore: { maxBytes: "lots" }\n',
    );
    writeFileSync(join(dir, 'devices', 'broken.yaml'), good.replace('id: press1', 'id: cnc1'));
    const err = (() => {
      try {
        loadConfig(join(dir, 'gateway.yaml'));
      } catch (e) {
        return e;
      }
    })();
    expect(err).toBeInstanceOf(ConfigError);
    const text = (err as ConfigError).message;
    expect(text).toMatch(
      /gateway\.yaml:2:20: store\.maxBytes: does not match any accepted form; closest: expected a size like "512 MiB"/,
    );
    expect(text).toMatch(/(broken|cnc1)\.yaml:1:1: id: device id "cnc1" is also used by/);
  });

  it('refuses a submitter window below one submission batch, which the submitter could not run', () => {
    // The schema used to accept windowEvents ≥ 1 while the submitter threw below 1,024 at start-up,
    // after validation had passed. Both now read src/gateway/bounds.ts.
    const dir = tempDir('config');
    cpSync('config', dir, { recursive: true });
    const gateway = (windowEvents: number) =>
      `gateway: { id: gw1, enterprise: acme, site: p1, line: l1 }\nchain: { submit: { windowEvents: ${windowEvents} } }\n`;
    writeFileSync(join(dir, 'gateway.yaml'), gateway(100));
    expect(() => loadConfig(join(dir, 'gateway.yaml'))).toThrow(
      /gateway\.yaml:2:\d+: chain\.submit\.windowEvents: .*1024/,
    );
    writeFileSync(join(dir, 'gateway.yaml'), gateway(submitter.windowEvents.min));
    const accepted = loadConfig(join(dir, 'gateway.yaml')).gateway.chain.submit;
    const outbox = {
      pending: () => [],
      unconfirmed: () => [],
      markCommitted: () => 0,
      markBodiesKept: () => 0,
      isOwnPending: () => false,
      loadMeta: () => null,
    };
    const chain = { submit: async () => [], subscribe: () => () => {}, receipts: async () => [] };
    expect(
      () => new Submitter({ outbox, chain, log: silentLogger, windowEvents: accepted.windowEvents }),
    ).not.toThrow();
  });

  it('validateFiles checks device maps given alone', () => {
    const dir = tempDir('config');
    const file = join(dir, 'm.yaml');
    writeFileSync(file, good.replace('protocol: modbus', 'protocol: 7'));
    const issues = validateFiles([file]);
    expect(issues).toHaveLength(1);
    expect(issues[0]).toMatchObject({ file, line: 3, col: 11, field: 'protocol' });
    expect(validateFiles(['config/gateway.yaml'])).toEqual([]);
  });
});
