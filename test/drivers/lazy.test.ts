/**
 * The lazily loaded driver (src/drivers/common/lazy.ts), used for OPC UA so that node-opcua is loaded
 * only when an OPC UA device starts: validation stays synchronous, start() resolves at once, a stop()
 * that comes before the module finished loading means the driver never starts, a module that fails to
 * load is reported in health and by readOnce.
 */
import { describe, expect, it, onTestFinished } from 'vitest';
import { lazyFactory } from '../../src/drivers/common/lazy.ts';
import { createDriver } from '../../src/drivers/registry.ts';
import type { Driver, DriverFactory, DriverHealth } from '../../src/drivers/types.ts';
import { deviceMap, testContext } from './helpers/context.ts';

/** A stand-in for a loaded protocol driver that records what was asked of it. */
function recorder(calls: string[]): DriverFactory<{ id: string }> {
  return (device) =>
    ({
      device: device.id,
      protocol: 'x',
      start: async () => void calls.push('start'),
      stop: async () => void calls.push('stop'),
      health: () => ({ device: device.id, protocol: 'x', state: 'connected' }) as DriverHealth,
      readOnce: async () => ({
        device: device.id,
        protocol: 'x',
        batches: [],
        complete: true,
        problems: [],
        notes: [],
        silent: [],
        elapsedMs: 1,
      }),
      loadState: (s: unknown) => void calls.push(`load ${JSON.stringify(s)}`),
    }) satisfies Driver;
}

describe('lazily loaded drivers', () => {
  it('refuses a bad OPC UA map at construction, before node-opcua is loaded', () => {
    const t = testContext();
    onTestFinished(() => t.cleanup());
    const device = deviceMap('opcua', {
      connection: { endpoint: 'opc.tcp://127.0.0.1:4840' },
      tags: [{ name: 'a', nodeId: 'ns=1;s=A' }],
    });
    // The schema refuses this too; a map built in code must meet the same check.
    device.connection.securityMode = 'Sign';
    expect(() => createDriver(device, t.ctx)).toThrow(
      /securityMode Sign needs a securityPolicy other than None/,
    );
  });

  it('starts the loaded driver once loaded, with the saved state; never if stop() came first', async () => {
    const t = testContext();
    onTestFinished(() => t.cleanup());
    const calls: string[] = [];
    let release: () => void = () => {};
    const gate = new Promise<void>((r) => {
      release = r;
    });
    const factory = lazyFactory(
      'x',
      () => {},
      async () => {
        await gate;
        return recorder(calls);
      },
    );
    const early = factory({ id: 'a' }, t.ctx);
    early.loadState?.({ n: 1 });
    await early.start();
    expect(early.health().state).toBe('connecting');
    await early.stop();
    expect(early.health().state).toBe('stopped');
    release();
    await gate;
    await new Promise((r) => setImmediate(r));
    expect(calls).toEqual(['load {"n":1}']); // loaded, given its state, not started

    const normal = factory({ id: 'b' }, t.ctx);
    await normal.start();
    await new Promise((r) => setImmediate(r));
    expect(normal.health().state).toBe('connected');
    await normal.stop();
    expect(calls.slice(1)).toEqual(['start', 'stop']);
  });

  it('reports a module that cannot be loaded in health and in readOnce', async () => {
    const t = testContext();
    onTestFinished(() => t.cleanup());
    const factory = lazyFactory(
      'x',
      () => {},
      () => Promise.reject(new Error('no such module')),
    );
    const once = await factory({ id: 'c' }, t.ctx).readOnce({ timeoutMs: 100 });
    expect(once).toMatchObject({ complete: false, problems: ['cannot load the x driver: no such module'] });
    const d = factory({ id: 'd' }, t.ctx);
    await d.start();
    await new Promise((r) => setImmediate(r));
    expect(d.health()).toMatchObject({ state: 'connecting', errors: { load: 1 } });
    expect(t.logs.some((l) => l.level === 'error' && /no such module/.test(l.msg))).toBe(true);
    await d.stop();
  });
});
