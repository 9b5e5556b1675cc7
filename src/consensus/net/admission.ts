/**
 * Admission of inbound connections, decided from the remote address alone, before any byte of the
 * libp2p handshake is read (libp2p's `denyInboundConnection` gate). libp2p checks peer ids only
 * after the Noise handshake, and until then a connection holds one of a few pending-upgrade slots: a
 * keyless attacker who holds them all (opening connections that never finish their handshake)
 * keeps the validators from reconnecting to each other. So pending connections are bounded per
 * address and in all, and the validators' own addresses (the hosts of the genesis `addrs`) have a
 * reserve of their own that strangers cannot touch:
 *
 * - a host the genesis lists: at most `pendingPerValidatorMax` pending per validator listed there
 *   (they are also on libp2p's allow list, so its global pending cap and per-host connection rate
 *   do not apply to them);
 * - any other address ("stranger"): refused outright in mode 'genesis-only'; in mode 'open' (the
 *   default, for validators whose connections come from addresses the genesis does not list, e.g.
 *   behind NAT) at most `pendingPerAddressMax` pending per address (IPv6: per /64, which one host
 *   usually holds whole) and `pendingStrangersMax` for all strangers together.
 *
 * Every pending connection ends within `handshakeTimeoutMs` (libp2p's inbound upgrade timeout).
 * A stranger that completes the handshake is then refused by its peer id, as before.
 *
 * @example
 *   const admission = new Admission(genesis, limits, 'open');
 *   await admission.resolve();              // DNS names in the genesis addrs, best effort
 *   connectionGater: { denyInboundConnection: (c) => admission.deny(c) }
 */
import { lookup } from 'node:dns/promises';
import { isIP } from 'node:net';
import type { MultiaddrConnection } from '@libp2p/interface';
import type { Multiaddr } from '@multiformats/multiaddr';
import { multiaddr } from '@multiformats/multiaddr';
import type { Genesis } from '../genesis/genesis.ts';
import type { TransportLimits } from './limits.ts';

/**
 * 'open': anyone may attempt the handshake, within the per-address and stranger bounds.
 * 'genesis-only': only the hosts of the genesis `addrs` may (every validator connects from the
 * address the others dial, e.g. no NAT between them).
 */
export const admissionModes = ['open', 'genesis-only'] as const;
export type AdmissionMode = (typeof admissionModes)[number];

export const admissionRefusals = [
  'not-listed',
  'address-pending',
  'strangers-pending',
  'validator-pending',
] as const;
export type AdmissionRefusal = (typeof admissionRefusals)[number];

export interface AdmissionMetrics {
  mode: AdmissionMode;
  /** Inbound connections from addresses the genesis does not list. */
  strangerConnections: number;
  /** Inbound connections refused before the handshake, by reason. */
  refused: Record<AdmissionRefusal, number>;
  /** Admitted connections closed before their handshake completed (timed out or given up). */
  abandonedHandshakes: number;
  /** Connections admitted whose handshake is still under way: from strangers, from validator hosts. */
  pendingStrangers: number;
  pendingValidatorHosts: number;
  /** The most recent stranger's address and when (ms), or null. */
  lastStranger: { address: string; atMs: number } | null;
}

/** How often DNS names in the genesis addrs are looked up again. */
const resolveIntervalMs = 60_000;

/** The host of an /ip4, /ip6 or /dns… multiaddr, or undefined. */
export function hostOf(ma: Multiaddr): { host: string; dns: boolean } | undefined {
  for (const c of ma.getComponents()) {
    if ((c.name === 'ip4' || c.name === 'ip6') && c.value) return { host: c.value, dns: false };
    if ((c.name === 'dns' || c.name === 'dns4' || c.name === 'dns6') && c.value)
      return { host: c.value, dns: true };
  }
  return undefined;
}

/** What per-address bounds count: an IPv4 address, or an IPv6 address's /64. */
export function addressKey(host: string): string {
  const h = host.toLowerCase().replace(/^::ffff:(?=\d+\.\d+\.\d+\.\d+$)/, '');
  if (isIP(h) !== 6) return h;
  const [head = '', tail = ''] = h.split('::');
  const left = head ? head.split(':') : [];
  const right = tail ? tail.split(':') : [];
  const groups = h.includes('::')
    ? [...left, ...Array(8 - left.length - right.length).fill('0'), ...right]
    : left;
  return `${groups
    .slice(0, 4)
    .map((g) => Number.parseInt(g || '0', 16).toString(16))
    .join(':')}::/64`;
}

export class Admission {
  readonly mode: AdmissionMode;
  readonly #limits: TransportLimits;
  /** Host (address key) → validators the genesis lists there (self excluded). */
  readonly #listed = new Map<string, number>();
  readonly #dnsNames: { name: string; validators: number }[] = [];
  #resolved = new Map<string, number>();
  readonly #pending = new Map<string, number>();
  readonly #open = new Map<MultiaddrConnection, { key: string; stranger: boolean }>();
  #pendingStrangers = 0;
  #pendingValidatorHosts = 0;
  #strangerConnections = 0;
  #abandoned = 0;
  #lastStranger: AdmissionMetrics['lastStranger'] = null;
  readonly #refused = Object.fromEntries(admissionRefusals.map((r) => [r, 0])) as Record<
    AdmissionRefusal,
    number
  >;
  #timer: NodeJS.Timeout | undefined;

  constructor(genesis: Genesis, self: string, limits: TransportLimits, mode: AdmissionMode = 'open') {
    this.mode = mode;
    this.#limits = limits;
    const dns = new Map<string, number>();
    for (const v of genesis.others(self)) {
      // Each validator counts once per address, however many of its addrs name it.
      const keys = new Set<string>();
      const names = new Set<string>();
      for (const a of v.addrs) {
        const h = hostOf(multiaddr(a));
        if (h?.dns) names.add(h.host);
        else if (h) keys.add(addressKey(h.host));
      }
      for (const k of keys) this.#listed.set(k, (this.#listed.get(k) ?? 0) + 1);
      for (const n of names) dns.set(n, (dns.get(n) ?? 0) + 1);
    }
    for (const [name, validators] of dns) this.#dnsNames.push({ name, validators });
  }

  /**
   * Looks up the DNS names of the genesis addrs (best effort: a name that does not resolve lists
   * nothing until it does), and again every minute until {@link stop}.
   */
  async resolve(): Promise<void> {
    if (this.#dnsNames.length === 0) return;
    const next = new Map<string, number>();
    await Promise.all(
      this.#dnsNames.map(async ({ name, validators }) => {
        try {
          const found = await lookup(name, { all: true });
          for (const { address } of found) {
            const key = addressKey(address);
            next.set(key, (next.get(key) ?? 0) + validators);
          }
        } catch {
          // unresolvable for now: its validators are strangers by address until it resolves
        }
      }),
    );
    this.#resolved = next;
    if (!this.#timer) {
      this.#timer = setInterval(() => void this.resolve(), resolveIntervalMs);
      this.#timer.unref();
    }
  }

  stop(): void {
    clearInterval(this.#timer);
  }

  /** Validators the genesis lists at this address (literal or resolved). */
  listedAt(host: string): number {
    const key = addressKey(host);
    return (this.#listed.get(key) ?? 0) + (this.#resolved.get(key) ?? 0);
  }

  /** The addresses of the genesis addrs as multiaddr prefixes, for libp2p's allow list. */
  listedPrefixes(): string[] {
    return [...new Set([...this.#listed.keys(), ...this.#resolved.keys()])].map((k) =>
      k.endsWith('::/64') ? `/ip6/${k.slice(0, -3)}/ipcidr/64` : `/ip4/${k}`,
    );
  }

  /** Pending connections all admitted addresses together may hold (libp2p's own cap is set to it). */
  pendingMax(): number {
    let reserve = 0;
    for (const n of this.#listed.values()) reserve += n * this.#limits.pendingPerValidatorMax;
    for (const d of this.#dnsNames) reserve += d.validators * this.#limits.pendingPerValidatorMax;
    return this.#limits.pendingStrangersMax + reserve;
  }

  /** libp2p's `denyInboundConnection`: true refuses the connection before its handshake. */
  deny(maConn: MultiaddrConnection): boolean {
    const h = hostOf(maConn.remoteAddr);
    if (!h) return false; // not an IP connection (none are configured): nothing to count by
    const key = addressKey(h.host);
    const listed = this.listedAt(h.host);
    const pending = this.#pending.get(key) ?? 0;
    if (listed === 0) {
      this.#strangerConnections++;
      this.#lastStranger = { address: h.host, atMs: Date.now() };
      if (this.mode === 'genesis-only') return this.#refuse('not-listed');
      if (pending >= this.#limits.pendingPerAddressMax) return this.#refuse('address-pending');
      if (this.#pendingStrangers >= this.#limits.pendingStrangersMax)
        return this.#refuse('strangers-pending');
      this.#pendingStrangers++;
    } else {
      if (pending >= listed * this.#limits.pendingPerValidatorMax) return this.#refuse('validator-pending');
      this.#pendingValidatorHosts++;
    }
    this.#pending.set(key, pending + 1);
    this.#open.set(maConn, { key, stranger: listed === 0 });
    maConn.addEventListener('close', () => this.#settle(maConn, true), { once: true });
    return false;
  }

  /** The connection's handshake completed (whatever is then decided about its peer id). */
  handshakeDone(maConn: MultiaddrConnection): void {
    this.#settle(maConn, false);
  }

  metrics(): AdmissionMetrics {
    return {
      mode: this.mode,
      strangerConnections: this.#strangerConnections,
      refused: { ...this.#refused },
      abandonedHandshakes: this.#abandoned,
      pendingStrangers: this.#pendingStrangers,
      pendingValidatorHosts: this.#pendingValidatorHosts,
      lastStranger: this.#lastStranger && { ...this.#lastStranger },
    };
  }

  #refuse(reason: AdmissionRefusal): true {
    this.#refused[reason]++;
    return true;
  }

  #settle(maConn: MultiaddrConnection, closed: boolean): void {
    const entry = this.#open.get(maConn);
    if (!entry) return;
    this.#open.delete(maConn);
    if (closed) this.#abandoned++;
    const left = (this.#pending.get(entry.key) ?? 1) - 1;
    if (left > 0) this.#pending.set(entry.key, left);
    else this.#pending.delete(entry.key);
    if (entry.stranger) this.#pendingStrangers--;
    else this.#pendingValidatorHosts--;
  }
}

/** An empty record, for transports without admission (the in-memory network). */
export function noAdmission(): AdmissionMetrics {
  return {
    mode: 'open',
    strangerConnections: 0,
    refused: Object.fromEntries(admissionRefusals.map((r) => [r, 0])) as Record<AdmissionRefusal, number>,
    abandonedHandshakes: 0,
    pendingStrangers: 0,
    pendingValidatorHosts: 0,
    lastStranger: null,
  };
}
