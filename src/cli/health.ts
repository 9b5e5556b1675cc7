/**
 * `masbc-edge health`: exit 0 while the running gateway is ready, 1 with every reason otherwise (the
 * container's HEALTHCHECK and systemd's or a script's check). It asks the gateway's own status
 * server (`/ready`, or `/health` with --live; src/observe/health.ts has the rules and their codes),
 * after checking that the gateway's status file is fresh and that the server answering is that
 * gateway (same pid). With `ops.enabled: false` only the status file is checked, and it says so.
 * `--url` asks any gateway's or validator's status server directly (`masbc-edge peer` prints its
 * address).
 *
 * @example
 *   masbc-edge health -c /etc/masbc-edge/gateway.yaml
 *   masbc-edge health --url http://127.0.0.1:8091/ --live
 */
import type { Command } from 'commander';
import { defaultGatewayFile, loadConfig } from '../gateway/config/config.ts';
import { checkHealth } from '../gateway/status.ts';
import { healthRequestTimeoutMs } from '../observe/bounds.ts';
import type { HealthReport } from '../observe/health.ts';
import { pageUrl } from '../observe/server.ts';

interface HealthOptions {
  config: string;
  live?: boolean;
  url?: string;
  json?: boolean;
}

type Answer = HealthReport & { kind: string; name: string; pid: number };

export function registerHealth(program: Command): void {
  program
    .command('health')
    .description(
      'Exit 0 while the running gateway is ready, 1 naming every reason (devices down, outbox filling, chain stalled, disk low …)',
    )
    .option('-c, --config <file>', 'gateway configuration', defaultGatewayFile)
    .option('--live', 'liveness only: exit 1 only for fatal reasons (corrupt outbox, failed validator)')
    .option('--url <url>', "ask this status server (a validator's, say) instead of the configured gateway's")
    .option('--json', "print the server's answer as JSON")
    .action(async (opts: HealthOptions) => {
      const path = opts.live ? 'health' : 'ready';
      if (opts.url) {
        report(await ask(new URL(path, withSlash(opts.url)).href), opts, null);
        return;
      }
      const config = loadConfig(opts.config);
      const file = checkHealth(config.paths.dataDir);
      if (!file.ok) {
        fail(file.reason);
        return;
      }
      const ops = config.gateway.ops;
      if (!ops.enabled) {
        console.log(
          `healthy (pid ${file.status.pid}, updated ${new Date(file.status.updatedMs).toISOString()}); ` +
            'ops.enabled is false: only the status file was checked (devices, chain and disk are not judged)',
        );
        return;
      }
      report(await ask(`${pageUrl(ops.host, ops.port)}${path}`), opts, file.status.pid);
    });
}

function withSlash(url: string): string {
  return url.endsWith('/') ? url : `${url}/`;
}

async function ask(url: string): Promise<{ url: string; answer: Answer } | { url: string; error: string }> {
  try {
    const res = await fetch(url, { signal: AbortSignal.timeout(healthRequestTimeoutMs) });
    const body = (await res.json()) as Answer;
    if (typeof body?.ready !== 'boolean' || !Array.isArray(body.reasons))
      return { url, error: `HTTP ${res.status} without a health report: not a masbc-edge status server?` };
    return { url, answer: body };
  } catch (err) {
    const e = err as Error & { cause?: { code?: string; message?: string } };
    return { url, error: e.cause?.code ?? e.cause?.message ?? e.message };
  }
}

function report(
  r: { url: string; answer: Answer } | { url: string; error: string },
  opts: HealthOptions,
  expectedPid: number | null,
): void {
  if ('error' in r) {
    fail(`no answer from the status server at ${r.url} (${r.error})`);
    return;
  }
  const a = r.answer;
  if (opts.json) console.log(JSON.stringify(a));
  if (expectedPid !== null && a.pid !== expectedPid) {
    fail(
      `${r.url} is served by another process (pid ${a.pid}, ${a.name}), not this gateway (pid ${expectedPid}): ` +
        'check ops.port',
    );
    return;
  }
  const ok = opts.live ? a.live : a.ready;
  const reasons = a.reasons.map((x) => `${x.code}: ${x.message}`).join('; ');
  if (!ok) {
    fail(`${a.status}: ${reasons}`);
    return;
  }
  if (!opts.json)
    console.log(
      `healthy: ${opts.live ? 'live' : 'ready'} (${a.kind} ${a.name}, pid ${a.pid})` +
        (reasons ? `; degraded: ${reasons}` : ''),
    );
}

function fail(reason: string): void {
  console.error(`unhealthy: ${reason}`);
  process.exitCode = 1;
}
