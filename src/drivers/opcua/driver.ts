/**
 * OPC UA driver (node-opcua client). Tags are either monitored items of one subscription (`subscribe`:
 * sampling interval, queue size, absolute or percent deadband) or read in batches (`poll`: one Read
 * request per poll interval for all tags of that interval).
 *
 * Reconnection is the driver's, not node-opcua's: the client runs with maxRetry 0 and any sign of a
 * broken connection (channel closed, session closed or keep-alive failed, subscription terminated or
 * timed out) ends the session; the loop then builds a new client, session and subscription from
 * scratch after a backoff. Nothing is transferred or republished from the old session, so a server
 * restart can never leave duplicate monitored items or half-restored state (the failure mode users
 * hit in Telegraf #18694 and node-red-contrib-opcua #576), and each session's resources are released
 * before the next one starts. A session left open on the server by a broken connection (the server
 * keeps it until its timeout) is closed through the next connection before a new one is created, so
 * a controller that allows 3 sessions never refuses the gateway, or its own HMI, for sessions the
 * gateway forgot.
 *
 * Keep-alive: the driver reads ServerStatus.State every keepAliveMs (a third of the session timeout,
 * at most opcuaKeepAliveMaxMs), and the socket's idle timeout is twice that plus the request timeout.
 * The request timeout bounds one request, not a quiet socket: a subscription with nothing to report
 * or a slow poll leaves the socket quiet for as long as its interval.
 *
 * Quality: an OPC UA status code's severity bits give good / uncertain / bad; the status name (e.g.
 * BadNodeIdUnknown, UncertainLastUsableValue) is the reading's reason.
 *
 * Security: mode None/Sign/SignAndEncrypt with the configured policy; anonymous, user name/password
 * or X.509 user certificate. The client's own certificate and the trusted/rejected server
 * certificates live in `ctx.pkiFolder` (an OPCUACertificateManager rootFolder), never in ~/.config.
 */
import { existsSync, readFileSync } from 'node:fs';
import { isAbsolute, join, resolve } from 'node:path';
import { format, stripVTControlCharacters } from 'node:util';
import {
  AttributeIds,
  type ClientSession,
  type ClientSubscription,
  DataChangeFilter,
  type DataChangeNotification,
  DataChangeTrigger,
  type DataValue,
  DeadbandType,
  MessageSecurityMode,
  type NotificationMessage,
  OPCUACertificateManager,
  OPCUAClient,
  SecurityPolicy,
  setDebugLogger,
  setErrorLogger,
  setWarningLogger,
  TimestampsToReturn,
  type UserIdentityInfo,
  UserTokenType,
  VariableIds,
} from 'node-opcua';
import {
  opcuaItemsPerCreateMax,
  opcuaKeepAliveCountMax,
  opcuaKeepAliveMaxMs,
  opcuaNodesPerReadMax,
  opcuaNotificationsPerPublishMax,
} from '../bounds.ts';
import {
  aborted,
  DriverBase,
  DriverError,
  errorMessage,
  type OnceAcquired,
  sleep,
} from '../common/lifecycle.ts';
import type { DriverContext, DriverLogger, OnceOptions, Reading } from '../types.ts';
import type { OpcuaDevice } from './schema.ts';
import { validateOpcuaDevice } from './validate.ts';
import { convertVariant, qualityOf } from './values.ts';

type OpcuaTag = OpcuaDevice['tags'][number];

/** Longest each teardown step (subscription, session, channel) may take before we move on. */
const closeStepMs = 2_000;

const managers = new Map<string, Promise<OPCUACertificateManager>>();

/** The application name of the client and its certificate (the certificate's URI derives from it). */
const applicationName = 'masbc-edge';
/** Where node-opcua keeps the client's certificate in a PKI folder. */
export const ownCertificatePath = (pkiFolder: string) =>
  join(pkiFolder, 'own', 'certs', 'client_certificate.pem');
/** Longest node-opcua message passed on to the log. */
const libraryMessageCharsMax = 2_000;

let libraryLog: DriverLogger | null = null;

/**
 * Sends node-opcua's own messages (warnings such as "Creating default certificate ... please wait",
 * errors, debug output) to a driver logger instead of console.log, which would put them on stdout in
 * the middle of the JSON log lines, or in `run --once --format json`. Global in node-opcua: the first
 * logger given keeps them (one gateway per process); `replace` hands them to another.
 */
export function routeNodeOpcuaLogs(log: DriverLogger, replace = false): void {
  if (libraryLog && !replace) return;
  libraryLog = log;
  const forward =
    (level: 'warn' | 'error' | 'info') =>
    (data: unknown, ...args: unknown[]) => {
      const context = data as { filename?: string; callerline?: number } | undefined;
      const text = stripVTControlCharacters(format(...args))
        .replace(/\s+/g, ' ')
        .trim()
        .slice(0, libraryMessageCharsMax);
      const at = context?.filename ? `${context.filename}:${context.callerline ?? ''}` : undefined;
      libraryLog?.[level](text, { lib: 'node-opcua', ...(at ? { at } : {}) });
    };
  setWarningLogger(forward('warn'));
  setErrorLogger(forward('error'));
  setDebugLogger(forward('info'));
}

/**
 * Creates the gateway's own client certificate in `pkiFolder` if there is none, exactly as a driver's
 * first connection would (same application name and URI), and keeps it. `run --once` calls it on the
 * data folder's PKI before working on a copy, so the certificate it presents is the one `run` will
 * present: the one to trust on a machine that checks clients. Returns whether it was created now.
 */
export async function ensureOwnCertificate(pkiFolder: string, log: DriverLogger): Promise<boolean> {
  routeNodeOpcuaLogs(log);
  if (existsSync(ownCertificatePath(pkiFolder))) return false;
  const manager = new OPCUACertificateManager({
    rootFolder: pkiFolder,
    automaticallyAcceptUnknownCertificate: false,
  });
  try {
    await manager.initialize();
    await OPCUAClient.create({
      applicationName,
      clientCertificateManager: manager,
    }).createDefaultCertificate();
  } finally {
    await manager.dispose();
  }
  return true;
}

/**
 * One certificate manager per PKI folder and trust policy, shared by the drivers using it (node-opcua
 * creates the folder layout and the client's own certificate on first use).
 */
function certificateManager(rootFolder: string, acceptUnknown: boolean): Promise<OPCUACertificateManager> {
  const key = `${rootFolder}\n${acceptUnknown}`;
  let m = managers.get(key);
  if (!m) {
    // Initialise one after another: two managers creating the same folder at once can collide.
    const previous = [...managers.values()].at(-1) ?? Promise.resolve(null);
    m = previous
      .catch(() => null)
      .then(async () => {
        const manager = new OPCUACertificateManager({
          rootFolder,
          automaticallyAcceptUnknownCertificate: acceptUnknown,
        });
        await manager.initialize();
        return manager;
      });
    m.catch(() => managers.delete(key));
    managers.set(key, m);
  }
  return m;
}

/** Notifications that arrived before their monitored item's creation returned (see #subscribe). */
interface Early {
  open: boolean;
  items: { clientHandle: number; value: DataValue }[];
}

interface PollGroup {
  intervalMs: number;
  tags: number[];
}

export class OpcuaDriver extends DriverBase {
  readonly #config: OpcuaDevice;
  readonly #subscribed: number[] = [];
  readonly #pollGroups: PollGroup[] = [];
  /** Reason of the last bad reading emitted per tag (null while good), to emit bad on change only. */
  readonly #lastBad: (string | null)[];
  #monitoredItems = 0;
  #notifications = 0;
  #reads = 0;
  #stalls = 0;
  /** Interval of the keep-alive Read; the socket idle timeout derives from it. */
  readonly #keepAliveMs: number;
  readonly #transportTimeoutMs: number;
  /** The subscription's requested keep-alive count: keep-alive period within half the session timeout. */
  readonly #keepAliveCount: number;
  #keepAlives = 0;
  /**
   * The session of the previous connection when that connection broke: the server keeps it until it
   * times out. Closed through the next connection before a new session is created.
   */
  #orphan: ClientSession | null = null;
  #orphansClosed = 0;

  constructor(device: OpcuaDevice, ctx: DriverContext) {
    super(device.id, 'opcua', ctx, device.connection.reconnectMaxDelayMs);
    this.#config = device;
    validateOpcuaDevice(device);
    routeNodeOpcuaLogs(ctx.log);
    const c = device.connection;
    this.#keepAliveMs = Math.max(100, Math.min(opcuaKeepAliveMaxMs, Math.floor(c.sessionTimeoutMs / 3)));
    this.#transportTimeoutMs = 2 * this.#keepAliveMs + c.requestTimeoutMs;
    this.#keepAliveCount =
      c.publishingIntervalMs > 0
        ? Math.max(
            1,
            Math.min(opcuaKeepAliveCountMax, Math.floor(c.sessionTimeoutMs / 2 / c.publishingIntervalMs)),
          )
        : opcuaKeepAliveCountMax;
    const byInterval = new Map<number, PollGroup>();
    device.tags.forEach((t, i) => {
      if (t.mode === 'subscribe') {
        this.#subscribed.push(i);
        return;
      }
      let g = byInterval.get(t.pollIntervalMs);
      if (!g) {
        g = { intervalMs: t.pollIntervalMs, tags: [] };
        byInterval.set(t.pollIntervalMs, g);
        this.#pollGroups.push(g);
      }
      g.tags.push(i);
    });
    this.#lastBad = device.tags.map(() => null);
  }

  protected override detail(): Record<string, unknown> {
    return {
      monitoredItems: this.#monitoredItems,
      notifications: this.#notifications,
      reads: this.#reads,
      stalls: this.#stalls,
      keepAliveMs: this.#keepAliveMs,
      transportTimeoutMs: this.#transportTimeoutMs,
      keepAlives: this.#keepAlives,
      /** Sessions of broken connections closed on the server through the next connection. */
      orphanSessionsClosed: this.#orphansClosed,
      pollGroups: this.#pollGroups.map((g) => ({ intervalMs: g.intervalMs, tags: g.tags.length })),
    };
  }

  #userIdentity(): UserIdentityInfo {
    const auth = this.#config.connection.auth;
    switch (auth.type) {
      case 'anonymous':
        return { type: UserTokenType.Anonymous };
      case 'username':
        return { type: UserTokenType.UserName, userName: auth.username, password: auth.password };
      case 'certificate': {
        const file = (p: string) => readFileSync(isAbsolute(p) ? p : resolve(this.ctx.dataDir, p), 'utf8');
        try {
          return {
            type: UserTokenType.Certificate,
            certificateData: pemToDer(file(auth.certificateFile)),
            privateKey: file(auth.privateKeyFile),
          };
        } catch (err) {
          throw new DriverError('auth', `cannot read the user certificate or key: ${errorMessage(err)}`);
        }
      }
    }
  }

  #client(manager: OPCUACertificateManager): OPCUAClient {
    const c = this.#config.connection;
    return OPCUAClient.create({
      applicationName,
      clientName: `masbc-edge/${this.device}`,
      endpointMustExist: false,
      securityMode: MessageSecurityMode[c.securityMode],
      securityPolicy: SecurityPolicy[c.securityPolicy],
      connectionStrategy: { maxRetry: 0, initialDelay: 100, maxDelay: 100 },
      // The driver keeps the session alive itself (#keepAlive), so it can derive the socket's idle
      // timeout from it and stop it with the session.
      keepSessionAlive: false,
      requestedSessionTimeout: c.sessionTimeoutMs,
      defaultTransactionTimeout: c.requestTimeoutMs,
      // The socket's idle timeout: longer than any silence the keep-alive allows. (It used to be the
      // request timeout: a quiet subscription lost its connection, and a session on the server, every
      // few seconds.)
      transportTimeout: this.#transportTimeoutMs,
      // disconnect() must not try to close a session over a broken channel (and forget it): the driver
      // closes it through the next connection (see #closeOrphan).
      keepPendingSessionsOnDisconnect: true,
      clientCertificateManager: manager,
    });
  }

  /** One Read of every tag, subscribed ones included (at most opcuaNodesPerReadMax per request). */
  protected async acquireOnce(signal: AbortSignal, options: OnceOptions): Promise<OnceAcquired> {
    const c = this.#config.connection;
    const problems: string[] = [];
    const batch: Reading[] = [];
    const late = () => `${c.endpoint}: no answer within ${options.timeoutMs} ms`;
    const manager = await Promise.race([
      certificateManager(this.ctx.pkiFolder, c.serverCertificate === 'accept-unknown'),
      aborted(signal).then(() => null),
    ]);
    if (!manager) return { batches: [], problems: [late()] };
    const client = this.#client(manager);
    let failWith: ((err: Error) => void) | null = null;
    const failed = new Promise<never>((_, reject) => {
      failWith = reject;
    });
    failed.catch(() => {});
    client.on('connection_lost', () =>
      failWith?.(new DriverError('disconnected', `${c.endpoint}: connection lost`)),
    );
    client.on('close', () => failWith?.(new DriverError('disconnected', `${c.endpoint}: channel closed`)));
    let session: ClientSession | null = null;
    try {
      await race(client.connect(c.endpoint), failed, signal, 'connect', c.endpoint);
      if (!signal.aborted) {
        session = await race(
          client.createSession(this.#userIdentity()),
          failed,
          signal,
          'session',
          c.endpoint,
        );
      }
      const tags = this.#config.tags;
      for (let start = 0; session && !signal.aborted && start < tags.length; start += opcuaNodesPerReadMax) {
        const nodes = tags
          .slice(start, start + opcuaNodesPerReadMax)
          .map((t) => ({ nodeId: t.nodeId, attributeId: AttributeIds.Value }));
        const values = await race(session.read(nodes, 0), failed, signal, 'read', c.endpoint);
        if (!values) break;
        values.forEach((dv, k) => {
          this.#push(start + k, dv, batch);
        });
      }
      if (signal.aborted) problems.push(late());
    } catch (err) {
      problems.push(errorMessage(err));
    } finally {
      failWith = null;
      await closeQuietly(() => session?.close(true));
      await closeQuietly(() => client.disconnect());
      client.removeAllListeners();
    }
    return { batches: [batch], problems };
  }

  protected async session(signal: AbortSignal): Promise<void> {
    const c = this.#config.connection;
    const manager = await certificateManager(this.ctx.pkiFolder, c.serverCertificate === 'accept-unknown');
    if (signal.aborted) return;
    const client = this.#client(manager);
    let failWith: ((err: Error) => void) | null = null;
    const failed = new Promise<never>((_, reject) => {
      failWith = reject;
    });
    failed.catch(() => {});
    const fail = (reason: string, message: string) => failWith?.(new DriverError(reason, message));
    client.on('connection_lost', () => fail('disconnected', `${c.endpoint}: connection lost`));
    client.on('close', (err) =>
      fail('disconnected', `${c.endpoint}: channel closed${err ? `: ${err.message}` : ''}`),
    );
    client.on('timed_out_request', () =>
      this.countError('request-timeout', new Error(`${c.endpoint}: request timed out`)),
    );
    let session: ClientSession | null = null;
    let subscription: ClientSubscription | null = null;
    let connected = false;
    const sessionAbort = new AbortController();
    try {
      await race(client.connect(c.endpoint), failed, signal, 'connect', c.endpoint);
      if (signal.aborted) return;
      // Close before opening: the server counts the session a broken connection left behind.
      if (this.#orphan) await this.#closeOrphan(client, failed, signal);
      if (signal.aborted) return;
      session = await race(client.createSession(this.#userIdentity()), failed, signal, 'session', c.endpoint);
      if (signal.aborted || !session) return;
      session.on('session_closed', () => fail('disconnected', `${c.endpoint}: session closed by the server`));
      if (this.#subscribed.length > 0) {
        subscription = await this.#subscribe(session, signal, failed, fail);
        if (signal.aborted) return;
      }
      connected = true;
      this.markConnected();
      const pollers = this.#pollGroups.map((g) => this.#pollLoop(session!, g, sessionAbort.signal, fail));
      const watchdog = subscription ? this.#watchdog(subscription, sessionAbort.signal, fail) : null;
      const keepAlive = this.#keepAlive(session, sessionAbort.signal, fail);
      try {
        await Promise.race([failed, aborted(signal)]);
      } finally {
        sessionAbort.abort();
        await Promise.allSettled([...pollers, watchdog, keepAlive]);
      }
    } finally {
      failWith = null;
      this.#monitoredItems = 0;
      if (connected) this.#markAllBad('disconnected');
      if (session && signal.aborted) {
        // Stopping: the channel is normally fine, close the subscription and the session now.
        await closeQuietly(() => subscription?.terminate());
        await closeQuietly(() => session?.close(true));
      } else if (session) {
        // The connection broke (or the session failed): a CloseSession may never reach the server. Keep
        // the session to close it, with its subscription, through the next connection, before creating
        // another. terminate() leaves the publish engine at once; its DeleteSubscriptions is not waited
        // for (over a dead channel it would only time out).
        subscription?.terminate().catch(() => {});
        session.removeAllListeners('session_closed');
        this.#orphan = session;
      }
      await closeQuietly(() => client.disconnect());
      client.removeAllListeners();
    }
  }

  /**
   * Closes the session a broken connection left on the server: ActivateSession moves it to this
   * connection's channel (OPC UA Part 4, 5.6.3), then CloseSession deletes it with its subscriptions.
   * A server that no longer knows it (restarted, or the session timed out) refuses the activation:
   * nothing to close. If this connection fails meanwhile, the next one tries again.
   */
  async #closeOrphan(client: OPCUAClient, failed: Promise<never>, signal: AbortSignal): Promise<void> {
    const orphan = this.#orphan!;
    const endpoint = this.#config.connection.endpoint;
    let moved: boolean | undefined;
    try {
      moved = await race(
        client.reactivateSession(orphan).then(() => true),
        failed,
        signal,
        'session',
        endpoint,
      );
    } catch (err) {
      if (err instanceof DriverError && err.reason === 'disconnected') throw err;
      this.#orphan = null; // the server does not know it any more
      return;
    }
    if (!moved) return; // stopping: left to the server's session timeout
    this.#orphan = null;
    await closeQuietly(() => orphan.close(true));
    this.#orphansClosed++;
    this.ctx.log.info('closed the session a lost connection had left open on the server', {
      device: this.device,
    });
  }

  /**
   * Reads ServerStatus.State every keepAliveMs: keeps the session (and the socket) alive whatever the
   * subscription and poll intervals, and finds a dead connection a quiet subscription would not show.
   */
  async #keepAlive(
    session: ClientSession,
    signal: AbortSignal,
    fail: (reason: string, message: string) => void,
  ): Promise<void> {
    const node = { nodeId: `i=${VariableIds.Server_ServerStatus_State}`, attributeId: AttributeIds.Value };
    while (await sleep(this.#keepAliveMs, signal)) {
      try {
        await session.read(node, 0);
        this.#keepAlives++;
      } catch (err) {
        if (signal.aborted) return;
        fail(
          'keep-alive',
          `${this.#config.connection.endpoint}: keep-alive Read failed: ${errorMessage(err)}`,
        );
        return;
      }
    }
  }

  async #subscribe(
    session: ClientSession,
    signal: AbortSignal,
    failed: Promise<never>,
    fail: (reason: string, message: string) => void,
  ): Promise<ClientSubscription> {
    const c = this.#config.connection;
    const subscription = await race(
      session.createSubscription2({
        requestedPublishingInterval: c.publishingIntervalMs,
        requestedLifetimeCount: 6 * this.#keepAliveCount,
        // Keep-alive period (publishing interval × count) within half the session timeout: node-opcua
        // refuses a subscription whose keep-alive outlasts the session.
        requestedMaxKeepAliveCount: this.#keepAliveCount,
        maxNotificationsPerPublish: opcuaNotificationsPerPublishMax,
        publishingEnabled: true,
        priority: 10,
      }),
      failed,
      signal,
      'subscribe',
      c.endpoint,
    );
    subscription.on('terminated', () => fail('disconnected', `${c.endpoint}: subscription terminated`));
    subscription.on('status_changed', (status) =>
      fail('disconnected', `${c.endpoint}: subscription ${status.name}`),
    );
    /** clientHandle → tag index, filled as each CreateMonitoredItems call returns. */
    const byHandle = new Map<number, number>();
    // The first publish response (the items' initial values) can arrive in the same socket read as the
    // CreateMonitoredItems response, and be handled before the call returns and fills byHandle: keep
    // such notifications and replay them once every item is created. (Dropped, a constant value would
    // never be read.)
    const early: Early = { open: true, items: [] };
    subscription.on('received_notifications', (message: NotificationMessage) =>
      this.#onNotification(message, byHandle, early),
    );
    // One CreateMonitoredItems call per distinct set of parameters (and per opcuaItemsPerCreateMax).
    const groups = new Map<string, number[]>();
    for (const i of this.#subscribed) {
      const t = this.#config.tags[i]!;
      const key = `${t.samplingIntervalMs}|${t.queueSize}|${t.dataChangeTrigger}|${t.deadband?.type ?? ''}|${t.deadband?.value ?? ''}`;
      const list = groups.get(key) ?? [];
      list.push(i);
      groups.set(key, list);
    }
    const timeMs = this.now();
    const failures: Reading[] = [];
    for (const indices of groups.values()) {
      for (let start = 0; start < indices.length; start += opcuaItemsPerCreateMax) {
        const chunk = indices.slice(start, start + opcuaItemsPerCreateMax);
        const t = this.#config.tags[chunk[0]!]!;
        const group = await race(
          subscription.monitorItems(
            chunk.map((i) => ({ nodeId: this.#config.tags[i]!.nodeId, attributeId: AttributeIds.Value })),
            monitoringParameters(t),
            TimestampsToReturn.Both,
          ),
          failed,
          signal,
          'subscribe',
          c.endpoint,
        );
        group.monitoredItems.forEach((item, k) => {
          const index = chunk[k]!;
          byHandle.set(item.monitoringParameters.clientHandle, index);
          const status = item.statusCode;
          if (status && status.value !== 0) {
            const reason = status.name;
            this.countError('monitored-item', new Error(`${this.#config.tags[index]!.name}: ${reason}`), {
              key: this.#config.tags[index]!.name,
            });
            this.#bad(index, reason, timeMs, failures);
          } else {
            this.#monitoredItems++;
          }
        });
      }
    }
    early.open = false;
    for (const item of early.items) {
      const index = byHandle.get(item.clientHandle);
      if (index === undefined) continue;
      this.#notifications++;
      this.#push(index, item.value, failures);
    }
    early.items.length = 0;
    this.emit(failures);
    return subscription;
  }

  /**
   * A subscription answers every publish request within its keep-alive time (data or a keep-alive).
   * Silence for three keep-alive periods means the connection is dead even if TCP has not noticed
   * (a pulled cable, a half-open socket, a wedged server): reconnect instead of waiting forever.
   */
  async #watchdog(
    subscription: ClientSubscription,
    signal: AbortSignal,
    fail: (reason: string, message: string) => void,
  ): Promise<void> {
    // Monotonic time: a wall-clock step (NTP) must not look like silence.
    let lastMs = performance.now();
    const touch = () => {
      lastMs = performance.now();
    };
    subscription.on('keepalive', touch);
    subscription.on('received_notifications', touch);
    const keepAliveMs =
      Math.max(subscription.publishingInterval, 1) * Math.max(subscription.maxKeepAliveCount, 1);
    const limitMs = Math.max(3 * keepAliveMs, this.#config.connection.requestTimeoutMs);
    const checkMs = Math.max(100, Math.min(1_000, limitMs / 4));
    try {
      while (await sleep(checkMs, signal)) {
        if (performance.now() - lastMs > limitMs) {
          this.#stalls++;
          fail('stalled', `${this.#config.connection.endpoint}: no publish response for ${limitMs} ms`);
          return;
        }
      }
    } finally {
      subscription.off('keepalive', touch);
      subscription.off('received_notifications', touch);
    }
  }

  #onNotification(message: NotificationMessage, byHandle: Map<number, number>, early: Early): void {
    const batch: Reading[] = [];
    for (const data of message.notificationData ?? []) {
      if (data?.schema.name !== 'DataChangeNotification') continue;
      for (const item of (data as DataChangeNotification).monitoredItems ?? []) {
        const index = byHandle.get(item.clientHandle);
        if (index === undefined) {
          if (early.open && early.items.length < opcuaNotificationsPerPublishMax) early.items.push(item);
          continue;
        }
        this.#notifications++;
        this.#push(index, item.value, batch);
      }
    }
    this.emit(batch);
  }

  async #pollLoop(
    session: ClientSession,
    group: PollGroup,
    signal: AbortSignal,
    fail: (reason: string, message: string) => void,
  ): Promise<void> {
    const tags = this.#config.tags;
    const nodes = group.tags.map((i) => ({ nodeId: tags[i]!.nodeId, attributeId: AttributeIds.Value }));
    let due = this.now();
    while (!signal.aborted) {
      const batch: Reading[] = [];
      try {
        for (let start = 0; start < nodes.length; start += opcuaNodesPerReadMax) {
          const answered = this.timeRead();
          const values = await session.read(nodes.slice(start, start + opcuaNodesPerReadMax), 0);
          if (signal.aborted) return;
          answered();
          this.#reads++;
          values.forEach((dv, k) => {
            this.#push(group.tags[start + k]!, dv, batch);
          });
        }
        this.emit(batch);
      } catch (err) {
        if (signal.aborted) return;
        // A Read that fails as a whole means the session is unusable: reconnect.
        fail('read', `read failed: ${errorMessage(err)}`);
        return;
      }
      due += group.intervalMs;
      const now = this.now();
      if (due <= now) due = now + group.intervalMs - ((now - due) % group.intervalMs);
      if (!(await sleep(due - now, signal))) return;
    }
  }

  #push(index: number, dv: DataValue, batch: Reading[]): void {
    const status = dv.statusCode;
    const quality = qualityOf(status.value);
    const timeMs = dv.sourceTimestamp?.getTime() ?? dv.serverTimestamp?.getTime() ?? this.now();
    if (quality === 'bad') {
      this.#bad(index, status.name, timeMs, batch);
      return;
    }
    const converted = convertVariant(dv.value);
    if (typeof converted === 'object' && converted !== null) {
      this.#bad(index, converted.problem, timeMs, batch);
      return;
    }
    this.#lastBad[index] = null;
    const reading: Reading = {
      device: this.device,
      tag: this.#config.tags[index]!.name,
      value: converted,
      quality,
      sourceTimeMs: timeMs,
    };
    if (quality !== 'good') reading.reason = status.name;
    batch.push(reading);
  }

  #bad(index: number, reason: string, timeMs: number, batch: Reading[]): void {
    if (this.#lastBad[index] === reason) return;
    this.#lastBad[index] = reason;
    batch.push({
      device: this.device,
      tag: this.#config.tags[index]!.name,
      value: null,
      quality: 'bad',
      sourceTimeMs: timeMs,
      reason,
    });
  }

  #markAllBad(reason: string): void {
    const batch: Reading[] = [];
    const now = this.now();
    for (let i = 0; i < this.#config.tags.length; i++) this.#bad(i, reason, now, batch);
    this.emit(batch);
  }
}

function monitoringParameters(t: OpcuaTag) {
  const params: {
    samplingInterval: number;
    queueSize: number;
    discardOldest: boolean;
    filter?: DataChangeFilter;
  } = { samplingInterval: t.samplingIntervalMs, queueSize: t.queueSize, discardOldest: true };
  if (t.deadband || t.dataChangeTrigger !== 'StatusValue') {
    params.filter = new DataChangeFilter({
      trigger: DataChangeTrigger[t.dataChangeTrigger],
      deadbandType: !t.deadband
        ? DeadbandType.None
        : t.deadband.type === 'absolute'
          ? DeadbandType.Absolute
          : DeadbandType.Percent,
      deadbandValue: t.deadband?.value ?? 0,
    });
  }
  return params;
}

function pemToDer(pem: string): Buffer {
  const m = /-----BEGIN CERTIFICATE-----([\s\S]+?)-----END CERTIFICATE-----/.exec(pem);
  if (!m) throw new Error('no PEM certificate found');
  return Buffer.from(m[1]!.replace(/\s+/g, ''), 'base64');
}

/** Awaits `work` unless the connection fails or the driver stops first (then resolves undefined). */
async function race<T>(
  work: Promise<T>,
  failed: Promise<never>,
  signal: AbortSignal,
  reason: string,
  endpoint: string,
): Promise<T> {
  work.catch(() => {});
  try {
    const r = await Promise.race([work, failed, aborted(signal).then(() => undefined)]);
    return r as T;
  } catch (err) {
    if (err instanceof DriverError) throw err;
    throw new DriverError(reason, `${endpoint}: ${errorMessage(err)}`);
  }
}

async function closeQuietly(step: () => Promise<unknown> | undefined): Promise<void> {
  let timer: NodeJS.Timeout | undefined;
  try {
    const p = step();
    if (!p) return;
    p.catch(() => {});
    await Promise.race([
      p,
      new Promise((r) => {
        timer = setTimeout(r, closeStepMs);
      }),
    ]);
  } catch {
    // Closing what is already broken fails; that is fine.
  } finally {
    clearTimeout(timer);
  }
}

export function createOpcuaDriver(device: OpcuaDevice, ctx: DriverContext): OpcuaDriver {
  return new OpcuaDriver(device, ctx);
}
