/**
 * The submitter's ChainClient for a gateway whose validator runs elsewhere (chain role `client`):
 * the validator's HTTP API (src/api/validator-api.ts). Final blocks are followed by long polling.
 */
import type {
  ChainClient,
  ChainReceipt,
  CommittedBlockInfo,
  SubmitVerdict,
} from '../consensus/runtime/client.ts';

export interface HttpChainOptions {
  /** e.g. http://10.0.0.5:8181 */
  baseUrl: string;
  requestTimeoutMs?: number;
  /** Long-poll duration of GET /v1/commits. */
  pollWaitMs?: number;
  /** Pause after a failed poll before the next one (doubles up to 10 s). */
  retryMs?: number;
  onError?: (err: Error) => void;
}

export function httpChainClient(options: HttpChainOptions): ChainClient {
  const base = options.baseUrl.replace(/\/+$/, '');
  const timeoutMs = options.requestTimeoutMs ?? 10_000;
  const waitMs = options.pollWaitMs ?? 10_000;

  async function call<T>(path: string, init: RequestInit = {}, extraMs = 0, stop?: AbortSignal): Promise<T> {
    const timeout = AbortSignal.timeout(timeoutMs + extraMs);
    const res = await fetch(`${base}${path}`, {
      ...init,
      headers: { 'content-type': 'application/json', ...init.headers },
      signal: stop ? AbortSignal.any([timeout, stop]) : timeout,
    });
    if (!res.ok) throw new Error(`${init.method ?? 'GET'} ${path}: HTTP ${res.status} ${await res.text()}`);
    return (await res.json()) as T;
  }

  return {
    async submit(txs: readonly string[]): Promise<SubmitVerdict[]> {
      // The stored bytes are canonical JSON already: send them as a JSON array without re-encoding.
      const { verdicts } = await call<{ verdicts: SubmitVerdict[] }>('/v1/events', {
        method: 'POST',
        body: `[${txs.join(',')}]`,
      });
      return verdicts;
    },

    subscribe(afterHeight: number, onBlock: (b: CommittedBlockInfo) => void): () => void {
      let delivered = afterHeight;
      let stopped = false;
      const abort = new AbortController();
      let retryMs = options.retryMs ?? 500;
      (async () => {
        while (!stopped) {
          try {
            const { blocks } = await call<{ blocks: CommittedBlockInfo[] }>(
              `/v1/commits?after=${delivered}&waitMs=${waitMs}`,
              {},
              waitMs,
              abort.signal,
            );
            for (const b of blocks) {
              if (stopped || b.height !== delivered + 1) break;
              delivered = b.height;
              onBlock(b);
            }
            retryMs = options.retryMs ?? 500;
          } catch (err) {
            if (stopped) break;
            options.onError?.(err as Error);
            await new Promise((r) => setTimeout(r, retryMs));
            retryMs = Math.min(retryMs * 2, 10_000);
          }
        }
      })();
      return () => {
        stopped = true;
        abort.abort();
      };
    },

    async receipts(ids: readonly string[]): Promise<(ChainReceipt | null)[]> {
      const { receipts } = await call<{ receipts: (ChainReceipt | null)[] }>('/v1/receipts', {
        method: 'POST',
        body: JSON.stringify({ ids }),
      });
      return receipts;
    },
  };
}
