/** Device-map schema for MQTT devices (connection and topic-to-tag mappings). */
import { z } from 'zod';
import { durationMs, identifier } from '../../config/common.ts';

export const mqttConnectionSchema = z.strictObject({
  url: z
    .string()
    .regex(/^(mqtts?|wss?):\/\/[^\s]+$/, 'expected a URL like mqtt://host:1883 or mqtts://host:8883'),
  clientId: z.string().min(1).max(128).optional(),
  username: z.string().optional(),
  password: z.string().optional(),
  caFile: z.string().optional(),
  certFile: z.string().optional(),
  keyFile: z.string().optional(),
  qos: z.union([z.literal(0), z.literal(1), z.literal(2)]).default(1),
  cleanSession: z.boolean().default(true),
  keepaliveS: z.number().int().min(0).max(65_535).default(30),
  reconnectMaxDelayMs: durationMs(100, 300_000).default(10_000),
});

export const mqttTagSchema = z.strictObject({
  name: identifier,
  topic: z.string().min(1).describe('Topic filter; + and # wildcards allowed.'),
  value: z
    .string()
    .regex(/^\$(\.[A-Za-z0-9_-]+|\[\d+\])*$/, 'expected a JSON path like $.temp.value')
    .default('$'),
  timestamp: z
    .string()
    .regex(/^\$(\.[A-Za-z0-9_-]+|\[\d+\])*$/, 'expected a JSON path like $.ts')
    .optional()
    .describe('JSON path of the source timestamp (ms since epoch or ISO 8601); arrival time otherwise.'),
  type: z
    .enum(['number', 'string', 'boolean'])
    .optional()
    .describe('Expected JSON type; anything else is a malformed payload.'),
  unit: z.string().max(32).optional(),
});

export const mqttDeviceFields = {
  protocol: z.literal('mqtt'),
  connection: mqttConnectionSchema,
  tags: z.array(mqttTagSchema).min(1),
};
