/**
 * The worker side of chain-thread.ts: opens the member's validator with startValidator and
 * serves the gateway's ChainClient calls, its block subscriptions and its status over the port.
 */
import { parentPort, workerData } from 'node:worker_threads';
import { type Logger, loggable } from '../log/logger.ts';
import { startValidator } from '../validator/validator.ts';
import type { FromWorker, ToWorker, WorkerInput } from './chain-thread.ts';

const port = parentPort!;
const { options, statusIntervalMs, metricsIntervalMs } = workerData as WorkerInput;

function send(m: FromWorker): void {
  port.postMessage(m);
}

/**
 * Log lines go to the gateway's logger. Fields are made loggable here, while their classes are still
 * known (the port keeps data, not classes: a PeerId would arrive as its bytes, a Multiaddr as `{}`);
 * what still cannot be cloned goes as text.
 */
function portLogger(bindings: Record<string, unknown>): Logger {
  const line =
    (level: 'debug' | 'info' | 'warn' | 'error') => (msg: string, fields?: Record<string, unknown>) => {
      try {
        send({
          t: 'log',
          level,
          bindings: loggable(bindings) as Record<string, unknown>,
          msg,
          ...(fields ? { fields: loggable(fields) as Record<string, unknown> } : {}),
        });
      } catch {
        send({ t: 'log', level, bindings, msg, fields: { fields: String(fields) } });
      }
    };
  return {
    debug: line('debug'),
    info: line('info'),
    warn: line('warn'),
    error: line('error'),
    child: (more) => portLogger({ ...bindings, ...more }),
    flush: () => {},
  };
}

const errorText = (err: unknown) => (err instanceof Error ? `${err.name}: ${err.message}` : String(err));

try {
  const link = await startValidator({ ...options, log: portLogger({}) });
  const { node } = link;
  const subs = new Map<number, () => void>();
  const statusTimer = setInterval(() => send({ t: 'status', status: node.status() }), statusIntervalMs);
  const metricsTimer = setInterval(() => {
    const metrics = node.metrics();
    try {
      send({ t: 'metrics', metrics });
    } catch {
      // The application's counters are its own shape; if they do not clone, the node's still go.
      send({ t: 'metrics', metrics: { ...metrics, app: undefined } });
    }
  }, metricsIntervalMs);
  let stopping = false;
  port.on('message', (m: ToWorker) => {
    switch (m.t) {
      case 'call': {
        const work = m.op === 'submit' ? link.client.submit(m.batches) : link.client.receipts(m.ids);
        work.then(
          (value) => send({ t: 'reply', id: m.id, value }),
          (err: unknown) => send({ t: 'reply', id: m.id, error: errorText(err) }),
        );
        return;
      }
      case 'subscribe':
        subs.set(
          m.sub,
          link.client.subscribe(m.afterHeight, (block) => send({ t: 'block', sub: m.sub, block })),
        );
        return;
      case 'unsubscribe':
        subs.get(m.sub)?.();
        subs.delete(m.sub);
        return;
      case 'stop':
        if (stopping) return;
        stopping = true;
        clearInterval(statusTimer);
        clearInterval(metricsTimer);
        for (const unsubscribe of subs.values()) unsubscribe();
        subs.clear();
        link.stop().then(
          () => send({ t: 'stopped' }),
          (err: unknown) => {
            send({
              t: 'log',
              level: 'error',
              bindings: {},
              msg: 'validator stop failed',
              fields: { err: errorText(err) },
            });
            send({ t: 'stopped' });
          },
        );
        return;
    }
  });
  send({ t: 'ready', apiUrl: link.apiUrl, status: node.status() });
} catch (err) {
  send({ t: 'failed', error: errorText(err) });
}
