/**
 * The member's read side and orders, registered on the validator API (validator-api.ts calls
 * `registerReadRoutes`): events and traces (trace.ts), orders (orders.ts), the tally (tally.ts).
 * Each route's access rule is in src/api/auth/policy.ts.
 */
import type { FastifyInstance } from 'fastify';
import type { ChainClient } from '../../consensus/runtime/client.ts';
import type { ConsensusNode } from '../../consensus/runtime/node.ts';
import type { PublicKeyRecord } from '../../crypto/keys.ts';
import type { BodyStore } from '../../store/bodies.ts';
import type { AccessCounters, AccessOptions } from '../auth/policy.ts';
import type { RevocationList } from '../auth/revocations.ts';
import { tracePage } from '../trace-page.ts';
import { type Office, registerOrders } from './orders.ts';
import { registerTally } from './tally.ts';
import { registerTrace, type TraceDeps } from './trace.ts';

export interface AccessSettings {
  /** A member's identity root; default: the genesis's (`genesis.identityRoot`). */
  identityRoot?: ((member: string) => PublicKeyRecord | undefined) | undefined;
  /** This member's revoked credentials (its data folder's list). */
  revocations?: RevocationList | undefined;
  /** Where refusals are counted (default: a new set, in GET /v1/metrics as `access`). */
  counters?: AccessCounters | undefined;
  /** The member's office signer: orders and lot bindings. Without it, the order routes answer 503. */
  office?: Office | undefined;
}

export function accessOptionsOf(
  node: ConsensusNode,
  bodies: BodyStore,
  settings: AccessSettings | undefined,
): AccessOptions {
  const member = bodies.member;
  const genesis = node.genesis;
  const identityRoot = settings?.identityRoot ?? ((m: string) => genesis.identityRoot(m));
  const revocations = settings?.revocations;
  return {
    member,
    ...(settings?.counters ? { counters: settings.counters } : {}),
    verify: {
      chainId: genesis.chainId,
      identityRoot,
      isRevoked: (m, jti) => m === member && (revocations?.has(jti) ?? false),
    },
  };
}

export interface ReadRouteDeps {
  node: ConsensusNode;
  bodies: BodyStore;
  chain: ChainClient;
  access: AccessOptions;
  counters: AccessCounters;
  settings: AccessSettings | undefined;
  /** The API's long-poll slots (TraceDeps.waiter). */
  waiter?: TraceDeps['waiter'];
}

export function registerReadRoutes(app: FastifyInstance, deps: ReadRouteDeps): void {
  const { node, bodies, counters } = deps;
  const member = deps.access.member;
  registerTrace(app, { node, bodies, counters, member, waiter: deps.waiter });
  registerOrders(app, { bodies, counters, office: deps.settings?.office });
  registerTally(app, node, counters);
  app.register(tracePage, { genesis: node.genesis.document });
}
