/** Device-map schema for MQTT devices (connection and topic-to-tag mappings). */
import { z } from 'zod';
import { durationMs, identifier } from '../../config/common.ts';
import type { DeviceBase } from '../types.ts';

/** `$`, `$.a.b`, `$.list[0].x`: the JSON paths the driver understands (no filters, no wildcards). */
export const jsonPathPattern = /^\$(\.[A-Za-z0-9_-]+|\[\d+\])*$/;
const jsonPath = (example: string) =>
  z.string().regex(jsonPathPattern, `expected a JSON path like ${example} ($, .name and [index] steps)`);

export const mqttConnectionSchema = z.strictObject({
  url: z
    .string()
    .regex(/^(mqtts?|wss?):\/\/[^\s]+$/, 'expected a URL like mqtt://host:1883 or mqtts://host:8883'),
  clientId: z
    .string()
    .min(1)
    .max(128)
    .optional()
    .describe(
      'Default: masbc-edge-<device id>, plus a random suffix when cleanSession is true. A persistent ' +
        'session needs a stable id, unique on the broker.',
    ),
  username: z.string().optional(),
  password: z.string().optional().describe('Write ${env:NAME} or ${file:PATH}; a literal is refused.'),
  caFile: z
    .string()
    .optional()
    .describe('PEM CA bundle for mqtts://; relative paths start at the data folder.'),
  certFile: z.string().optional().describe('PEM client certificate (mutual TLS).'),
  keyFile: z.string().optional().describe('PEM private key of certFile.'),
  serverCertificate: z
    .enum(['verify', 'accept-any'])
    .default('verify')
    .describe(
      'TLS check of the broker certificate against caFile (or the system CAs); accept-any is for labs.',
    ),
  qos: z.union([z.literal(0), z.literal(1), z.literal(2)]).default(1),
  cleanSession: z
    .boolean()
    .default(true)
    .describe(
      'false: the broker keeps the subscriptions and queues QoS 1/2 messages while the gateway is away.',
    ),
  keepaliveS: z.number().int().min(0).max(65_535).default(30),
  connectTimeoutMs: durationMs(100, 120_000).default(10_000),
  reconnectMaxDelayMs: durationMs(100, 300_000).default(10_000),
});

export const mqttTagSchema = z.strictObject({
  name: identifier,
  topic: z.string().min(1).max(256).describe('Topic filter; + and # wildcards allowed.'),
  value: jsonPath('$.temp.value').default('$').describe('Where the value is: $ is the whole payload.'),
  where: z
    .record(jsonPath('$.zone'), z.union([z.string(), z.number(), z.boolean()]))
    .optional()
    .describe(
      'Only messages whose fields equal these (compared as text) are for this tag, e.g. { "$.zone": 2 } ' +
        'when one topic carries several sensors.',
    ),
  timestamp: jsonPath('$.ts')
    .optional()
    .describe(
      'JSON path of the source timestamp: ms or s since the epoch, or ISO 8601. Arrival time otherwise.',
    ),
  type: z
    .enum(['number', 'string', 'boolean'])
    .optional()
    .describe('Expected JSON type; anything else is an unmappable payload. JSON null is "" for a string.'),
  unit: z.string().max(32).optional(),
});

export const mqttDeviceFields = {
  protocol: z.literal('mqtt'),
  connection: mqttConnectionSchema,
  tags: z.array(mqttTagSchema).min(1),
};

/** A device map of this protocol, as its driver sees it. */
export type MqttDevice = DeviceBase & z.output<z.ZodObject<typeof mqttDeviceFields>>;
