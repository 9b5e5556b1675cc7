/**
 * The OPC UA CNC server over real sockets, read and subscribed to by node-opcua's client
 * (an independent code path: client stack, secure channel, session and subscription services).
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import {
  AttributeIds,
  type ClientSession,
  DataChangeFilter,
  DataChangeTrigger,
  DataType,
  type DataValue,
  DeadbandType,
  MessageSecurityMode,
  makeBrowsePath,
  OPCUACertificateManager,
  OPCUAClient,
  SecurityPolicy,
  StatusCodes,
  TimestampsToReturn,
  UserTokenType,
} from 'node-opcua';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { PartCompleted } from '../../simulators/ground-truth.ts';
import {
  CNC_VARIABLES,
  OPCUA_NAMESPACE_URI,
  type OpcuaCnc,
  startOpcuaCnc,
} from '../../simulators/opcua-cnc.ts';
import { type CncStatus, createScenario, type Scenario } from '../../simulators/scenario.ts';

const T0 = Date.UTC(2026, 0, 5, 6);
const USER = { username: 'operator', password: 'fixture-only-password' };
const dir = mkdtempSync(path.join(tmpdir(), 'masbc-opcua-'));
let engine: Scenario;
let server: OpcuaCnc;
let clientCertificates: OPCUACertificateManager;
const clients: OPCUAClient[] = [];

beforeAll(async () => {
  engine = createScenario({ seed: 5, startMs: T0, cycleTimeMs: 10 });
  server = await startOpcuaCnc({ engine, pkiDir: path.join(dir, 'pki'), users: [USER] });
  clientCertificates = new OPCUACertificateManager({
    rootFolder: path.join(dir, 'client-pki'),
    automaticallyAcceptUnknownCertificate: true,
  });
});

afterAll(async () => {
  for (const c of clients) await c.disconnect();
  await server?.stop();
  engine?.close();
  rmSync(dir, { recursive: true, force: true });
});

async function connect(options: { secure?: boolean; user?: typeof USER } = {}): Promise<ClientSession> {
  const client = OPCUAClient.create({
    endpointMustExist: false,
    clientCertificateManager: clientCertificates,
    securityMode: options.secure ? MessageSecurityMode.SignAndEncrypt : MessageSecurityMode.None,
    securityPolicy: options.secure ? SecurityPolicy.Basic256Sha256 : SecurityPolicy.None,
    connectionStrategy: { initialDelay: 50, maxDelay: 200, maxRetry: 50 },
  });
  clients.push(client);
  await client.connect(server.endpointUrl);
  const identity = options.user
    ? {
        type: UserTokenType.UserName as const,
        userName: options.user.username,
        password: options.user.password,
      }
    : undefined;
  return client.createSession(identity);
}

const read = async (s: ClientSession, nodeId: string) => s.read({ nodeId, attributeId: AttributeIds.Value });

function expectedValue(leaf: string, s: CncStatus): unknown {
  const table: Record<string, unknown> = {
    State: s.state,
    'Spindle.Speed': s.spindleSpeedRpm,
    'Spindle.Load': s.spindleLoadPct,
    'Program.Name': s.program,
    'Job.LotId': s.lot,
    'Job.OrderId': s.order,
    'Job.Product': s.product,
    'Job.ProductSerial': s.serial,
    'Job.PartCount': s.partCount,
    'Job.PartsPlanned': s.plannedParts,
    'Job.Step': s.step,
    'Counters.TotalParts': s.totalParts,
    'Quality.Diameter': s.diameterMm,
    'Quality.DiameterNominal': 25,
    'Quality.DiameterTolerance': 0.02,
    'Quality.InTolerance': s.inTolerance,
    'Alarm.Active': s.alarm.active,
    'Alarm.Code': s.alarm.code,
    'Alarm.Text': s.alarm.text,
  };
  return table[leaf];
}

describe('OPC UA CNC server', () => {
  it('exposes the documented NodeIds with their data types and the engine values', async () => {
    const s = await connect();
    expect((await s.readNamespaceArray())[1]).toBe(OPCUA_NAMESPACE_URI);
    // Before the first part the gauge has no value yet.
    expect((await read(s, 'ns=1;s=CNC1.Quality.Diameter')).statusCode).toEqual(
      StatusCodes.BadWaitingForInitialData,
    );
    engine.step(T0 + 1_005);
    for (const id of ['CNC1', 'CNC2']) {
      const status = engine.status(id) as CncStatus;
      expect(status.lot).not.toBeNull();
      const values = await s.read(
        CNC_VARIABLES.map((v) => ({ nodeId: `ns=1;s=${id}.${v.leaf}`, attributeId: AttributeIds.Value })),
      );
      CNC_VARIABLES.forEach((v, i) => {
        const dv = values[i]!;
        expect([v.leaf, dv.statusCode.name]).toEqual([v.leaf, 'Good']);
        expect([v.leaf, dv.value.dataType]).toEqual([v.leaf, v.dataType]);
        expect([v.leaf, dv.value.value]).toEqual([v.leaf, expectedValue(v.leaf, status)]);
      });
    }
    const [euPath] = await s.translateBrowsePath([
      makeBrowsePath('ns=1;s=CNC1.Quality.Diameter', '.EngineeringUnits'),
    ]);
    const eu = await read(s, euPath!.targets![0]!.targetId.toString());
    expect(eu.value.value.displayName.text).toBe('mm');
    await s.close();
  });

  it('a subscriber sees every part: serial, then diameter and count with one source timestamp', async () => {
    const s = await connect();
    const sub = await s.createSubscription2({
      requestedPublishingInterval: 20,
      publishingEnabled: true,
      requestedMaxKeepAliveCount: 20,
    });
    const seen: Record<string, DataValue[]> = {
      'Job.ProductSerial': [],
      'Quality.Diameter': [],
      'Job.PartCount': [],
    };
    // StatusValueTimestamp: two parts in a row may gauge the same diameter; the timestamp still differs.
    const filter = new DataChangeFilter({
      trigger: DataChangeTrigger.StatusValueTimestamp,
      deadbandType: DeadbandType.None,
    });
    let onChange = () => {};
    for (const leaf of Object.keys(seen)) {
      const item = await sub.monitor(
        { nodeId: `ns=1;s=CNC1.${leaf}`, attributeId: AttributeIds.Value },
        { samplingInterval: 0, queueSize: 1000, discardOldest: false, filter },
        TimestampsToReturn.Both,
      );
      item.on('changed', (dv: DataValue) => {
        seen[leaf]!.push(dv);
        onChange();
      });
    }
    const from = engine.nowMs;
    for (let t = from + 5; t <= from + 600; t += 5) engine.step(t);
    const parts = engine.groundTruth
      .query({ kind: 'part_completed', machine: 'CNC1' })
      .filter((p): p is PartCompleted => p.kind === 'part_completed' && p.atMs > from);
    const counted = () => seen['Job.PartCount']!.filter((d) => d.sourceTimestamp!.getTime() > from).length;
    await new Promise<void>((resolve) => {
      onChange = () => counted() >= parts.length && resolve();
      onChange();
    });
    expect(parts.length).toBeGreaterThan(30);
    const at = (leaf: string, ms: number) =>
      seen[leaf]!.filter((d) => d.sourceTimestamp!.getTime() === ms).map((d) => d.value.value);
    for (const p of parts) {
      expect(at('Quality.Diameter', p.atMs)).toEqual([p.values.diameterMm]);
      expect(at('Job.PartCount', p.atMs)).toEqual([p.partCount]);
      // The serial was set when the part's cycle started, before it completed.
      const serialSet = seen['Job.ProductSerial']!.find((d) => d.value.value === p.serial)!;
      expect(serialSet.sourceTimestamp!.getTime()).toBeLessThan(p.atMs);
    }
    await sub.terminate();
    await s.close();
  });

  it('secured endpoint (Basic256Sha256, SignAndEncrypt) accepts the configured user and rejects a wrong password', async () => {
    const s = await connect({ secure: true, user: USER });
    expect((await read(s, 'ns=1;s=CNC2.State')).value.value).toBe(engine.status('CNC2').state);
    await s.close();
    await expect(connect({ secure: true, user: { ...USER, password: 'wrong' } })).rejects.toThrow(
      /BadUserAccessDenied|BadIdentityTokenRejected/,
    );
  });

  it('restart on the same port: the client reconnects and reads fresh values', async () => {
    const s = await connect();
    const port = server.port;
    const client = clients.at(-1)!;
    const reconnected = new Promise<void>((resolve) => client.once('after_reconnection', () => resolve()));
    await server.restart({ downMs: 100 });
    expect(server.port).toBe(port);
    engine.step(engine.nowMs + 100);
    await reconnected;
    const dv = await read(s, 'ns=1;s=CNC1.Counters.TotalParts');
    expect(dv.value.value).toBe(engine.status('CNC1').totalParts);
    expect(dv.value.dataType).toBe(DataType.UInt32);
    await s.close();
  });
});
