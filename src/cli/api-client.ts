/**
 * How the CLI's read-side commands (trace, tally, orders) call a member's API: `--api <url>` and
 * `--credential <file>` (a token from `masbc-edge credential issue`). For an API with a certificate
 * of the member's own authority, give Node its CA: `NODE_EXTRA_CA_CERTS=ca.pem masbc-edge …`.
 */
import { readFileSync } from 'node:fs';
import type { Command } from 'commander';

export interface ApiOptions {
  api: string;
  credential: string;
}

export function apiOptions(c: Command): Command {
  return c
    .requiredOption('--api <url>', "the member's validator API, e.g. https://acme.example:8181")
    .requiredOption('--credential <file>', 'file holding your credential (masbc-edge credential issue)');
}

export class ApiError extends Error {
  override name = 'ApiError';
  readonly status: number;
  readonly code: string | undefined;
  constructor(status: number, code: string | undefined, message: string) {
    super(message);
    this.status = status;
    this.code = code;
  }
}

/** One JSON request; a refusal becomes an ApiError naming its status, code and reason. */
export async function apiCall<T>(
  o: ApiOptions,
  path: string,
  init: { method?: string; body?: unknown; timeoutMs?: number } = {},
): Promise<T> {
  const token = readFileSync(o.credential, 'utf8').trim();
  const url = `${o.api.replace(/\/+$/, '')}${path}`;
  let res: Response;
  try {
    res = await fetch(url, {
      method: init.method ?? 'GET',
      headers: {
        authorization: `Bearer ${token}`,
        ...(init.body === undefined ? {} : { 'content-type': 'application/json' }),
      },
      ...(init.body === undefined ? {} : { body: JSON.stringify(init.body) }),
      signal: AbortSignal.timeout(init.timeoutMs ?? 60_000),
    });
  } catch (err) {
    throw new Error(`cannot reach ${url}: ${(err as Error).message}`);
  }
  const text = await res.text();
  let body: { error?: string; code?: string } & Record<string, unknown>;
  try {
    body = JSON.parse(text);
  } catch {
    throw new ApiError(res.status, undefined, `${url} answered ${res.status}: ${text.slice(0, 200)}`);
  }
  if (!res.ok)
    throw new ApiError(
      res.status,
      body.code,
      `${res.status} ${body.code ?? ''}: ${body.error ?? text.slice(0, 200)}`,
    );
  return body as T;
}
