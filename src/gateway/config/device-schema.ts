/**
 * Schema of one device map (`config/devices/*.yaml`): protocol, connection, tags, and the rules
 * that turn readings into events. Protocol sections come from src/drivers/schemas.ts.
 * The JSON Schema in config/schema/device.schema.json is generated from this (`npm run schema`).
 */
import { z } from 'zod';
import { identifier } from '../../config/common.ts';
import { protocolDeviceFields } from '../../drivers/schemas.ts';
import { contextSchema, ruleSchema } from '../../normaliser/rules-schema.ts';

const deviceCommon = {
  id: identifier.describe('Device id, unique in this gateway.'),
  description: z.string().max(200).optional(),
  station: identifier.describe('Station (work centre) this device belongs to.'),
  enabled: z.boolean().default(true),
  context: contextSchema.optional(),
  rules: z.array(ruleSchema).default([]),
};

const [first, ...rest] = protocolDeviceFields.map((fields) => z.strictObject({ ...deviceCommon, ...fields }));

export const deviceSchema = z.discriminatedUnion('protocol', [first!, ...rest]);

export type DeviceConfig = z.output<typeof deviceSchema>;

export interface CrossCheckIssue {
  path: PropertyKey[];
  message: string;
}

/**
 * Checks across fields that a schema cannot express: unique tag and rule names, and rules and
 * contexts naming tags that exist. Runs on the raw document, tolerating any shape, so its findings
 * are reported together with the schema's instead of only after those are fixed.
 */
export function crossCheckDevice(raw: unknown): CrossCheckIssue[] {
  const issues: CrossCheckIssue[] = [];
  const obj = (v: unknown): Record<string, unknown> =>
    v && typeof v === 'object' && !Array.isArray(v) ? (v as Record<string, unknown>) : {};
  const list = (v: unknown): unknown[] => (Array.isArray(v) ? v : []);
  const device = obj(raw);
  const seen = new Map<string, number>();
  list(device.tags).forEach((tag, i) => {
    const name = obj(tag).name;
    if (typeof name !== 'string') return;
    const earlier = seen.get(name);
    if (earlier !== undefined) {
      issues.push({
        path: ['tags', i, 'name'],
        message: `duplicate tag name "${name}" (first defined at tags[${earlier}])`,
      });
    } else {
      seen.set(name, i);
    }
  });
  const checkTag = (name: unknown, path: PropertyKey[]) => {
    if (typeof name === 'string' && !seen.has(name))
      issues.push({ path, message: `no tag named "${name}" in this device` });
  };
  for (const [k, v] of Object.entries(obj(device.context))) checkTag(v, ['context', k]);
  const ruleNames = new Set<string>();
  list(device.rules).forEach((r, i) => {
    const rule = obj(r);
    if (typeof rule.name === 'string') {
      if (ruleNames.has(rule.name))
        issues.push({ path: ['rules', i, 'name'], message: `duplicate rule name "${rule.name}"` });
      ruleNames.add(rule.name);
    }
    checkTag(rule.tag, ['rules', i, 'tag']);
    list(rule.values).forEach((v, j) => {
      checkTag(v, ['rules', i, 'values', j]);
    });
    for (const [k, v] of Object.entries(obj(rule.context))) checkTag(v, ['rules', i, 'context', k]);
  });
  return issues;
}
