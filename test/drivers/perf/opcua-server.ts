/**
 * A node-opcua server for the throughput measurement: argv nodes, everyMs, pkiDir; sends {port}, and
 * {written} (values written so far) whenever it receives a message.
 */
import { DataType, OPCUACertificateManager, OPCUAServer, StatusCodes, Variant } from 'node-opcua';

const [nodes, everyMs, pkiDir] = [Number(process.argv[2]), Number(process.argv[3]), process.argv[4]!];
const server = new OPCUAServer({
  port: 0,
  hostname: '127.0.0.1',
  host: '127.0.0.1',
  serverCertificateManager: new OPCUACertificateManager({
    rootFolder: pkiDir,
    automaticallyAcceptUnknownCertificate: true,
  }),
  // Without a folder of its own, the user certificate manager would land in ~/.config.
  userCertificateManager: new OPCUACertificateManager({
    rootFolder: `${pkiDir}-user`,
    automaticallyAcceptUnknownCertificate: true,
  }),
  serverCapabilities: { minSupportedSampleRate: 0, operationLimits: { maxMonitoredItemsPerCall: 10_000 } },
});
await server.initialize();
const ns = server.engine.addressSpace!.getOwnNamespace();
const vars = Array.from({ length: nodes }, (_, i) =>
  ns.addVariable({
    organizedBy: server.engine.addressSpace!.rootFolder.objects,
    browseName: `V${i}`,
    nodeId: `s=V${i}`,
    dataType: 'Double',
    minimumSamplingInterval: 0,
  }),
);
await server.start();
let k = 0;
setInterval(() => {
  k++;
  const now = new Date();
  for (let i = 0; i < vars.length; i++) {
    vars[i]!.setValueFromSource(
      new Variant({ dataType: DataType.Double, value: k + i }),
      StatusCodes.Good,
      now,
    );
  }
}, everyMs);
process.send!({ port: server.endpoints[0]!.port });
// Asked for it, tells how many values it has written so far (the real offered load, timers drift).
process.on('message', () => process.send!({ written: k * vars.length }));
