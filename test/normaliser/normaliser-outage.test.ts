/**
 * Parts and context across outages, end to end (driver → normaliser) against real servers: the
 * project's simulators configured like the equipment of issue 14, and pymodbus where an independent
 * peer is at hand. What a part event may say about its lot when the readings cannot tell, and what
 * one delivery (one Modbus poll, one OPC UA publish) sets before any rule runs.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { createDriver } from '../../src/drivers/registry.ts';
import type { Reading } from '../../src/drivers/types.ts';
import type { EventDraft } from '../../src/event/draft.ts';
import type { DeviceConfig } from '../../src/gateway/config/config.ts';
import { createNormaliser } from '../../src/normaliser/normaliser.ts';
import { deviceMap, testContext } from '../drivers/helpers/context.ts';
import { freePort, missing, startPymodbus } from '../drivers/helpers/tools.ts';

const root = mkdtempSync(join(tmpdir(), 'masbc-outage-'));

afterAll(() => {
  rmSync(root, { recursive: true, force: true });
});

/** A driver feeding a fresh normaliser; every batch and draft recorded. */
function pipeline(device: DeviceConfig, clock?: () => number) {
  const drafts: EventDraft[] = [];
  const normaliser = createNormaliser([device], { onDrafts: (d) => drafts.push(...d) });
  const t = testContext({ pkiFolder: join(root, 'client-pki'), ...(clock ? { nowMs: clock } : {}) });
  const onReadings = t.ctx.onReadings;
  t.ctx.onReadings = (batch: readonly Reading[]) => {
    onReadings(batch);
    normaliser.push(batch);
  };
  const driver = createDriver(device, t.ctx);
  return { drafts, t, driver, normaliser };
}

describe('Modbus: one poll is applied as one read (issue 14, item 6)', () => {
  it.skipIf(missing('pymodbus', 'apt-get install -y python3-pymodbus'))(
    'after a PLC restart reset its counter, the parts carry the input register of the same poll',
    async () => {
      const port = await freePort();
      // Counter (holding 0-1, FC 3) and an input register (FC 4): two requests of one poll.
      const image = (count: number, input: number) => ({
        '1': { hr: { '0': [0, count] }, ir: { '0': [input] } },
      });
      let peer = await startPymodbus({ mode: 'tcp', port, units: image(10, 5) });
      const device = deviceMap('modbus', {
        id: 'press',
        connection: {
          transport: 'tcp',
          host: '127.0.0.1',
          port,
          pollIntervalMs: 50,
          timeoutMs: 500,
          reconnectMaxDelayMs: 300,
        },
        tags: [
          { name: 'partsTotal', area: 'holding', address: 0, type: 'uint32' },
          { name: 'inputReg', area: 'input', address: 0, type: 'int16' },
        ],
        rules: [
          {
            name: 'part',
            trigger: 'counter',
            tag: 'partsTotal',
            kind: 'part_completed',
            values: ['inputReg'],
          },
        ],
      });
      // Every call of the driver's clock is a distinct millisecond: requests of one poll never share
      // a time by chance, as they would not on a loaded machine or a slow serial line.
      let calls = 0;
      const { drafts, t, driver } = pipeline(device, () => Date.now() + calls++);
      await driver.start();
      try {
        await t.waitFor(() => t.latest('inputReg')?.value === 5, 'the first poll');
        await peer.stop();
        await t.waitFor(() => t.latest('inputReg')?.reason === 'disconnected', 'the outage');
        // The PLC comes back with its counter reset: 3 parts since, and a new input register value.
        peer = await startPymodbus({ mode: 'tcp', port, units: image(3, 7) });
        await t.waitFor(() => drafts.length >= 3, 'the three parts', 15_000);
        expect(drafts.map((d) => d.values.partsTotal?.v)).toEqual([1, 2, 3]);
        // The last part was read in the same poll as the input register: it carries its value.
        expect(drafts[2]!.values.inputReg).toEqual({ v: 7, q: 'good' });
        expect(drafts.slice(0, 2).map((d) => d.values.inputReg)).toEqual([
          { v: null, q: 'bad' },
          { v: null, q: 'bad' },
        ]);
        // Every batch of good readings (one poll of the unit) has one time.
        for (const batch of t.batches.filter((b) => b.every((r) => r.quality === 'good'))) {
          expect(new Set(batch.map((r) => r.sourceTimeMs)).size).toBe(1);
        }
      } finally {
        await driver.stop();
        await peer.stop();
        t.cleanup();
      }
    },
  );
});
