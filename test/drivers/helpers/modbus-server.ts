/**
 * A Modbus TCP server for driver tests (modbus-serial's ServerTCP over a real socket on an ephemeral
 * port), backed by a register image the test controls: which units answer, which addresses exist.
 */
import type { AddressInfo } from 'node:net';
import mb from 'modbus-serial';
import { freePort } from './tools.ts';

export type Area = 'coil' | 'discrete' | 'holding' | 'input';

export interface TestModbusServer {
  port: number;
  /** Sets registers (or bits, as 0/1) from `address` on. */
  set(unitId: number, area: Area, address: number, values: readonly number[]): void;
  /** Loads a golden case's memory.json image (unit → area → start address → values). */
  load(image: Record<string, Partial<Record<Area, Record<string, number[]>>>>): void;
  clear(): void;
  /** A silent unit never answers (its requests time out at the client). */
  silent: Set<number>;
  /** Addresses (`unit:area:address`) that answer with exception 2 (illegal data address). */
  unmapped: Set<string>;
  /** Requests received, by unit. */
  requests: Map<number, number>;
  close(): Promise<void>;
}

export async function startModbusServer(requestedPort = 0): Promise<TestModbusServer> {
  // ServerTCP treats port 0 as "default" (502): pick a free ephemeral port ourselves.
  const port = requestedPort || (await freePort());
  const memory = new Map<string, number>();
  const silent = new Set<number>();
  const unmapped = new Set<string>();
  const requests = new Map<number, number>();
  const get = (
    area: Area,
    address: number,
    unitId: number,
    cb: (err: unknown, v?: number | boolean) => void,
  ) => {
    if (silent.has(unitId)) return;
    const key = `${unitId}:${area}:${address}`;
    if (unmapped.has(key)) return cb({ modbusErrorCode: 2, msg: 'illegal data address' });
    const v = memory.get(key) ?? 0;
    cb(null, area === 'coil' || area === 'discrete' ? v !== 0 : v);
  };
  const vector = {
    getCoil: (a: number, u: number, cb: (e: unknown, v?: unknown) => void) => get('coil', a, u, cb),
    getDiscreteInput: (a: number, u: number, cb: (e: unknown, v?: unknown) => void) =>
      get('discrete', a, u, cb),
    getHoldingRegister: (a: number, u: number, cb: (e: unknown, v?: unknown) => void) =>
      get('holding', a, u, cb),
    getInputRegister: (a: number, u: number, cb: (e: unknown, v?: unknown) => void) => get('input', a, u, cb),
  };
  const server = new mb.ServerTCP(vector as never, { host: '127.0.0.1', port, unitID: 255 });
  await new Promise<void>((resolve, reject) => {
    server.on('initialized', () => resolve());
    server.on('serverError', reject);
  });
  const inner = (server as unknown as { _server: import('node:net').Server })._server;
  inner.on('connection', (sock) => {
    sock.on('data', (data: Buffer) => {
      // MBAP: unit id at byte 6 (one request per data event is enough for counting in tests).
      if (data.length > 6) requests.set(data[6]!, (requests.get(data[6]!) ?? 0) + 1);
    });
  });
  const api: TestModbusServer = {
    port: (inner.address() as AddressInfo).port,
    silent,
    unmapped,
    requests,
    set(unitId, area, address, values) {
      for (let i = 0; i < values.length; i++) memory.set(`${unitId}:${area}:${address + i}`, values[i]!);
    },
    load(image) {
      for (const [unit, areas] of Object.entries(image)) {
        for (const [area, blocks] of Object.entries(areas ?? {})) {
          for (const [start, values] of Object.entries(blocks ?? {})) {
            api.set(Number(unit), area as Area, Number(start), values);
          }
        }
      }
    },
    clear() {
      memory.clear();
      silent.clear();
      unmapped.clear();
    },
    close: () =>
      new Promise<void>((resolve) => {
        for (const sock of (
          server as unknown as { socks: Map<import('node:net').Socket, number> }
        ).socks.keys())
          sock.destroy();
        server.close(() => resolve());
      }),
  };
  return api;
}
