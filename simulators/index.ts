/**
 * The simulated shop floor: one seeded scenario engine rendered by an OPC UA CNC server, a Modbus PLC
 * (TCP and RTU) and MQTT sensors, with the ground truth of everything that happened.
 *
 * @example Tests (manual clock: nothing moves until step())
 *   const sims = await startSimulators({ seed: 42, startMs: Date.UTC(2026, 0, 5, 6), scenario: { cycleTimeMs: 10 },
 *     opcua: { pkiDir }, modbus: { rtu: true }, mqtt: {} });
 *   sims.step(sims.engine.nowMs + 1_000);
 *   sims.groundTruth.query({ kind: 'part_completed' });
 *   await sims.faults.restartOpcua({ downMs: 200 });
 *   await sims.stop();
 *
 * @example CLI (`masbc-edge simulate`): real time, endpoints and a status line printed
 *   const sims = await runSimulators({ seed: 7 });
 *   process.once('SIGINT', () => void sims.stop());
 */

import { randomInt } from 'node:crypto';
import path from 'node:path';
import type { GroundTruthLog } from './ground-truth.ts';
import { type ModbusPlc, type ModbusPlcOptions, startModbusPlc, type UnitFault } from './modbus-plc.ts';
import { type MqttSensors, type MqttSensorsOptions, startMqttSensors } from './mqtt-sensors.ts';
import { type OpcuaCnc, type OpcuaCncOptions, startOpcuaCnc } from './opcua-cnc.ts';
import { createPtyPair, type PtyPair } from './pty.ts';
import {
  type Counters,
  createScenario,
  runRealTime,
  type Scenario,
  type ScenarioOptions,
} from './scenario.ts';

export type { GroundTruthRecord, RecordKind } from './ground-truth.ts';
export { GroundTruthLog } from './ground-truth.ts';
export type { UnitFault } from './modbus-plc.ts';
export type { Counters, MachineSpec, MachineStatus, ScenarioOptions } from './scenario.ts';

export interface SimulatorsOptions {
  /** Scenario seed (uint32). Default: random, reported in `Simulators.seed`. */
  seed?: number;
  /** Simulated start time, ms since the epoch. Default: now. */
  startMs?: number;
  /** Everything else of the scenario (cycle time, lot sizes, fault probabilities, ground-truth file …). */
  scenario?: Omit<ScenarioOptions, 'seed' | 'startMs'>;
  /** `manual` (default): time moves only with `step()`. `realTime`: a timer steps the engine every tickMs. */
  clock?: 'manual' | { realTime: { tickMs?: number } };
  /** Folder for generated files (OPC UA certificates). Default `data/simulators` under the cwd. */
  dataDir?: string;
  /** OPC UA CNC server; false to skip. */
  opcua?: false | Omit<OpcuaCncOptions, 'engine'>;
  /** Modbus PLC; false to skip. TCP on an ephemeral port by default; `rtu: true` creates a socat pty pair. */
  modbus?:
    | false
    | (Omit<ModbusPlcOptions, 'engine' | 'rtu'> & { rtu?: boolean | { path: string; baudRate?: number } });
  /** MQTT broker and sensors; false to skip. */
  mqtt?: false | Omit<MqttSensorsOptions, 'engine'>;
}

export interface Endpoints {
  /** e.g. `opc.tcp://127.0.0.1:4840` */
  opcua: string | null;
  /** e.g. `tcp://127.0.0.1:5020` */
  modbusTcp: string | null;
  modbusTcpPort: number | null;
  /** The serial device a Modbus RTU client opens (the client end of the pty pair, or the given path). */
  modbusRtuPath: string | null;
  /** e.g. `mqtt://127.0.0.1:1883` */
  mqtt: string | null;
}

/** Fault injection. Servers come back on the same port, so clients must reconnect. */
export interface Faults {
  stopOpcua(): Promise<void>;
  startOpcua(): Promise<void>;
  restartOpcua(options?: { downMs?: number }): Promise<void>;
  /** `{ kind: 'silent' }`: the unit stops answering; `{ kind: 'exception', code }`; null: healthy again. */
  setModbusUnitFault(unitId: number, fault: UnitFault | null): void;
  stopModbusTcp(): Promise<void>;
  startModbusTcp(): Promise<void>;
  restartModbusTcp(options?: { downMs?: number }): Promise<void>;
  /** Closes and reopens the PLC's serial port (RTU clients time out meanwhile). */
  stopModbusRtu(): Promise<void>;
  startModbusRtu(): Promise<void>;
  /** Resets every MQTT client connection; the broker and its sessions stay. */
  dropMqttConnections(): void;
  stopMqtt(): Promise<void>;
  startMqtt(): Promise<void>;
  restartMqtt(options?: { downMs?: number }): Promise<void>;
}

export interface Simulators {
  readonly seed: number;
  readonly engine: Scenario;
  readonly groundTruth: GroundTruthLog;
  readonly opcua: OpcuaCnc | null;
  readonly modbus: ModbusPlc | null;
  readonly mqtt: MqttSensors | null;
  readonly endpoints: Endpoints;
  readonly faults: Faults;
  /** Advances simulated time (manual clock). Protocol servers are updated before it returns. */
  step(nowMs: number): void;
  counters(): Counters;
  /** Stops the clock, every server, the pty pair and the ground-truth file. Idempotent. */
  stop(): Promise<void>;
}

export async function startSimulators(options: SimulatorsOptions = {}): Promise<Simulators> {
  const seed = options.seed ?? randomInt(0, 2 ** 32);
  const engine = createScenario({ ...options.scenario, seed, startMs: options.startMs ?? Date.now() });
  const dataDir = options.dataDir ?? path.resolve('data', 'simulators');
  let opcua: OpcuaCnc | null = null;
  let modbus: ModbusPlc | null = null;
  let mqtt: MqttSensors | null = null;
  let pty: PtyPair | null = null;
  let clock: { stop(): void } | null = null;
  let stopped: Promise<void> | null = null;

  const stop = (): Promise<void> => {
    stopped ??= (async () => {
      clock?.stop();
      // Each close is independent: one failing must not leave the others running.
      const results = await Promise.allSettled([opcua?.stop(), modbus?.stop(), mqtt?.close()]);
      // The PLC has closed its end of the serial line; now socat can go.
      results.push(...(await Promise.allSettled([pty?.close()])));
      engine.close();
      const failed = results.find((r): r is PromiseRejectedResult => r.status === 'rejected');
      if (failed) throw failed.reason;
    })();
    return stopped;
  };

  try {
    if (options.opcua !== false) {
      opcua = await startOpcuaCnc({ pkiDir: path.join(dataDir, 'opcua-pki'), ...options.opcua, engine });
    }
    if (options.modbus !== false) {
      const { rtu, ...rest } = options.modbus ?? {};
      let rtuOption: ModbusPlcOptions['rtu'] = false;
      if (rtu === true) {
        pty = await createPtyPair();
        rtuOption = { path: pty.serverPath };
      } else if (rtu) {
        rtuOption = rtu;
      }
      modbus = await startModbusPlc({ tcp: {}, ...rest, rtu: rtuOption, engine });
    }
    if (options.mqtt !== false) mqtt = await startMqttSensors({ ...options.mqtt, engine });
  } catch (err) {
    await stop().catch(() => undefined); // the start error is the one worth reporting
    throw err;
  }

  if (options.clock && options.clock !== 'manual') clock = runRealTime(engine, options.clock.realTime);

  const need = <T>(sim: T | null, name: string): T => {
    if (!sim) throw new Error(`the ${name} simulator is not running in this set`);
    return sim;
  };
  const faults: Faults = {
    stopOpcua: () => need(opcua, 'OPC UA').stop(),
    startOpcua: () => need(opcua, 'OPC UA').start(),
    restartOpcua: (o) => need(opcua, 'OPC UA').restart(o),
    setModbusUnitFault: (unitId, fault) => need(modbus, 'Modbus').setUnitFault(unitId, fault),
    stopModbusTcp: () => need(modbus, 'Modbus').stopTcp(),
    startModbusTcp: () => need(modbus, 'Modbus').startTcp(),
    restartModbusTcp: (o) => need(modbus, 'Modbus').restartTcp(o),
    stopModbusRtu: () => need(modbus, 'Modbus').stopRtu(),
    startModbusRtu: () => need(modbus, 'Modbus').startRtu(),
    dropMqttConnections: () => need(mqtt, 'MQTT').dropConnections(),
    stopMqtt: () => need(mqtt, 'MQTT').stop(),
    startMqtt: () => need(mqtt, 'MQTT').start(),
    restartMqtt: (o) => need(mqtt, 'MQTT').restart(o),
  };

  return {
    seed,
    engine,
    groundTruth: engine.groundTruth,
    opcua,
    modbus,
    mqtt,
    endpoints: {
      opcua: opcua?.endpointUrl ?? null,
      modbusTcp: modbus?.tcpUrl ?? null,
      modbusTcpPort: modbus?.tcpPort ?? null,
      modbusRtuPath: pty?.clientPath ?? modbus?.rtuPath ?? null,
      mqtt: mqtt?.url ?? null,
    },
    faults,
    step: (nowMs) => engine.step(nowMs),
    counters: () => engine.counters(),
    stop,
  };
}

export interface RunSimulatorsOptions extends Omit<SimulatorsOptions, 'clock'> {
  /** Engine tick in real time. Default 100 ms. */
  tickMs?: number;
  /** Period of the one-line status. Default 5000 ms; 0 for none. */
  statusEveryMs?: number;
  /** Where lines go. Default console.log. */
  log?: (line: string) => void;
}

/**
 * Starts the simulators in real time for the demo and the `masbc-edge simulate` command: prints the
 * seed and where each server listens, then a status line periodically. Stop it with the returned
 * handle's `stop()` (e.g. on SIGINT).
 */
export async function runSimulators(options: RunSimulatorsOptions = {}): Promise<Simulators> {
  const { tickMs, statusEveryMs, log: logOption, ...rest } = options;
  const log = logOption ?? ((line: string) => console.log(line));
  const sims = await startSimulators({ ...rest, clock: { realTime: { tickMs } } });
  const e = sims.endpoints;
  log(`simulators: seed ${sims.seed} (pass it again to replay the same scenario)`);
  if (e.opcua) log(`  OPC UA CNC     ${e.opcua}  (namespace urn:masbc-edge:simulators:opcua-cnc)`);
  if (e.modbusTcp)
    log(
      `  Modbus TCP     ${e.modbusTcp}  (unit ${sims.modbus?.units.map((u) => `${u.unitId}=${u.machine}`).join(', ')})`,
    );
  if (e.modbusRtuPath) log(`  Modbus RTU     ${e.modbusRtuPath}  (client end of the serial line)`);
  if (e.mqtt) log(`  MQTT broker    ${e.mqtt}  (topics ${sims.mqtt?.topicPrefix}/#)`);
  const every = statusEveryMs ?? 5000;
  if (every > 0) {
    const timer = setInterval(() => log(statusLine(sims)), every);
    timer.unref();
    const stop = sims.stop;
    return {
      ...sims,
      stop: () => {
        clearInterval(timer);
        return stop();
      },
    };
  }
  return sims;
}

/** One line: each machine's state, lot and progress, plus ground-truth and queue figures. */
export function statusLine(sims: Simulators): string {
  const e = sims.engine;
  const parts = e.machineIds().map((id) => {
    const s = e.status(id);
    let text = `${id} ${s.state}`;
    if (s.alarm.active) text += ` (${s.alarm.code} ${s.alarm.text})`;
    if (s.lot)
      text += ` ${s.lot} ${s.kind === 'oven' ? `${s.zoneTempsC[1].toFixed(1)}degC` : `${s.partCount}/${s.plannedParts}`}`;
    return text;
  });
  const gt = sims.groundTruth;
  let tail = `ground truth ${gt.lastSeq} records (${gt.dropped} dropped)`;
  if (sims.mqtt) tail += `, mqtt queued ${sims.mqtt.queued} dropped ${sims.mqtt.stats.dropped}`;
  return `${new Date(e.nowMs).toISOString()} ${parts.join(' | ')} | ${tail}`;
}
