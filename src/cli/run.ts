/**
 * `masbc-edge run`: the gateway (drivers → normaliser → signed events in the outbox) until SIGINT or
 * SIGTERM.
 *
 * `masbc-edge run --once` (Telegraf's `--test`): reads every tag of every enabled device once, prints
 * the readings and the event drafts a fresh normaliser would make from them, and exits 0 when every
 * device answered completely, 1 otherwise. It stores, signs and writes nothing: no outbox, no status
 * file, no key needed; OPC UA works on a temporary copy of the data folder's PKI.
 *
 * @example
 *   masbc-edge run -c config/gateway.yaml
 *   masbc-edge run --once --once-timeout-ms 15000
 *   masbc-edge run --once --format json | jq '.devices[] | select(.complete | not)'
 */
import { cpSync, existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { type Command, InvalidArgumentError, Option } from 'commander';
import type { DriverLogger, OnceResult, Reading } from '../drivers/types.ts';
import type { EventDraft } from '../event/draft.ts';
import {
  type DeviceConfig,
  defaultGatewayFile,
  type LoadedConfig,
  loadConfig,
} from '../gateway/config/config.ts';
import { createLogger, type LogLevel } from '../log/logger.ts';
import type { NormaliserState } from '../normaliser/normaliser.ts';
import { untilSignal } from './shared.ts';

/** Longest --once-timeout-ms accepted (an MQTT sensor publishing once an hour wants a long one). */
const onceTimeoutMsMax = 3_600_000;
/** Characters of a value shown in the text table (JSON output has them whole). */
const valueColumnChars = 40;

interface RunOptions {
  config: string;
  logLevel?: LogLevel;
  once?: boolean;
  onceTimeoutMs: number;
  format: 'text' | 'json';
}

function parseTimeoutMs(text: string): number {
  const ms = Number(text);
  if (!Number.isInteger(ms) || ms < 100 || ms > onceTimeoutMsMax) {
    throw new InvalidArgumentError(`expected an integer from 100 to ${onceTimeoutMsMax}`);
  }
  return ms;
}

export function registerRun(program: Command): void {
  program
    .command('run')
    .description('Run the gateway: acquire from the configured devices into signed events in the outbox')
    .option('-c, --config <file>', 'gateway configuration', defaultGatewayFile)
    .option('--log-level <level>', 'trace | debug | info | warn | error (default: from gateway.yaml)')
    .option(
      '--once',
      'read every tag of every enabled device once, print the readings and the events they would make, store nothing; exit 0 if every device answered, 1 otherwise',
    )
    .option(
      '--once-timeout-ms <ms>',
      'with --once: how long each device may take, connecting included (MQTT: to deliver one message per topic filter)',
      parseTimeoutMs,
      5000,
    )
    .addOption(
      new Option('--format <format>', 'with --once: output format').choices(['text', 'json']).default('text'),
    )
    .action(async (opts: RunOptions, cmd: Command) => {
      if (!opts.once) {
        for (const name of ['onceTimeoutMs', 'format']) {
          if (cmd.getOptionValueSource(name) === 'cli')
            cmd.error(`error: ${cmd.options.find((o) => o.attributeName() === name)?.long} needs --once`);
        }
      }
      // Refuses to start on invalid configuration: loadConfig throws a ConfigError listing everything.
      const config = loadConfig(opts.config);
      if (opts.once) {
        const report = await readOnce(config, { timeoutMs: opts.onceTimeoutMs, logLevel: opts.logLevel });
        process.stdout.write(
          opts.format === 'json' ? `${JSON.stringify(report, null, 2)}\n` : formatOnce(report),
        );
        process.exitCode = report.complete ? 0 : 1;
        return;
      }
      const log = createLogger(opts.logLevel ?? config.gateway.log.level);
      // Imported here so that `validate` and `keygen` do not load the protocol stacks.
      const [{ Gateway }, { startGatewayOps }] = await Promise.all([
        import('../gateway/gateway.ts'),
        import('../observe/start.ts'),
      ]);
      // The status page binds first; its address (or why it is not served) goes to the log: stdout
      // holds JSON lines only.
      const { server: ops } = await startGatewayOps(config, log);
      let gateway: Awaited<ReturnType<typeof Gateway.start>>;
      try {
        gateway = await Gateway.start(config, { log, ...ops?.observer.gatewayHooks });
      } catch (err) {
        await ops?.close();
        throw err;
      }
      ops?.observer.attachGateway(gateway);
      const signal = await untilSignal();
      log.info('stopping', { signal });
      await ops?.close();
      await gateway.stop();
      log.flush();
    });
}

export interface OnceDeviceReport {
  device: string;
  protocol: string;
  complete: boolean;
  elapsedMs: number;
  problems: string[];
  notes: string[];
  readings: Reading[];
}

export interface OnceReport {
  /** Every enabled device answered completely. */
  complete: boolean;
  devices: OnceDeviceReport[];
  /** What a fresh normaliser makes of these readings (nothing signed or stored). */
  drafts: EventDraft[];
  /** Rules that made no event, and why (a counter needs a second read, a baseline …). */
  silentRules: { device: string; rule: string; reason: string }[];
  /** Normaliser warnings (a counter that is not an integer …). */
  warnings: string[];
}

/**
 * Reads every enabled device once (in parallel, each with its own deadline) and runs the readings
 * through a fresh normaliser. Writes nothing: OPC UA gets a temporary copy of the PKI folder.
 */
export async function readOnce(
  config: LoadedConfig,
  options: { timeoutMs: number; logLevel?: LogLevel | undefined },
): Promise<OnceReport> {
  const devices = config.devices.filter((d) => d.enabled);
  const [{ createDriver }, { createNormaliser }] = await Promise.all([
    import('../drivers/registry.ts'),
    import('../normaliser/normaliser.ts'),
  ]);
  // Drivers' own log lines repeat what the report says; shown on stderr only when asked for.
  const driverLog: DriverLogger = options.logLevel ? createLogger(options.logLevel, 2) : quietLogger;
  const opcua = devices.some((d) => d.protocol === 'opcua');
  if (opcua) {
    // node-opcua prints its warnings on stdout; keep stdout for the report (JSON must stay parseable).
    const { setErrorLogger, setWarningLogger } = await import('node-opcua');
    const toStderr = (_context: unknown, ...args: unknown[]) => console.error(...args);
    setWarningLogger(toStderr);
    setErrorLogger(toStderr);
  }
  const pki = opcua ? temporaryPki(config.paths.dataDir) : null;
  let results: OnceResult[];
  try {
    results = await Promise.all(
      devices.map((device) =>
        createDriver(device, {
          onReadings: () => {},
          log: driverLog,
          dataDir: config.paths.dataDir,
          pkiFolder: pki?.folder ?? join(config.paths.dataDir, 'pki', 'opcua'),
        }).readOnce({ timeoutMs: options.timeoutMs }),
      ),
    );
  } finally {
    pki?.remove();
  }

  const drafts: EventDraft[] = [];
  const warnings: string[] = [];
  const normaliser = createNormaliser(devices, {
    onDrafts: (d) => drafts.push(...d),
    log: { ...quietLogger, warn: (msg) => warnings.push(msg) },
  });
  // Period rules are evaluated once, now: they are due at once instead of at their next period.
  const nowMs = Date.now();
  const state: NormaliserState = { version: 1, rules: {} };
  for (const d of devices) {
    for (const r of d.rules)
      if (r.trigger === 'period') state.rules[`${d.id}/${r.name}`] = { nextDueMs: nowMs };
  }
  normaliser.loadState(state);
  for (const r of results) for (const batch of r.batches) normaliser.push(batch);
  normaliser.tick(nowMs);

  return {
    complete: results.every((r) => r.complete),
    devices: results.map((r) => ({
      device: r.device,
      protocol: r.protocol,
      complete: r.complete,
      elapsedMs: r.elapsedMs,
      problems: r.problems,
      notes: r.notes,
      readings: r.batches.flat(),
    })),
    drafts,
    silentRules: silentRules(devices, results, drafts),
    warnings,
  };
}

const quietLogger: DriverLogger = { info() {}, warn() {}, error() {} };

/**
 * A private copy of the gateway's OPC UA PKI (its own certificate and the servers it trusts), so a
 * server that requires the gateway's certificate accepts this read too, and nothing node-opcua writes
 * (a newly seen server certificate, a fresh client certificate) lands in the data folder. The copy is
 * in a 0700 temporary folder and removed afterwards.
 */
function temporaryPki(dataDir: string): { folder: string; remove(): void } {
  const dir = mkdtempSync(join(tmpdir(), 'masbc-once-pki-'));
  const source = join(dataDir, 'pki', 'opcua');
  const folder = join(dir, 'opcua');
  if (existsSync(source)) cpSync(source, folder, { recursive: true });
  return { folder, remove: () => rmSync(dir, { recursive: true, force: true }) };
}

/** Why each rule that made no event stayed silent, in an operator's words. */
function silentRules(
  devices: readonly DeviceConfig[],
  results: readonly OnceResult[],
  drafts: readonly EventDraft[],
): OnceReport['silentRules'] {
  const fired = new Set(drafts.map((d) => `${d.device}/${d.rule}`));
  const out: OnceReport['silentRules'] = [];
  for (const d of devices) {
    const latest = new Map<string, Reading>();
    for (const r of results.find((x) => x.device === d.id)?.batches.flat() ?? []) latest.set(r.tag, r);
    if (latest.size === 0) continue; // the device said nothing: its problems say why
    for (const rule of d.rules) {
      if (fired.has(`${d.id}/${rule.name}`)) continue;
      let reason: string;
      if (rule.trigger === 'period') {
        reason = `period: none of its values (${rule.values.join(', ')}) has a usable reading`;
      } else {
        const r = latest.get(rule.tag);
        if (!r) reason = `its tag ${rule.tag} was not read`;
        else if (r.quality === 'bad') reason = `its tag ${rule.tag} is bad (${r.reason ?? 'no reason'})`;
        else if (rule.trigger === 'counter') reason = 'counter: a single read only sets the baseline';
        else if (rule.trigger !== 'update' && rule.initial === 'ignore') {
          reason = `${rule.trigger}: the first value is the baseline (initial: emit would report it)`;
        } else reason = `${rule.trigger}: not triggered by the value read (${JSON.stringify(r.value)})`;
      }
      out.push({ device: d.id, rule: rule.name, reason });
    }
  }
  return out;
}

export function formatOnce(report: OnceReport): string {
  const lines: string[] = [
    'masbc-edge run --once: every enabled device read once; nothing signed, stored or written',
    '',
  ];
  for (const d of report.devices) {
    const verdict = d.complete ? 'answered' : 'DID NOT ANSWER COMPLETELY';
    lines.push(`${d.device} (${d.protocol}): ${verdict} in ${d.elapsedMs} ms, ${d.readings.length} readings`);
    if (d.readings.length > 0) {
      const rows = d.readings.map((r) => [r.tag, showValue(r.value), r.quality, r.reason ?? '']);
      lines.push(...table(['tag', 'value', 'quality', 'reason'], rows).map((l) => `  ${l}`));
    }
    for (const p of d.problems) lines.push(`  problem: ${p}`);
    for (const n of d.notes) lines.push(`  note: ${n}`);
    lines.push('');
  }
  lines.push('Events a fresh normaliser would make from these readings (not signed, not stored):');
  if (report.drafts.length === 0) lines.push('  none');
  for (const e of report.drafts) {
    const context = (['lot', 'product', 'order', 'step'] as const)
      .filter((k) => e[k] !== undefined)
      .map((k) => `${k}=${e[k]}`);
    const values = Object.entries(e.values).map(
      ([k, v]) => `${k}=${showValue(v.v)}${v.unit ? ` ${v.unit}` : ''}${v.q === 'good' ? '' : ` (${v.q})`}`,
    );
    lines.push(
      `  ${e.device} ${e.kind} (rule ${e.rule})${context.length ? ` ${context.join(' ')}` : ''}${values.length ? `: ${values.join(', ')}` : ''}`,
    );
  }
  if (report.silentRules.length > 0) {
    lines.push('Rules that made no event from a single read:');
    for (const s of report.silentRules) lines.push(`  ${s.device}/${s.rule}: ${s.reason}`);
  }
  for (const w of report.warnings) lines.push(`  warning: ${w}`);
  const answered = report.devices.filter((d) => d.complete).length;
  lines.push(
    '',
    `${answered} of ${report.devices.length} devices answered completely; exit ${report.complete ? 0 : 1}`,
    '',
  );
  return lines.join('\n');
}

function showValue(v: Reading['value']): string {
  const text = typeof v === 'string' ? JSON.stringify(v) : String(v);
  return text.length > valueColumnChars ? `${text.slice(0, valueColumnChars - 1)}…` : text;
}

function table(header: string[], rows: string[][]): string[] {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)));
  const line = (cells: string[]) =>
    cells
      .map((c, i) => c.padEnd(widths[i]!))
      .join('  ')
      .trimEnd();
  return [line(header), ...rows.map(line)];
}
