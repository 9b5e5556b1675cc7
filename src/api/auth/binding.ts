/**
 * Where the member's API may listen: on a non-loopback address only with TLS (every route but
 * /health also needs a credential, always). Checked at start-up, before anything binds.
 */
import { readFileSync } from 'node:fs';
import { isIP } from 'node:net';

export class UnsafeBindingError extends Error {
  override name = 'UnsafeBindingError';
}

/** TLS certificate and key files (PEM) of the API. */
export interface ApiTlsFiles {
  certFile: string;
  keyFile: string;
}

export function isLoopback(host: string): boolean {
  const h = host.replace(/^\[|\]$/g, '').toLowerCase();
  if (h === 'localhost' || h === '::1') return true;
  return isIP(h) === 4 && h.startsWith('127.');
}

/** Throws UnsafeBindingError for a non-loopback address without TLS. */
export function checkApiBinding(host: string, tls: ApiTlsFiles | undefined): void {
  if (isLoopback(host) || tls) return;
  throw new UnsafeBindingError(
    `refusing to serve the API on ${host} without TLS: credentials and private bodies would cross the network in clear. Give a certificate (--api-cert/--api-key, or api.tls in the configuration) or bind 127.0.0.1`,
  );
}

/** Reads the PEM files, with an error naming the file. */
export function loadTls(tls: ApiTlsFiles): { cert: Buffer; key: Buffer } {
  const read = (what: string, path: string) => {
    try {
      return readFileSync(path);
    } catch (err) {
      throw new UnsafeBindingError(`API TLS ${what} ${path}: ${(err as Error).message}`);
    }
  };
  return { cert: read('certificate', tls.certFile), key: read('key', tls.keyFile) };
}
