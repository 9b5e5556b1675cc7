/**
 * The driver registry: one line per protocol (Telegraf's plugins/inputs/registry.go is the model).
 * Adding a protocol: a folder src/drivers/<proto>/ with schema.ts (one line in schemas.ts) and a
 * driver factory (one line here). See docs/drivers.md.
 *
 * @example
 *   const drivers = config.devices.filter((d) => d.enabled).map((d) => createDriver(d, ctx));
 *   await Promise.all(drivers.map((d) => d.start()));
 */
import { lazyFactory } from './common/lazy.ts';
import { createModbusDriver } from './modbus/driver.ts';
import type { ModbusDevice } from './modbus/schema.ts';
import { createMqttDriver } from './mqtt/driver.ts';
import type { MqttDevice } from './mqtt/schema.ts';
import type { OpcuaDevice } from './opcua/schema.ts';
import { validateOpcuaDevice } from './opcua/validate.ts';
import type { Driver, DriverContext, DriverFactory } from './types.ts';

/** A device map of any protocol, as the drivers see it. */
export type AnyDevice = OpcuaDevice | ModbusDevice | MqttDevice;
type Protocol = AnyDevice['protocol'];
type DeviceOf<P extends Protocol> = Extract<AnyDevice, { protocol: P }>;

export const drivers: { [P in Protocol]: DriverFactory<DeviceOf<P>> } = {
  // node-opcua costs ~1.6 s and ~100 MiB to load: only when an OPC UA device starts (common/lazy.ts).
  opcua: lazyFactory('opcua', validateOpcuaDevice, () =>
    import('./opcua/driver.ts').then((m) => m.createOpcuaDriver),
  ),
  modbus: createModbusDriver,
  mqtt: createMqttDriver,
};

/**
 * Builds the driver of a validated device map. Validates what the schema cannot (e.g. a Modbus tag
 * larger than one request) and throws a RangeError naming the device; opens nothing.
 */
export function createDriver(device: AnyDevice, ctx: DriverContext): Driver {
  const factory = drivers[device.protocol] as DriverFactory<AnyDevice>;
  return factory(device, ctx);
}

export const protocols = Object.keys(drivers) as Protocol[];
