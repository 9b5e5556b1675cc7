/**
 * JSON Schemas of the YAML files, generated from the zod schemas (the single source of truth) and
 * published in config/schema/ for editors running the YAML language server.
 */
import { z } from 'zod';
import { deviceSchema } from './device-schema.ts';
import { gatewaySchema } from './gateway-schema.ts';

export const schemaFiles = {
  'gateway.schema.json': gatewaySchema,
  'device.schema.json': deviceSchema,
} as const;

/** The file's text: JSON Schema 2020-12 of the input side (defaults optional), pretty-printed. */
export function jsonSchemaText(name: keyof typeof schemaFiles): string {
  const schema = z.toJSONSchema(schemaFiles[name], { io: 'input', unrepresentable: 'any', reused: 'ref' });
  const titled = {
    ...schema,
    $id: `https://masbc-edge.dev/schema/${name}`,
    title: name.replace('.schema.json', ''),
  };
  return `${JSON.stringify(titled, null, 2)}\n`;
}
