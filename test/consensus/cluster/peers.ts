/**
 * Validators as real OS processes (`bin/masbc-edge.js peer`) over real libp2p on loopback, for the
 * cluster tests and the benchmark: start, kill -9, restart, read status and blocks over each
 * peer's local HTTP endpoint, and sign real events with the alliance's test gateway keys.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { join, resolve } from 'node:path';
import { createInterface } from 'node:readline';
import { type AllianceFiles, initAlliance } from '../../../src/cli/alliance.ts';
import { decodeCertifiedBlock } from '../../../src/consensus/codec.ts';
import type { NodeMetrics, NodeStatus } from '../../../src/consensus/node.ts';
import type { CertifiedBlock } from '../../../src/consensus/types.ts';
import { encodeCanonical } from '../../../src/crypto/canonical.ts';
import { loadKeyFile } from '../../../src/crypto/keys.ts';
import { encodeEvent } from '../../../src/edge/event.ts';
import { type ChainHead, EventSigner, emptyHead, type SigningMode } from '../../../src/edge/signer.ts';

const bin = resolve(import.meta.dirname, '../../../bin/masbc-edge.js');

export type SubmitAnswer =
  | { accepted: true; id: string }
  | { accepted: false; reason: string; detail: string };

export class PeerProcess {
  readonly member: string;
  /** The validator's data folder (its chain.db). */
  readonly dataDir: string;
  readonly #args: string[];
  #nodeArgs: string[] = [];
  #child: ChildProcess | undefined;
  #exited: Promise<void> = Promise.resolve();
  url = '';
  /** Output lines, for failure messages. */
  readonly output: string[] = [];

  constructor(member: string, args: string[]) {
    this.member = member;
    this.#args = args;
    this.dataDir = args[args.indexOf('--data') + 1]!;
  }

  get running(): boolean {
    return this.#child !== undefined;
  }

  /**
   * Spawns the process and resolves once it printed its ready line (or rejects if it exits).
   * `nodeArgs` (e.g. --cpu-prof) are kept for later restarts.
   */
  async start(nodeArgs?: string[]): Promise<void> {
    if (nodeArgs) this.#nodeArgs = nodeArgs;
    const child = spawn(
      process.execPath,
      [...this.#nodeArgs, bin, 'peer', ...this.#args, '--stop-with-stdin'],
      {
        stdio: ['pipe', 'pipe', 'pipe'],
      },
    );
    this.#child = child;
    this.#exited = new Promise((done) =>
      child.once('exit', () => {
        this.#child = undefined;
        done();
      }),
    );
    const ready = Promise.withResolvers<void>();
    for (const stream of [child.stdout!, child.stderr!]) {
      createInterface({ input: stream }).on('line', (line) => {
        if (this.output.length > 200) this.output.shift();
        this.output.push(line);
        const m = / rpc (http:\/\/\S+) /.exec(line);
        if (m) {
          this.url = m[1]!;
          ready.resolve();
        }
      });
    }
    void this.#exited.then(() =>
      ready.reject(new Error(`${this.member} exited:\n${this.output.join('\n')}`)),
    );
    await ready.promise;
  }

  /** kill -9: no clean shutdown. */
  async kill(): Promise<void> {
    this.#child?.kill('SIGKILL');
    await this.#exited;
  }

  async stop(): Promise<void> {
    this.#child?.kill('SIGTERM');
    await this.#exited;
  }

  async status(): Promise<NodeStatus> {
    return (await this.#get('/v1/status')) as NodeStatus;
  }

  async metrics(): Promise<NodeMetrics> {
    return (await this.#get('/v1/metrics')) as NodeMetrics;
  }

  async block(height: number): Promise<CertifiedBlock> {
    const json = await this.#get(`/v1/blocks/${height}`);
    const r = decodeCertifiedBlock(encodeCanonical(json));
    if (!r.ok) throw new Error(`${this.member}: block ${height}: ${r.error.detail}`);
    return r.value;
  }

  async submit(txs: readonly Uint8Array[]): Promise<SubmitAnswer[]> {
    const body = Buffer.concat(txs.flatMap((t) => [t, Buffer.from('\n')]));
    const res = await fetch(`${this.url}/v1/txs`, { method: 'POST', body });
    const json = (await res.json()) as { results?: SubmitAnswer[]; error?: string };
    if (!json.results) throw new Error(`${this.member}: submit: ${json.error}`);
    return json.results;
  }

  async #get(path: string): Promise<unknown> {
    const res = await fetch(`${this.url}${path}`);
    if (!res.ok) throw new Error(`${this.member} ${path}: HTTP ${res.status}`);
    return res.json();
  }
}

export interface Cluster {
  files: AllianceFiles;
  peers: PeerProcess[];
  stopAll(): Promise<void>;
}

/** A fresh alliance in `dir` with `n` validator processes, all started. */
export async function startCluster(
  dir: string,
  n: number,
  o: { viewChangeTimeoutMs: number; statusIntervalMs: number; nodeArgs?: (member: string) => string[] },
): Promise<Cluster> {
  const files = await initAlliance({ dir, validators: n, viewChangeTimeoutMs: o.viewChangeTimeoutMs });
  const peers = files.alliance.genesis.validators.map(
    (v) =>
      new PeerProcess(v.memberId, [
        '--genesis',
        files.alliance.genesisFile,
        '--key',
        files.alliance.keyFiles.get(v.memberId)!,
        '--data',
        join(dir, 'data', v.memberId),
        '--gateway-keys',
        files.gatewayKeysFile,
        '--status-every-ms',
        '0',
        '--status-interval-ms',
        String(o.statusIntervalMs),
      ]),
  );
  await Promise.all(peers.map((p) => p.start(o.nodeArgs?.(p.member))));
  return { files, peers, stopAll: () => Promise.all(peers.map((p) => p.stop())).then(() => {}) };
}

/** A test gateway of the alliance (member's gateway key), signing real events. */
export class Gateway {
  readonly #signer: EventSigner;
  #head: ChainHead = emptyHead;
  #n = 0;

  constructor(files: AllianceFiles, member: string, mode: SigningMode) {
    const key = loadKeyFile(files.gatewayKeyFiles.get(member)!);
    this.#signer = new EventSigner(
      { enterprise: member, site: 'site-1', line: 'line-1', gateway: `${member}-gw` },
      key,
      { mode },
    );
  }

  /** `count` part-completed events as canonical bytes, with their ids. */
  events(count: number): { ids: string[]; bytes: Uint8Array[] } {
    const drafts = Array.from({ length: count }, () => {
      this.#n++;
      return {
        kind: 'part_completed' as const,
        dataClass: 'process' as const,
        station: 'cnc-1',
        device: 'cnc-1',
        sourceTimeMs: Date.now(),
        lot: `LOT-${Math.floor(this.#n / 500)}`,
        product: `SN-${this.#n}`,
        values: { diameter: { v: 12.01 + (this.#n % 9) / 1000, unit: 'mm', q: 'good' as const } },
      };
    });
    const { events, head } = this.#signer.sign(drafts, this.#head);
    this.#head = head;
    const enc = new TextEncoder();
    return { ids: events.map((e) => e.id), bytes: events.map((e) => enc.encode(encodeEvent(e))) };
  }
}

/** Re-checks `check` every `everyMs` until it resolves true, or throws after `timeoutMs`. */
export async function waitFor(
  check: () => Promise<boolean> | boolean,
  what: string,
  timeoutMs: number,
  everyMs = 25,
): Promise<number> {
  const t0 = Date.now();
  for (;;) {
    try {
      if (await check()) return Date.now() - t0;
    } catch {
      // a peer being restarted does not answer: keep polling until the deadline
    }
    if (Date.now() - t0 > timeoutMs) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, everyMs));
  }
}

/** Hex block hash: what must be equal across replicas at one height (certificates may differ). */
export function blockKey(cb: CertifiedBlock): string {
  return Buffer.from(cb.certificate.blockHash).toString('hex');
}
