/**
 * `masbc-edge run`: the gateway (drivers → normaliser → signed events in the outbox) until SIGINT or
 * SIGTERM.
 *
 * `masbc-edge run --once` (Telegraf's `--test`): reads every tag of every enabled device once, prints
 * the readings and the event drafts a fresh normaliser would make from them, and exits 0 when every
 * device answered completely, 1 otherwise. It stores and signs nothing: no outbox, no status file, no
 * key needed. For OPC UA it writes what commissioning needs and nothing else: the gateway's own
 * certificate when there is none yet (the one `run` presents too), and the server certificates it
 * refused, in `<data>/pki/opcua/rejected/`; it works on a temporary copy of that PKI otherwise.
 *
 * @example
 *   masbc-edge run -c config/gateway.yaml
 *   masbc-edge run --once --once-timeout-ms 15000
 *   masbc-edge run --once --format json | jq '.devices[] | select(.complete | not)'
 */
import { copyFileSync, cpSync, existsSync, mkdirSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
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
  onceSilentTopics: SilentTopics;
  format: 'text' | 'json';
}

/** What a silent MQTT topic filter means for `--once`: `note` (default) lists it, `fail` fails the device. */
export type SilentTopics = 'note' | 'fail';

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
      new Option(
        '--once-silent-topics <mode>',
        'with --once: an MQTT topic that delivers no message (an event-driven topic may stay silent) is listed (note) or fails its device (fail)',
      )
        .choices(['note', 'fail'])
        .default('note'),
    )
    .addOption(
      new Option('--format <format>', 'with --once: output format').choices(['text', 'json']).default('text'),
    )
    .action(async (opts: RunOptions, cmd: Command) => {
      if (!opts.once) {
        for (const name of ['onceTimeoutMs', 'onceSilentTopics', 'format']) {
          if (cmd.getOptionValueSource(name) === 'cli')
            cmd.error(`error: ${cmd.options.find((o) => o.attributeName() === name)?.long} needs --once`);
        }
      }
      // Refuses to start on invalid configuration: loadConfig throws a ConfigError listing everything.
      const config = loadConfig(opts.config);
      if (opts.once) {
        const report = await readOnce(config, {
          timeoutMs: opts.onceTimeoutMs,
          silentTopics: opts.onceSilentTopics,
          logLevel: opts.logLevel,
        });
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
  /** MQTT topic filters that delivered no message within the deadline. */
  silentTopics: string[];
  readings: Reading[];
}

export interface OnceReport {
  /** Every enabled device answered completely. */
  complete: boolean;
  /** The deadline each device had. */
  timeoutMs: number;
  devices: OnceDeviceReport[];
  /** What a fresh normaliser makes of these readings (nothing signed or stored). */
  drafts: EventDraft[];
  /** Rules that made no event, and why (a counter needs a second read, a baseline …). */
  silentRules: { device: string; rule: string; reason: string }[];
  /** Normaliser warnings (a counter that is not an integer …). */
  warnings: string[];
  /** With OPC UA devices: the gateway's certificate, and server certificates refused by this read. */
  opcua?: OnceOpcuaReport;
}

export interface OnceOpcuaReport {
  /** The gateway's own certificate (give it to machines that check clients). */
  certificate: string;
  /** It was created by this run (there was none). */
  certificateCreated: boolean;
  /** Server certificates refused now, kept here: move one to `trusted` to trust that server. */
  rejected: string[];
  /** Where trusted server certificates go. */
  trusted: string;
}

/**
 * Reads every enabled device once (in parallel, each with its own deadline) and runs the readings
 * through a fresh normaliser. Writes nothing: OPC UA gets a temporary copy of the PKI folder.
 */
export async function readOnce(
  config: LoadedConfig,
  options: { timeoutMs: number; silentTopics?: SilentTopics; logLevel?: LogLevel | undefined },
): Promise<OnceReport> {
  const devices = config.devices.filter((d) => d.enabled);
  const [{ createDriver }, { createNormaliser }] = await Promise.all([
    import('../drivers/registry.ts'),
    import('../normaliser/normaliser.ts'),
  ]);
  // Drivers' own log lines repeat what the report says; shown on stderr only when asked for.
  const driverLog: DriverLogger = options.logLevel ? createLogger(options.logLevel, 2) : quietLogger;
  const opcua = devices.some((d) => d.protocol === 'opcua');
  const pkiFolder = join(config.paths.dataDir, 'pki', 'opcua');
  let opcuaReport: OnceOpcuaReport | undefined;
  let pki: { folder: string; remove(): void } | null = null;
  if (opcua) {
    // The certificate this read presents is the gateway's own, created once in the data folder and
    // kept: a machine that refuses it today trusts the same one tomorrow, for `--once` and `run`.
    // (node-opcua's messages go to the drivers' log, never to stdout, which is the report's.)
    const { ensureOwnCertificate, ownCertificatePath } = await import('../drivers/opcua/driver.ts');
    const created = await ensureOwnCertificate(pkiFolder, driverLog);
    opcuaReport = {
      certificate: ownCertificatePath(pkiFolder),
      certificateCreated: created,
      rejected: [],
      trusted: join(pkiFolder, 'trusted', 'certs'),
    };
    pki = temporaryPki(config.paths.dataDir);
  }
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
    // Servers refused now are kept where the docs' trust procedure looks for them.
    if (pki && opcuaReport) opcuaReport.rejected = keepRejected(pki.folder, pkiFolder);
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

  // A device that answered but whose event-driven topics stayed silent fails only when asked to.
  const strict = options.silentTopics === 'fail';
  const complete = (r: OnceResult) => r.complete && !(strict && r.silent.length > 0);
  return {
    complete: results.every(complete),
    timeoutMs: options.timeoutMs,
    devices: results.map((r) => ({
      device: r.device,
      protocol: r.protocol,
      complete: complete(r),
      elapsedMs: r.elapsedMs,
      problems: r.problems,
      notes: r.notes,
      silentTopics: r.silent,
      readings: r.batches.flat(),
    })),
    drafts,
    silentRules: silentRules(devices, results, drafts),
    warnings,
    ...(opcuaReport ? { opcua: opcuaReport } : {}),
  };
}

/** Copies the server certificates refused in the temporary PKI into the data folder's rejected/. */
function keepRejected(temporary: string, pkiFolder: string): string[] {
  const from = join(temporary, 'rejected');
  const to = join(pkiFolder, 'rejected');
  if (!existsSync(from)) return [];
  const kept: string[] = [];
  for (const name of readdirSync(from)) {
    if (!name.endsWith('.pem') || existsSync(join(pkiFolder, 'trusted', 'certs', name))) continue;
    mkdirSync(to, { recursive: true });
    if (!existsSync(join(to, name))) copyFileSync(join(from, name), join(to, name));
    kept.push(join(to, name));
  }
  return kept;
}

const quietLogger: DriverLogger = { info() {}, warn() {}, error() {} };

/**
 * A private copy of the gateway's OPC UA PKI (its own certificate and the servers it trusts), so a
 * server that requires the gateway's certificate accepts this read too, and no trust decision of
 * node-opcua (`accept-unknown` trusting a server on sight) lands in the data folder; refused server
 * certificates are copied back (keepRejected). The copy is in a 0700 temporary folder and removed
 * afterwards.
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
    if (d.silentTopics.length > 0) {
      lines.push(
        `  silent: no message within ${report.timeoutMs} ms on ${d.silentTopics.join(', ')}`,
        `    (an event-driven topic may stay silent: ${d.complete ? 'not a failure; --once-silent-topics fail makes it one' : 'a failure with --once-silent-topics fail'})`,
      );
    }
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
  if (report.opcua) {
    const o = report.opcua;
    lines.push(
      '',
      `OPC UA: the gateway's certificate${o.certificateCreated ? ' (created now)' : ''}: ${o.certificate}`,
      '  a machine that checks clients must trust it (copy it to its trusted certificates)',
    );
    for (const r of o.rejected) {
      lines.push(
        `OPC UA: server certificate refused and kept: ${r}`,
        `  to trust that server, move it to ${o.trusted}/`,
      );
    }
  }
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
