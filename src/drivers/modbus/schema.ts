/** Device-map schema for Modbus TCP and RTU devices (connection and tags). */
import { z } from 'zod';
import { durationMs, identifier } from '../../config/common.ts';
import { modbusInFlightMax } from '../bounds.ts';
import type { DeviceBase } from '../types.ts';

export const modbusTcpSchema = z.strictObject({
  transport: z.literal('tcp'),
  host: z.string().min(1),
  port: z.number().int().min(1).max(65_535).default(502),
  requestsInFlightMax: z
    .number()
    .int()
    .min(1)
    .max(modbusInFlightMax)
    .default(1)
    .describe(
      'Requests outstanding at once on the connection (Modbus TCP allows several; 1 suits every device). ' +
        'With 2 or more, a unit that stops answering never delays the other units at all.',
    ),
});

export const modbusRtuSchema = z.strictObject({
  transport: z.literal('rtu'),
  path: z
    .string()
    .min(1)
    .describe(
      'Serial device, e.g. /dev/ttyUSB0 or /dev/serial/by-id/…; a relative path starts at the data folder.',
    ),
  baudRate: z.number().int().positive().default(19_200),
  parity: z.enum(['none', 'even', 'odd']).default('even'),
  dataBits: z.union([z.literal(7), z.literal(8)]).default(8),
  stopBits: z.union([z.literal(1), z.literal(2)]).default(1),
});

const commonConnection = {
  timeoutMs: durationMs(10, 60_000).default(1_000).describe('How long to wait for each response.'),
  connectTimeoutMs: durationMs(100, 120_000).default(5_000).describe('How long to wait for a connection.'),
  pollIntervalMs: durationMs(10, 3_600_000).default(1_000).describe('How often every tag is read.'),
  reconnectMaxDelayMs: durationMs(100, 300_000)
    .default(10_000)
    .describe(
      'Longest wait between reconnect attempts, and between probes of a unit that stopped answering.',
    ),
  maxGapRegisters: z
    .number()
    .int()
    .min(0)
    .max(124)
    .default(8)
    .describe('Unused registers allowed between two tags still read in one request.'),
  maxGapBits: z
    .number()
    .int()
    .min(0)
    .max(1999)
    .default(32)
    .describe('Unused coils or discrete inputs allowed between two tags still read in one request.'),
  maxRegistersPerRequest: z.number().int().min(1).max(125).default(125),
  maxBitsPerRequest: z.number().int().min(1).max(2000).default(2000),
};

export const modbusConnectionSchema = z.discriminatedUnion('transport', [
  modbusTcpSchema.extend(commonConnection),
  modbusRtuSchema.extend(commonConnection),
]);

export const modbusTypes = [
  'bit',
  'int16',
  'uint16',
  'int32',
  'uint32',
  'float32',
  'float64',
  'string',
] as const;

export const modbusTagSchema = z
  .strictObject({
    name: identifier,
    unitId: z.number().int().min(0).max(255).default(1),
    area: z
      .enum(['coil', 'discrete', 'holding', 'input'])
      .describe('coil (FC1), discrete input (FC2), holding register (FC3), input register (FC4)'),
    address: z.number().int().min(0).max(65_535).describe('0-based PDU address'),
    type: z.enum(modbusTypes).default('uint16'),
    /** For `string`: number of characters (two per register). */
    length: z.number().int().min(1).max(250).optional(),
    byteOrder: z.enum(['ABCD', 'BADC', 'CDAB', 'DCBA']).default('ABCD'),
    scale: z.number().default(1),
    offset: z.number().default(0),
    unit: z.string().max(32).optional().describe('Engineering unit, e.g. "degC", "bar".'),
  })
  .superRefine((tag, ctx) => {
    const bitArea = tag.area === 'coil' || tag.area === 'discrete';
    if (bitArea && tag.type !== 'bit') {
      ctx.addIssue({
        code: 'custom',
        path: ['type'],
        message: `${tag.area} tags hold single bits: type must be "bit"`,
      });
    }
    if (!bitArea && tag.type === 'bit') {
      ctx.addIssue({ code: 'custom', path: ['type'], message: 'type "bit" needs area "coil" or "discrete"' });
    }
    if (tag.type === 'string' && tag.length === undefined) {
      ctx.addIssue({
        code: 'custom',
        path: ['length'],
        message: 'a string tag needs its length in characters',
      });
    }
  });

export const modbusDeviceFields = {
  protocol: z.literal('modbus'),
  connection: modbusConnectionSchema,
  tags: z.array(modbusTagSchema).min(1),
};

/** A device map of this protocol, as its driver sees it. */
export type ModbusDevice = DeviceBase & z.output<z.ZodObject<typeof modbusDeviceFields>>;
