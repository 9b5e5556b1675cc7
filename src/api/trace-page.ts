/**
 * The customer's trace page, served by the member's API (docs/trace.md):
 *
 *   GET /trace               the page (plain HTML, CSS and JavaScript from src/api/trace-page/)
 *   GET /trace/app.js        the page's script
 *   GET /trace/style.css
 *   GET /trace/verifier.js   the proof verifier (src/api/proof/verify.ts) bundled for the browser by
 *                            esbuild on the first request, then kept (browser-build.ts)
 *   GET /trace/genesis.json  the genesis document the page verifies against (its hash is shown)
 *
 * The page reads `GET /v1/trace?order=…` with the customer's credential (the trace API's, registered
 * elsewhere) and checks every event's proofs in the browser. A fastify plugin, encapsulated: its
 * strict Content-Security-Policy (the page loads only its own files and talks only to this origin)
 * applies to these routes only. No route here reads private data: the credential never reaches them.
 *
 * @example
 *   app.register(tracePage, { genesis: node.genesis.document });
 */
import { readFileSync } from 'node:fs';
import type { FastifyInstance } from 'fastify';
import { browserVerifierBundle } from './proof/browser-build.ts';
import type { GenesisDocumentLike } from './proof/verify.ts';

export interface TracePageOptions {
  /** The alliance's genesis document, as loaded (defaults applied): what bundles are verified against. */
  genesis: GenesisDocumentLike;
}

const file = (name: string) => readFileSync(new URL(`./trace-page/${name}`, import.meta.url));

/** The page loads only its own files and talks only to this server; nothing may frame it. */
export const tracePageSecurityHeaders = Object.freeze({
  'content-security-policy':
    "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; img-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'",
  'x-content-type-options': 'nosniff',
  'referrer-policy': 'no-referrer',
});

export async function tracePage(app: FastifyInstance, options: TracePageOptions): Promise<void> {
  const assets: Record<string, { body: Buffer | string; type: string }> = {
    '/trace': { body: file('index.html'), type: 'text/html; charset=utf-8' },
    '/trace/': { body: file('index.html'), type: 'text/html; charset=utf-8' },
    '/trace/app.js': { body: file('app.js'), type: 'text/javascript; charset=utf-8' },
    '/trace/style.css': { body: file('style.css'), type: 'text/css; charset=utf-8' },
    '/trace/genesis.json': { body: JSON.stringify(options.genesis), type: 'application/json; charset=utf-8' },
  };
  app.addHook('onSend', async (_req, reply) => {
    reply.headers(tracePageSecurityHeaders);
  });
  for (const [path, asset] of Object.entries(assets)) {
    app.get(path, async (_req, reply) =>
      reply.type(asset.type).header('cache-control', 'no-cache').send(asset.body),
    );
  }
  // The page names its own icon (there is none): a 204 rather than a 404 in the console.
  app.get('/trace/favicon.ico', async (_req, reply) => reply.code(204).send());
  app.get('/trace/verifier.js', async (_req, reply) =>
    reply
      .type('text/javascript; charset=utf-8')
      .header('cache-control', 'no-cache')
      .send(await browserVerifierBundle()),
  );
}
