/**
 * A validator's HTTP API: how gateways that do not host a validator (chain role `client`) submit
 * signed batches with their bodies and learn which are final, and how operators, tests and
 * benchmarks read a validator. The one API every validator serves, `masbc-edge peer` and a gateway's
 * embedded validator alike. Built apart from `listen()` (fastify's testing guide) so tests can
 * `inject()` without a socket.
 *
 *   POST /v1/batches           application/octet-stream: signed batches with their events' bodies
 *                              (runtime/client.ts `encodeSubmission`) → {"verdicts":[{accepted,
 *                              reason?, detail?, bodiesKept}]}. Bodies go to this member's body store
 *                              only (another member's are refused); a batch is submitted to the chain
 *                              only once its bodies are kept. A batch sent with no bodies is submitted
 *                              as it is (its gateway keeps the bodies until its member has them).
 *   GET  /v1/commits?after=H   final blocks above H: {"height","blocks":[{height, blockHash, txIds,
 *        &limit=N&waitMs=W     timestampMs, header, certificate}]}; long-polls up to W ms when there is
 *                              none yet (what http-chain.ts follows and checks against the genesis)
 *   POST /v1/receipts          {"ids": [tx ids]} → {"receipts":[{height, blockHash, index} | null]}
 *   GET  /v1/blocks/<height>   the certified block in its JSON form (wire/json.ts; envelopes only)
 *   GET  /v1/proofs/<tx id>    inclusion proof (inclusionProofToJson; check with verifyInclusionProof)
 *   GET  /v1/status            ConsensusNode.status()
 *   GET  /v1/metrics           ConsensusNode.metrics() (with the ledger's counters and the body store's)
 *   GET  /health               200 while the node runs with a quorum of peers connected, else 503
 *
 * A forged, replayed or unknown-key batch is refused with its reason and counted in the node's
 * status (`refusals`, `invalidTxs`).
 *
 * Every route but /health needs a credential and is authorised by the one policy
 * (src/api/auth/policy.ts; docs/api.md has the matrix); the read side (events, trace, orders, tally)
 * is registered by src/api/routes/. With `tls` it serves HTTPS; src/api/auth/binding.ts refuses a
 * non-loopback address without it. Bounds (`ValidatorApiLimits`, all in limits.ts, enforced with
 * admission.ts; docs/security.md): a body limit per route (413), /v1/batches binary only (415 before
 * its body is read); at most `submitBatchesMax` batches per request (413); pages of at most
 * `commitsPageMax` blocks; long-polls, submissions, requests and connections bounded per address
 * (429) and in all (503); the checks of submitted batches within a share of the event loop; request,
 * header and idle timeouts; `recentBlocksMax` final blocks kept in memory for `/v1/commits`, older
 * ones read from the store.
 *
 * @example
 *   const api = buildValidatorApi({ node, chain: localChainClient(node, bodies), bodies });
 *   const url = await api.listen({ host: '127.0.0.1', port: 8181 });
 */
import Fastify, {
  type FastifyError,
  type FastifyInstance,
  type FastifyReply,
  type FastifyRequest,
} from 'fastify';
import { decodeTx } from '../consensus/app/tx.ts';
import { inclusionProofToJson } from '../consensus/runtime/block-store.ts';
import {
  type ChainClient,
  type CommittedBlockInfo,
  committedBlocksAfter,
} from '../consensus/runtime/client.ts';
import { type ConsensusNode, NodeNotRunningError } from '../consensus/runtime/node.ts';
import { certifiedBlockToJson } from '../consensus/wire/json.ts';
import { fromHex } from '../crypto/hash.ts';
import type { BodyStore } from '../store/bodies.ts';
import { ClientGate, clientKey, submitInPieces } from './admission.ts';
import { type AccessCounters, batchRefusal, installAccess, refuse } from './auth/policy.ts';
import { type ConfigRoutesOptions, registerConfigRoutes } from './config-routes.ts';
import { parseBoundedJson } from './json.ts';
import { apiLimits, type ValidatorApiLimits } from './limits.ts';
import { type AccessSettings, accessOptionsOf, registerReadRoutes } from './routes/index.ts';

export type { ValidatorApiLimits } from './limits.ts';
export { commitsPageMax, commitsWaitMaxMs, defaultValidatorApiLimits, receiptIdsMax } from './limits.ts';

export interface ValidatorApiOptions {
  node: ConsensusNode;
  /** How /v1/batches, /v1/commits and /v1/receipts reach the chain: `localChainClient(node, bodies)`. */
  chain: ChainClient;
  /** The member's body store (its counters are in /v1/metrics). */
  bodies: BodyStore;
  limits?: Partial<ValidatorApiLimits>;
  /** Identities, revocations, orders (src/api/routes/index.ts); default: the genesis's identity roots only. */
  access?: AccessSettings;
  /** PEM certificate and key: serve HTTPS. */
  tls?: { cert: Buffer | string; key: Buffer | string };
  /** The committed gateway key registry, for GET /v1/config/<member> (config-routes.ts). */
  registry?: ConfigRoutesOptions['registry'];
}

const hexId = /^[0-9a-f]{64}$/;

/** Refuses a body that is not application/octet-stream before it is read (415). */
async function octetStreamOnly(req: FastifyRequest, reply: FastifyReply): Promise<FastifyReply | undefined> {
  const type = (req.headers['content-type'] ?? '').split(';')[0]!.trim().toLowerCase();
  if (type !== 'application/octet-stream')
    return reply.code(415).send({ error: 'expected application/octet-stream (encodeSubmission)' });
}

export function buildValidatorApi(options: ValidatorApiOptions): FastifyInstance {
  const { node, chain, bodies } = options;
  const limits = apiLimits(options.limits);
  // forceCloseConnections: close() must not wait for idle keep-alive connections of clients.
  // Bodies: each route's own limit (limits.ts); the default is the small one of the other routes.
  const app = Fastify({
    bodyLimit: limits.otherBodyBytesMax,
    logger: false,
    forceCloseConnections: true,
    requestTimeout: limits.requestTimeoutMs,
    connectionTimeout: limits.connectionTimeoutMs,
    keepAliveTimeout: limits.keepAliveTimeoutMs,
    ...(options.tls ? { https: options.tls } : {}),
  }) as unknown as FastifyInstance;
  const gate = new ClientGate(limits);
  gate.attach(app);
  const access = accessOptionsOf(node, bodies, options.access);
  const counters: AccessCounters = installAccess(app, access);
  app.addContentTypeParser('application/octet-stream', { parseAs: 'buffer' }, (_req, body, done) =>
    done(null, body),
  );
  // JSON within a bound on its shape, checked before anything is built (json.ts).
  app.removeContentTypeParser('application/json');
  app.addContentTypeParser('application/json', { parseAs: 'string' }, (_req, body, done) => {
    try {
      done(null, parseBoundedJson(body as string, limits));
    } catch (err) {
      done(err as Error, undefined);
    }
  });
  app.setErrorHandler((err: FastifyError, _req, reply) => {
    if (err instanceof NodeNotRunningError) return reply.code(503).send({ error: err.message });
    const status = err.statusCode && err.statusCode >= 400 ? err.statusCode : 500;
    return reply.code(status).send({ error: err.message, ...(err.code ? { code: err.code } : {}) });
  });

  // Recent final blocks, and long-poll waiters woken by each new one. Bounded both ways.
  const recent: CommittedBlockInfo[] = [];
  const waiters = new Set<() => void>();
  const unsubscribe = chain.subscribe(node.store.height, (b) => {
    recent.push(b);
    if (recent.length > limits.recentBlocksMax) recent.shift();
    for (const w of [...waiters]) w();
  });
  app.addHook('onClose', async () => {
    gate.stop();
    unsubscribe();
    for (const w of [...waiters]) w();
  });

  // Binary only, refused before its body is read otherwise (no JSON parse of a large body); a slot
  // per address and in all is taken first, and the checks run within the work budget (admission.ts).
  // The policy screens every batch (a gateway submits its own member's batches, under its own id).
  app.post(
    '/v1/batches',
    { bodyLimit: limits.bodyBytesMax, onRequest: [octetStreamOnly, gate.submitSlot] },
    async (req, reply) => {
      if (!Buffer.isBuffer(req.body))
        return reply.code(415).send({ error: 'expected application/octet-stream (encodeSubmission)' });
      const answer = await submitInPieces(
        gate.budget,
        chain,
        req.body,
        limits,
        clientKey(req.socket.remoteAddress),
        (b) => {
          const d = decodeTx(b.tx); // memoised: the chain's own check reuses it
          return d.ok ? batchRefusal(req.principal!, d.batch.header) : null;
        },
      );
      if ('refused' in answer) return refuse(reply, counters, answer.refused);
      return 'verdicts' in answer ? answer : reply.code(answer.status).send({ error: answer.error });
    },
  );

  app.get<{ Querystring: { after?: string; limit?: string; waitMs?: string } }>(
    '/v1/commits',
    async (req, reply) => {
      const after = Number(req.query.after ?? 0);
      const limit = Math.min(Number(req.query.limit ?? limits.commitsPageMax), limits.commitsPageMax);
      const waitMs = Math.min(Number(req.query.waitMs ?? 0), limits.commitsWaitMaxMs);
      if (!Number.isSafeInteger(after) || after < 0 || !(limit > 0) || !(waitMs >= 0)) {
        return reply.code(400).send({ error: 'after, limit and waitMs must be non-negative integers' });
      }
      if (node.store.height <= after && waitMs > 0) {
        // Bounded per address and in all (admission.ts); ends early if the client hangs up.
        const release = gate.waiter(req);
        await new Promise<void>((resolve) => {
          const done = () => {
            clearTimeout(timer);
            waiters.delete(done);
            req.raw.off('close', done);
            release();
            resolve();
          };
          const timer = setTimeout(done, waitMs);
          waiters.add(done);
          req.raw.once('close', done);
        });
      }
      const first = recent[0];
      const blocks =
        first && first.height <= after + 1
          ? recent.filter((b) => b.height > after).slice(0, limit)
          : committedBlocksAfter(node, after, limit);
      return { height: node.store.height, blocks };
    },
  );

  app.post('/v1/receipts', { bodyLimit: limits.jsonBodyBytesMax }, async (req, reply) => {
    const ids = (req.body as { ids?: unknown })?.ids;
    if (
      !Array.isArray(ids) ||
      ids.length > limits.receiptIdsMax ||
      !ids.every((id) => typeof id === 'string' && hexId.test(id))
    ) {
      return reply
        .code(400)
        .send({ error: `expected {"ids": [...]} with at most ${limits.receiptIdsMax} hex transaction ids` });
    }
    return { receipts: await chain.receipts(ids as string[]) };
  });

  app.get<{ Params: { height: string } }>('/v1/blocks/:height', async (req, reply) => {
    if (!/^[1-9]\d{0,14}$/.test(req.params.height)) {
      return reply.code(400).send({ error: 'height must be a positive integer' });
    }
    const cb = node.store.blockAt(Number(req.params.height));
    return cb ? certifiedBlockToJson(cb) : reply.code(404).send({ error: 'no such block' });
  });

  app.get<{ Params: { id: string } }>('/v1/proofs/:id', async (req, reply) => {
    if (!hexId.test(req.params.id)) return reply.code(400).send({ error: 'expected a hex transaction id' });
    const proof = node.store.inclusionProof(fromHex(req.params.id));
    return proof ? inclusionProofToJson(proof) : reply.code(404).send({ error: 'not committed' });
  });

  registerConfigRoutes(app, { node, registry: options.registry }); // POST /v1/config, GET /v1/config/<member>

  app.get('/v1/status', async () => node.status());

  app.get('/v1/metrics', async () => ({
    ...node.metrics(),
    bodies: bodies.stats(),
    api: gate.metrics(),
    access: counters.snapshot(),
  }));

  registerReadRoutes(app, {
    node,
    bodies,
    chain,
    access,
    counters,
    settings: options.access,
    waiter: (req) => gate.waiter(req),
  });

  app.get('/health', async (_req, reply) => {
    const s = node.status();
    const quorumPeers = node.genesis.quorum - 1;
    const ok = s.state === 'running' && s.peersConnected >= quorumPeers && s.problem === null;
    return reply.code(ok ? 200 : 503).send({
      ok,
      state: s.state,
      peersConnected: s.peersConnected,
      committedHeight: s.committedHeight,
      problem: s.problem,
    });
  });

  return app;
}
