/**
 * A validator's HTTP API: how gateways that do not host a validator (chain role `client`) submit
 * events and learn which are final, and how operators, tests and benchmarks read a validator. The
 * one API every validator serves, `masbc-edge peer` and a gateway's embedded validator alike. Built
 * apart from `listen()` (fastify's testing guide) so tests can `inject()` without a socket.
 *
 *   POST /v1/events            JSON array of signed events → {"verdicts":[{accepted, reason?, detail?}]}
 *   POST /v1/txs               NDJSON (application/x-ndjson), one transaction's exact bytes per line →
 *                              {"results":[{"accepted":true,"id":hex} | {"accepted":false,"reason","detail"}]}
 *   GET  /v1/commits?after=H   final blocks above H: {"height","blocks":[{height, blockHash, txIds, timestampMs}]};
 *        &limit=N&waitMs=W     long-polls up to W ms when there is none yet (what http-chain.ts follows)
 *   POST /v1/receipts          {"ids": [...]} → {"receipts":[{height, blockHash, index} | null]}
 *   GET  /v1/blocks/<height>   the certified block in its JSON form (wire/json.ts certifiedBlockFromJson)
 *   GET  /v1/proofs/<tx id>    inclusion proof (inclusionProofToJson; check with verifyInclusionProof)
 *   GET  /v1/status            ConsensusNode.status()
 *   GET  /v1/metrics           ConsensusNode.metrics() (with the ledger's counters)
 *   GET  /health               200 while the node runs with a quorum of peers connected, else 503
 *
 * `/v1/events` takes JSON values and submits their canonical JSON (a client holding parsed events);
 * `/v1/txs` submits bytes as sent, which the ledger refuses unless they are an event's canonical
 * bytes (what an outbox stores), and costs the validator no parse or re-encoding. Either way a
 * forged, replayed or unknown-key event is refused with its reason and counted in the node's status
 * (`refusals`, `invalidTxs`).
 *
 * No authentication: bind it to loopback or a trusted interface. Bounds (`ValidatorApiLimits`): a
 * body above `bodyBytesMax` is refused (413); more than `submitEventsMax` events or lines per request
 * (413); pages of at most `commitsPageMax` blocks; at most `commitWaitersMax` long-polls wait at once,
 * beyond that 503 (the client retries with backoff: each waiter holds a socket); `recentBlocksMax`
 * final blocks kept in memory for `/v1/commits`, older ones read from the store.
 *
 * @example
 *   const api = buildValidatorApi({ node });             // or { node, chain } to share a client
 *   const url = await api.listen({ host: '127.0.0.1', port: 8181 });
 */
import Fastify, { type FastifyError, type FastifyInstance } from 'fastify';
import { inclusionProofToJson } from '../consensus/runtime/block-store.ts';
import type { ChainClient, CommittedBlockInfo, SubmitVerdict } from '../consensus/runtime/client.ts';
import { committedBlocksAfter, localChainClient } from '../consensus/runtime/client.ts';
import { type ConsensusNode, NodeNotRunningError } from '../consensus/runtime/node.ts';
import { certifiedBlockToJson } from '../consensus/wire/json.ts';
import { canonicalJson } from '../crypto/canonical.ts';
import { fromHex, toHex } from '../crypto/hash.ts';

export interface ValidatorApiLimits {
  /** Largest request body (a batch of events), bytes. */
  bodyBytesMax: number;
  /** Events per POST /v1/events, or lines per POST /v1/txs. */
  submitEventsMax: number;
  /** Blocks per GET /v1/commits answer. */
  commitsPageMax: number;
  /** Longest a GET /v1/commits waits for a new block. */
  commitsWaitMaxMs: number;
  /** GET /v1/commits requests waiting at once; beyond, 503. */
  commitWaitersMax: number;
  /** Ids per POST /v1/receipts. */
  receiptIdsMax: number;
  /** Final blocks kept in memory for GET /v1/commits (older ones come from the store). */
  recentBlocksMax: number;
}

/** Events per POST /v1/events (or lines per POST /v1/txs), at most: the node's `submitTxsMax`. */
export const submitEventsMax = 10_000;
/** Blocks per GET /v1/commits answer, at most. */
export const commitsPageMax = 256;
/** Longest a GET /v1/commits waits for a new block. */
export const commitsWaitMaxMs = 30_000;
/** Ids per POST /v1/receipts, at most. */
export const receiptIdsMax = 10_000;

export const defaultValidatorApiLimits: Readonly<ValidatorApiLimits> = Object.freeze({
  bodyBytesMax: 32 * 1024 * 1024,
  submitEventsMax,
  commitsPageMax,
  commitsWaitMaxMs,
  commitWaitersMax: 1_024,
  receiptIdsMax,
  recentBlocksMax: 1_024,
});

export interface ValidatorApiOptions {
  node: ConsensusNode;
  /**
   * How /v1/events, /v1/commits and /v1/receipts reach the chain: default `localChainClient(node)`.
   * A gateway hosting the validator passes the client its submitter uses.
   */
  chain?: ChainClient;
  limits?: Partial<ValidatorApiLimits>;
}

const newline = 0x0a;
const hexId = /^[0-9a-f]{64}$/;

export function buildValidatorApi(options: ValidatorApiOptions): FastifyInstance {
  const { node } = options;
  const chain = options.chain ?? localChainClient(node);
  const limits = { ...defaultValidatorApiLimits, ...options.limits };
  for (const [k, v] of Object.entries(limits)) {
    if (!Number.isSafeInteger(v) || v < 1) throw new RangeError(`${k} must be a positive integer`);
  }
  // forceCloseConnections: close() must not wait for idle keep-alive connections of clients.
  const app = Fastify({ bodyLimit: limits.bodyBytesMax, logger: false, forceCloseConnections: true });
  app.addContentTypeParser('application/x-ndjson', { parseAs: 'buffer' }, (_req, body, done) =>
    done(null, body),
  );
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
    unsubscribe();
    for (const w of [...waiters]) w();
  });

  app.post('/v1/events', async (req, reply) => {
    const body = req.body;
    if (!Array.isArray(body))
      return reply.code(400).send({ error: 'expected a JSON array of signed events' });
    if (body.length > limits.submitEventsMax) {
      return reply.code(413).send({ error: `at most ${limits.submitEventsMax} events per request` });
    }
    const verdicts: (SubmitVerdict | null)[] = [];
    const txs: string[] = [];
    const slots: number[] = [];
    body.forEach((e, i) => {
      try {
        txs.push(canonicalJson(e));
        slots.push(i);
        verdicts.push(null);
      } catch (err) {
        verdicts.push({ accepted: false, reason: 'invalid', detail: `malformed: ${(err as Error).message}` });
      }
    });
    const results = await chain.submit(txs);
    results.forEach((r, j) => {
      verdicts[slots[j]!] = r;
    });
    return { verdicts };
  });

  app.post('/v1/txs', async (req, reply) => {
    if (!Buffer.isBuffer(req.body)) {
      return reply.code(415).send({ error: 'expected application/x-ndjson: one transaction per line' });
    }
    const txs = splitLines(req.body);
    if (txs.length > limits.submitEventsMax) {
      return reply.code(413).send({ error: `at most ${limits.submitEventsMax} transactions per request` });
    }
    let submitted: ReturnType<ConsensusNode['submit']>;
    try {
      submitted = node.submit(txs);
    } catch (err) {
      if (err instanceof RangeError) return reply.code(413).send({ error: err.message });
      throw err;
    }
    const results = submitted.map((r) =>
      r.accepted
        ? { accepted: true, id: toHex(r.id) }
        : { accepted: false, reason: r.reason, detail: r.detail },
    );
    return { results };
  });

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
        if (waiters.size >= limits.commitWaitersMax) {
          return reply.code(503).send({ error: `more than ${limits.commitWaitersMax} requests waiting` });
        }
        await new Promise<void>((resolve) => {
          const done = () => {
            clearTimeout(timer);
            waiters.delete(done);
            resolve();
          };
          const timer = setTimeout(done, waitMs);
          waiters.add(done);
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

  app.post('/v1/receipts', async (req, reply) => {
    const ids = (req.body as { ids?: unknown })?.ids;
    if (
      !Array.isArray(ids) ||
      ids.length > limits.receiptIdsMax ||
      !ids.every((id) => typeof id === 'string' && hexId.test(id))
    ) {
      return reply
        .code(400)
        .send({ error: `expected {"ids": [...]} with at most ${limits.receiptIdsMax} hex event ids` });
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

  app.get('/v1/status', async () => node.status());

  app.get('/v1/metrics', async () => node.metrics());

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

/** Non-empty lines as separate byte arrays (copies: the core keeps transactions). A CR before LF is dropped. */
function splitLines(body: Buffer): Uint8Array[] {
  const out: Uint8Array[] = [];
  let start = 0;
  while (start < body.byteLength) {
    let end = body.indexOf(newline, start);
    const next = end < 0 ? body.byteLength : end + 1;
    if (end < 0) end = body.byteLength;
    if (end > start && body[end - 1] === 0x0d) end--;
    if (end > start) out.push(new Uint8Array(body.subarray(start, end)));
    start = next;
  }
  return out;
}
