import type { Command } from 'commander';
import { defaultGatewayFile, loadConfig } from '../config/index.ts';
import { createLogger, type LogLevel } from '../edge/logger.ts';

/** Resolves on the first SIGINT or SIGTERM; a second one exits at once. */
export function untilSignal(): Promise<NodeJS.Signals> {
  return new Promise((resolve) => {
    const onSignal = (signal: NodeJS.Signals) => {
      process.removeListener('SIGINT', onSignal);
      process.removeListener('SIGTERM', onSignal);
      process.once('SIGINT', () => process.exit(130));
      process.once('SIGTERM', () => process.exit(143));
      resolve(signal);
    };
    process.on('SIGINT', onSignal);
    process.on('SIGTERM', onSignal);
  });
}

export function registerRun(program: Command): void {
  program
    .command('run')
    .description('Run the gateway: acquire from the configured devices into signed events in the outbox')
    .option('-c, --config <file>', 'gateway configuration', defaultGatewayFile)
    .option('--log-level <level>', 'trace | debug | info | warn | error (default: from gateway.yaml)')
    .action(async (opts: { config: string; logLevel?: LogLevel }) => {
      // Refuses to start on invalid configuration: loadConfig throws a ConfigError listing everything.
      const config = loadConfig(opts.config);
      const log = createLogger(opts.logLevel ?? config.gateway.log.level);
      // Imported here so that `validate` and `keygen` do not load the protocol stacks.
      const { Gateway } = await import('../edge/gateway.ts');
      const gateway = await Gateway.start(config, { log });
      const signal = await untilSignal();
      log.info('stopping', { signal });
      await gateway.stop();
      log.flush();
    });
}
