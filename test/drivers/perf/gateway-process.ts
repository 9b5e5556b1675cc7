/**
 * One gateway process for the throughput benchmark: the real Gateway (drivers → normaliser →
 * batcher → signed events in the outbox) on a generated configuration. Forked by
 * gateway-throughput.ts with: <gateway.yaml> <runs> <runMs> <warmupMs>. After the first readings and
 * the warm-up it measures `runs` windows of `runMs` (readings/s, events stored/s, CPU, RSS of this
 * process), sends them over IPC, stops the gateway cleanly and exits.
 */
import { loadConfig } from '../../../src/gateway/config/config.ts';
import { Gateway } from '../../../src/gateway/gateway.ts';
import { createLogger } from '../../../src/log/logger.ts';

export interface GatewayWindow {
  readingsPerS: number;
  eventsPerS: number;
  /** CPU time of this process over the window, in % of one core. */
  cpuPct: number;
  /** Largest resident set size seen in the window, MiB. */
  rssMiB: number;
  /** V8 heap in use at the end of the window, MiB (the rest of the RSS: code, node-opcua, SQLite, buffers). */
  heapMiB: number;
}

export interface GatewayReport {
  windows: GatewayWindow[];
  draftsDropped: number;
  queue: { queued: number; flushed: number; overflowed: number; failures: number };
  devices: {
    device: string;
    state: string;
    errors: Record<string, number>;
    detail?: Record<string, unknown> | undefined;
  }[];
  outboxRows: number;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

if (import.meta.main) {
  const [configFile, runsText, runMsText, warmupMsText] = process.argv.slice(2);
  const config = loadConfig(configFile!);
  if (config.devices.some((d) => d.protocol === 'opcua')) {
    // node-opcua prints its notices on stdout; the benchmark's report owns stdout. (Loaded only then:
    // it is ~100 MiB of the RSS measured.)
    const { setWarningLogger } = await import('node-opcua');
    setWarningLogger((_context: unknown, ...args: unknown[]) => console.error(...args));
  }
  const runs = Number(runsText ?? 3);
  const runMs = Number(runMsText ?? 3_000);
  const warmupMs = Number(warmupMsText ?? 2_000);
  // Warnings and errors (an outbox refusing writes, a device timing out) go to stderr: they explain a figure.
  const gw = await Gateway.start(config, {
    log: createLogger('warn', 2),
    statusIntervalMs: 0,
  });
  const deadline = performance.now() + 30_000;
  while (gw.stats().readings === 0) {
    if (performance.now() > deadline) throw new Error('no readings within 30 s');
    await sleep(50);
  }
  await sleep(warmupMs);
  process.send!({ phase: 'measuring' });
  const windows: GatewayWindow[] = [];
  for (let i = 0; i < runs; i++) {
    const s0 = gw.stats();
    const cpu0 = process.cpuUsage();
    const t0 = performance.now();
    let rss = process.memoryUsage().rss;
    const sampler = setInterval(() => {
      rss = Math.max(rss, process.memoryUsage().rss);
    }, 200);
    await sleep(runMs);
    clearInterval(sampler);
    const seconds = (performance.now() - t0) / 1000;
    const s1 = gw.stats();
    const cpu = process.cpuUsage(cpu0);
    windows.push({
      readingsPerS: (s1.readings - s0.readings) / seconds,
      eventsPerS: (s1.eventsStored - s0.eventsStored) / seconds,
      cpuPct: ((cpu.user + cpu.system) / 1e6 / seconds) * 100,
      rssMiB: rss / 2 ** 20,
      heapMiB: process.memoryUsage().heapUsed / 2 ** 20,
    });
  }
  const s = gw.stats();
  const report: GatewayReport = {
    windows,
    draftsDropped: s.draftsDropped,
    queue: s.queue,
    devices: s.devices.map((d) => ({ device: d.device, state: d.state, errors: d.errors, detail: d.detail })),
    outboxRows: s.outbox.rows,
  };
  await new Promise<void>((resolve, reject) =>
    process.send!(report, undefined, {}, (err: Error | null) => (err ? reject(err) : resolve())),
  );
  await gw.stop();
  process.exit(0);
}
