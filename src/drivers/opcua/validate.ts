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
}
