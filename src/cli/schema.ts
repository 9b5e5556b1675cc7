import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Command } from 'commander';
import { jsonSchemaText, schemaFiles } from '../gateway/config/json-schema.ts';

export function registerSchema(program: Command): void {
  program
    .command('schema')
    .description('Print or write the JSON Schemas of gateway.yaml and device maps (for editors)')
    .option('--write [dir]', 'write them into this folder instead of printing', false)
    .action((opts: { write: string | boolean }) => {
      for (const name of Object.keys(schemaFiles) as (keyof typeof schemaFiles)[]) {
        const text = jsonSchemaText(name);
        if (opts.write === false) {
          process.stdout.write(text);
          continue;
        }
        const file = join(typeof opts.write === 'string' ? opts.write : 'config/schema', name);
        let old = '';
        try {
          old = readFileSync(file, 'utf8');
        } catch {}
        if (old !== text) writeFileSync(file, text);
        console.log(`${old === text ? 'unchanged' : 'wrote'} ${file}`);
      }
    });
}
