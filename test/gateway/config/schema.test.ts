import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { jsonSchemaText, schemaFiles } from '../../../src/gateway/config/json-schema.ts';

describe('published JSON Schemas', () => {
  for (const name of Object.keys(schemaFiles) as (keyof typeof schemaFiles)[]) {
    it(`config/schema/${name} matches the zod schema (run \`npm run schema\` after changing it)`, () => {
      const generated = jsonSchemaText(name);
      expect(JSON.parse(generated).$schema).toBe('https://json-schema.org/draft/2020-12/schema');
      expect(readFileSync(`config/schema/${name}`, 'utf8')).toBe(generated);
    });
  }
});
