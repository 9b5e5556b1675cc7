import type { Command } from 'commander';
import { defaultGatewayFile, formatIssue, validateFiles } from '../gateway/config/config.ts';

export function registerValidate(program: Command): void {
  program
    .command('validate')
    .description('Check configuration files; prints every problem as file:line:col: field: message')
    .argument('[files...]', 'gateway.yaml (checks its device folder too) or device maps', [
      defaultGatewayFile,
    ])
    .action((files: string[]) => {
      const issues = validateFiles(files);
      if (issues.length === 0) {
        console.log(`ok: ${files.join(', ')}`);
        return;
      }
      for (const i of issues) console.error(formatIssue(i));
      console.error(`${issues.length} problem${issues.length === 1 ? '' : 's'} found`);
      process.exitCode = 2;
    });
}
