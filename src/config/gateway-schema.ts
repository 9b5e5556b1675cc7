/**
 * Schema of `config/gateway.yaml`: who this gateway is, where it keeps its data, and its limits.
 * The JSON Schema in config/schema/gateway.schema.json is generated from this (`npm run schema`).
 */
import { z } from 'zod';
import { byteSize, durationMs, identifier } from './common.ts';

export const storeSchema = z
  .strictObject({
    maxBytes: byteSize
      .default(1024 ** 3)
      .describe(
        'Disk budget of the outbox; when reached, new events are not stored and a signed gap event records the loss.',
      ),
    maxRows: z.number().int().positive().default(10_000_000).describe('Row budget of the outbox.'),
    synchronous: z
      .enum(['full', 'normal'])
      .default('full')
      .describe(
        'SQLite synchronous level. "full": an acknowledged event survives power loss. "normal": survives a process crash only.',
      ),
    appendBatchMax: z
      .number()
      .int()
      .min(1)
      .max(10_000)
      .default(500)
      .describe('Events per append transaction.'),
    retainCommittedMs: durationMs(0, 365 * 86_400_000)
      .default(7 * 86_400_000)
      .describe('How long events stay in the outbox after they are final on chain.'),
  })
  .prefault({});

export const signingSchema = z
  .strictObject({
    mode: z
      .enum(['event', 'batch'])
      .default('batch')
      .describe(
        '"event": one signature per event. "batch": one signature over a Merkle root of a batch; each event carries its path.',
      ),
    batchEventsMax: z.number().int().min(1).max(4096).default(256),
    batchWindowMs: durationMs(0, 10_000)
      .default(20)
      .describe('Longest an event waits for its batch to fill.'),
  })
  .prefault({});

export const chainSchema = z
  .strictObject({
    role: z
      .enum(['validator', 'client', 'none'])
      .default('none')
      .describe(
        '"validator": this gateway hosts an alliance peer. "client": it submits to its member\'s validator.',
      ),
    genesis: z.string().optional().describe('Path of the alliance genesis file (validators and their keys).'),
    listen: z.array(z.string()).default([]).describe('libp2p multiaddrs to listen on.'),
    validator: z
      .string()
      .optional()
      .describe('For role "client": the member id of the validator to submit to.'),
  })
  .prefault({});

export const apiSchema = z
  .strictObject({
    enabled: z.boolean().default(false),
    host: z.string().default('127.0.0.1'),
    port: z.number().int().min(0).max(65_535).default(8080),
  })
  .prefault({});

export const gatewaySchema = z.strictObject({
  gateway: z.strictObject({
    id: identifier.describe('Gateway id, unique in the enterprise.'),
    enterprise: identifier.describe('Alliance member (enterprise) id.'),
    site: identifier,
    line: identifier,
  }),
  dataDir: z
    .string()
    .min(1)
    .default('../data')
    .describe('Folder for SQLite stores, keys and PKI; relative to this file.'),
  keyFile: z
    .string()
    .min(1)
    .default('keys/gateway.key')
    .describe('Gateway signing key (PEM); relative to dataDir. Create with `masbc-edge keygen`.'),
  devices: z
    .string()
    .min(1)
    .default('devices')
    .describe('Folder of device maps (*.yaml); relative to this file.'),
  store: storeSchema,
  signing: signingSchema,
  chain: chainSchema,
  api: apiSchema,
  log: z
    .strictObject({ level: z.enum(['trace', 'debug', 'info', 'warn', 'error']).default('info') })
    .prefault({}),
});

export type GatewayConfig = z.output<typeof gatewaySchema>;
