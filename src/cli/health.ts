import type { Command } from 'commander';
import { defaultGatewayFile, loadConfig } from '../gateway/config/config.ts';
import { checkHealth } from '../gateway/status.ts';

export function registerHealth(program: Command): void {
  program
    .command('health')
    .description('Exit 0 while a running gateway reports itself healthy (for container health checks)')
    .option('-c, --config <file>', 'gateway configuration', defaultGatewayFile)
    .action((opts: { config: string }) => {
      const config = loadConfig(opts.config);
      const verdict = checkHealth(config.paths.dataDir);
      if (verdict.ok) {
        console.log(
          `healthy (pid ${verdict.status.pid}, updated ${new Date(verdict.status.updatedMs).toISOString()})`,
        );
      } else {
        console.error(`unhealthy: ${verdict.reason}`);
        process.exitCode = 1;
      }
    });
}
