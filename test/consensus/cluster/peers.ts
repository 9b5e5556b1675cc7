/**
 * Validators as real OS processes (`bin/masbc-edge.js peer`) over real libp2p on loopback, for the
 * cluster tests, the benchmark and the end-to-end tests: start, kill -9, restart, submit and read
 * status, blocks, proofs and commits over each peer's validator HTTP API (src/api/validator-api.ts),
 * and sign real events with the test gateway keys the alliance's genesis registers.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { dirname, join, resolve } from 'node:path';
import { createInterface } from 'node:readline';
import { type CredentialRole, issueCredential } from '../../../src/api/auth/credentials.ts';
import { decodeTx, txIdOf } from '../../../src/consensus/app/tx.ts';
import type { CertifiedBlock } from '../../../src/consensus/core/types.ts';
import { loadGenesis } from '../../../src/consensus/genesis/genesis.ts';
import { type InclusionProof, inclusionProofFromJson } from '../../../src/consensus/runtime/block-store.ts';
import {
  type CommittedBlockInfo,
  encodeSubmission,
  type SubmitVerdict,
  submitBatchesMax,
} from '../../../src/consensus/runtime/client.ts';
import type { NodeMetrics, NodeStatus } from '../../../src/consensus/runtime/node.ts';
import { certifiedBlockFromJson } from '../../../src/consensus/wire/json.ts';
import { toHex } from '../../../src/crypto/hash.ts';
import { loadKeyFile } from '../../../src/crypto/keys.ts';
import {
  type AllianceFiles,
  identityRootFileFor,
  initAlliance,
} from '../../../src/devtools/local-alliance.ts';
import { encodeBody } from '../../../src/event/event.ts';
import { type ChainHead, EventSigner, emptyHead } from '../../../src/event/signer.ts';

const bin = resolve(import.meta.dirname, '../../../bin/masbc-edge.js');

const tokens = new Map<string, Promise<string>>();
/**
 * A credential issued by `member`'s identity root (the local alliance keeps every member's folder
 * next to the genesis, as the demo does): every API route but /health needs one.
 */
export function credentialOf(
  genesisFile: string,
  member: string,
  role: CredentialRole,
  gateway?: string,
): Promise<string> {
  const key = `${genesisFile}|${member}|${role}|${gateway ?? ''}`;
  let t = tokens.get(key);
  if (!t) {
    const chainId = loadGenesis(genesisFile).chainId;
    const root = loadKeyFile(identityRootFileFor(dirname(genesisFile), member));
    t = issueCredential(root, {
      member,
      chainId,
      role,
      subject: `test-${role}`,
      ...(gateway ? { gateway } : {}),
      ttlMs: 86_400_000,
    }).then((r) => r.token);
    tokens.set(key, t);
  }
  return t;
}

export type SubmitAnswer =
  | { accepted: true; id: string }
  | { accepted: false; reason: string; detail: string; id: string };

export class PeerProcess {
  readonly member: string;
  /** The validator's data folder (its chain.db). */
  readonly dataDir: string;
  /** The alliance genesis; the members' identity roots are in the folder next to it. */
  readonly genesisFile: string;
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
    this.genesisFile = args[args.indexOf('--genesis') + 1]!;
  }

  get running(): boolean {
    return this.#child !== undefined;
  }

  /**
   * Spawns the process and resolves once it printed its ready line (or rejects if it exits).
   * `nodeArgs` (e.g. --cpu-prof) are kept for later restarts.
   */
  /** The running process's id, if it runs. */
  get pid(): number | undefined {
    return this.#child?.pid;
  }

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
        const m = / api (http:\/\/\S+) /.exec(line);
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
    const r = certifiedBlockFromJson(json);
    if (!r.ok) throw new Error(`${this.member}: block ${height}: ${r.error.detail}`);
    return r.value;
  }

  /** The inclusion proof of a committed transaction (hex id), as served: check it with verifyInclusionProof. */
  async proof(id: string): Promise<InclusionProof> {
    return inclusionProofFromJson(await this.#get(`/v1/proofs/${id}`));
  }

  /** Final blocks above `after` (long-polls up to `waitMs` when there is none yet). */
  async commits(after: number, waitMs: number, signal?: AbortSignal): Promise<CommittedBlockInfo[]> {
    const res = await fetch(`${this.url}/v1/commits?after=${after}&waitMs=${waitMs}`, {
      signal,
      headers: await this.#reader(),
    });
    if (!res.ok) throw new Error(`${this.member} /v1/commits: HTTP ${res.status}`);
    return ((await res.json()) as { blocks: CommittedBlockInfo[] }).blocks;
  }

  /**
   * Submits transactions' exact bytes (POST /v1/batches), without bodies unless given: any
   * validator takes a batch alone; only its member's takes its bodies.
   */
  async submit(txs: readonly Uint8Array[], bodies?: readonly (readonly string[])[]): Promise<SubmitAnswer[]> {
    const answers: SubmitAnswer[] = [];
    // One request per run of batches of one gateway, with that gateway's credential (a batch that
    // does not decode goes with the run it is in: the validator refuses it on its own).
    const whose = (tx: Uint8Array) => {
      const d = decodeTx(tx);
      return d.ok ? `${d.batch.header.enterprise}/${d.batch.header.gateway}` : undefined;
    };
    for (let i = 0; i < txs.length; ) {
      let owner = whose(txs[i]!);
      let end = i + 1;
      while (end < txs.length && end - i < submitBatchesMax) {
        const w = whose(txs[end]!);
        if (w !== undefined && owner !== undefined && w !== owner) break;
        owner ??= w;
        end++;
      }
      const part = txs.slice(i, end);
      const first = i;
      i = end;
      const [enterprise, gateway] = owner ? owner.split('/') : [this.member, 'gw-1'];
      const token = await credentialOf(this.genesisFile, enterprise!, 'gateway', gateway);
      const res = await fetch(`${this.url}/v1/batches`, {
        method: 'POST',
        headers: { 'content-type': 'application/octet-stream', authorization: `Bearer ${token}` },
        body: encodeSubmission(
          part.map((tx, j) => ({ tx, bodies: bodies?.[first + j] ?? [] })),
        ) as Uint8Array<ArrayBuffer>,
      });
      const json = (await res.json()) as { verdicts?: SubmitVerdict[]; error?: string };
      if (!json.verdicts) throw new Error(`${this.member}: submit: ${json.error}`);
      json.verdicts.forEach((v, j) => {
        const id = toHex(txIdOf(part[j]!));
        answers.push(
          v.accepted
            ? { accepted: true, id }
            : { accepted: false, reason: v.reason, detail: v.detail ?? '', id },
        );
      });
    }
    return answers;
  }

  async #reader(): Promise<Record<string, string>> {
    return { authorization: `Bearer ${await credentialOf(this.genesisFile, this.member, 'reader')}` };
  }

  async #get(path: string): Promise<unknown> {
    const res = await fetch(`${this.url}${path}`, { headers: await this.#reader() });
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
  o: {
    viewChangeTimeoutMs: number;
    statusIntervalMs: number;
    nodeArgs?: (member: string) => string[];
    /** More `peer` options, e.g. transport timing (`--keepalive-ms`). */
    peerArgs?: (member: string) => string[];
  },
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
        '--status-every-ms',
        '0',
        '--status-interval-ms',
        String(o.statusIntervalMs),
        ...(o.peerArgs?.(v.memberId) ?? []),
      ]),
  );
  await Promise.all(peers.map((p) => p.start(o.nodeArgs?.(p.member))));
  return { files, peers, stopAll: () => Promise.all(peers.map((p) => p.stop())).then(() => {}) };
}

/** The benchmarks' and cluster tests' event: the n-th part completed at a CNC station. */
export function partCompleted(n: number) {
  return {
    kind: 'part_completed' as const,
    dataClass: 'process' as const,
    station: 'cnc-1',
    device: 'cnc-1',
    sourceTimeMs: Date.now(),
    lot: `LOT-${Math.floor(n / 500)}`,
    product: `SN-${n}`,
    values: { diameter: { v: 12.01 + (n % 9) / 1000, unit: 'mm', q: 'good' as const } },
  };
}

/**
 * A member's test gateway (registered in the genesis by `alliance init`), signing real batches. Its
 * events form one seq/prev chain however they are batched, as the ledger requires: the validators
 * commit them only in that order, so submit them in the order they were signed.
 */
export class Gateway {
  readonly #signer: EventSigner;
  readonly #perBatch: number;
  #head: ChainHead = emptyHead;
  #n = 0;

  /** `perBatch`: events per signed batch (each a transaction); 1 for a transaction per event. */
  constructor(files: AllianceFiles, member: string, perBatch: number) {
    const g = files.gateways.get(member);
    if (!g) throw new Error(`no test gateway registered for ${member}`);
    const key = loadKeyFile(g.keyFile);
    const identity = { enterprise: member, site: 'site-1', line: 'line-1', gateway: g.gateway };
    this.#signer = new EventSigner(identity, key);
    this.#perBatch = perBatch;
  }

  /**
   * `count` part-completed events, `perBatch` to a signed batch: the transactions, their ids, their
   * events' ids and bodies (for the member's own validator only).
   */
  events(
    count: number,
    perBatch: number = this.#perBatch,
  ): { ids: string[]; bytes: Uint8Array[]; eventIds: string[]; bodies: string[][] } {
    const out = {
      ids: [] as string[],
      bytes: [] as Uint8Array[],
      eventIds: [] as string[],
      bodies: [] as string[][],
    };
    for (let done = 0; done < count; done += perBatch) {
      const drafts = Array.from({ length: Math.min(perBatch, count - done) }, () => partCompleted(++this.#n));
      const { batch, events, head } = this.#signer.sign(drafts, this.#head);
      this.#head = head;
      out.ids.push(batch.txId);
      out.bytes.push(batch.tx);
      out.eventIds.push(...events.map((e) => e.id));
      out.bodies.push(events.map((e) => encodeBody(e.body!)));
    }
    return out;
  }
}

/** A validator's final blocks as this process sees them arrive (for latency and throughput figures). */
export interface CommitStream {
  /** txId hex → time the commit was seen (ms, this process's clock). */
  seen: Map<string, number>;
  /** Blocks seen, in height order (one entry per block of the run: a benchmark's record). */
  blocks: { height: number; txs: number; atMs: number }[];
  /** Resolves at the next committed block. */
  next(): Promise<void>;
  close(): void;
}

/** Follows a validator's final blocks from its current height (GET /v1/commits, long-polled). */
export async function followCommits(peer: PeerProcess): Promise<CommitStream> {
  const abort = new AbortController();
  let after = (await peer.status()).committedHeight;
  let waiters: (() => void)[] = [];
  const stream: CommitStream = {
    seen: new Map(),
    blocks: [],
    next: () => new Promise((resolve) => waiters.push(resolve)),
    close: () => abort.abort(),
  };
  void (async () => {
    while (!abort.signal.aborted) {
      try {
        const blocks = await peer.commits(after, 10_000, abort.signal);
        const now = Date.now();
        for (const b of blocks) {
          if (b.height !== after + 1) break;
          after = b.height;
          for (const id of b.txIds) stream.seen.set(id, now);
          stream.blocks.push({ height: b.height, txs: b.txIds.length, atMs: now });
        }
        if (blocks.length > 0) {
          const woken = waiters;
          waiters = [];
          for (const w of woken) w();
        }
      } catch (err) {
        if (abort.signal.aborted) return;
        process.stderr.write(`(commits of ${peer.member}: ${(err as Error).message}; retrying)\n`);
        await new Promise((r) => setTimeout(r, 100));
      }
    }
  })();
  return stream;
}

/** Refusals a later resubmission cures: the mempool, or the gateway's share of the ordered pool, was full. */
export function retryable(r: SubmitAnswer): boolean {
  return (
    !r.accepted &&
    (r.reason === 'mempool-full' || (r.reason === 'refused' && /^(pending|held)_full/.test(r.detail)))
  );
}

/**
 * Submits `bytes` (one gateway's batches, in its seq order, with their events' `bodies` when given)
 * until each is accepted, pending or committed, resubmitting what a full pool refused (in order)
 * after the next commit on `stream`. Any other refusal throws.
 */
export async function submitInOrder(
  peer: PeerProcess,
  bytes: readonly Uint8Array[],
  stream: CommitStream,
  bodies?: readonly (readonly string[])[],
): Promise<void> {
  let pending = bytes.map((tx, k) => ({ tx, bodies: bodies?.[k] ?? [] }));
  while (pending.length > 0) {
    const results = await peer.submit(
      pending.map((p) => p.tx),
      pending.map((p) => p.bodies),
    );
    const retry: typeof pending = [];
    results.forEach((r, k) => {
      if (r.accepted || r.reason === 'duplicate' || r.reason === 'committed') return;
      if (!retryable(r)) throw new Error(`${peer.member} refused a batch: ${r.reason} ${r.detail}`);
      retry.push(pending[k]!);
    });
    if (retry.length > 0) await stream.next(); // the mempool drains as blocks commit
    pending = retry;
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
