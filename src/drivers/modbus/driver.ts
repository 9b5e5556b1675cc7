/**
 * Modbus TCP and RTU driver (modbus-serial). One connection per device, any number of units on it.
 *
 * Scheduling: every unit has its own poll loop, and the units share the connection through a FIFO
 * semaphore of `requestsInFlightMax` permits (always 1 on a serial line). A unit whose request times
 * out is marked down: its tags go bad at once, the rest of its cycle is skipped, and it is probed
 * again with one cycle per backoff step (max(pollIntervalMs, 4 × timeoutMs) doubling up to
 * reconnectMaxDelayMs). So a
 * dead unit costs the others at most one timeout per probe on a serial line or with one request in
 * flight, and nothing at all with two or more in flight over TCP.
 *
 * Errors: a timeout marks the unit's tags bad ("timeout"); an exception response marks the request's
 * tags bad ("Modbus exception N: …"). Exception 2 (illegal data address) on a request that merged
 * several tags splits it into one request per tag for the rest of the connection, so one unmapped
 * register inside a gap costs only the tag that really sits on it. A bad reading is emitted when a
 * tag's failure reason changes, not on every poll; good readings are emitted on every poll.
 *
 * One poll of a unit is one batch with one source time (when its last response arrived): its
 * requests are one read, applied together by the normaliser (docs/device-maps.md, "Order within one
 * read"), never a counter before the input registers read with it.
 */
import { isAbsolute, resolve } from 'node:path';
import mb from 'modbus-serial';
import {
  aborted,
  Backoff,
  DriverBase,
  DriverError,
  errorMessage,
  type OnceAcquired,
  sleep,
} from '../common/lifecycle.ts';
import { Semaphore } from '../common/semaphore.ts';
import type { DriverContext, OnceOptions, Reading } from '../types.ts';
import { type Decoder, decodeBit, registerDecoder } from './decode.ts';
import { isBitArea, planProblems, planRequests, type ReadRequest, tagSize } from './plan.ts';
import type { ModbusDevice } from './schema.ts';

const ModbusRTU = mb.default;
type ModbusClient = InstanceType<typeof ModbusRTU>;

interface TagState {
  name: string;
  decoder: Decoder | null;
  /** Reason of the last bad reading emitted, or null while the tag reads good. */
  lastBad: string | null;
}

interface PlannedRead {
  request: ReadRequest;
  /** The tags of the request with their offset (registers or bits) from its first address. */
  slots: { tag: TagState; offset: number }[];
}

interface UnitState {
  unitId: number;
  reads: PlannedRead[];
  tags: TagState[];
  up: boolean;
  nextProbeMs: number;
  probe: Backoff;
  polls: number;
  timeouts: number;
  exceptions: number;
  splits: number;
  overruns: number;
  lastPollMs: number | null;
  lastPollDurationMs: number | null;
}

interface Connection {
  client: ModbusClient;
  semaphore: Semaphore;
  signal: AbortSignal;
  lost: (err: Error) => void;
}

export class ModbusDriver extends DriverBase {
  readonly #config: ModbusDevice;
  readonly #units: UnitState[];
  readonly #allTags: TagState[];

  constructor(device: ModbusDevice, ctx: DriverContext) {
    super(device.id, 'modbus', ctx, device.connection.reconnectMaxDelayMs);
    this.#config = device;
    const c = device.connection;
    const limits = {
      maxRegistersPerRequest: c.maxRegistersPerRequest,
      maxBitsPerRequest: c.maxBitsPerRequest,
      maxGapRegisters: c.maxGapRegisters,
      maxGapBits: c.maxGapBits,
    };
    const problems = planProblems(device.tags, limits);
    if (problems.length > 0) {
      const p = problems[0]!;
      throw new RangeError(
        `device ${device.id}: tags[${p.index}] (${device.tags[p.index]!.name}): ${p.message}`,
      );
    }
    this.#allTags = device.tags.map((t) => ({
      name: t.name,
      decoder: isBitArea(t.area) ? null : registerDecoder(t),
      lastBad: null,
    }));
    const byUnit = new Map<number, UnitState>();
    for (const request of planRequests(device.tags, limits)) {
      let unit = byUnit.get(request.unitId);
      if (!unit) {
        unit = {
          unitId: request.unitId,
          reads: [],
          tags: [],
          up: true,
          nextProbeMs: 0,
          // A probe costs one timeout of line time: starting at 4 timeouts keeps a dead unit to at most a
          // quarter of the line while it is first retried, and less as the interval grows.
          probe: new Backoff(c.reconnectMaxDelayMs, Math.max(c.pollIntervalMs, 4 * c.timeoutMs)),
          polls: 0,
          timeouts: 0,
          exceptions: 0,
          splits: 0,
          overruns: 0,
          lastPollMs: null,
          lastPollDurationMs: null,
        };
        byUnit.set(request.unitId, unit);
      }
      unit.reads.push(this.#plannedRead(request));
      for (const i of request.tags) unit.tags.push(this.#allTags[i]!);
    }
    this.#units = [...byUnit.values()];
  }

  /** The read requests of one poll cycle, per unit (for `run --once`, docs and tests). */
  get plan(): readonly ReadRequest[] {
    return this.#units.flatMap((u) => u.reads.map((r) => r.request));
  }

  #plannedRead(request: ReadRequest): PlannedRead {
    const tags = this.#config.tags;
    return {
      request,
      slots: request.tags.map((i) => ({
        tag: this.#allTags[i]!,
        offset: tags[i]!.address - request.address,
      })),
    };
  }

  protected override detail(): Record<string, unknown> {
    const units: Record<string, unknown> = {};
    for (const u of this.#units) {
      units[String(u.unitId)] = {
        state: u.up ? 'up' : 'down',
        requests: u.reads.length,
        polls: u.polls,
        timeouts: u.timeouts,
        exceptions: u.exceptions,
        splits: u.splits,
        overruns: u.overruns,
        lastPollMs: u.lastPollMs,
        lastPollDurationMs: u.lastPollDurationMs,
      };
    }
    return { units };
  }

  /** Starts opening the socket or serial port (see {@link #opened}). */
  #open(client: ModbusClient): Promise<unknown> {
    const c = this.#config.connection;
    const opening =
      c.transport === 'tcp'
        ? client.connectTCP(c.host, { port: c.port })
        : client.connectRTUBuffered(isAbsolute(c.path) ? c.path : resolve(this.ctx.dataDir, c.path), {
            baudRate: c.baudRate,
            parity: c.parity,
            dataBits: c.dataBits,
            stopBits: c.stopBits,
          });
    opening.catch(() => {});
    return opening;
  }

  /**
   * Waits for the connection to open, at most connectTimeoutMs (throws a DriverError). Returns false
   * when `signal` aborted first.
   */
  async #opened(client: ModbusClient, opening: Promise<unknown>, signal: AbortSignal): Promise<boolean> {
    const c = this.#config.connection;
    let timer: NodeJS.Timeout | undefined;
    const timedOut = new Promise<'timeout'>((resolve) => {
      timer = setTimeout(() => resolve('timeout'), c.connectTimeoutMs);
    });
    try {
      const outcome = await Promise.race([opening.then(() => 'open' as const), timedOut, aborted(signal)]);
      if (outcome === 'timeout') {
        throw new DriverError(
          'connect',
          `connect to ${this.#endpoint()} timed out after ${c.connectTimeoutMs} ms`,
        );
      }
    } catch (err) {
      if (err instanceof DriverError) throw err;
      throw new DriverError('connect', `${this.#endpoint()}: ${errorMessage(err)}`);
    } finally {
      clearTimeout(timer);
    }
    if (signal.aborted) return false;
    client.setTimeout(c.timeoutMs);
    return true;
  }

  protected async session(signal: AbortSignal): Promise<void> {
    const c = this.#config.connection;
    const client = new ModbusRTU();
    let lostWith: ((err: Error) => void) | null = null;
    const lost = new Promise<void>((_, reject) => {
      lostWith = reject;
    });
    lost.catch(() => {});
    // modbus-serial re-emits port errors; without a listener an 'error' event would crash the process.
    client.on('error', (err: unknown) => lostWith?.(new DriverError('disconnected', errorMessage(err))));
    client.on('close', () => lostWith?.(new DriverError('disconnected', 'connection closed by peer')));
    const connectionAbort = new AbortController();
    const onAbort = () => connectionAbort.abort();
    signal.addEventListener('abort', onAbort, { once: true });
    const semaphore = new Semaphore(c.transport === 'tcp' ? c.requestsInFlightMax : 1);
    let connected = false;
    let opening: Promise<unknown> = Promise.resolve();
    try {
      opening = this.#open(client);
      if (!(await this.#opened(client, opening, signal))) return;
      connected = true;
      this.markConnected();
      for (const u of this.#units) {
        u.up = true;
        u.probe.reset();
      }
      const conn: Connection = {
        client,
        semaphore,
        signal: connectionAbort.signal,
        lost: (err) => lostWith?.(err),
      };
      const loops = this.#units.map((u) => this.#unitLoop(u, conn));
      try {
        await Promise.race([lost, aborted(signal)]);
      } finally {
        connectionAbort.abort();
        semaphore.close(new DriverError('disconnected', 'connection closing'));
        await Promise.allSettled(loops);
      }
    } catch (err) {
      if (err instanceof DriverError) throw err;
      throw new DriverError(
        connected ? 'disconnected' : 'connect',
        `${this.#endpoint()}: ${errorMessage(err)}`,
      );
    } finally {
      signal.removeEventListener('abort', onAbort);
      lostWith = null;
      if (connected) this.#markAllBad('disconnected');
      await closeClient(client, c.transport, opening);
    }
  }

  /** One poll of every unit (as the poll loops would, sharing the line the same way), then close. */
  protected async acquireOnce(signal: AbortSignal, options: OnceOptions): Promise<OnceAcquired> {
    const c = this.#config.connection;
    const client = new ModbusRTU();
    let lostWith: ((err: Error) => void) | null = null;
    const lost = new Promise<never>((_, reject) => {
      lostWith = reject;
    });
    lost.catch(() => {});
    client.on('error', (err: unknown) => lostWith?.(new DriverError('disconnected', errorMessage(err))));
    client.on('close', () => lostWith?.(new DriverError('disconnected', 'connection closed by peer')));
    const semaphore = new Semaphore(c.transport === 'tcp' ? c.requestsInFlightMax : 1);
    let opening: Promise<unknown> = Promise.resolve();
    const batches: Reading[][] = [];
    const problems: string[] = [];
    try {
      opening = this.#open(client);
      if (!(await this.#opened(client, opening, signal))) {
        problems.push(`${this.#endpoint()}: no connection within ${options.timeoutMs} ms`);
        return { batches, problems };
      }
      const conn: Connection = { client, semaphore, signal, lost: (err) => lostWith?.(err) };
      // Units share the line as the poll loops do; a unit that times out costs only its own poll.
      const results: (Reading[] | undefined)[] = this.#units.map(() => undefined);
      const polls = this.#units.map(async (u, i) => {
        results[i] = await this.#pollUnit(u, conn);
      });
      try {
        await Promise.race([Promise.all(polls), lost, aborted(signal)]);
      } finally {
        this.#units.forEach((u, i) => {
          const batch = results[i];
          if (batch) batches.push(batch);
          else problems.push(`unit ${u.unitId}: no complete poll within ${options.timeoutMs} ms`);
        });
      }
    } catch (err) {
      problems.push(err instanceof DriverError ? err.message : `${this.#endpoint()}: ${errorMessage(err)}`);
    } finally {
      lostWith = null;
      semaphore.close(new DriverError('disconnected', 'connection closing'));
      await closeClient(client, c.transport, opening);
    }
    return { batches, problems };
  }

  #endpoint(): string {
    const c = this.#config.connection;
    return c.transport === 'tcp' ? `${c.host}:${c.port}` : c.path;
  }

  async #unitLoop(unit: UnitState, conn: Connection): Promise<void> {
    const interval = this.#config.connection.pollIntervalMs;
    let due = this.now();
    while (!conn.signal.aborted) {
      if (unit.up || this.now() >= unit.nextProbeMs) {
        try {
          const batch = await this.#pollUnit(unit, conn);
          if (batch) this.emit(batch);
        } catch (err) {
          if (conn.signal.aborted) return;
          conn.lost(err instanceof Error ? err : new Error(String(err)));
          return;
        }
      }
      due += interval;
      const now = this.now();
      if (due <= now) {
        // The cycle took longer than the interval: skip the missed cycles rather than bunch them up.
        unit.overruns++;
        due = now + interval - ((now - due) % interval);
      }
      if (!(await sleep(due - now, conn.signal))) return;
    }
  }

  /**
   * One poll cycle of a unit: its requests in turn, one batch of readings (undefined when the
   * connection's signal aborted midway). Throws a DriverError when the connection is lost.
   */
  async #pollUnit(unit: UnitState, conn: Connection): Promise<Reading[] | undefined> {
    const started = this.now();
    unit.polls++;
    const batch: Reading[] = [];
    for (let i = 0; i < unit.reads.length; i++) {
      const read = unit.reads[i]!;
      await conn.semaphore.acquire();
      let data: Uint8Array;
      try {
        if (conn.signal.aborted) return;
        const answered = this.timeRead();
        data = await readRequest(conn.client, read.request);
        answered();
      } catch (err) {
        if (conn.signal.aborted) return;
        const kind = classify(err);
        if (kind === 'disconnected') throw new DriverError('disconnected', errorMessage(err));
        if (kind === 'timeout') {
          unit.timeouts++;
          this.countError('timeout', err, { key: unit.unitId, unitId: unit.unitId });
          const wasUp = unit.up;
          unit.up = false;
          unit.nextProbeMs = this.now() + unit.probe.next();
          if (wasUp) {
            this.ctx.log.warn('unit stopped answering; probing it with backoff', {
              device: this.device,
              unitId: unit.unitId,
            });
          }
          this.#markBad(unit.tags, `timeout (unit ${unit.unitId})`, 0, batch);
          break;
        }
        if (kind === 'exception') {
          unit.exceptions++;
          const code = (err as { modbusCode?: number }).modbusCode;
          this.countError(`exception-${code}`, err, { key: `${unit.unitId}`, unitId: unit.unitId });
          if (code === 2 && read.slots.length > 1) {
            // A merged request crossed an address the device does not map: read its tags one by one.
            unit.splits++;
            const single = read.request.tags.map((t) => {
              const tag = this.#config.tags[t]!;
              return this.#plannedRead({
                ...read.request,
                address: tag.address,
                count: tagSize(tag),
                tags: [t],
              });
            });
            unit.reads.splice(i, 1, ...single);
            i--;
            continue;
          }
        } else {
          this.countError('frame', err, { key: `${unit.unitId}`, unitId: unit.unitId });
        }
        this.#markBad(
          read.slots.map((s) => s.tag),
          errorMessage(err),
          0,
          batch,
        );
        continue;
      } finally {
        conn.semaphore.release();
      }
      if (!unit.up) {
        unit.up = true;
        unit.probe.reset();
        this.ctx.log.info('unit answering again', { device: this.device, unitId: unit.unitId });
      }
      this.#decode(read, data, batch);
    }
    // One poll is one read: every reading of it carries the time the poll completed, so a consumer
    // applies them together (a counter and the values read with it), whatever the requests' timing.
    const doneMs = this.now();
    for (const r of batch) r.sourceTimeMs = doneMs;
    unit.lastPollMs = started;
    unit.lastPollDurationMs = doneMs - started;
    return batch;
  }

  /** Adds the readings of one response; #pollUnit stamps them with the poll's time. */
  #decode(read: PlannedRead, data: Uint8Array, batch: Reading[]): void {
    for (const { tag, offset } of read.slots) {
      tag.lastBad = null;
      batch.push({
        device: this.device,
        tag: tag.name,
        value: tag.decoder ? tag.decoder.decode(data, offset) : decodeBit(data, offset),
        quality: 'good',
        sourceTimeMs: 0,
      });
    }
  }

  /** Adds a bad reading for each tag whose failure reason changed. */
  #markBad(tags: readonly TagState[], reason: string, timeMs: number, batch: Reading[]): void {
    for (const tag of tags) {
      if (tag.lastBad === reason) continue;
      tag.lastBad = reason;
      batch.push({
        device: this.device,
        tag: tag.name,
        value: null,
        quality: 'bad',
        sourceTimeMs: timeMs,
        reason,
      });
    }
  }

  #markAllBad(reason: string): void {
    const batch: Reading[] = [];
    this.#markBad(this.#allTags, reason, this.now(), batch);
    this.emit(batch);
  }
}

function readRequest(client: ModbusClient, r: ReadRequest): Promise<Uint8Array> {
  return new Promise((resolve, reject) => {
    const done = (err: unknown, res?: { buffer: Buffer }) => {
      if (err) reject(err);
      else resolve(res!.buffer);
    };
    switch (r.functionCode) {
      case 1:
        client.writeFC1(r.unitId, r.address, r.count, done);
        break;
      case 2:
        client.writeFC2(r.unitId, r.address, r.count, done);
        break;
      case 3:
        client.writeFC3(r.unitId, r.address, r.count, done);
        break;
      case 4:
        client.writeFC4(r.unitId, r.address, r.count, done);
        break;
    }
  });
}

function classify(err: unknown): 'timeout' | 'exception' | 'disconnected' | 'frame' {
  const e = err as { name?: string; errno?: string; modbusCode?: number };
  if (e.name === 'TransactionTimedOutError' || e.errno === 'ETIMEDOUT') return 'timeout';
  if (typeof e.modbusCode === 'number') return 'exception';
  if (e.name === 'PortNotOpenError' || e.errno === 'ECONNREFUSED' || e.name === 'DriverError')
    return 'disconnected';
  return 'frame';
}

async function closeClient(
  client: ModbusClient,
  transport: 'tcp' | 'rtu',
  opening: Promise<unknown>,
): Promise<void> {
  if (transport === 'rtu') {
    // A serial port still opening would be left open (and its file descriptor leaked): let it finish.
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([
      opening.catch(() => {}),
      new Promise((r) => {
        timer = setTimeout(r, 2_000);
      }),
    ]);
    clearTimeout(timer);
  }
  return new Promise((resolve) => {
    const timer = setTimeout(resolve, 1_000);
    const done = () => {
      clearTimeout(timer);
      resolve();
    };
    try {
      (client as unknown as NodeJS.EventEmitter).removeAllListeners('close');
      if (transport === 'tcp') client.destroy(done);
      else if (client.isOpen) client.close(done);
      else done();
    } catch {
      done();
    }
    // Late port errors after closing are expected; never let them crash the process.
    client.on('error', () => {});
  });
}

export function createModbusDriver(device: ModbusDevice, ctx: DriverContext): ModbusDriver {
  return new ModbusDriver(device, ctx);
}
