/**
 * The operator's server for the two kinds of process, from what each is configured with: a gateway
 * from gateway.yaml (`ops:` address, `health:` policy), a validator (`masbc-edge peer`) from its
 * command line with the default policy. Both bind before the gateway or validator starts.
 *
 * A gateway whose ops address cannot be bound (a port in use) still acquires: collecting the
 * plant's data matters more than its status page. The failure is logged as an error and returned,
 * and `masbc-edge health` then reports the gateway unhealthy (no answer, or another process
 * answering), so monitoring notices. A validator's server (`peer --ops-port`, default any free
 * port) must bind, or the peer does not start.
 *
 * @example
 *   const { server: ops } = await startGatewayOps(config, log);  // null when ops.enabled is false
 *   const gateway = await Gateway.start(config, { log, ...ops?.observer.gatewayHooks });
 *   ops?.observer.attachGateway(gateway);
 */
import type { LoadedConfig } from '../gateway/config/config.ts';
import { type HealthPolicy, healthSchema } from '../gateway/config/gateway-schema.ts';
import type { Logger } from '../log/logger.ts';
import { type OpsServer, startOps } from './server.ts';

export async function startGatewayOps(
  config: LoadedConfig,
  log: Logger,
): Promise<{ server: OpsServer | null; problem: string | null }> {
  const ops = config.gateway.ops;
  if (!ops.enabled) return { server: null, problem: null };
  const g = config.gateway.gateway;
  try {
    const server = await startOps({
      kind: 'gateway',
      name: `${g.enterprise}/${g.id}`,
      host: ops.host,
      port: ops.port,
      policy: config.gateway.health,
      dataDir: config.paths.dataDir,
      log,
    });
    return { server, problem: null };
  } catch (err) {
    const problem = `status page, /metrics and /health not served: cannot listen on ${ops.host}:${ops.port} (${(err as Error).message}); set ops.port, or ops.enabled: false`;
    log.error(problem);
    return { server: null, problem };
  }
}

/** The health policy's defaults (what a validator without a gateway.yaml uses). */
export function defaultHealthPolicy(): HealthPolicy {
  return healthSchema.parse({});
}

export async function startValidatorOps(o: {
  name: string;
  host: string;
  port: number;
  dataDir: string;
  log: Logger;
}): Promise<OpsServer> {
  return startOps({ kind: 'validator', policy: defaultHealthPolicy(), ...o });
}
