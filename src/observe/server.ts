/**
 * The operator's HTTP server, served by every gateway (`masbc-edge run`, the demo) and every
 * validator (`masbc-edge peer`), on its own address (loopback by default, no authentication):
 *
 *   GET /                    the status page (plain HTML, CSS and JavaScript from src/observe/page;
 *                            no build step, no CDN: it works on a panel PC without internet)
 *   GET /api/status          the page's data (OpsSnapshot) as JSON
 *   GET /api/events          the same, pushed once a second as server-sent events (`event: snapshot`)
 *   GET /api/dead-letters    ?limit=N (≤ 1000): the newest dead letters kept, newest first, with their reason
 *   GET /metrics             Prometheus text format (metrics.ts)
 *   GET /health              liveness: 200 unless a fatal reason (corrupt outbox, failed validator), else 503
 *   GET /ready               readiness: 200 with no reason at all, else 503; both list every reason
 *
 * Built apart from `listen()` (fastify's testing guide), so tests can `inject()`. Bounds: at most
 * `liveClientsMax` live clients (beyond: 503; the page then polls /api/status); a live client
 * whose socket has more than `liveClientBufferBytesMax` unsent is skipped until it drains, so a
 * slow browser costs one buffer, never a queue. The port is bound before the gateway starts, so
 * a port in use stops `run` before anything is acquired; `/ready` says `starting` until then.
 *
 * @example
 *   const ops = await startOps({ kind: 'gateway', name: 'acme/gw-line1', host: '127.0.0.1', port: 8090,
 *     policy, dataDir, log });
 *   const gateway = await Gateway.start(config, { log, ...ops.observer.gatewayHooks });
 *   ops.observer.attachGateway(gateway);
 *   console.log(ops.url); // http://127.0.0.1:8090/
 */
import { readFileSync } from 'node:fs';
import type { ServerResponse } from 'node:http';
import Fastify, { type FastifyInstance } from 'fastify';
import type { HealthPolicy } from '../gateway/config/gateway-schema.ts';
import type { Logger } from '../log/logger.ts';
import { deadLettersQueryMax, liveClientBufferBytesMax, liveClientsMax, sampleIntervalMs } from './bounds.ts';
import { createMetrics, type Metrics } from './metrics.ts';
import { Observer } from './observer.ts';

const page = (file: string) => readFileSync(new URL(`./page/${file}`, import.meta.url));
const assets: Record<string, { body: Buffer; type: string }> = {
  '/': { body: page('index.html'), type: 'text/html; charset=utf-8' },
  '/app.js': { body: page('app.js'), type: 'text/javascript; charset=utf-8' },
  '/style.css': { body: page('style.css'), type: 'text/css; charset=utf-8' },
};

/** The page loads only its own files and talks only to this server. */
const securityHeaders = {
  'content-security-policy':
    "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; img-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'",
  'x-content-type-options': 'nosniff',
  'referrer-policy': 'no-referrer',
};

interface LiveClient {
  res: ServerResponse;
  skipped: number;
}

export interface OpsApp {
  app: FastifyInstance;
  metrics: Metrics;
  /** Takes the periodic sample and pushes it to live clients (the server's timer calls it). */
  tick(): void;
  liveClients(): number;
}

export function buildOpsApp(observer: Observer): OpsApp {
  const metrics = createMetrics(observer);
  // forceCloseConnections: close() must not wait for open live-update streams or keep-alive sockets.
  const app = Fastify({ logger: false, forceCloseConnections: true });
  const clients = new Set<LiveClient>();

  app.addHook('onSend', async (_req, reply) => {
    reply.headers(securityHeaders);
  });

  for (const [path, asset] of Object.entries(assets)) {
    app.get(path, async (_req, reply) =>
      reply.type(asset.type).header('cache-control', 'no-cache').send(asset.body),
    );
  }

  // Browsers ask for it on their own; there is none (204 rather than a 404 in the console).
  app.get('/favicon.ico', async (_req, reply) => reply.code(204).send());

  app.get('/api/status', async (_req, reply) =>
    reply.header('cache-control', 'no-store').send(observer.snapshot()),
  );

  app.get<{ Querystring: { limit?: string } }>('/api/dead-letters', async (req, reply) => {
    const limit = Number(req.query.limit ?? 100);
    if (!Number.isSafeInteger(limit) || limit < 1 || limit > deadLettersQueryMax)
      return reply.code(400).send({ error: `limit must be an integer from 1 to ${deadLettersQueryMax}` });
    return reply.header('cache-control', 'no-store').send({ deadLetters: observer.deadLetters(limit) });
  });

  app.get('/api/events', (req, reply) => {
    if (clients.size >= liveClientsMax) {
      return reply
        .code(503)
        .send({ error: `at most ${liveClientsMax} live clients; poll /api/status instead` });
    }
    reply.hijack();
    const res = reply.raw;
    res.writeHead(200, {
      ...securityHeaders,
      'content-type': 'text/event-stream; charset=utf-8',
      'cache-control': 'no-store',
      connection: 'keep-alive',
    });
    const client: LiveClient = { res, skipped: 0 };
    clients.add(client);
    req.raw.on('close', () => clients.delete(client));
    res.write(`retry: ${2 * sampleIntervalMs}\n`);
    push(client, JSON.stringify(observer.snapshot()));
  });

  app.get('/metrics', async (_req, reply) =>
    reply
      .type(metrics.contentType)
      .header('cache-control', 'no-store')
      .send(await metrics.scrape()),
  );

  const healthBody = () => {
    const h = observer.health();
    return { ...h, kind: observer.kind, name: observer.name, pid: process.pid };
  };
  app.get('/health', async (_req, reply) => {
    const body = healthBody();
    return reply
      .code(body.live ? 200 : 503)
      .header('cache-control', 'no-store')
      .send(body);
  });
  app.get('/ready', async (_req, reply) => {
    const body = healthBody();
    return reply
      .code(body.ready ? 200 : 503)
      .header('cache-control', 'no-store')
      .send(body);
  });

  app.addHook('onClose', async () => {
    for (const c of clients) c.res.end();
    clients.clear();
  });

  function push(client: LiveClient, json: string): void {
    if (client.res.writableLength > liveClientBufferBytesMax) {
      client.skipped++;
      return;
    }
    client.res.write(`event: snapshot\ndata: ${json}\n\n`);
  }

  return {
    app,
    metrics,
    tick() {
      const o = observer.sample();
      if (clients.size === 0) return;
      const json = JSON.stringify(observer.snapshot(o));
      for (const c of clients) push(c, json);
    },
    liveClients: () => clients.size,
  };
}

export interface OpsOptions {
  kind: 'gateway' | 'validator';
  /** How the page names this process: `<enterprise>/<gateway>` or the member id. */
  name: string;
  host: string;
  port: number;
  policy: HealthPolicy;
  dataDir: string | null;
  log: Logger;
}

export interface OpsServer {
  /** The page's address, e.g. http://127.0.0.1:8090/ (a wildcard bind is shown as loopback). */
  url: string;
  observer: Observer;
  close(): Promise<void>;
}

/** Builds the app, binds it (throws if the address is taken) and starts sampling. */
export async function startOps(options: OpsOptions): Promise<OpsServer> {
  const observer = new Observer({
    kind: options.kind,
    name: options.name,
    policy: options.policy,
    dataDir: options.dataDir,
  });
  const ops = buildOpsApp(observer);
  await ops.app.listen({ host: options.host, port: options.port });
  const address = ops.app.server.address();
  const port = typeof address === 'object' && address ? address.port : options.port;
  const timer = setInterval(() => {
    try {
      ops.tick();
    } catch (err) {
      options.log.warn('status sample failed', { err: (err as Error).message });
    }
  }, sampleIntervalMs);
  timer.unref();
  const url = pageUrl(options.host, port);
  options.log.info('status page, metrics and health', {
    url,
    metrics: `${url}metrics`,
    ready: `${url}ready`,
  });
  return {
    url,
    observer,
    async close() {
      clearInterval(timer);
      await ops.app.close();
    },
  };
}

/** http://host:port/ as a browser on this machine reaches it. */
export function pageUrl(host: string, port: number): string {
  const local = host === '0.0.0.0' || host === '::' || host === '' ? '127.0.0.1' : host;
  return `http://${local.includes(':') ? `[${local}]` : local}:${port}/`;
}
