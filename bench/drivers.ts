/**
 * Acquisition throughput: the normaliser alone, the Modbus TCP driver against pymodbus (an independent
 * server, faster than our simulator), the OPC UA subscription driver against a node-opcua server in
 * another process. The measuring code lives with the driver tests (test/drivers/perf/throughput.ts).
 */
import { modbusThroughput, normaliserThroughput, opcuaThroughput } from '../test/drivers/perf/throughput.ts';
import type { Figure } from './lib.ts';

export async function benchDrivers(): Promise<Figure[]> {
  const figures: Figure[] = [];
  const n = await normaliserThroughput();
  figures.push({ name: n.name, value: n.value, unit: n.unit, runs: [n.value], note: 'median of 3' });
  try {
    const m = await modbusThroughput();
    figures.push({
      name: m.name,
      value: m.value,
      unit: m.unit,
      runs: [m.value],
      note: `median of 3; ${m.note}`,
    });
  } catch (err) {
    figures.push({
      name: 'Modbus TCP driver + normaliser vs pymodbus',
      value: 0,
      unit: 'skipped',
      runs: [],
      note: (err as Error).message,
    });
  }
  const o = await opcuaThroughput();
  figures.push({
    name: o.name,
    value: o.value,
    unit: o.unit,
    runs: [o.value],
    note: `median of 3; ${o.note}`,
  });
  return figures;
}
