/**
 * The validator API's configuration routes (docs/ledger.md, "Configuration transactions"): how a
 * member's operator (`masbc-edge gateway register|revoke`) submits a configuration transaction its
 * identity root signed, and reads its gateways' keys and its configuration sequence.
 *
 *   POST /v1/config            application/octet-stream: one configuration transaction
 *                              (src/consensus/app/config-tx.ts) → 202 {"id"} when pooled (or
 *                              pending already); else 4xx {"error", "code"} with the ledger's stable
 *                              code (config_bad_signature, config_replay, config_key_taken, …)
 *   GET  /v1/config/<member>   {"member","height","sequence","keys":[{gateway, keyId, alg, since,
 *                              revokedAt}]}: the committed registry, for the next `seq` to sign
 *
 * The transaction authenticates itself (the member's identity root signs it and every validator
 * checks that), so the route adds no trust; who may reach it is the API's policy.
 */
import type { FastifyInstance } from 'fastify';
import { isConfigTx } from '../consensus/app/config-tx.ts';
import { refusalCode } from '../consensus/app/ledger.ts';
import type { GatewayRegistry } from '../consensus/app/registry.ts';
import type { ConsensusNode } from '../consensus/runtime/node.ts';
import { toHex } from '../crypto/hash.ts';

export interface ConfigRoutesOptions {
  node: ConsensusNode;
  /** The ledger's committed registry (`openLedger(…).ledger.registry`); without it GET answers 503. */
  registry?: Pick<GatewayRegistry, 'sequence' | 'keysOf'> | undefined;
}

const memberPattern = /^[a-z0-9][a-z0-9._-]{0,62}$/;

export function registerConfigRoutes(app: FastifyInstance, o: ConfigRoutesOptions): void {
  app.post('/v1/config', async (req, reply) => {
    const body = req.body;
    if (!Buffer.isBuffer(body) || !isConfigTx(body))
      return reply.code(400).send({
        error: 'expected one configuration transaction as application/octet-stream',
        code: 'config_malformed',
      });
    const [r] = o.node.submit([new Uint8Array(body)]);
    if (!r) throw new Error('bug: no verdict');
    if (r.accepted) return reply.code(202).send({ id: toHex(r.id) });
    if (r.reason === 'duplicate') return reply.code(202).send({ pending: true });
    if (r.reason === 'committed')
      return reply
        .code(409)
        .send({ error: 'this configuration transaction is on the chain already', code: 'config_replay' });
    const code = refusalCode(r);
    const status = r.reason === 'mempool-full' ? 503 : code === 'config_replay' ? 409 : 422;
    return reply.code(status).send({ error: r.detail, code });
  });

  app.get<{ Params: { member: string } }>('/v1/config/:member', async (req, reply) => {
    const member = req.params.member;
    if (!memberPattern.test(member)) return reply.code(400).send({ error: 'not a member id' });
    if (!o.registry) return reply.code(503).send({ error: 'this validator does not serve its registry' });
    return {
      member,
      height: o.node.store.height,
      sequence: o.registry.sequence(member),
      keys: o.registry.keysOf(member).map((k) => ({
        gateway: k.gateway,
        keyId: k.keyId,
        alg: k.alg,
        since: k.since,
        revokedAt: k.revokedAt,
      })),
    };
  });
}
