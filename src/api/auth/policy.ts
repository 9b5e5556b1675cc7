/**
 * The one authorisation policy of a member's API (docs/api.md has the same matrix as a table, and
 * test/api/policy-matrix.test.ts walks it route by route).
 *
 * Every route the API registers must have a rule in `routeAccess`, or the API refuses to build
 * (`installAccess` checks it when the app is ready): nothing is served by accident. A rule says which
 * credential roles may call the route, and whether the credential must be issued by this API's own
 * member (`own`) or by any member of the genesis (`any`, for what every member may verify: envelopes,
 * blocks, proofs, the tally). Finer checks that depend on the thing asked for (whose batch, which
 * order, which data class) are the pure functions below, called by the routes.
 *
 * A refusal names why without telling whether the thing exists: a customer asking for an order its
 * credential does not name gets `not_your_order` whether that order exists or not. Each refusal is
 * counted by code (`AccessCounters`, in GET /v1/metrics as `access`).
 *
 * @example
 *   installAccess(app, { member: 'acme', verify: { chainId, identityRoot } });
 *   app.get('/v1/x', async (req) => req.principal);   // throws at ready: /v1/x has no rule
 */
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import type { BatchHeader } from '../../event/batch.ts';
import type { DataClass } from '../../event/kinds.ts';
import {
  type CredentialCode,
  type CredentialRole,
  credentialCodes,
  type Principal,
  type VerifyOptions,
  verifyCredential,
} from './credentials.ts';

declare module 'fastify' {
  interface FastifyRequest {
    /** The verified caller (null on an anonymous route). */
    principal: Principal | null;
  }
}

/** `own`: issued by this API's member; `any`: by any member of the genesis. */
export type Issuer = 'own' | 'any';

export interface RouteRule {
  /** Served without a credential (it carries no data). */
  anonymous?: true;
  reader?: Issuer;
  customer?: 'own';
  gateway?: Issuer;
  /** What the route does, for docs/api.md. */
  what: string;
}

/**
 * The matrix: method and route (as registered) → who may call it. Resource checks in the routes
 * narrow it further (see `batchRefusal`, `bodyRefusal`, `orderRefusal`).
 */
export const routeAccess: Readonly<Record<string, RouteRule>> = Object.freeze({
  'GET /health': { anonymous: true, what: 'liveness and quorum (no data)' },
  // The customer's trace page (src/api/trace-page.ts): static files and the genesis, no private data.
  'GET /trace': { anonymous: true, what: "the customer's trace page" },
  'GET /trace/': { anonymous: true, what: "the customer's trace page" },
  'GET /trace/app.js': { anonymous: true, what: "the trace page's script" },
  'GET /trace/style.css': { anonymous: true, what: "the trace page's style" },
  'GET /trace/genesis.json': { anonymous: true, what: 'the genesis the page verifies against (public)' },
  'GET /trace/favicon.ico': { anonymous: true, what: 'no icon (204)' },
  'GET /trace/verifier.js': { anonymous: true, what: 'the proof verifier bundled for the browser' },
  'POST /v1/batches': {
    gateway: 'any',
    what: "submit a gateway's own signed batches (with bodies only at its own member's validator)",
  },
  'GET /v1/commits': { reader: 'any', gateway: 'any', what: 'final blocks (envelopes only)' },
  'POST /v1/receipts': { reader: 'any', gateway: 'any', what: 'where transactions are final' },
  'GET /v1/blocks/:height': { reader: 'any', gateway: 'any', what: 'a certified block (envelopes only)' },
  'GET /v1/proofs/:id': { reader: 'any', gateway: 'any', what: "a transaction's inclusion proof" },
  'POST /v1/config': {
    reader: 'any',
    what: "submit a configuration transaction (it carries its member's identity root's signature)",
  },
  'GET /v1/config/:member': { reader: 'any', gateway: 'any', what: "a member's gateway keys on the chain" },
  'GET /v1/status': { reader: 'own', what: "the node's status" },
  'GET /v1/metrics': { reader: 'own', what: "the node's counters" },
  'GET /v1/tally': { reader: 'any', what: 'output per member, kind and period, from envelopes' },
  'GET /v1/events/:id': { reader: 'own', customer: 'own', what: 'one event with its body' },
  'GET /v1/trace': { reader: 'own', customer: 'own', what: 'events of an order, lot or product' },
  'POST /v1/orders': { reader: 'own', what: 'register a customer order' },
  'GET /v1/orders/:id': { reader: 'own', customer: 'own', what: 'an order and its state' },
  'POST /v1/orders/:id/lots': { reader: 'own', what: 'bind a lot to an order' },
  'POST /v1/orders/:id/state': { reader: 'own', what: 'move an order to in_production or closed' },
} satisfies Record<string, RouteRule>);

/** Why an authenticated caller is refused (HTTP 403). Stable: documented in docs/api.md. */
export const refusalCodes = [
  'role_not_allowed',
  'other_member',
  'other_member_batch',
  'other_gateway',
  'not_your_order',
  'equipment_data',
  'other_member_body',
  // Bad input (400): counted with the refusals.
  'bad_query',
  'bad_order',
] as const;
export type RefusalCode = (typeof refusalCodes)[number];

export class AccessCounters {
  allowed = 0;
  readonly refused: Record<CredentialCode | RefusalCode, number> = Object.fromEntries(
    [...credentialCodes, ...refusalCodes].map((c) => [c, 0]),
  ) as Record<CredentialCode | RefusalCode, number>;
  snapshot() {
    return { allowed: this.allowed, refused: { ...this.refused } };
  }
}

export interface AccessOptions {
  /** This API's member. */
  member: string;
  verify: VerifyOptions;
  counters?: AccessCounters;
}

export interface Refusal {
  status: 400 | 401 | 403;
  code: CredentialCode | RefusalCode;
  message: string;
}

/** Sends a refusal and counts it. */
export function refuse(reply: FastifyReply, counters: AccessCounters, r: Refusal): FastifyReply {
  counters.refused[r.code] += 1;
  return reply.code(r.status).send({ error: r.message, code: r.code });
}

const bearer = /^Bearer ([^\s]+)$/i;

/** The route-level decision: who is calling, and may such a caller call this route at all. */
export async function routeDecision(
  rule: RouteRule,
  route: string,
  authorization: string | undefined,
  options: AccessOptions,
): Promise<{ principal: Principal | null } | Refusal> {
  if (rule.anonymous) return { principal: null };
  if (!authorization)
    return {
      status: 401,
      code: 'credential_missing',
      message: `${route} needs a credential: Authorization: Bearer <token> (masbc-edge credential issue)`,
    };
  const m = bearer.exec(authorization);
  if (!m)
    return { status: 401, code: 'credential_malformed', message: 'expected Authorization: Bearer <token>' };
  const verdict = await verifyCredential(m[1]!, options.verify);
  if (!verdict.ok) return { status: 401, code: verdict.code, message: verdict.message };
  const p = verdict.principal;
  const issuer = rule[p.role as CredentialRole];
  if (!issuer)
    return {
      status: 403,
      code: 'role_not_allowed',
      message: `a ${p.role} credential does not give access to ${route}`,
    };
  if (issuer === 'own' && p.member !== options.member)
    return {
      status: 403,
      code: 'other_member',
      message: `${route} at ${options.member} takes only credentials ${options.member} issued (this one is from ${p.member})`,
    };
  return { principal: p };
}

/** Installs the policy: every route is checked before its handler; a route without a rule fails the build. */
export function installAccess(app: FastifyInstance, options: AccessOptions): AccessCounters {
  const counters = options.counters ?? new AccessCounters();
  const unruled: string[] = [];
  app.decorateRequest('principal', null);
  app.addHook('onRoute', (r) => {
    for (const method of [r.method].flat()) {
      if (method === 'HEAD' || method === 'OPTIONS') continue;
      if (!routeAccess[`${method} ${r.url}`]) unruled.push(`${method} ${r.url}`);
    }
  });
  app.addHook('onReady', async () => {
    if (unruled.length > 0)
      throw new Error(`routes without an access rule (src/api/auth/policy.ts): ${unruled.join(', ')}`);
  });
  app.addHook('onRequest', async (req: FastifyRequest, reply: FastifyReply) => {
    const url = req.routeOptions.url;
    if (url === undefined) return; // no such route: fastify answers 404, for anyone alike
    const method = req.method === 'HEAD' ? 'GET' : req.method;
    const route = `${method} ${url}`;
    const rule = routeAccess[route];
    if (!rule)
      return refuse(reply, counters, {
        status: 403,
        code: 'role_not_allowed',
        message: `${route} has no access rule`,
      });
    const d = await routeDecision(rule, route, req.headers.authorization, options);
    if ('status' in d) return refuse(reply, counters, d);
    req.principal = d.principal;
    counters.allowed += 1;
  });
  return counters;
}

/** A gateway credential submits only its own member's batches, under its own gateway id. */
export function batchRefusal(
  p: Principal,
  header: Pick<BatchHeader, 'enterprise' | 'gateway'>,
): Refusal | null {
  if (p.role !== 'gateway')
    return { status: 403, code: 'role_not_allowed', message: 'only a gateway credential submits batches' };
  if (header.enterprise !== p.member)
    return {
      status: 403,
      code: 'other_member_batch',
      message: `a gateway of ${p.member} cannot submit a batch of ${header.enterprise}`,
    };
  if (header.gateway !== p.gateway)
    return {
      status: 403,
      code: 'other_gateway',
      message: `the credential is gateway ${p.gateway}'s; this batch is gateway ${header.gateway}'s`,
    };
  return null;
}

/**
 * May `p` read the body of an event of `owner` of class `dataClass` that belongs to `orders` (the
 * orders whose events it is, per docs/api.md "An order's events")? Readers of the owner read every
 * class; a customer reads process data of its own orders; nobody reads another member's bodies.
 */
export function bodyRefusal(
  p: Principal,
  self: string,
  owner: string,
  dataClass: DataClass,
  orders: readonly string[],
): Refusal | null {
  if (p.member !== self || owner !== self)
    return { status: 403, code: 'other_member_body', message: `bodies of ${owner} are ${owner}'s alone` };
  if (p.role === 'reader') return null;
  if (p.role === 'customer') {
    if (dataClass !== 'process')
      return { status: 403, code: 'equipment_data', message: 'a customer reads process data only' };
    if (!orders.some((o) => p.orders.includes(o)))
      return { status: 403, code: 'not_your_order', message: 'your credential does not cover this event' };
    return null;
  }
  return { status: 403, code: 'role_not_allowed', message: `a ${p.role} credential reads no bodies` };
}

/** May `p` follow order `order`? Same answer whether the order exists or not. */
export function orderRefusal(p: Principal, order: string): Refusal | null {
  if (p.role === 'reader') return null;
  if (p.role === 'customer' && p.orders.includes(order)) return null;
  return {
    status: 403,
    code: 'not_your_order',
    message: `your credential does not cover order ${JSON.stringify(order.slice(0, 128))}`,
  };
}
