/**
 * The member's validator on a worker thread of its own (chain role `validator`, `chain.thread: true`,
 * the default). The gateway's event loop runs acquisition: socket reads, mapping, the normaliser,
 * signing and outbox writes. Sharing that loop, acquisition and the validator take turns on one core:
 * under overload, acquisition slows to what the chain commits and the excess waits at the source.
 * On its own thread the validator keeps its own pace and acquisition keeps storing into the outbox,
 * at the price of a second V8 heap and, on a box shared with the other validators, CPU they would
 * have used (docs/runtime.md, "Performance", has both layouts measured).
 *
 * The worker (chain-thread-worker.ts) opens the validator with startValidator (src/validator: libp2p,
 * the ledger, the block store, the optional HTTP API), as everywhere else, and answers the
 * ChainClient calls over its message port. Its log lines come back here and go to the gateway's log.
 *
 * Bounds: calls in flight are the submitter's (one submit or receipts call at a time, see
 * submitter.ts), so the reply table holds at most a few entries; blocks arrive as they are committed.
 *
 * Failure: if the worker exits or throws, every call in flight and every later call is rejected
 * (the submitter logs it and retries; the outbox keeps everything), the status reports the problem,
 * and the gateway keeps acquiring. A restart of the gateway opens a new validator from its store.
 *
 * @example
 *   const link = await openValidatorThread(hostedValidatorOptions(config), log);
 *   const verdicts = await link.client.submit([{ tx, bodies }]);
 *   await link.stop();
 */
import { Worker } from 'node:worker_threads';
import type {
  ChainClient,
  ChainReceipt,
  CommittedBlockInfo,
  SubmitBatch,
  SubmitVerdict,
} from '../consensus/runtime/client.ts';
import type { NodeMetrics, NodeStatus } from '../consensus/runtime/node.ts';
import type { Logger } from '../log/logger.ts';
import type { ValidatorSettings } from '../validator/validator.ts';
import { validatorThread } from './bounds.ts';

/** The ChainClient calls that are answered once. */
type Call = { op: 'submit'; batches: readonly SubmitBatch[] } | { op: 'receipts'; ids: readonly string[] };

/** Messages to the worker. */
export type ToWorker =
  | ({ t: 'call'; id: number } & Call)
  | { t: 'subscribe'; sub: number; afterHeight: number }
  | { t: 'unsubscribe'; sub: number }
  | { t: 'stop' };

/** Messages from the worker. */
export type FromWorker =
  | { t: 'ready'; apiUrl: string | null; status: NodeStatus }
  | { t: 'failed'; error: string }
  | { t: 'reply'; id: number; value?: unknown; error?: string }
  | { t: 'block'; sub: number; block: CommittedBlockInfo }
  | { t: 'status'; status: NodeStatus }
  | { t: 'metrics'; metrics: NodeMetrics }
  | {
      t: 'log';
      level: 'debug' | 'info' | 'warn' | 'error';
      bindings: Record<string, unknown>;
      msg: string;
      fields?: Record<string, unknown>;
    }
  | { t: 'stopped' };

/** What the worker receives as workerData. */
export interface WorkerInput {
  options: ValidatorSettings;
  /** How often it posts the validator's status. */
  statusIntervalMs: number;
  /** How often it posts the validator's counters. */
  metricsIntervalMs: number;
}

const { statusIntervalMs, metricsIntervalMs, startTimeoutMs, stopTimeoutMs } = validatorThread;

/** The validator on its thread, as the gateway sees it. */
export interface ValidatorThread {
  client: ChainClient;
  apiUrl: string | null;
  status(): NodeStatus | null;
  /** The validator's counters as of its last report (every metricsIntervalMs), or null before the first. */
  metrics(): NodeMetrics | null;
  stop(): Promise<void>;
}

export async function openValidatorThread(options: ValidatorSettings, log: Logger): Promise<ValidatorThread> {
  const input: WorkerInput = { options, statusIntervalMs, metricsIntervalMs };
  const worker = new Worker(new URL('./chain-thread-worker.ts', import.meta.url), {
    workerData: input,
    name: 'masbc-validator',
  });
  const calls = new Map<number, { resolve: (v: unknown) => void; reject: (e: Error) => void }>();
  const subs = new Map<number, (b: CommittedBlockInfo) => void>();
  let nextId = 1;
  let status: NodeStatus | null = null;
  let metrics: NodeMetrics | null = null;
  /** Why the thread is gone (null while it runs). */
  let gone: string | null = null;
  let stopping = false;
  const started = Promise.withResolvers<string | null>();
  const stopped = Promise.withResolvers<void>();

  const fail = (why: string) => {
    if (gone !== null) return;
    gone = why;
    if (status) status = { ...status, state: 'failed', problem: why };
    for (const c of calls.values()) c.reject(new Error(why));
    calls.clear();
    started.reject(new Error(why));
    stopped.resolve();
  };

  worker.on('message', (m: FromWorker) => {
    switch (m.t) {
      case 'ready':
        status = m.status;
        started.resolve(m.apiUrl);
        return;
      case 'failed':
        fail(`validator thread failed: ${m.error}`);
        return;
      case 'reply': {
        const c = calls.get(m.id);
        if (!c) return;
        calls.delete(m.id);
        if (m.error !== undefined) c.reject(new Error(m.error));
        else c.resolve(m.value);
        return;
      }
      case 'block':
        subs.get(m.sub)?.(m.block);
        return;
      case 'status':
        status = m.status;
        return;
      case 'metrics':
        metrics = m.metrics;
        return;
      case 'log': {
        const l = Object.keys(m.bindings).length > 0 ? log.child(m.bindings) : log;
        l[m.level](m.msg, m.fields);
        return;
      }
      case 'stopped':
        gone = 'validator thread stopped';
        if (status) status = { ...status, state: 'stopped' };
        stopped.resolve();
        return;
    }
  });
  worker.on('error', (err) => {
    log.error('validator thread crashed', { err: err.message });
    fail(`validator thread crashed: ${err.message}`);
  });
  worker.on('exit', (code) => {
    if (!stopping) log.error('validator thread exited', { code });
    fail(`validator thread exited (code ${code})`);
  });

  const post = (m: ToWorker) => {
    if (gone === null) worker.postMessage(m);
  };
  const call = <T>(m: Call): Promise<T> => {
    if (gone !== null) return Promise.reject(new Error(gone));
    const id = nextId++;
    return new Promise<T>((resolve, reject) => {
      calls.set(id, { resolve: resolve as (v: unknown) => void, reject });
      worker.postMessage({ t: 'call', id, ...m } satisfies ToWorker);
    });
  };

  const timer = setTimeout(
    () => fail(`validator thread did not start in ${startTimeoutMs / 1000} s`),
    startTimeoutMs,
  );
  let apiUrl: string | null;
  try {
    apiUrl = await started.promise;
  } catch (err) {
    stopping = true;
    await worker.terminate();
    throw err;
  } finally {
    clearTimeout(timer);
  }

  const client: ChainClient = {
    submit: (batches) => call<SubmitVerdict[]>({ op: 'submit', batches }),
    receipts: (ids) => call<(ChainReceipt | null)[]>({ op: 'receipts', ids }),
    subscribe(afterHeight, onBlock) {
      const sub = nextId++;
      subs.set(sub, onBlock);
      post({ t: 'subscribe', sub, afterHeight });
      return () => {
        subs.delete(sub);
        post({ t: 'unsubscribe', sub });
      };
    },
  };

  return {
    client,
    apiUrl,
    status: () => status,
    metrics: () => (metrics && status ? { ...metrics, status } : metrics),
    async stop() {
      if (stopping) return;
      stopping = true;
      post({ t: 'stop' });
      const deadline = setTimeout(() => {
        log.warn('validator thread did not stop in time; terminating it', { afterMs: stopTimeoutMs });
        stopped.resolve();
      }, stopTimeoutMs);
      await stopped.promise;
      clearTimeout(deadline);
      await worker.terminate();
    },
  };
}
