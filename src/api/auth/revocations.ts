/**
 * The member's list of revoked credentials (`jti`s), kept in its validator's data folder
 * (`revoked-credentials.json`). `masbc-edge credential revoke` adds to it; the member's API reads
 * it again whenever the file changes (a stat per check, no restart).
 *
 * Bound: at most `revokedMax` entries. Each entry keeps the credential's expiry (or, for a bare
 * `jti`, now + the longest lifetime a credential may have); entries past it are dropped on every
 * save, since an expired credential is refused anyway. A full list refuses new entries with a
 * message (issue shorter-lived credentials), never drops a live one.
 *
 * @example
 *   revokeCredential(dataDir, { jti, expMs });
 *   const list = new RevocationList(dataDir); list.has(jti);
 */
import { existsSync, mkdirSync, readFileSync, renameSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { z } from 'zod';
import { credentialLifetimeMaxMs } from './credentials.ts';

export const revokedMax = 100_000;
export const revocationsFile = 'revoked-credentials.json';

const fileSchema = z.strictObject({
  version: z.literal(1),
  revoked: z
    .array(z.strictObject({ jti: z.string().min(1).max(128), expMs: z.number().int() }))
    .max(revokedMax),
});

export class RevocationError extends Error {
  override name = 'RevocationError';
}

export function revocationsPath(dataDir: string): string {
  return join(dataDir, revocationsFile);
}

function load(path: string): Map<string, number> {
  if (!existsSync(path)) return new Map();
  let doc: z.output<typeof fileSchema>;
  try {
    doc = fileSchema.parse(JSON.parse(readFileSync(path, 'utf8')));
  } catch (err) {
    throw new RevocationError(`${path} is not a revocation list: ${(err as Error).message.slice(0, 200)}`);
  }
  return new Map(doc.revoked.map((r) => [r.jti, r.expMs]));
}

/** Adds a revoked credential to the member's list (atomically: a temporary file renamed over it). */
export function revokeCredential(
  dataDir: string,
  entry: { jti: string; expMs?: number | undefined },
  nowMs = Date.now(),
): { entries: number } {
  const path = revocationsPath(dataDir);
  const list = load(path);
  for (const [jti, expMs] of list) if (expMs < nowMs) list.delete(jti);
  if (!list.has(entry.jti) && list.size >= revokedMax)
    throw new RevocationError(
      `${path} already holds ${revokedMax} live revocations: issue shorter-lived credentials`,
    );
  list.set(entry.jti, entry.expMs ?? nowMs + credentialLifetimeMaxMs);
  const doc = { version: 1, revoked: [...list].map(([jti, expMs]) => ({ jti, expMs })) };
  mkdirSync(dataDir, { recursive: true, mode: 0o700 });
  writeFileSync(`${path}.tmp`, `${JSON.stringify(doc, null, 1)}\n`, { mode: 0o600 });
  renameSync(`${path}.tmp`, path);
  return { entries: list.size };
}

/** The member's list as its API reads it: reloaded when the file changes. */
export class RevocationList {
  readonly path: string;
  #stamp = '';
  #list = new Map<string, number>();

  constructor(dataDir: string) {
    this.path = revocationsPath(dataDir);
    this.#refresh();
  }

  #refresh(): void {
    let stamp = 'none';
    try {
      const s = statSync(this.path);
      stamp = `${s.mtimeMs}:${s.size}:${s.ino}`;
    } catch {}
    if (stamp === this.#stamp) return;
    // A list that fails to load keeps the previous one (never an empty list by accident).
    this.#list = stamp === 'none' ? new Map() : load(this.path);
    this.#stamp = stamp;
  }

  has(jti: string): boolean {
    try {
      this.#refresh();
    } catch {
      // Keep the last good list; `credential revoke` refuses to write a bad one.
    }
    return this.#list.has(jti);
  }

  get size(): number {
    return this.#list.size;
  }
}
