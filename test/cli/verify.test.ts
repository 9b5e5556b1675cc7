/**
 * `masbc-edge verify` over a bundle the real producer built from a real validator's stores: exit 0
 * with a summary; a flipped byte gives exit 1 naming the broken link; an unreadable file exit 2.
 * No network: the command gets only the two files.
 */
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { ProofBundle } from '../../src/api/proof/bundle.ts';
import { createLocalAlliance } from '../../src/devtools/local-alliance.ts';
import { bearer, tokenFor } from '../api/credentials-fixture.ts';
import { partDraft, startTraceFixture, type TraceFixture } from '../api/proof/fixture.ts';
import { runCli } from '../helpers/cli.ts';
import { tempDir } from '../helpers/tmp.ts';

let dir: string;
let fx: TraceFixture;
let bundle: ProofBundle;

let fromApi: unknown;
/** Each CLI run starts a node process (seconds on a loaded machine); a test runs up to five. */
const cliTestMs = 180_000;

beforeAll(async () => {
  dir = tempDir('cli-verify');
  fx = await startTraceFixture(dir, { api: true });
  await fx.commit(1, [partDraft({ order: 'PO-9', lot: 'L1', product: 'SN-1' })]);
  await fx.commit(2, [partDraft({ order: 'PO-9', lot: 'L2', product: 'SN-2' })]);
  bundle = fx.bundle({ scope: { order: 'PO-9' } });
  // What the customer downloads: GET /v1/trace with its credential, over HTTP.
  const token = await tokenFor(fx.alliance, 'acme', { role: 'customer', orders: ['PO-9'] });
  const res = await fetch(new URL('/v1/trace?order=PO-9', fx.validator.apiUrl!), { headers: bearer(token) });
  expect(res.status).toBe(200);
  fromApi = await res.json();
  await fx.stop();
}, 120_000);

afterAll(async () => {
  await fx?.stop();
});

function save(name: string, value: unknown): string {
  const file = join(dir, name);
  writeFileSync(file, typeof value === 'string' ? value : JSON.stringify(value));
  return file;
}

describe('masbc-edge verify', () => {
  it(
    'exits 0 with a summary for an intact bundle',
    async () => {
      const r = await runCli(['verify', save('ok.json', bundle), '--genesis', fx.genesisFile]);
      expect(r.code, r.err).toBe(0);
      expect(r.out).toMatch(/^verified: order PO-9 of acme, chain masbc-local/);
      expect(r.out).toMatch(/2 events in 2 batches of acme\/gw-1, acme\/gw-2/);
      expect(r.out).toMatch(/quorum \(1 of 1\) of the genesis validators/);
      expect(r.out).toMatch(/completeness not proven: the order is not closed/);
      const json = await runCli(['verify', save('ok.json', bundle), '--genesis', fx.genesisFile, '--json']);
      expect(JSON.parse(json.out)).toMatchObject({ ok: true, summary: { events: 2, member: 'acme' } });
    },
    cliTestMs,
  );

  it(
    "verifies the bundle a customer downloaded from the member's trace API",
    async () => {
      const r = await runCli(['verify', save('api.json', fromApi), '--genesis', fx.genesisFile]);
      expect(r.code, r.err).toBe(0);
      expect(r.out).toMatch(/^verified: order PO-9 of acme/);
      expect(r.out).toMatch(/2 events in 2 batches/);
    },
    cliTestMs,
  );

  it(
    'exits 1 naming the first broken link of a flipped byte',
    async () => {
      const tampered = structuredClone(bundle);
      const values = tampered.events[1]!.body.values as Record<string, { v: number }>;
      values.diameter!.v += 0.001;
      const r = await runCli(['verify', save('bad.json', tampered), '--genesis', fx.genesisFile]);
      expect(r.code).toBe(1);
      expect(r.err).toMatch(
        new RegExp(`^NOT VERIFIED: body_mismatch: .*\\(event ${tampered.events[1]!.id}, block \\d+\\)`),
      );
      expect(r.out).toBe('');
    },
    cliTestMs,
  );

  it(
    "exits 1 for another alliance's genesis, 2 for a file it cannot read",
    async () => {
      const other = await createLocalAlliance({ dir: join(dir, 'other'), members: ['bolt'] });
      const wrong = await runCli(['verify', save('ok.json', bundle), '--genesis', other.genesisFile]);
      expect(wrong.code).toBe(1);
      expect(wrong.err).toMatch(/^NOT VERIFIED: wrong_genesis: /);
      const missing = await runCli(['verify', join(dir, 'nope.json'), '--genesis', fx.genesisFile]);
      expect(missing.code).toBe(2);
      expect(missing.err).toMatch(/nope\.json: ENOENT/);
      const notJson = await runCli(['verify', save('x.json', '{"format":'), '--genesis', fx.genesisFile]);
      expect(notJson.code).toBe(2);
      expect(notJson.err).toMatch(/x\.json: not JSON/);
      const malformed = await runCli([
        'verify',
        save('m.json', { format: 'nope' }),
        '--genesis',
        fx.genesisFile,
      ]);
      expect(malformed.code).toBe(1);
      expect(malformed.err).toMatch(/^NOT VERIFIED: malformed: /);
    },
    cliTestMs,
  );
});
