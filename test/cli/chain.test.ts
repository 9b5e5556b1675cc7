/**
 * `masbc-edge chain lot` and `chain verify` on a validator's data folder after real commits: a
 * lot's events come from the member's own body store with their block heights and values as an
 * operator reads them (unit apart), another member's folder holds none, and the chain verifies from
 * the genesis alone.
 */
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { startPeer } from '../../src/cli/peer.ts';
import { encodeSubmission } from '../../src/consensus/runtime/client.ts';
import { loadKeyFile } from '../../src/crypto/keys.ts';
import { createLocalAlliance } from '../../src/devtools/local-alliance.ts';
import { encodeBody } from '../../src/event/event.ts';
import { EventSigner, emptyHead } from '../../src/event/signer.ts';
import { bearer, tokenFor } from '../api/credentials-fixture.ts';
import { runCli } from '../helpers/cli.ts';
import { tempDir } from '../helpers/tmp.ts';

async function quietly<T>(f: () => Promise<T>): Promise<{ value: T; lines: string[] }> {
  const lines: string[] = [];
  const log = console.log;
  console.log = (...a: unknown[]) => lines.push(a.join(' '));
  try {
    return { value: await f(), lines };
  } finally {
    console.log = log;
  }
}

describe('masbc-edge chain lot and chain verify', () => {
  it("lists a lot's final events from the member's body store, none from another member's folder; the chain verifies", async () => {
    const dir = tempDir('cli-chain');
    // Two alliances of one validator each stand for "acme" and "another member's folder".
    const acme = await createLocalAlliance({ dir: join(dir, 'acme'), members: ['acme'], gateways: 1 });
    const data = join(dir, 'acme', 'data');
    const { value: peer, lines } = await quietly(() =>
      startPeer({
        genesis: acme.genesisFile,
        key: acme.keyFiles.get('acme')!,
        data,
        opsPort: false,
        statusEveryMs: 0,
        logLevel: 'error',
      }),
    );
    const api = /http:\/\/127\.0\.0\.1:\d+/.exec(lines.join('\n'))![0];
    const [chainKey, keyFile] = [...acme.gatewayKeyFiles][0]!;
    const signer = new EventSigner(
      { enterprise: 'acme', site: 'plant1', line: 'line1', gateway: chainKey.split('/')[1]! },
      loadKeyFile(keyFile),
    );
    const drafts = [1, 2, 3].map((i) => ({
      kind: 'part_completed' as const,
      dataClass: 'process' as const,
      station: 'ST-10',
      device: 'cnc1',
      sourceTimeMs: 1_800_000_000_000 + i,
      lot: 'LOT-CLI-7',
      order: 'ORD-9',
      product: `SN-${i}`,
      values: { diameter: { v: 25 + i / 1000, unit: 'mm', q: 'good' as const } },
    }));
    const { batch, events } = signer.sign(drafts, emptyHead);
    try {
      const gw = bearer(await tokenFor(acme, 'acme', { role: 'gateway', gateway: chainKey.split('/')[1]! }));
      const res = await fetch(`${api}/v1/batches`, {
        method: 'POST',
        headers: { 'content-type': 'application/octet-stream', ...gw },
        body: encodeSubmission([
          { tx: batch.tx, bodies: events.map((e) => encodeBody(e.body!)) },
        ]) as Uint8Array<ArrayBuffer>,
      });
      expect(await res.json()).toEqual({ verdicts: [{ accepted: true, bodiesKept: true }] });
      for (let i = 0; i < 200; i++) {
        const s = (await (
          await fetch(`${api}/v1/status`, { headers: bearer(await tokenFor(acme, 'acme')) })
        ).json()) as {
          committedHeight: number;
        };
        if (s.committedHeight >= 1) break;
        await new Promise((r) => setTimeout(r, 50));
      }
    } finally {
      await peer.stop();
    }

    const lot = await runCli(['chain', 'lot', 'LOT-CLI-7', '--data', data, '--genesis', acme.genesisFile]);
    expect(lot.code, lot.err).toBe(0);
    const rows = lot.out.trim().split('\n');
    expect(rows).toHaveLength(3);
    for (const [i, row] of rows.entries()) {
      expect(row).toMatch(/^block\s+1\s/);
      expect(row).toContain(`acme/${chainKey.split('/')[1]} #${i + 1}`);
      expect(row).toContain(`diameter=${25 + (i + 1) / 1000} mm`);
    }

    const other = await createLocalAlliance({ dir: join(dir, 'bolt'), members: ['bolt'] });
    const { value: boltPeer } = await quietly(() =>
      startPeer({
        genesis: other.genesisFile,
        key: other.keyFiles.get('bolt')!,
        data: join(dir, 'bolt', 'data'),
        opsPort: false,
        statusEveryMs: 0,
        logLevel: 'error',
      }),
    );
    await boltPeer.stop();
    const none = await runCli([
      'chain',
      'lot',
      'LOT-CLI-7',
      '--data',
      join(dir, 'bolt', 'data'),
      '--genesis',
      other.genesisFile,
    ]);
    expect(none.out).toMatch(/no events of lot LOT-CLI-7 in bolt's body store/);

    const verify = await runCli(['chain', 'verify', '--data', data, '--genesis', acme.genesisFile]);
    expect(verify.code, verify.err).toBe(0);
    expect(verify.out).toMatch(/1 signed batches of 3 events/);
    expect(verify.out).toMatch(
      /acme's body store: 3 bodies of its final events, each matching its commitment/,
    );
  });
});
