/** Shared set-up for the transport tests: a local alliance in a temp folder, transports, waits. */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadValidatorIdentity } from '../../../src/consensus/genesis/identity.ts';
import { Libp2pTransport } from '../../../src/consensus/net/libp2p.ts';
import type { TransportLimits } from '../../../src/consensus/net/limits.ts';
import type { PeerStatus, Transport } from '../../../src/consensus/net/types.ts';
import {
  createLocalAlliance,
  type LocalAlliance,
  type LocalAllianceOptions,
} from '../../../src/devtools/local-alliance.ts';

export interface Fixture {
  dir: string;
  alliance: LocalAlliance;
  cleanup(): void;
}

export async function allianceFixture(options: Omit<LocalAllianceOptions, 'dir'>): Promise<Fixture> {
  const dir = mkdtempSync(join(tmpdir(), 'masbc-net-'));
  const alliance = await createLocalAlliance({ ...options, dir });
  return { dir, alliance, cleanup: () => rmSync(dir, { recursive: true, force: true }) };
}

/** Fast timings so tests see redials and quarantines end within their budget. */
export const testLimits: Partial<TransportLimits> = {
  redialMinMs: 50,
  redialMaxMs: 500,
  quarantineMinMs: 300,
  quarantineMaxMs: 1_000,
  requestTimeoutMs: 2_000,
};

export async function transportFor(
  alliance: LocalAlliance,
  memberId: string,
  limits: Partial<TransportLimits> = testLimits,
): Promise<Libp2pTransport> {
  const identity = await loadValidatorIdentity(alliance.keyFiles.get(memberId)!);
  return new Libp2pTransport({ genesis: alliance.genesis, self: memberId, identity, limits });
}

/**
 * Resolves once `predicate` holds for `transport`'s peers, re-checking on every peer-state change;
 * rejects after `timeoutMs` with the peers' last statuses.
 */
export function untilPeers(
  transport: Transport,
  predicate: (peers: PeerStatus[]) => boolean,
  timeoutMs = 5_000,
): Promise<void> {
  return new Promise((resolve, reject) => {
    let done = false;
    const check = () => {
      if (done || !predicate(transport.peers())) return;
      done = true;
      clearTimeout(timer);
      resolve();
    };
    const timer = setTimeout(() => {
      done = true;
      const states = transport.peers().map((p) => `${p.memberId}:${p.state}:${p.lastError ?? ''}`);
      reject(new Error(`${transport.self}: condition not met in ${timeoutMs} ms (${states.join(', ')})`));
    }, timeoutMs);
    transport.onPeerState(check);
    check();
  });
}

export const allConnected = (peers: PeerStatus[]) =>
  peers.every((p) => p.state === 'connected' && p.inboundOpen);

/**
 * For conditions no event announces (counters): re-checks every 10 ms until true or `timeoutMs`.
 */
export async function eventually(check: () => boolean, what: string, timeoutMs = 5_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`not within ${timeoutMs} ms: ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}

/** A message handler that records what arrives and lets a test await a count. */
export function collector() {
  const received: { from: string; payload: Uint8Array }[] = [];
  let waiters: { count: number; resolve(): void }[] = [];
  return {
    received,
    handler(from: string, payload: Uint8Array) {
      received.push({ from, payload });
      waiters = waiters.filter((w) => {
        if (received.length < w.count) return true;
        w.resolve();
        return false;
      });
    },
    until(count: number, timeoutMs = 5_000): Promise<void> {
      if (received.length >= count) return Promise.resolve();
      return new Promise((resolve, reject) => {
        const timer = setTimeout(
          () => reject(new Error(`received ${received.length} of ${count} in ${timeoutMs} ms`)),
          timeoutMs,
        );
        waiters.push({
          count,
          resolve: () => {
            clearTimeout(timer);
            resolve();
          },
        });
      });
    },
  };
}

export const utf8 = (s: string) => new TextEncoder().encode(s);
export const text = (b: Uint8Array) => new TextDecoder().decode(b);
