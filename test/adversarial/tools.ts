/**
 * An attacker's tools, for the adversarial suite and its benchmark (bench/attacks.ts): each one is
 * what someone who can reach a validator's ports could do, on loopback, bounded in time and traffic,
 * and stoppable. None needs a key of the alliance, except the forged batches, which are signed with a
 * registered gateway's key and then spoiled (an attacker with no key builds the same bytes by hand),
 * and the byzantine validator's tools in byzantine.ts.
 *
 * Attackers connect from `127.0.0.2` by default: another host than the validators (127.0.0.1), as a
 * stranger would be (Linux routes all of 127.0.0.0/8 to the loopback interface).
 */
import { randomBytes } from 'node:crypto';
import { request as httpRequest } from 'node:http';
import { connect, type Socket } from 'node:net';
import { encodeSubmission, type SubmitBatch } from '../../src/consensus/runtime/client.ts';
import type { Gateway } from '../consensus/cluster/peers.ts';

/** Where attackers connect from by default: not a validator's address. */
export const attackerAddress = '127.0.0.2';

/** multistream-select's opening line, length-prefixed: what every libp2p connection starts with. */
export const multistreamHeader = Buffer.from('\x13/multistream/1.0.0\n', 'latin1');
/** The proposal of the Noise protocol, length-prefixed. */
export const noiseProposal = Buffer.from('\x07/noise\n', 'latin1');

export interface Attack {
  /** Ends the attack: closes everything it opened. */
  stop(): Promise<void>;
  /** What it did so far. */
  stats(): Record<string, number>;
}

/** Host and port of a `/ip4/<host>/tcp/<port>` address. */
export function tcpTarget(multiaddr: string): { host: string; port: number } {
  const m = /^\/ip4\/([\d.]+)\/tcp\/(\d+)/.exec(multiaddr);
  if (!m) throw new Error(`not an /ip4/…/tcp/… address: ${multiaddr}`);
  return { host: m[1]!, port: Number(m[2]) };
}

interface HoldOptions {
  /** Connections held open per target at all times. */
  perTarget: number;
  /** Each connection is closed and opened again after this long (the attacker: 8 s). */
  reopenMs: number;
  /** What each connection sends once connected; nothing after. */
  opening: (socket: Socket) => void;
  localAddress?: string;
}

/**
 * Keeps `perTarget` TCP connections open to each target, each sending only its `opening` and then
 * holding the slot; a connection the target closes is opened again at once (after 50 ms), and every
 * connection is replaced after `reopenMs`. Counts connections opened and those the target closed.
 */
function holdConnections(targets: { host: string; port: number }[], o: HoldOptions): Attack {
  let stopped = false;
  const sockets = new Set<Socket>();
  const counts = { opened: 0, closedByTarget: 0, errors: 0 };
  const open = (t: { host: string; port: number }) => {
    if (stopped) return;
    const socket = connect({ host: t.host, port: t.port, localAddress: o.localAddress ?? attackerAddress });
    sockets.add(socket);
    let ours = false;
    const replace = setTimeout(() => {
      ours = true;
      socket.destroy();
    }, o.reopenMs);
    socket.on('connect', () => {
      counts.opened++;
      o.opening(socket);
    });
    socket.on('data', () => {}); // read and ignore whatever the target answers
    socket.on('error', () => counts.errors++);
    socket.on('close', () => {
      clearTimeout(replace);
      sockets.delete(socket);
      if (!ours && !stopped) counts.closedByTarget++;
      if (!stopped) setTimeout(() => open(t), ours ? 0 : 50);
    });
  };
  for (const t of targets) for (let i = 0; i < o.perTarget; i++) open(t);
  return {
    async stop() {
      stopped = true;
      for (const s of sockets) s.destroy();
      sockets.clear();
    },
    stats: () => ({ ...counts, open: sockets.size }),
  };
}

/**
 * The slot-holding attack: `perTarget` connections per validator port that send only the
 * multistream header and are reopened every `reopenMs`.
 */
export function holdSlots(
  targets: { host: string; port: number }[],
  perTarget = 12,
  reopenMs = 8_000,
  localAddress?: string,
): Attack {
  return holdConnections(targets, {
    perTarget,
    reopenMs,
    localAddress,
    opening: (s) => s.write(multistreamHeader),
  });
}

/**
 * Half-open handshakes: each connection agrees on Noise (multistream header and the Noise
 * proposal), sends the first 3 bytes of a Noise message, and stalls there.
 */
export function halfOpenHandshakes(
  targets: { host: string; port: number }[],
  perTarget = 12,
  reopenMs = 8_000,
  localAddress?: string,
): Attack {
  return holdConnections(targets, {
    perTarget,
    reopenMs,
    localAddress,
    opening: (s) => {
      s.write(Buffer.concat([multistreamHeader, noiseProposal]));
      setTimeout(() => s.writable && s.write(Buffer.from([0x00, 0x20, 0x01])), 20);
    },
  });
}

/**
 * Garbage at the connection level: connections that send `bytesPerConnection` random bytes, one
 * after another, `connections` in all per target. Resolves once all are done (each closed by the
 * target or after 2 s).
 */
export async function garbageConnections(
  targets: { host: string; port: number }[],
  connections = 20,
  bytesPerConnection = 64 * 1024,
  localAddress = attackerAddress,
): Promise<{ closedByTarget: number; sent: number }> {
  let closedByTarget = 0;
  let sent = 0;
  for (const t of targets) {
    for (let i = 0; i < connections; i++) {
      await new Promise<void>((resolve) => {
        const s = connect({ host: t.host, port: t.port, localAddress });
        const timer = setTimeout(() => s.destroy(), 2_000);
        s.on('connect', () => {
          // Half the time a valid header first, so the garbage reaches the protocol negotiation.
          const head = i % 2 === 0 ? multistreamHeader : Buffer.alloc(0);
          s.write(Buffer.concat([head, randomBytes(bytesPerConnection)]));
          sent += bytesPerConnection;
        });
        s.on('data', () => {});
        s.on('error', () => {});
        s.on('close', () => {
          if (timer.hasRef()) closedByTarget++;
          clearTimeout(timer);
          resolve();
        });
      });
    }
  }
  return { closedByTarget, sent };
}

// --- HTTP -----------------------------------------------------------------------------------------

export interface HttpAnswer {
  status: number;
  /** Milliseconds until the answer (or the failure). */
  ms: number;
  error?: string;
}

/**
 * One POST of `body` (a Buffer, or `bytes` produced by `chunk` and streamed with chunked transfer
 * encoding when `chunked`), from `localAddress`. Never throws: a connection the server cuts is an
 * answer with status 0.
 */
export function post(
  url: string,
  path: string,
  body: Buffer,
  o: {
    contentType: string;
    chunked?: boolean;
    localAddress?: string;
    timeoutMs?: number;
    /** An `Authorization` header: the attacker may hold a valid credential (an insider, a stolen token). */
    authorization?: string;
  },
): Promise<HttpAnswer> {
  const u = new URL(path, url);
  const t0 = performance.now();
  return new Promise((resolve) => {
    let settled = false;
    const done = (a: Omit<HttpAnswer, 'ms'>) => {
      if (settled) return;
      settled = true;
      resolve({ ...a, ms: performance.now() - t0 });
    };
    const req = httpRequest(
      {
        host: u.hostname,
        port: u.port,
        path: u.pathname + u.search,
        method: 'POST',
        localAddress: o.localAddress ?? attackerAddress,
        headers: {
          'content-type': o.contentType,
          ...(o.authorization ? { authorization: o.authorization } : {}),
          ...(o.chunked ? { 'transfer-encoding': 'chunked' } : { 'content-length': body.byteLength }),
        },
        timeout: o.timeoutMs ?? 60_000,
      },
      (res) => {
        res.on('data', () => {});
        res.on('end', () => done({ status: res.statusCode ?? 0 }));
        res.on('error', (e) => done({ status: res.statusCode ?? 0, error: e.message }));
      },
    );
    req.on('error', (e) => done({ status: 0, error: e.message }));
    req.on('timeout', () => req.destroy(new Error('client timeout')));
    // Written in 64 KiB pieces: a server that refuses early stops reading, and the rest is dropped.
    const piece = 64 * 1024;
    let at = 0;
    const pump = () => {
      while (at < body.byteLength) {
        const ok = req.write(body.subarray(at, at + piece));
        at += piece;
        if (!ok) {
          req.once('drain', pump);
          return;
        }
      }
      req.end();
    };
    pump();
  });
}

/** `[[{},{},…]]` of about `bytes` bytes: JSON that costs its parser one object per 3 bytes. */
export function deepJson(bytes: number): Buffer {
  const inner = Math.max(0, Math.floor((bytes - 4) / 3));
  return Buffer.from(`[[${'{},'.repeat(inner)}{}]]`);
}

/** `[[[…]]]` nested `depth` deep: JSON whose parser recurses once per byte pair. */
export function nestedJson(depth: number): Buffer {
  return Buffer.from(`${'['.repeat(depth)}${']'.repeat(depth)}`);
}

/**
 * `batches` forged transactions of `eventsPerBatch` events: real batches of a registered gateway
 * with their signature spoiled, so each costs a validator the full decode and a signature check.
 * Call `spoil(k)` for a fresh copy with a different signature (so no verdict is cached).
 */
export function forgedBatches(
  gateway: Gateway,
  batches: number,
  eventsPerBatch: number,
): { spoil(k: number): SubmitBatch[] } {
  const { bytes } = gateway.events(batches * eventsPerBatch, eventsPerBatch);
  return {
    spoil(k: number): SubmitBatch[] {
      return bytes.map((tx, i) => {
        const copy = new Uint8Array(tx);
        const headerLength = (copy[1]! << 8) | copy[2]!;
        const sig = 3 + headerLength;
        copy[sig + (i % 64)]! ^= 1 + (k % 255);
        copy.set(randomBytes(8), sig + 40);
        return { tx: copy, bodies: [] };
      });
    },
  };
}

/**
 * The forged-signature flood: `concurrent` clients, each posting `forged` submissions (64 forged
 * batches each) one after another until stopped. Each client encodes its submission once and then
 * rewrites 8 bytes of every signature in place before each post, so every request carries new
 * forgeries (no verdict can be cached) at almost no cost to the attacker's own process (which in
 * the suite and the benchmark is also the legitimate client's).
 */
export function forgedFlood(
  url: string,
  forged: { spoil(k: number): SubmitBatch[] },
  concurrent = 6,
  localAddress = attackerAddress,
  authorization?: string,
): Attack {
  let stopped = false;
  const counts: Record<string, number> = { requests: 0 };
  const loops = Array.from({ length: concurrent }, async (_, c) => {
    const body = Buffer.from(encodeSubmission(forged.spoil(c)));
    const signatures: number[] = [];
    for (let at = 0; at < body.byteLength; ) {
      const txLength = body.readUInt32BE(at);
      const headerLength = body.readUInt16BE(at + 5);
      signatures.push(at + 4 + 3 + headerLength + 40);
      at += 4 + txLength + 2; // no bodies
    }
    while (!stopped) {
      for (const sig of signatures) randomBytes(8).copy(body, sig);
      const a = await post(url, '/v1/batches', body, {
        contentType: 'application/octet-stream',
        localAddress,
        ...(authorization ? { authorization } : {}),
      });
      counts.requests!++;
      counts[`status ${a.status}`] = (counts[`status ${a.status}`] ?? 0) + 1;
      if (a.status !== 200) await new Promise((r) => setTimeout(r, 20));
    }
  });
  return {
    async stop() {
      stopped = true;
      await Promise.all(loops);
    },
    stats: () => ({ ...counts }),
  };
}

/**
 * Long-poll exhaustion: `count` GET /v1/commits that wait for a block far in the future, each
 * re-opened as soon as it is answered, from `localAddress`.
 */
export function longPolls(
  url: string,
  count: number,
  localAddress = attackerAddress,
  authorization?: string,
): Attack {
  let stopped = false;
  const counts: Record<string, number> = { requests: 0 };
  const live = new Set<() => void>();
  const one = () => {
    if (stopped) return;
    const u = new URL('/v1/commits?after=1000000000&waitMs=30000', url);
    const req = httpRequest(
      {
        host: u.hostname,
        port: u.port,
        path: u.pathname + u.search,
        localAddress,
        agent: false,
        ...(authorization ? { headers: { authorization } } : {}),
      },
      (res) => {
        res.on('data', () => {});
        res.on('end', () => finish(res.statusCode ?? 0));
      },
    );
    const abort = () => req.destroy();
    live.add(abort);
    let finished = false;
    const finish = (status: number) => {
      if (finished) return;
      finished = true;
      live.delete(abort);
      counts.requests!++;
      counts[`status ${status}`] = (counts[`status ${status}`] ?? 0) + 1;
      if (!stopped) setTimeout(one, status === 200 ? 0 : 200);
    };
    req.on('error', () => finish(0));
    req.end();
  };
  for (let i = 0; i < count; i++) one();
  return {
    async stop() {
      stopped = true;
      for (const a of [...live]) a();
    },
    stats: () => ({ ...counts, waiting: live.size }),
  };
}

/**
 * Slowloris: `count` connections that send a request line and one header, then one more header byte
 * every `dripMs`, never finishing the request.
 */
export function slowHeaders(
  url: string,
  count: number,
  dripMs = 1_000,
  localAddress = attackerAddress,
): Attack {
  const u = new URL(url);
  return holdConnections([{ host: u.hostname, port: Number(u.port) }], {
    perTarget: count,
    reopenMs: 120_000,
    localAddress,
    opening: (s) => {
      s.write('GET /v1/status HTTP/1.1\r\nHost: x\r\n');
      const drip = setInterval(() => (s.writable ? s.write('X') : clearInterval(drip)), dripMs);
      s.on('close', () => clearInterval(drip));
    },
  });
}
