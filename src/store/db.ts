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
  /**
   * The store's format: a database written in another one (or before formats were recorded) is
   * refused with a message naming both, instead of being misread. Formats change only where no
   * migration exists (an incompatible change of what is stored).
   */
  format?: StoreFormat;
}

export interface StoreFormat {
  name: string;
  version: number;
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
      if (options.format) checkFormat(db, options.format, path);
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

/** Records the format in a new database; refuses an existing one of another format. */
function checkFormat(db: SqliteDatabase, format: StoreFormat, path: string): void {
  const tables = db.prepare("SELECT name FROM sqlite_master WHERE type = 'table'").pluck().all() as string[];
  if (tables.includes('store_format')) {
    const found = db.prepare('SELECT name, version FROM store_format').get() as StoreFormat | undefined;
    if (found && found.name === format.name && found.version === format.version) return;
    throw new StoreError(
      `${path} is in the format ${found ? `${found.name} ${found.version}` : 'of an unknown store'}; this release reads ${format.name} ${format.version} and cannot convert it: move the file aside (it is not deleted) and start again`,
    );
  }
  if (tables.length > 0) {
    throw new StoreError(
      `${path} was written by an earlier release (no recorded format); this release reads ${format.name} ${format.version} and cannot convert it: move the file aside (it is not deleted) and start again`,
    );
  }
  db.transaction(() => {
    db.exec('CREATE TABLE store_format (name TEXT NOT NULL, version INTEGER NOT NULL)');
    db.prepare('INSERT INTO store_format (name, version) VALUES (?, ?)').run(format.name, format.version);
  })();
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
