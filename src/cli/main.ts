/**
 * The `masbc-edge` command line. Each sub-command lives in its own module and is registered here.
 *
 * @example
 *   masbc-edge validate config/gateway.yaml
 *   masbc-edge keygen --out data/keys/gateway.key
 */
import { Command, CommanderError } from 'commander';
import { ConfigError } from '../gateway/config/config.ts';
import { registerAlliance } from './alliance.ts';
import { registerChain } from './chain.ts';
import { registerCredential } from './credential.ts';
import { registerDemo } from './demo.ts';
import { registerGatewayKeys } from './gateway-keys.ts';
import { registerHealth } from './health.ts';
import { registerKeygen } from './keygen.ts';
import { registerOrders } from './orders.ts';
import { registerOutbox } from './outbox.ts';
import { registerPeer } from './peer.ts';
import { registerRun } from './run.ts';
import { registerSchema } from './schema.ts';
import { registerSimulate } from './simulate.ts';
import { registerTally } from './tally.ts';
import { registerTrace } from './trace.ts';
import { registerValidate } from './validate.ts';
import { registerVerify } from './verify.ts';

export function buildProgram(): Command {
  const program = new Command('masbc-edge')
    .description(
      'Industrial edge gateway: machine data in, signed lot events out, committed to an alliance chain.',
    )
    .version('0.1.0')
    .showHelpAfterError('(run with --help for usage)')
    // Before registering: sub-commands copy this setting when they are created.
    .exitOverride();
  registerRun(program);
  registerValidate(program);
  registerKeygen(program);
  registerSchema(program);
  registerOutbox(program);
  registerHealth(program);
  registerDemo(program);
  registerChain(program);
  registerSimulate(program);
  registerPeer(program);
  registerAlliance(program);
  registerCredential(program);
  registerOrders(program);
  registerTrace(program);
  registerTally(program);
  registerVerify(program);
  registerGatewayKeys(program);
  return program;
}

/** Runs the CLI; `argv` as in process.argv. Exit codes: 0 ok, 1 failure, 2 usage or configuration error. */
export async function main(argv: string[]): Promise<void> {
  const program = buildProgram();
  try {
    await program.parseAsync(argv);
  } catch (err) {
    if (err instanceof CommanderError) {
      process.exitCode = err.exitCode === 0 ? 0 : 2;
      return;
    }
    if (err instanceof ConfigError) {
      console.error(err.message);
      process.exitCode = 2;
      return;
    }
    console.error(`masbc-edge: ${(err as Error).message}`);
    process.exitCode = 1;
  }
}
