/**
 * Schema of `config/gateway.yaml`: who this gateway is, where it keeps its data, and its limits.
 * The JSON Schema in config/schema/gateway.schema.json is generated from this (`npm run schema`).
 */
import { z } from 'zod';
import { byteSize, durationMs, identifier } from '../../config/common.ts';
import { batchEventsMax } from '../../event/bounds.ts';
import { defaultBodyRetention, defaultBodyStoreBytes } from '../../store/bodies.ts';
import { submitter } from '../bounds.ts';

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
    batchEventsMax: z
      .number()
      .int()
      .min(1)
      .max(batchEventsMax)
      .default(256)
      .describe(
        'Events per signed batch: one signature and one chain transaction per batch (1: a transaction per event).',
      ),
    batchWindowMs: durationMs(0, 10_000)
      .default(20)
      .describe('Longest an event waits for its batch to fill.'),
  })
  .prefault({});

export const submitSchema = z
  .strictObject({
    windowEvents: z
      .number()
      .int()
      .min(submitter.windowEvents.min)
      .max(submitter.windowEvents.max)
      .default(submitter.windowEvents.default)
      .describe(
        `Events submitted and not yet final, at most; at least one submission batch (${submitter.batchMax}).`,
      ),
    drainEventsPerSecond: z
      .number()
      .int()
      .min(submitter.drainEventsPerSecond.min)
      .max(submitter.drainEventsPerSecond.max)
      .default(submitter.drainEventsPerSecond.default)
      .describe('Submission rate limit: how fast a backlog drains after an outage.'),
    resubmitAfterMs: durationMs(submitter.resubmitAfterMs.min, submitter.resubmitAfterMs.max)
      .default(submitter.resubmitAfterMs.default)
      .describe(
        'When none of the events in flight became final for this long, they are submitted again (the validator may have lost them).',
      ),
  })
  .prefault({});

export const bodiesSchema = z
  .strictObject({
    maxBytes: byteSize
      .default(defaultBodyStoreBytes)
      .describe(
        "Role validator: disk budget of the member's body store (the bodies of its own events, which never go on the chain). When full, new batches are refused and wait in the gateways' outboxes.",
      ),
    retention: z
      .strictObject({
        process: durationMs(0, 100 * 365 * 86_400_000)
          .default(defaultBodyRetention.process)
          .describe('How long bodies of process events are kept, by source time, in ms; 0: forever.'),
        equipment: durationMs(0, 100 * 365 * 86_400_000)
          .default(defaultBodyRetention.equipment)
          .describe('How long bodies of equipment events (status, alarms, gaps) are kept; 0: forever.'),
      })
      .prefault({}),
  })
  .prefault({});

export const chainSchema = z
  .strictObject({
    role: z
      .enum(['validator', 'client', 'none'])
      .default('none')
      .describe(
        '"validator": this gateway hosts its member\'s alliance peer. "client": it submits to its member\'s validator over HTTP. "none": events stay in the outbox.',
      ),
    genesis: z
      .string()
      .optional()
      .describe(
        'Roles validator and client: the alliance genesis file, relative to this file (a client checks final blocks against its validators).',
      ),
    memberKeyFile: z
      .string()
      .default('keys/member.key')
      .describe(
        "Role validator: the member's validator key (also its libp2p identity); relative to dataDir.",
      ),
    validatorUrl: z
      .string()
      .url()
      .optional()
      .describe("Role client: the member validator's HTTP API, e.g. http://10.0.0.5:4100."),
    credentialFile: z
      .string()
      .optional()
      .describe(
        "Role client: file holding this gateway's credential (`masbc-edge credential issue --role gateway`), relative to dataDir; sent with every request to the validator API.",
      ),
    thread: z
      .boolean()
      .default(true)
      .describe(
        "Role validator: run the validator on a worker thread of its own, so that acquisition and consensus do not take turns on one core (costs a second JavaScript heap; docs/runtime.md has the figures). false runs it on the gateway's event loop: under overload, acquisition then slows to the commit rate.",
      ),
    submit: submitSchema,
    bodies: bodiesSchema,
  })
  .prefault({})
  .superRefine((c, ctx) => {
    if (c.role !== 'none' && !c.genesis)
      ctx.addIssue({ code: 'custom', path: ['genesis'], message: `role ${c.role} needs the genesis file` });
    if (c.role === 'client' && !c.validatorUrl)
      ctx.addIssue({ code: 'custom', path: ['validatorUrl'], message: 'role client needs validatorUrl' });
    if (c.role === 'client' && !c.credentialFile)
      ctx.addIssue({
        code: 'custom',
        path: ['credentialFile'],
        message: "role client needs credentialFile: the validator API takes only this gateway's credential",
      });
  });

export const apiSchema = z
  .strictObject({
    enabled: z
      .boolean()
      .default(false)
      .describe('Role validator: serve the validator HTTP API to client gateways.'),
    host: z.string().default('127.0.0.1'),
    port: z.number().int().min(0).max(65_535).default(8080),
  })
  .prefault({});

/** The status page, /metrics, /health and /ready (src/observe); the ports the Dockerfile exposes. */
export const opsDefaultPort = 8090;

export const opsSchema = z
  .strictObject({
    enabled: z
      .boolean()
      .default(true)
      .describe('Serve the status page, Prometheus /metrics, /health and /ready.'),
    host: z
      .string()
      .min(1)
      .default('127.0.0.1')
      .describe(
        'Address to bind: loopback by default (no authentication). 0.0.0.0 only behind a firewall, or in a container whose port is published to loopback.',
      ),
    port: z
      .number()
      .int()
      .min(0)
      .max(65_535)
      .default(opsDefaultPort)
      .describe('Port; 0 takes any free port.'),
  })
  .prefault({});

/** Longest outbox growth window (the status page keeps one sample a second for it). */
export const outboxGrowthWindowMsMax = 600_000;

/** When the gateway reports itself degraded (`masbc-edge health`, /ready); see docs/deploy.md. */
export const healthSchema = z
  .strictObject({
    devices: z
      .enum(['any', 'all', 'critical'])
      .default('any')
      .describe(
        '"any": degraded when any enabled device is not connected. "all": only when none is. "critical": when any of criticalDevices is not.',
      ),
    criticalDevices: z
      .array(identifier)
      .max(1_000)
      .default([])
      .describe('Device ids that must be connected (policy "critical").'),
    finalityStaleMs: durationMs(1_000, 86_400_000)
      .default(120_000)
      .describe('Degraded when events wait and none has become final for this long.'),
    outboxGrowthWindowMs: durationMs(10_000, outboxGrowthWindowMsMax)
      .default(60_000)
      .describe('The window over which the outbox is watched for filling faster than it drains.'),
    outboxGrowthEventsMin: z
      .number()
      .int()
      .min(1)
      .default(100)
      .describe('Degraded when the pending events grew by at least this many over the window.'),
    diskFreeMinBytes: byteSize
      .default(512 * 1024 ** 2)
      .describe('Degraded when the data folder has less free space than this.'),
    diskFreeMinPercent: z
      .number()
      .min(0)
      .max(100)
      .default(5)
      .describe('… or less than this share of its file system free.'),
  })
  .prefault({})
  .superRefine((h, ctx) => {
    if (h.devices === 'critical' && h.criticalDevices.length === 0)
      ctx.addIssue({
        code: 'custom',
        path: ['criticalDevices'],
        message: 'policy "critical" needs the ids of the critical devices',
      });
  });

export type HealthPolicy = z.output<typeof healthSchema>;
export type OpsConfig = z.output<typeof opsSchema>;

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
  ops: opsSchema,
  health: healthSchema,
  log: z
    .strictObject({ level: z.enum(['trace', 'debug', 'info', 'warn', 'error']).default('info') })
    .prefault({}),
});

export type GatewayConfig = z.output<typeof gatewaySchema>;
