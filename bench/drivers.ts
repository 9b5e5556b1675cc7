/**
 * Acquisition throughput, `npm run bench drivers`:
 * - the normaliser alone (pure, in this process);
 * - Modbus TCP and OPC UA through the WHOLE gateway process: the real Gateway class (driver →
 *   normaliser → batcher → signing → SQLite outbox, synchronous: full) on a generated configuration in
 *   a temporary data folder, in a process of its own, against a peer in another process (pymodbus;
 *   a node-opcua server). Reported: readings/s, events stored/s, the gateway's RSS, CPU of the gateway
 *   and of the peer (which side limits the figure), medians of 3 windows of 3 s after a 2 s warm-up.
 * The measuring code lives with the driver tests (test/drivers/perf/).
 */

import {
  type GatewayFigures,
  modbusGatewayThroughput,
  opcuaGatewayThroughput,
} from '../test/drivers/perf/gateway-throughput.ts';
import { normaliserThroughput } from '../test/drivers/perf/throughput.ts';
import type { Figure } from './lib.ts';

function gatewayFigures(label: string, f: GatewayFigures): Figure[] {
  const w = f.report.windows;
  return [
    { name: f.name, value: f.value, unit: f.unit, runs: f.runs, note: `median of 3; ${f.note}` },
    {
      name: `${label}: events signed and stored`,
      value: f.eventsPerS,
      unit: 'events/s',
      runs: w.map((x) => x.eventsPerS),
      note: 'median of 3; batch signing, one transaction per batch',
    },
    {
      name: `${label}: gateway resident memory`,
      value: f.rssMiB,
      unit: 'MiB',
      runs: w.map((x) => x.rssMiB),
      note: 'largest RSS per window; mostly V8 heap headroom under this allocation rate (live heap ~20 MiB), see docs/drivers.md',
    },
  ];
}

export async function benchDrivers(): Promise<Figure[]> {
  const figures: Figure[] = [];
  const n = await normaliserThroughput();
  figures.push({ name: n.name, value: n.value, unit: n.unit, runs: [n.value], note: 'median of 3' });
  try {
    figures.push(...gatewayFigures('Modbus', await modbusGatewayThroughput()));
  } catch (err) {
    figures.push({
      name: 'Modbus TCP through the gateway process, pymodbus peer',
      value: 0,
      unit: 'skipped',
      runs: [],
      note: (err as Error).message,
    });
  }
  figures.push(...gatewayFigures('OPC UA', await opcuaGatewayThroughput()));
  return figures;
}
