/**
 * The validator's HTTP API for gateways that do not host a validator themselves (chain role
 * `client`), and for anyone submitting events straight to a validator. Built apart from `listen()`
 * (fastify's testing guide) so tests can `inject()` without a socket.
 *
 *   POST /v1/events            JSON array of signed events → one verdict per event
 *   GET  /v1/commits?after=H   final blocks above H (ids only); long-polls up to waitMs when none
 *   POST /v1/receipts          {"ids": [...]} → where each event is on chain, or null
 *   GET  /v1/status            the node's status
 *   GET  /health               200 while the node runs with a quorum of peers connected, else 503
 *
 * Submissions are validated like any other transaction: a forged, replayed or unknown-key event is
 * refused with its reason and counted in the node's status (`refusals`, `invalidTxs`).
 *
 * @example
 *   const api = buildValidatorApi({ node, txId, chain: localChainClient(node, txId) });
 *   await app.listen({ host: '127.0.0.1', port: 8181 });
 */
import Fastify, { type FastifyInstance } from 'fastify';
import type { ConsensusNode } from '../consensus/node.ts';
import { canonicalJson } from '../crypto/canonical.ts';
import { committedBlocksAfter } from '../edge/local-chain.ts';
import type { ChainClient, CommittedBlockInfo, SubmitVerdict } from '../edge/submitter-types.ts';

export interface ValidatorApiOptions {
  node: ConsensusNode;
  chain: ChainClient;
  /** The application's transaction id (the event id of a transaction's bytes). */
  txId: (tx: Uint8Array) => Uint8Array;
  /** Largest request body (a batch of events). */
  bodyBytesMax?: number;
}

/** Events per POST /v1/events, at most. */
export const submitEventsMax = 10_000;
/** Blocks per GET /v1/commits answer, at most. */
export const commitsPageMax = 256;
/** Longest a GET /v1/commits waits for a new block. */
export const commitsWaitMaxMs = 30_000;
/** Ids per POST /v1/receipts, at most. */
export const receiptIdsMax = 10_000;
/** Final blocks kept in memory for GET /v1/commits (older ones come from the store). */
const recentBlocksMax = 1_024;

export function buildValidatorApi(options: ValidatorApiOptions): FastifyInstance {
  const { node, chain } = options;
  // forceCloseConnections: close() must not wait for idle keep-alive connections of clients.
  const app = Fastify({
    bodyLimit: options.bodyBytesMax ?? 32 * 1024 * 1024,
    logger: false,
    forceCloseConnections: true,
  });

  // Recent final blocks, and long-poll waiters woken by each new one. Bounded both ways.
  const recent: CommittedBlockInfo[] = [];
  const waiters = new Set<() => void>();
  const unsubscribe = chain.subscribe(node.store.height, (b) => {
    recent.push(b);
    if (recent.length > recentBlocksMax) recent.shift();
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
    if (body.length > submitEventsMax) {
      return reply.code(413).send({ error: `at most ${submitEventsMax} events per request` });
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

  app.get<{ Querystring: { after?: string; limit?: string; waitMs?: string } }>(
    '/v1/commits',
    async (req, reply) => {
      const after = Number(req.query.after ?? 0);
      const limit = Math.min(Number(req.query.limit ?? commitsPageMax), commitsPageMax);
      const waitMs = Math.min(Number(req.query.waitMs ?? 0), commitsWaitMaxMs);
      if (!Number.isSafeInteger(after) || after < 0 || !(limit > 0) || !(waitMs >= 0)) {
        return reply.code(400).send({ error: 'after, limit and waitMs must be non-negative integers' });
      }
      if (node.store.height <= after && waitMs > 0) {
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
          : committedBlocksAfter(node, options.txId, after, limit);
      return { height: node.store.height, blocks };
    },
  );

  app.post('/v1/receipts', async (req, reply) => {
    const ids = (req.body as { ids?: unknown })?.ids;
    if (
      !Array.isArray(ids) ||
      ids.length > receiptIdsMax ||
      !ids.every((id) => typeof id === 'string' && /^[0-9a-f]{64}$/.test(id))
    ) {
      return reply
        .code(400)
        .send({ error: `expected {"ids": [...]} with at most ${receiptIdsMax} hex event ids` });
    }
    return { receipts: await chain.receipts(ids as string[]) };
  });

  app.get('/v1/status', async () => node.status());

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
