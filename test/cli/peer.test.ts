/**
 * `masbc-edge peer`'s body store options reach the member's private body store: its disk budget and
 * how long each data class is kept (docs/store.md, "Bodies"), as the validator API reports them.
 */
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { startPeer } from '../../src/cli/peer.ts';
import { createLocalAlliance } from '../../src/devtools/local-alliance.ts';
import { bearer, tokenFor } from '../api/credentials-fixture.ts';
import { tempDir } from '../helpers/tmp.ts';

const stops: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const stop of stops.splice(0)) await stop();
});

async function peerWith(options: {
  bodiesMaxMib?: number;
  keepProcessDays?: number;
  keepEquipmentDays?: number;
}) {
  const dir = tempDir('cli-peer');
  const alliance = await createLocalAlliance({ dir, members: ['acme'] });
  const data = join(dir, 'acme');
  const lines: string[] = [];
  const log = console.log;
  console.log = (...a: unknown[]) => lines.push(a.join(' '));
  try {
    const peer = await startPeer({
      genesis: alliance.genesisFile,
      key: alliance.keyFiles.get('acme')!,
      data,
      opsPort: false,
      statusEveryMs: 0,
      logLevel: 'error',
      ...options,
    });
    stops.push(() => peer.stop());
  } finally {
    console.log = log;
  }
  const api = /http:\/\/127\.0\.0\.1:\d+/.exec(lines.join('\n'))?.[0];
  if (!api) throw new Error(`no API address in the ready line: ${lines.join(' | ')}`);
  const headers = bearer(await tokenFor(alliance, 'acme'));
  const metrics = (await (await fetch(`${api}/v1/metrics`, { headers })).json()) as {
    bodies: { maxBytes: number; retention: { process: number; equipment: number } };
  };
  return metrics.bodies;
}

describe('masbc-edge peer: the body store', () => {
  it('keeps process bodies forever and equipment bodies a year, in 8 GiB, by default', async () => {
    expect(await peerWith({})).toMatchObject({
      maxBytes: 8 * 1024 ** 3,
      retention: { process: 0, equipment: 365 * 86_400_000 },
    });
  });

  it('takes the budget in MiB and the retention of each class in days', async () => {
    expect(await peerWith({ bodiesMaxMib: 512, keepProcessDays: 3650, keepEquipmentDays: 30 })).toMatchObject(
      {
        maxBytes: 512 * 1024 * 1024,
        retention: { process: 3650 * 86_400_000, equipment: 30 * 86_400_000 },
      },
    );
  });
});
