/**
 * Opening a SQLite database the way every masbc-edge store needs it: WAL journal, an explicit
 * synchronous level, a busy timeout, and versioned migrations applied in one transaction each.
 *
 * Durability (see docs/store.md): in WAL mode, `synchronous=FULL` fsyncs the WAL on every commit,
 * so a transaction that returned survives power loss; `NORMAL` fsyncs only at checkpoints, so a
 * committed transaction survives a process crash (kill -9) but may be lost on power loss.
 *
 * @example
 *   const db = openDatabase(join(dataDir, 'outbox.db'), { synchronous: 'full', migrations });
 */
import { mkdirSync } from 'node:fs';
import { dirname } from 'node:path';
import Database from 'better-sqlite3';

export type SqliteDatabase = Database.Database;
export type Synchronous = 'full' | 'normal';

/** One schema step. Versions start at 1 and increase by one; applied steps never change. */
export interface Migration {
  version: number;
  description: string;
  up: string | ((db: SqliteDatabase) => void);
}

export interface OpenOptions {
  synchronous: Synchronous;
  migrations: readonly Migration[];
  readonly?: boolean;
}

export class StoreError extends Error {
  override name = 'StoreError';
}

export function openDatabase(path: string, options: OpenOptions): SqliteDatabase {
  if (path !== ':memory:') mkdirSync(dirname(path), { recursive: true });
  let db: SqliteDatabase;
  try {
    db = new Database(path, { readonly: options.readonly ?? false, timeout: 5_000 });
  } catch (err) {
    throw new StoreError(`cannot open ${path}: ${(err as Error).message}`);
  }
  try {
    if (!options.readonly) {
      db.pragma('journal_mode = WAL');
      db.pragma(`synchronous = ${options.synchronous === 'full' ? 'FULL' : 'NORMAL'}`);
      db.pragma('foreign_keys = ON');
      migrate(db, options.migrations, path);
    }
    const check = db.pragma('quick_check', { simple: true });
    if (check !== 'ok') throw new StoreError(`${path} is corrupt: quick_check says ${String(check)}`);
  } catch (err) {
    db.close();
    if (err instanceof StoreError) throw err;
    throw new StoreError(`cannot prepare ${path}: ${(err as Error).message}`);
  }
  return db;
}

function migrate(db: SqliteDatabase, migrations: readonly Migration[], path: string): void {
  migrations.forEach((m, i) => {
    if (m.version !== i + 1) throw new Error(`migration ${i} has version ${m.version}, expected ${i + 1}`);
  });
  db.exec(
    'CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY, description TEXT NOT NULL, applied_ms INTEGER NOT NULL)',
  );
  const current =
    (db.prepare('SELECT max(version) AS v FROM schema_migrations').get() as { v: number | null }).v ?? 0;
  if (current > migrations.length) {
    throw new StoreError(
      `${path} has schema version ${current}, newer than this release knows (${migrations.length}); upgrade masbc-edge`,
    );
  }
  for (const m of migrations.slice(current)) {
    db.transaction(() => {
      if (typeof m.up === 'string') db.exec(m.up);
      else m.up(db);
      db.prepare('INSERT INTO schema_migrations (version, description, applied_ms) VALUES (?, ?, ?)').run(
        m.version,
        m.description,
        Date.now(),
      );
    })();
  }
}

/** Bytes the database really uses: pages in use (page count minus free pages) times page size. */
export function usedBytes(db: SqliteDatabase): number {
  const pageSize = db.pragma('page_size', { simple: true }) as number;
  const pages = db.pragma('page_count', { simple: true }) as number;
  const free = db.pragma('freelist_count', { simple: true }) as number;
  return (pages - free) * pageSize;
}
