/**
 * What the schema cannot check in an OPC UA device map, without loading node-opcua (the registry
 * loads the driver module only when a device starts: see common/lazy.ts).
 */
import type { OpcuaDevice } from './schema.ts';

/** Throws a RangeError naming the device. */
export function validateOpcuaDevice(device: OpcuaDevice): void {
  const c = device.connection;
  if ((c.securityMode === 'None') !== (c.securityPolicy === 'None')) {
    throw new RangeError(
      `device ${device.id}: securityMode ${c.securityMode} needs ${c.securityMode === 'None' ? 'securityPolicy None' : 'a securityPolicy other than None'}`,
    );
  }
  // A subscription answers at least once per publishing interval; a session that times out sooner
  // is lost between two answers (and node-opcua refuses to create such a subscription).
  if (device.tags.some((t) => t.mode === 'subscribe') && c.publishingIntervalMs > c.sessionTimeoutMs) {
    throw new RangeError(
      `device ${device.id}: publishingIntervalMs ${c.publishingIntervalMs} needs sessionTimeoutMs of at least as much (now ${c.sessionTimeoutMs})`,
    );
  }
}
