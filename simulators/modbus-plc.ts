/**
 * A simulated PLC serving several Modbus units (unit 1 = PRESS1, unit 2 = OVEN1 by default) over
 * Modbus TCP and over Modbus RTU on a serial line, both reading the same register images, like a PLC
 * with an Ethernet port and an RS-485 port. Only the read functions (01, 02, 03, 04) are implemented;
 * anything else is answered with exception 01 (Illegal Function), as a read-only device does.
 *
 * The images are rewritten from the scenario engine at the end of every `step()`, so a single read
 * request always returns values of one instant (read lot id and counters in one request to get a
 * consistent pair).
 *
 * Faults: `setUnitFault(unit, { kind: 'silent' })` makes a unit stop answering (clients time out) while
 * the others keep answering; `{ kind: 'exception', code }` makes it answer every request with that
 * exception; `stopTcp()`/`startTcp()` close and reopen the listener on the same port, dropping clients.
 *
 * @example
 *   const plc = await startModbusPlc({ engine, tcp: { port: 0 } });
 *   plc.tcpPort; // the port chosen
 *   plc.setUnitFault(2, { kind: 'silent' });
 *   await plc.stop();
 */

import { once } from 'node:events';
import net from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';
import { SerialPort } from 'serialport';
import { encodeStatus, OVEN_MAP, PRESS_MAP, type UnitMap } from './modbus-maps.ts';
import {
  createImage,
  encodeRtuFrame,
  encodeTcpResponse,
  exceptionPdu,
  handlePdu,
  MbapDecoder,
  RtuFramer,
  type UnitImage,
} from './modbus-protocol.ts';
import type { MachineStatus, Scenario } from './scenario.ts';

export interface ModbusUnitSpec {
  /** 1..247 */
  unitId: number;
  /** A press or oven machine of the engine. */
  machine: string;
}

export type UnitFault = { kind: 'silent' } | { kind: 'exception'; code: number };

export interface ModbusPlcOptions {
  engine: Scenario;
  /** Default: unit 1 = first press, unit 2 = first oven of the engine. */
  units?: readonly ModbusUnitSpec[];
  /** Modbus TCP listener; omit or false for none. */
  tcp?: false | { host?: string; port?: number; maxConnections?: number };
  /** Modbus RTU server on a serial device (e.g. one end of a pty pair); omit or false for none. */
  rtu?: false | { path: string; baudRate?: number; silenceMs?: number };
}

/** Open TCP connections accepted at once; further connections are refused (closed on accept). */
export const TCP_CONNECTIONS_MAX_DEFAULT = 16;
/** A client that pipelines requests without reading the answers is cut off beyond this many queued bytes. */
export const TCP_WRITE_BACKLOG_MAX_BYTES = 64 * 1024;
/** Line silence that ends an RTU frame whose length the function code does not tell. */
export const RTU_SILENCE_MS_DEFAULT = 20;

interface Unit {
  unitId: number;
  machine: string;
  map: UnitMap<MachineStatus>;
  image: UnitImage;
}

export class ModbusPlc {
  readonly units: readonly Unit[];
  private readonly engine: Scenario;
  private readonly faults = new Map<number, UnitFault>();
  private readonly unsubscribe: () => void;
  private readonly tcpOptions: { host: string; port: number; maxConnections: number } | null;
  private tcpServer: net.Server | null = null;
  private readonly sockets = new Set<net.Socket>();
  private readonly rtuOptions: { path: string; baudRate: number; silenceMs: number } | null;
  private serial: SerialPort | null = null;
  private silenceTimer: NodeJS.Timeout | null = null;
  /**
   * Requests answered (data or exception); requests left unanswered (unit silent or unknown); TCP
   * connections closed for a bad MBAP header; TCP connections refused over the connection limit.
   */
  readonly stats = { answered: 0, unanswered: 0, framingErrors: 0, refusedConnections: 0 };
  private rtuFramer = new RtuFramer();

  constructor(options: ModbusPlcOptions) {
    this.engine = options.engine;
    const specs = options.units ?? defaultUnits(options.engine);
    const ids = new Set<number>();
    this.units = specs.map((spec) => {
      if (!Number.isInteger(spec.unitId) || spec.unitId < 1 || spec.unitId > 247) {
        throw new RangeError(`unit id must be 1..247, got ${spec.unitId}`);
      }
      if (ids.has(spec.unitId)) throw new RangeError(`duplicate unit id ${spec.unitId}`);
      ids.add(spec.unitId);
      const kind = this.engine.status(spec.machine).kind;
      if (kind === 'cnc')
        throw new RangeError(`${spec.machine} is a CNC: the Modbus PLC serves presses and ovens`);
      const map = (kind === 'press' ? PRESS_MAP : OVEN_MAP) as UnitMap<MachineStatus>;
      return { unitId: spec.unitId, machine: spec.machine, map, image: createImage(map.sizes) };
    });
    this.tcpOptions = options.tcp
      ? {
          host: options.tcp.host ?? '127.0.0.1',
          port: options.tcp.port ?? 0,
          maxConnections: options.tcp.maxConnections ?? TCP_CONNECTIONS_MAX_DEFAULT,
        }
      : null;
    this.rtuOptions = options.rtu
      ? {
          path: options.rtu.path,
          baudRate: options.rtu.baudRate ?? 19200,
          silenceMs: options.rtu.silenceMs ?? RTU_SILENCE_MS_DEFAULT,
        }
      : null;
    this.refresh();
    this.unsubscribe = this.engine.onStep(() => this.refresh());
  }

  /** Modbus TCP connections open now. */
  get tcpConnections(): number {
    return this.sockets.size;
  }

  /** The TCP port listened on (fixed after the first start, reused by restarts), or null without TCP. */
  get tcpPort(): number | null {
    return this.tcpOptions ? this.tcpOptions.port : null;
  }

  get tcpUrl(): string | null {
    return this.tcpOptions ? `tcp://${this.tcpOptions.host}:${this.tcpOptions.port}` : null;
  }

  /** Serial device the RTU server listens on, or null without RTU. */
  get rtuPath(): string | null {
    return this.rtuOptions?.path ?? null;
  }

  /** Injects a fault on one unit (null clears it). */
  setUnitFault(unitId: number, fault: UnitFault | null): void {
    if (!this.units.some((u) => u.unitId === unitId)) throw new RangeError(`no unit ${unitId}`);
    if (
      fault?.kind === 'exception' &&
      !(Number.isInteger(fault.code) && fault.code >= 1 && fault.code <= 255)
    ) {
      throw new RangeError(`exception code must be 1..255, got ${fault.code}`);
    }
    if (fault) this.faults.set(unitId, fault);
    else this.faults.delete(unitId);
  }

  unitFault(unitId: number): UnitFault | null {
    return this.faults.get(unitId) ?? null;
  }

  async start(): Promise<void> {
    if (this.tcpOptions) await this.startTcp();
    if (this.rtuOptions) await this.startRtu();
  }

  async startTcp(): Promise<void> {
    const o = this.tcpOptions;
    if (!o) throw new Error('this PLC has no TCP listener configured');
    if (this.tcpServer) return;
    const server = net.createServer((sock) => this.accept(sock, o.maxConnections));
    server.listen({ host: o.host, port: o.port });
    await once(server, 'listening');
    o.port = (server.address() as net.AddressInfo).port;
    this.tcpServer = server;
  }

  /** Closes the listener and every connection (clients see a reset); startTcp() reopens the same port. */
  async stopTcp(): Promise<void> {
    const server = this.tcpServer;
    if (!server) return;
    this.tcpServer = null;
    const closed = new Promise<void>((resolve) => server.close(() => resolve()));
    for (const s of this.sockets) s.destroy();
    this.sockets.clear();
    await closed;
  }

  /** stopTcp(), wait `downMs`, startTcp() on the same port. */
  async restartTcp(options: { downMs?: number } = {}): Promise<void> {
    await this.stopTcp();
    if (options.downMs) await sleep(options.downMs);
    await this.startTcp();
  }

  async startRtu(): Promise<void> {
    const o = this.rtuOptions;
    if (!o) throw new Error('this PLC has no RTU line configured');
    if (this.serial) return;
    const port = new SerialPort({ path: o.path, baudRate: o.baudRate, autoOpen: false });
    await new Promise<void>((resolve, reject) => port.open((err) => (err ? reject(err) : resolve())));
    this.rtuFramer = new RtuFramer();
    port.on('data', (chunk: Buffer) => this.onSerialData(chunk, o.silenceMs));
    this.serial = port;
  }

  /** Closes the serial port (like pulling the RS-485 plug); startRtu() reopens it. */
  async stopRtu(): Promise<void> {
    const port = this.serial;
    if (!port) return;
    this.serial = null;
    if (this.silenceTimer) clearTimeout(this.silenceTimer);
    this.silenceTimer = null;
    port.removeAllListeners('data');
    await new Promise<void>((resolve) => port.close(() => resolve()));
  }

  async stop(): Promise<void> {
    this.unsubscribe();
    await this.stopTcp();
    await this.stopRtu();
  }

  /** Rewrites every unit's image from the engine's current status. */
  private refresh(): void {
    for (const u of this.units) encodeStatus(u.map, this.engine.status(u.machine), u.image);
  }

  /** The response PDU for a request to a unit, or null when nothing must be sent. */
  private respond(unitId: number, pdu: Buffer): Buffer | null {
    const unit = this.units.find((u) => u.unitId === unitId);
    const fault = this.faults.get(unitId);
    // Unknown units stay silent: on a bus nobody else answers for them, and a TCP client gets the same
    // timeout it would get from a gateway without that device.
    if (!unit || fault?.kind === 'silent') {
      this.stats.unanswered++;
      return null;
    }
    this.stats.answered++;
    if (fault?.kind === 'exception') return exceptionPdu(pdu[0]!, fault.code);
    return handlePdu(unit.image, pdu);
  }

  private accept(sock: net.Socket, maxConnections: number): void {
    if (this.sockets.size >= maxConnections) {
      this.stats.refusedConnections++;
      sock.destroy();
      return;
    }
    this.sockets.add(sock);
    sock.setNoDelay(true);
    const decoder = new MbapDecoder();
    sock.on('data', (chunk: Buffer) => {
      let requests: ReturnType<MbapDecoder['push']>;
      try {
        requests = decoder.push(chunk);
      } catch {
        this.stats.framingErrors++;
        sock.destroy();
        return;
      }
      for (const r of requests) {
        const pdu = this.respond(r.unitId, r.pdu);
        if (pdu) sock.write(encodeTcpResponse(r.transactionId, r.unitId, pdu));
      }
      if (sock.writableLength > TCP_WRITE_BACKLOG_MAX_BYTES) sock.destroy();
    });
    sock.on('error', () => sock.destroy()); // resets from clients are normal: the close handler cleans up
    sock.on('close', () => this.sockets.delete(sock));
  }

  private onSerialData(chunk: Buffer, silenceMs: number): void {
    const port = this.serial;
    if (!port) return;
    const frames = this.rtuFramer.push(chunk);
    this.answerRtu(port, frames);
    if (this.silenceTimer) clearTimeout(this.silenceTimer);
    this.silenceTimer = null;
    if (this.rtuFramer.pending > 0) {
      this.silenceTimer = setTimeout(() => {
        this.silenceTimer = null;
        if (this.serial) this.answerRtu(this.serial, this.rtuFramer.flushOnSilence());
      }, silenceMs);
    }
  }

  private answerRtu(port: SerialPort, frames: ReturnType<RtuFramer['push']>): void {
    for (const f of frames) {
      if (f.unitId === 0) continue; // broadcast: reads are not broadcastable, and broadcasts get no answer
      const pdu = this.respond(f.unitId, f.pdu);
      if (pdu) port.write(encodeRtuFrame(f.unitId, pdu));
    }
  }
}

function defaultUnits(engine: Scenario): ModbusUnitSpec[] {
  const units: ModbusUnitSpec[] = [];
  const press = engine.machineIds('press')[0];
  const oven = engine.machineIds('oven')[0];
  if (press) units.push({ unitId: 1, machine: press });
  if (oven) units.push({ unitId: 2, machine: oven });
  return units;
}

/** Creates and starts a PLC (TCP and/or RTU as configured). */
export async function startModbusPlc(options: ModbusPlcOptions): Promise<ModbusPlc> {
  const plc = new ModbusPlc(options);
  try {
    await plc.start();
  } catch (err) {
    await plc.stop();
    throw err;
  }
  return plc;
}
