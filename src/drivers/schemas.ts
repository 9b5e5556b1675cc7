/**
 * Registry of device-map schemas by protocol: one line per protocol.
 * (The drivers themselves register in registry.ts.)
 */
import { modbusDeviceFields } from './modbus/schema.ts';
import { mqttDeviceFields } from './mqtt/schema.ts';
import { opcuaDeviceFields } from './opcua/schema.ts';

export const protocolDeviceFields = [opcuaDeviceFields, modbusDeviceFields, mqttDeviceFields] as const;
