/**
 * The operator's server for the two kinds of process, from what each is configured with: a gateway
 * from gateway.yaml (`ops:` address, `health:` policy), a validator (`masbc-edge peer`) from its
 * command line with the default policy. Both bind before the gateway or validator starts, so a port
 * in use is reported before anything runs.
 *
 * @example
 *   const ops = await startGatewayOps(config, log);           // null when ops.enabled is false
 *   const gateway = await Gateway.start(config, { log, ...ops?.observer.gatewayHooks });
 *   ops?.observer.attachGateway(gateway);
 */
import type { LoadedConfig } from '../gateway/config/config.ts';
import { type HealthPolicy, healthSchema } from '../gateway/config/gateway-schema.ts';
import type { Logger } from '../log/logger.ts';
import { type OpsServer, startOps } from './server.ts';

export async function startGatewayOps(config: LoadedConfig, log: Logger): Promise<OpsServer | null> {
  const ops = config.gateway.ops;
  if (!ops.enabled) return null;
  const g = config.gateway.gateway;
  return startOps({
    kind: 'gateway',
    name: `${g.enterprise}/${g.id}`,
    host: ops.host,
    port: ops.port,
    policy: config.gateway.health,
    dataDir: config.paths.dataDir,
    log,
  });
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
