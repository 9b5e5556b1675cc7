/**
 * An OPC UA server exposing the engine's CNC turning centres, one object per machine, all in one
 * server (one endpoint to configure). For one server per machine, start one per machine with
 * `machines: ['CNC1']` and so on.
 *
 * Address space (namespace index 1, URI `urn:masbc-edge:simulators:opcua-cnc`, string NodeIds that
 * never change; full list in docs/simulators.md):
 *   ns=1;s=CNC1                     Object
 *   ns=1;s=CNC1.State               String   Idle | Running | Down
 *   ns=1;s=CNC1.Spindle.Speed       Double   rpm (AnalogItemType)
 *   ns=1;s=CNC1.Job.PartCount       UInt32   parts finished in the current lot
 *   ns=1;s=CNC1.Quality.Diameter    Double   mm, gauged after each part (AnalogItemType)
 *   ...
 *
 * Update contract (what a subscriber may rely on):
 *   - Every value carries the SourceTimestamp of the happening (simulated time), not of the write.
 *   - A part: ProductSerial and Step change when its cycle starts; when it completes, Diameter and
 *     InTolerance are written BEFORE PartCount and TotalParts, all four with the same SourceTimestamp.
 *     Between completion and the next part's serial there is an unloading gap (10% of the cycle).
 *   - A lot: OrderId, LotId, Product and PartsPlanned are written before PartCount resets to 0.
 *   - An alarm: Code and Text are written before Active becomes true; clearing only sets Active false
 *     (Code and Text keep the last alarm).
 *   - Before the first part of the run, Diameter and InTolerance have status BadWaitingForInitialData.
 *
 * Security: endpoints for None, and Basic256Sha256 with Sign and with SignAndEncrypt; anonymous
 * (unless `allowAnonymous: false`) and user name/password from `users`. Certificates live under
 * `pkiDir` (default `data/simulators/opcua-pki`, never the shared ~/.config folder).
 *
 * @example
 *   const cnc = await startOpcuaCnc({ engine, port: 0, pkiDir: '/tmp/pki', users: [{ username: 'op', password: 'pw' }] });
 *   cnc.endpointUrl; // opc.tcp://127.0.0.1:<port>
 *   await cnc.restart({ downMs: 500 }); // same port: clients must reconnect
 *   await cnc.stop();
 */

import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import {
  DataType,
  type EUInformation,
  MessageSecurityMode,
  type Namespace,
  OPCUACertificateManager,
  OPCUAServer,
  SecurityPolicy,
  StatusCodes,
  standardUnits,
  type UAObject,
  type UAVariable,
  Variant,
} from 'node-opcua';
import { type Credentials, credentialsMatch } from './credentials.ts';
import type { CncStatus, GroundTruthRecord, Scenario } from './scenario.ts';
import { CNC_PRODUCT } from './scenario.ts';

export const OPCUA_NAMESPACE_URI = 'urn:masbc-edge:simulators:opcua-cnc';

export interface OpcuaCncOptions {
  engine: Scenario;
  /** CNC machines to expose. Default: every CNC of the engine. */
  machines?: readonly string[];
  /** TCP port, 0 for an ephemeral one (kept across restarts). Default 0. */
  port?: number;
  /** Address to listen on and to name in the endpoint URL. Default 127.0.0.1. */
  hostname?: string;
  /** Folder for the server's certificate stores. Default data/simulators/opcua-pki (relative to cwd). */
  pkiDir?: string;
  /** Accepted user name/password pairs. Default none. */
  users?: readonly Credentials[];
  /** Default true. */
  allowAnonymous?: boolean;
  /**
   * Sessions the server accepts at once (default OPCUA_SESSIONS_MAX); further CreateSession requests are
   * refused with BadTooManySessions. Machine controllers often allow only a few (3 is common).
   */
  maxSessions?: number;
  /**
   * `accept-unknown` (default): any client certificate is accepted. `trusted-only`: like a controller
   * that checks clients, an unknown client certificate is refused and written to
   * `<pkiDir>/server/rejected/`; move it to `<pkiDir>/server/trusted/certs/` (and restart) to trust it.
   */
  clientCertificates?: 'accept-unknown' | 'trusted-only';
  /**
   * Variables beyond the CNC address space, under an `Extras` object, with a fixed value: to make the
   * simulator behave like a given controller (a `Float` tag, say). NodeId `ns=1;s=Extras.<name>`.
   */
  extraVariables?: readonly ExtraVariable[];
}

export interface ExtraVariable {
  name: string;
  dataType: DataType;
  value: Value;
  /** SourceTimestamp of the value (its last change), ms since the epoch. Default: the engine's time. */
  sourceTimeMs?: number;
}

/** Bounds passed to node-opcua (it enforces them; further sessions/connections are refused). */
export const OPCUA_SESSIONS_MAX = 20;
export const OPCUA_CONNECTIONS_MAX = 20;
/** Per-request limits the server advertises and enforces; the whole address space fits in one read. */
export const OPCUA_OPERATION_LIMITS = {
  maxNodesPerRead: 1000,
  maxNodesPerBrowse: 1000,
  maxNodesPerWrite: 1000,
  maxNodesPerMethodCall: 100,
  maxNodesPerRegisterNodes: 1000,
  maxNodesPerNodeManagement: 100,
  maxMonitoredItemsPerCall: 1000,
  maxNodesPerHistoryReadData: 100,
  maxNodesPerHistoryReadEvents: 100,
  maxNodesPerHistoryUpdateData: 100,
  maxNodesPerHistoryUpdateEvents: 100,
  maxNodesPerTranslateBrowsePathsToNodeIds: 1000,
} as const;

type Leaf =
  | 'State'
  | 'Spindle.Speed'
  | 'Spindle.Load'
  | 'Program.Name'
  | 'Job.LotId'
  | 'Job.OrderId'
  | 'Job.Product'
  | 'Job.ProductSerial'
  | 'Job.PartCount'
  | 'Job.PartsPlanned'
  | 'Job.Step'
  | 'Counters.TotalParts'
  | 'Quality.Diameter'
  | 'Quality.DiameterNominal'
  | 'Quality.DiameterTolerance'
  | 'Quality.InTolerance'
  | 'Alarm.Active'
  | 'Alarm.Code'
  | 'Alarm.Text';

interface LeafSpec {
  leaf: Leaf;
  dataType: DataType;
  description: string;
  analog?: { units: EUInformation; low: number; high: number };
}

/** The variables of one machine, in browse order. Mirrored in docs/simulators.md (checked by a test). */
export const CNC_VARIABLES: readonly LeafSpec[] = [
  { leaf: 'State', dataType: DataType.String, description: 'Idle, Running or Down' },
  {
    leaf: 'Spindle.Speed',
    dataType: DataType.Double,
    description: 'Spindle speed',
    analog: { units: standardUnits.revolutions_per_minute, low: 0, high: 6000 },
  },
  {
    leaf: 'Spindle.Load',
    dataType: DataType.Double,
    description: 'Spindle load',
    analog: { units: standardUnits.percent, low: 0, high: 150 },
  },
  { leaf: 'Program.Name', dataType: DataType.String, description: 'Active NC program' },
  { leaf: 'Job.LotId', dataType: DataType.String, description: 'Current lot (empty before the first lot)' },
  { leaf: 'Job.OrderId', dataType: DataType.String, description: 'Order of the current lot' },
  { leaf: 'Job.Product', dataType: DataType.String, description: 'Product (drawing) number of the lot' },
  { leaf: 'Job.ProductSerial', dataType: DataType.String, description: 'Serial of the part in the machine' },
  { leaf: 'Job.PartCount', dataType: DataType.UInt32, description: 'Parts finished in the current lot' },
  { leaf: 'Job.PartsPlanned', dataType: DataType.UInt32, description: 'Parts planned for the current lot' },
  { leaf: 'Job.Step', dataType: DataType.String, description: 'Process step of the part in the machine' },
  { leaf: 'Counters.TotalParts', dataType: DataType.UInt32, description: 'Lifetime part counter' },
  {
    leaf: 'Quality.Diameter',
    dataType: DataType.Double,
    description: 'Gauged diameter of the last finished part',
    analog: { units: standardUnits.millimetre, low: 0, high: 100 },
  },
  { leaf: 'Quality.DiameterNominal', dataType: DataType.Double, description: 'Nominal diameter, mm' },
  {
    leaf: 'Quality.DiameterTolerance',
    dataType: DataType.Double,
    description: 'Symmetric tolerance, +/- mm',
  },
  { leaf: 'Quality.InTolerance', dataType: DataType.Boolean, description: 'Last part within tolerance' },
  { leaf: 'Alarm.Active', dataType: DataType.Boolean, description: 'An alarm is active' },
  { leaf: 'Alarm.Code', dataType: DataType.UInt32, description: 'Code of the most recent alarm' },
  { leaf: 'Alarm.Text', dataType: DataType.String, description: 'Text of the most recent alarm' },
];

type Value = string | number | boolean | null;

export class OpcuaCnc {
  readonly machines: readonly string[];
  private readonly engine: Scenario;
  private readonly hostname: string;
  private portValue: number;
  private readonly pkiDir: string;
  private readonly users: readonly Credentials[];
  private readonly allowAnonymous: boolean;
  private readonly extraVariables: readonly ExtraVariable[];
  private readonly maxSessions: number;
  private readonly acceptUnknownClients: boolean;
  private server: OPCUAServer | null = null;
  private vars = new Map<string, UAVariable>();
  private unsubscribe: (() => void)[] = [];

  constructor(options: OpcuaCncOptions) {
    this.engine = options.engine;
    this.machines = options.machines ?? options.engine.machineIds('cnc');
    for (const id of this.machines) {
      if (options.engine.status(id).kind !== 'cnc') throw new RangeError(`${id} is not a CNC machine`);
    }
    this.hostname = options.hostname ?? '127.0.0.1';
    this.portValue = options.port ?? 0;
    this.pkiDir = options.pkiDir ?? path.resolve('data', 'simulators', 'opcua-pki');
    this.users = options.users ?? [];
    this.allowAnonymous = options.allowAnonymous ?? true;
    this.extraVariables = options.extraVariables ?? [];
    this.maxSessions = options.maxSessions ?? OPCUA_SESSIONS_MAX;
    this.acceptUnknownClients = (options.clientCertificates ?? 'accept-unknown') === 'accept-unknown';
    if (!Number.isInteger(this.maxSessions) || this.maxSessions < 1)
      throw new RangeError('maxSessions must be >= 1');
  }

  /**
   * Sessions of the running server (since its last start): open now, created, and refused for a limit
   * or security reason (BadTooManySessions, a wrong password …; not a client reactivating a session the
   * restarted server no longer knows). All 0 while stopped.
   */
  sessions(): { current: number; created: number; refused: number } {
    const e = this.server?.engine;
    if (!e) return { current: 0, created: 0, refused: 0 };
    const d = e.serverDiagnosticsSummary;
    return {
      current: d.currentSessionCount,
      created: d.cumulatedSessionCount,
      refused: d.securityRejectedSessionCount,
    };
  }

  get running(): boolean {
    return this.server !== null;
  }

  /** The listening port (the ephemeral one chosen at the first start, reused by restarts). */
  get port(): number {
    return this.portValue;
  }

  get endpointUrl(): string {
    return `opc.tcp://${this.hostname}:${this.portValue}`;
  }

  async start(): Promise<void> {
    if (this.server) return;
    const certificateManager = (name: string, acceptUnknown = true) =>
      new OPCUACertificateManager({
        rootFolder: path.join(this.pkiDir, name),
        automaticallyAcceptUnknownCertificate: acceptUnknown,
      });
    const server = new OPCUAServer({
      port: this.portValue,
      hostname: this.hostname,
      host: this.hostname,
      serverInfo: {
        applicationUri: OPCUA_NAMESPACE_URI,
        productUri: 'urn:masbc-edge:simulators',
        applicationName: { text: 'masbc-edge CNC simulator', locale: 'en' },
      },
      buildInfo: { productName: 'masbc-edge CNC simulator', manufacturerName: 'masbc-edge' },
      serverCertificateManager: certificateManager('server', this.acceptUnknownClients),
      userCertificateManager: certificateManager('user'),
      securityModes: [MessageSecurityMode.None, MessageSecurityMode.Sign, MessageSecurityMode.SignAndEncrypt],
      securityPolicies: [SecurityPolicy.None, SecurityPolicy.Basic256Sha256],
      allowAnonymous: this.allowAnonymous,
      userManager: {
        isValidUser: (username: string, password: string) => credentialsMatch(this.users, username, password),
      },
      maxConnectionsPerEndpoint: OPCUA_CONNECTIONS_MAX,
      // Sampling rate 0 lets monitored items with samplingInterval 0 see every change (else 50 ms).
      serverCapabilities: {
        minSupportedSampleRate: 0,
        maxSessions: this.maxSessions,
        // Published so clients can size their requests (and do not log a warning for missing limits).
        operationLimits: OPCUA_OPERATION_LIMITS,
      },
    });
    try {
      await server.initialize();
      this.build(server);
      await server.start();
    } catch (err) {
      this.vars.clear();
      await server.shutdown(0);
      throw err;
    }
    this.portValue = server.endpoints[0]!.port;
    this.server = server;
    this.unsubscribe = [
      this.engine.onRecord((r) => this.onRecord(r)),
      this.engine.onStep((nowMs) => this.onStep(nowMs)),
    ];
  }

  /** Shuts the server down at once; connected clients lose their channel and sessions. */
  async stop(): Promise<void> {
    const server = this.server;
    if (!server) return;
    this.server = null;
    for (const u of this.unsubscribe) u();
    this.unsubscribe = [];
    this.vars.clear();
    await server.shutdown(0);
  }

  /** Stop, wait `downMs`, start on the same port with values rebuilt from the engine's current status. */
  async restart(options: { downMs?: number } = {}): Promise<void> {
    await this.stop();
    if (options.downMs) await sleep(options.downMs);
    await this.start();
  }

  private build(server: OPCUAServer): void {
    const addressSpace = server.engine.addressSpace!;
    const ns = addressSpace.getOwnNamespace();
    const nowMs = this.engine.nowMs;
    for (const id of this.machines) {
      const root = ns.addObject({
        organizedBy: addressSpace.rootFolder.objects,
        browseName: id,
        nodeId: `s=${id}`,
        description: `Turning centre ${id}`,
      });
      const folders = new Map<string, UAObject>();
      for (const spec of CNC_VARIABLES) {
        const parts = spec.leaf.split('.');
        const name = parts.pop()!;
        let parent = root;
        if (parts.length > 0) {
          const key = parts.join('.');
          let folder = folders.get(key);
          if (!folder) {
            folder = ns.addObject({ componentOf: root, browseName: key, nodeId: `s=${id}.${key}` });
            folders.set(key, folder);
          }
          parent = folder;
        }
        this.vars.set(`${id}.${spec.leaf}`, addLeaf(ns, parent, `${id}.${spec.leaf}`, name, spec));
      }
      this.writeAll(this.engine.status(id) as CncStatus, nowMs);
    }
    if (this.extraVariables.length > 0) {
      const extras = ns.addObject({
        organizedBy: addressSpace.rootFolder.objects,
        browseName: 'Extras',
        nodeId: 's=Extras',
      });
      for (const x of this.extraVariables) {
        const v = ns.addVariable({
          componentOf: extras,
          browseName: x.name,
          nodeId: `s=Extras.${x.name}`,
          dataType: DataType[x.dataType],
          minimumSamplingInterval: 0,
          accessLevel: 'CurrentRead',
          userAccessLevel: 'CurrentRead',
        });
        v.setValueFromSource(
          new Variant({ dataType: x.dataType, value: x.value }),
          StatusCodes.Good,
          new Date(x.sourceTimeMs ?? nowMs),
        );
      }
    }
  }

  private set(machine: string, leaf: Leaf, value: Value, atMs: number): void {
    const v = this.vars.get(`${machine}.${leaf}`);
    if (!v) return;
    const spec = CNC_VARIABLES.find((s) => s.leaf === leaf)!;
    if (value === null) {
      const empty = new Variant({ dataType: DataType.Null });
      v.setValueFromSource(empty, StatusCodes.BadWaitingForInitialData, new Date(atMs));
    } else {
      v.setValueFromSource(new Variant({ dataType: spec.dataType, value }), StatusCodes.Good, new Date(atMs));
    }
  }

  /** Initial values after a (re)start, all stamped with the engine's current time. */
  private writeAll(s: CncStatus, atMs: number): void {
    const values: Record<Leaf, Value> = {
      State: s.state,
      'Spindle.Speed': s.spindleSpeedRpm,
      'Spindle.Load': s.spindleLoadPct,
      'Program.Name': s.program,
      'Job.LotId': s.lot ?? '',
      'Job.OrderId': s.order ?? '',
      'Job.Product': s.product ?? '',
      'Job.ProductSerial': s.serial ?? '',
      'Job.PartCount': s.partCount,
      'Job.PartsPlanned': s.plannedParts,
      'Job.Step': s.step,
      'Counters.TotalParts': s.totalParts,
      'Quality.Diameter': s.diameterMm,
      'Quality.DiameterNominal': CNC_PRODUCT.diameterNominalMm,
      'Quality.DiameterTolerance': CNC_PRODUCT.diameterToleranceMm,
      'Quality.InTolerance': s.inTolerance,
      'Alarm.Active': s.alarm.active,
      'Alarm.Code': s.alarm.code,
      'Alarm.Text': s.alarm.text,
    };
    for (const spec of CNC_VARIABLES) this.set(s.id, spec.leaf, values[spec.leaf], atMs);
  }

  /** Applies one happening, in the order the update contract (file comment) promises. */
  private onRecord(r: GroundTruthRecord): void {
    if (!this.machines.includes(r.machine)) return;
    const m = r.machine;
    const t = r.atMs;
    switch (r.kind) {
      case 'state_changed':
        this.set(m, 'State', r.to, t);
        break;
      case 'lot_started':
        this.set(m, 'Job.OrderId', r.order, t);
        this.set(m, 'Job.LotId', r.lot, t);
        this.set(m, 'Job.Product', r.product, t);
        this.set(m, 'Job.PartsPlanned', r.plannedParts, t);
        this.set(m, 'Job.PartCount', 0, t);
        break;
      case 'step_started':
        this.set(m, 'Job.ProductSerial', r.serial, t);
        this.set(m, 'Job.Step', r.step, t);
        break;
      case 'part_completed':
        this.set(m, 'Quality.Diameter', r.values.diameterMm ?? null, t);
        this.set(m, 'Quality.InTolerance', r.inTolerance, t);
        this.set(m, 'Job.PartCount', r.partCount, t);
        this.set(m, 'Counters.TotalParts', r.totalCount, t);
        break;
      case 'alarm':
        if (r.active) {
          this.set(m, 'Alarm.Code', r.code, t);
          this.set(m, 'Alarm.Text', r.text, t);
        }
        this.set(m, 'Alarm.Active', r.active, t);
        break;
      default:
        break; // lot_finished changes no CNC variable; the other kinds concern other devices
    }
  }

  /** Analog values are sampled once per engine step. */
  private onStep(nowMs: number): void {
    for (const id of this.machines) {
      const s = this.engine.status(id) as CncStatus;
      this.set(id, 'Spindle.Speed', s.spindleSpeedRpm, nowMs);
      this.set(id, 'Spindle.Load', s.spindleLoadPct, nowMs);
    }
  }
}

function addLeaf(ns: Namespace, parent: UAObject, nodeId: string, name: string, spec: LeafSpec): UAVariable {
  const common = {
    componentOf: parent,
    browseName: name,
    nodeId: `s=${nodeId}`,
    description: spec.description,
    // 0: the value changes only when the engine writes it, and subscribers may sample every change.
    minimumSamplingInterval: 0,
    accessLevel: 'CurrentRead',
    userAccessLevel: 'CurrentRead',
  } as const;
  if (spec.analog) {
    return ns.addAnalogDataItem({
      ...common,
      dataType: 'Double',
      engineeringUnits: spec.analog.units,
      engineeringUnitsRange: { low: spec.analog.low, high: spec.analog.high },
    });
  }
  return ns.addVariable({ ...common, dataType: DataType[spec.dataType] });
}

export async function startOpcuaCnc(options: OpcuaCncOptions): Promise<OpcuaCnc> {
  const server = new OpcuaCnc(options);
  await server.start();
  return server;
}
