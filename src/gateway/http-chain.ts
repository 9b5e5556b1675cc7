/**
 * The submitter's ChainClient for a gateway whose member's validator runs elsewhere (chain role
 * `client`): the validator's HTTP API (src/api/validator-api.ts). Batches and their bodies go as one
 * binary request (`encodeSubmission`); final blocks are followed by long polling.
 *
 * A final block is believed only once checked against the genesis: its header hashes to the block
 * hash the certificate names, a quorum of the genesis validators signed that certificate, and the
 * block's transaction root is the Merkle root of the transaction ids listed. So a compromised link
 * or validator API cannot make the gateway mark (and later prune) a batch that is not final: a block
 * that fails is reported (`onError`), not delivered, and polled again after a pause.
 */

import type { ChainContext } from '../consensus/runtime/block-store.ts';
import {
  blockInfoProblem,
  type ChainClient,
  type ChainReceipt,
  type CommittedBlockInfo,
  encodeSubmission,
  type SubmitVerdict,
} from '../consensus/runtime/client.ts';

export interface HttpChainOptions {
  /** e.g. http://10.0.0.5:8181 */
  baseUrl: string;
  /**
   * The gateway's credential (a `gateway` JWT its member issued, `masbc-edge credential issue --role
   * gateway`), sent as `Authorization: Bearer …` on every request; read again on each request when
   * a function, so a renewed credential file takes effect without a restart.
   */
  credential?: string | (() => string) | undefined;
  /** The alliance's validators, from the genesis: what a final block must be certified by. */
  verify: ChainContext;
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
    const c = options.credential;
    const token = typeof c === 'function' ? c() : c;
    const res = await fetch(`${base}${path}`, {
      ...init,
      headers: {
        'content-type': 'application/json',
        ...(token ? { authorization: `Bearer ${token}` } : {}),
        ...init.headers,
      },
      signal: stop ? AbortSignal.any([timeout, stop]) : timeout,
    });
    if (!res.ok) throw new Error(`${init.method ?? 'GET'} ${path}: HTTP ${res.status} ${await res.text()}`);
    return (await res.json()) as T;
  }

  return {
    async submit(batches): Promise<SubmitVerdict[]> {
      const { verdicts } = await call<{ verdicts: SubmitVerdict[] }>('/v1/batches', {
        method: 'POST',
        headers: { 'content-type': 'application/octet-stream' },
        body: encodeSubmission(batches) as Uint8Array<ArrayBuffer>,
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
              const problem = blockInfoProblem(options.verify, b);
              if (problem) throw new Error(`refusing a block the validator API says is final: ${problem}`);
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

    async receipts(txIds: readonly string[]): Promise<(ChainReceipt | null)[]> {
      const { receipts } = await call<{ receipts: (ChainReceipt | null)[] }>('/v1/receipts', {
        method: 'POST',
        body: JSON.stringify({ ids: txIds }),
      });
      // Each receipt is believed only with its block, checked like a followed one.
      const blocks = new Map<number, CommittedBlockInfo>();
      for (const height of new Set(receipts.flatMap((r) => (r ? [r.height] : [])))) {
        const { blocks: got } = await call<{ blocks: CommittedBlockInfo[] }>(
          `/v1/commits?after=${height - 1}&limit=1`,
        );
        const b = got[0];
        if (!b || b.height !== height)
          throw new Error(`the validator API has no block ${height} for a receipt`);
        const problem = blockInfoProblem(options.verify, b);
        if (problem) throw new Error(`refusing a receipt: ${problem}`);
        blocks.set(height, b);
      }
      return receipts.map((r, i) => {
        if (!r) return null;
        const b = blocks.get(r.height)!;
        if (b.txIds[r.index] !== txIds[i] || b.blockHash !== r.blockHash)
          throw new Error(`refusing a receipt: block ${r.height} does not hold ${txIds[i]} at ${r.index}`);
        return r;
      });
    },
  };
}
