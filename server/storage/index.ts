/**
 * server/storage/: the coordinator's state and blobs on either engine — embedded SQLite (the
 * single-node default, the same file the pre-StateStore coordinator wrote) or PostgreSQL (shared by replicas) — with
 * one schema and versioned migrations applied at open.
 */
import { migrate } from './migrate.js';
import { PostgresExecutor } from './postgres.js';
import { SqlStateStore } from './sql-state-store.js';
import { SqliteExecutor } from './sqlite.js';
import type { StateStore } from './state-store.js';

export * from './state-store.js';
export * from './blobs.js';
export { PostgresBlobBackend } from './postgres-blobs.js';
export { MIGRATIONS, SCHEMA_VERSION, renderSql, type Migration } from './schema.js';
export { migrate, appliedMigrations, SchemaTooNewError } from './migrate.js';
export { SqliteExecutor } from './sqlite.js';
export { PostgresExecutor } from './postgres.js';
export { SqlStateStore } from './sql-state-store.js';
export { isStorageUnavailable } from './unavailable.js';
export type { SqlExecutor, Row, SqlValue } from './sql.js';

/** True if `location` names a PostgreSQL database (postgres:// or postgresql://). */
export function isPostgresUrl(location: string): boolean {
  return typeof location === 'string' && /^postgres(ql)?:\/\//.test(location);
}

/** Options of openStateStore. */
export interface OpenStateStoreOptions {
  /** PostgreSQL pool size (default 10). */
  readonly poolSize?: number;
}

/**
 * Open the state at `location` — a postgres:// URL or a SQLite file path (":memory:" for tests) —
 * and migrate it to the newest schema; rejects with SchemaTooNewError on a newer schema.
 */
export async function openStateStore(location: string, options: OpenStateStoreOptions = {}): Promise<StateStore> {
  if (typeof location !== 'string' || location === '') throw new TypeError('openStateStore: location must be a postgres:// URL or a file path');
  return new SqlStateStore(await openExecutor(location, options));
}

/** Open an executor and migrate it (what PostgresBlobBackend needs, sharing one pool with a SqlStateStore). */
export async function openExecutor(location: string, options: OpenStateStoreOptions = {}): Promise<SqliteExecutor | PostgresExecutor> {
  if (typeof location !== 'string' || location === '') throw new TypeError('openExecutor: location must be a postgres:// URL or a file path');
  const db = isPostgresUrl(location) ? new PostgresExecutor(location, options.poolSize) : new SqliteExecutor(location);
  try {
    await migrate(db);
  } catch (e) {
    await db.close();
    throw e;
  }
  return db;
}
