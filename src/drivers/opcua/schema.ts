/** Device-map schema for OPC UA devices (connection and tags). */
import { z } from 'zod';
import { durationMs, identifier } from '../../config/common.ts';
import type { DeviceBase } from '../types.ts';

export const opcuaAuthSchema = z.discriminatedUnion('type', [
  z.strictObject({ type: z.literal('anonymous') }),
  z.strictObject({ type: z.literal('username'), username: z.string().min(1), password: z.string().min(1) }),
  z.strictObject({
    type: z.literal('certificate'),
    certificateFile: z
      .string()
      .min(1)
      .describe('PEM user certificate; relative paths start at the data folder.'),
    privateKeyFile: z.string().min(1),
  }),
]);

export const opcuaConnectionSchema = z
  .strictObject({
    endpoint: z.string().regex(/^opc\.tcp:\/\/[^\s/]+(:\d+)?(\/.*)?$/, 'expected an opc.tcp://host:port URL'),
    securityMode: z.enum(['None', 'Sign', 'SignAndEncrypt']).default('None'),
    securityPolicy: z
      .enum(['None', 'Basic256Sha256', 'Aes128_Sha256_RsaOaep', 'Aes256_Sha256_RsaPss'])
      .default('None'),
    auth: opcuaAuthSchema.default({ type: 'anonymous' }),
    requestTimeoutMs: durationMs(100, 120_000).default(5_000),
    sessionTimeoutMs: durationMs(1_000, 3_600_000).default(60_000),
    reconnectMaxDelayMs: durationMs(100, 300_000).default(10_000),
    publishingIntervalMs: durationMs(0, 60_000)
      .default(100)
      .describe('Publishing interval of the subscription carrying the `subscribe` tags.'),
    serverCertificate: z
      .enum(['accept-unknown', 'trusted-only'])
      .default('accept-unknown')
      .describe(
        'With Sign/SignAndEncrypt: "trusted-only" refuses a server certificate not in <pki>/trusted/certs ' +
          '(recommended in production); "accept-unknown" trusts any server certificate on first sight.',
      ),
  })
  .superRefine((c, ctx) => {
    if ((c.securityMode === 'None') !== (c.securityPolicy === 'None')) {
      ctx.addIssue({
        code: 'custom',
        path: ['securityPolicy'],
        message:
          c.securityMode === 'None'
            ? 'securityMode None goes with securityPolicy None'
            : `securityMode ${c.securityMode} needs a securityPolicy other than None (e.g. Basic256Sha256)`,
      });
    }
  });

export const opcuaTagSchema = z.strictObject({
  name: identifier,
  nodeId: z.string().regex(/^(ns=\d+;)?[isgb]=.+$/, 'expected a NodeId like "ns=1;s=CNC1.State" or "i=2258"'),
  mode: z.enum(['subscribe', 'poll']).default('subscribe'),
  samplingIntervalMs: durationMs(0, 3_600_000).default(0),
  queueSize: z.number().int().min(1).max(10_000).default(100),
  deadband: z
    .strictObject({ type: z.enum(['absolute', 'percent']), value: z.number().nonnegative() })
    .optional(),
  dataChangeTrigger: z
    .enum(['Status', 'StatusValue', 'StatusValueTimestamp'])
    .default('StatusValue')
    .describe(
      'What counts as a change for a subscribed tag. StatusValueTimestamp also reports a write of the ' +
        'same value (two parts gauging the same diameter), which StatusValue does not.',
    ),
  pollIntervalMs: durationMs(10, 3_600_000).default(1_000),
  unit: z.string().max(32).optional().describe('Engineering unit, e.g. "mm", "degC", "rpm".'),
});

export const opcuaDeviceFields = {
  protocol: z.literal('opcua'),
  connection: opcuaConnectionSchema,
  tags: z.array(opcuaTagSchema).min(1),
};

/** A device map of this protocol, as its driver sees it. */
export type OpcuaDevice = DeviceBase & z.output<z.ZodObject<typeof opcuaDeviceFields>>;
