/**
 * `masbc-edge outbox` as an operator reads it: values with their unit apart (`diameter=25 mm`) and
 * no unit after a missing value (`pressure=null (bad)`), "no dead letters" rather than nothing,
 * every dead letter with its reason, and the lots newest first with their counts.
 */
import { spawnSync } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { generateKey, writeKeyFile } from '../../src/crypto/keys.ts';
import type { EventDraft } from '../../src/event/draft.ts';
import { EventSigner } from '../../src/event/signer.ts';
import { loadConfig } from '../../src/gateway/config/config.ts';
import { gatewayIdentity, ownBatchVerifier } from '../../src/gateway/identity.ts';
import { Outbox, outboxPath } from '../../src/store/outbox.ts';
import { tempDir } from '../helpers/tmp.ts';

const bin = join(import.meta.dirname, '..', '..', 'bin', 'masbc-edge.js');

function cli(args: string[]) {
  const r = spawnSync(process.execPath, [bin, ...args], { encoding: 'utf8' });
  return { code: r.status, out: r.stdout, err: r.stderr };
}

function gatewayWithOutbox() {
  const dir = tempDir('cli-outbox');
  mkdirSync(join(dir, 'devices'));
  const file = join(dir, 'gateway.yaml');
  writeFileSync(file, 'gateway: { id: gw-1, enterprise: acme, site: plant1, line: line1 }\ndataDir: data\n');
  const config = loadConfig(file);
  const key = generateKey();
  writeKeyFile(config.paths.keyFile, key);
  const outbox = Outbox.open({
    path: outboxPath(config.paths.dataDir),
    verifier: ownBatchVerifier(config),
    maxBytes: 1 << 30,
    maxRows: 1_000_000,
  });
  const signer = new EventSigner(gatewayIdentity(config), key);
  return { file, outbox, signer };
}

function draft(lot: string, t: number, values: EventDraft['values']): EventDraft {
  return {
    kind: 'part_completed',
    dataClass: 'process',
    station: 'ST-20',
    device: 'press1',
    sourceTimeMs: t,
    lot,
    values,
  };
}

describe('masbc-edge outbox', () => {
  it('prints values with their unit apart, no unit after a missing value, and the quality', () => {
    const { file, outbox, signer } = gatewayWithOutbox();
    outbox.append(
      [
        draft('LOT-1', 1_800_000_000_000, {
          diameter: { v: 25, unit: 'mm', q: 'good' },
          pressure: { v: null, unit: 'bar', q: 'bad' },
          force: { v: 12.5, unit: 'kN', q: 'uncertain' },
        }),
      ],
      signer,
    );
    outbox.close();
    const r = cli(['outbox', '-c', file]);
    expect(r.code).toBe(0);
    expect(r.out).toContain('diameter=25 mm, force=12.5 kN (uncertain), pressure=null (bad)');
  });

  it('says "no dead letters" when there are none, and lists each with its reason when there are', () => {
    const { file, outbox } = gatewayWithOutbox();
    expect(cli(['outbox', '-c', file, '--dead-letters']).out).toBe('no dead letters\n');
    outbox.addDeadLetters([
      {
        device: 'oven1',
        source: 'plant1/line1/oven1/telemetry',
        reason: 'not JSON: Unexpected token',
        payload: '{"zone": 1,',
        payloadBytes: 11,
        receivedMs: 1_800_000_000_000,
      },
      {
        device: 'oven1',
        source: 'plant1/line1/scanner1/scan',
        reason: 'scanQty: expected number, got "ten"',
        payload: '{"qty":"ten"}',
        payloadBytes: 13,
        receivedMs: 1_800_000_001_000,
      },
    ]);
    outbox.close();
    const lines = cli(['outbox', '-c', file, '--dead-letters']).out.trim().split('\n');
    expect(lines).toHaveLength(2);
    expect(lines[0]).toContain('not JSON: Unexpected token');
    expect(lines[1]).toContain('scanQty: expected number, got "ten"');
  });

  it('--lots lists the lots with the newest events first, with their counts', () => {
    const { file, outbox, signer } = gatewayWithOutbox();
    const t0 = 1_800_000_000_000;
    const v = { n: { v: 1, q: 'good' as const } };
    outbox.append([draft('LOT-A', t0, v), draft('LOT-A', t0 + 1, v), draft('LOT-B', t0 + 2, v)], signer);
    outbox.append([draft('LOT-C', t0 + 3, v), draft('LOT-A', t0 + 4, v)], signer);
    outbox.close();
    const r = cli(['outbox', '-c', file, '--lots']);
    expect(r.code).toBe(0);
    const lots = r.out.trim().split('\n');
    expect(lots.map((l) => l.split(/\s+/).slice(0, 2))).toEqual([
      ['LOT-A', '3'],
      ['LOT-C', '1'],
      ['LOT-B', '1'],
    ]);
    expect(lots[0]).toContain('(0 final)');
    const json = cli(['outbox', '-c', file, '--lots', '--json', '--last', '1']).out.trim().split('\n');
    expect(json.map((l) => JSON.parse(l))).toEqual([
      { lot: 'LOT-A', events: 3, final: 0, firstSourceMs: t0, lastSourceMs: t0 + 4, lastSeq: 5 },
    ]);
  });
});
