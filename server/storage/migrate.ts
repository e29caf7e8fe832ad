/**
 * Apply the schema's migration steps (schema.ts) at start-up, the same on both engines: each step
 * not yet in `schema_migrations` runs with its row in one transaction, under a lock so replicas
 * starting together do not race. A database whose schema is newer than this code is refused.
 */
import { MIGRATIONS, renderSql, SCHEMA_VERSION, type Migration } from './schema.js';
import type { SqlExecutor } from './sql.js';

/** The database was migrated by newer code than this. */
export class SchemaTooNewError extends Error {
  constructor(
    readonly found: number,
    readonly known: number,
  ) {
    super(`The database's schema is at version ${found} but this fedtune knows versions up to ${known}, so it refuses to start: run a fedtune at least as new as the one that migrated it.`);
    this.name = 'SchemaTooNewError';
  }
}

/** Versions applied so far, ascending. */
export async function appliedMigrations(db: SqlExecutor): Promise<number[]> {
  const cols = await db.columns('schema_migrations');
  if (cols.length === 0) return [];
  return (await db.all('SELECT version FROM schema_migrations ORDER BY version')).map((r) => Number(r.version));
}

/**
 * Bring the database to the newest schema (`steps` defaults to every known step); returns the
 * versions applied now. Throws SchemaTooNewError before changing anything on a newer schema.
 */
export async function migrate(db: SqlExecutor, steps: readonly Migration[] = MIGRATIONS, now = Date.now()): Promise<number[]> {
  const known = steps.length > 0 ? steps[steps.length - 1].version : 0;
  return db.transaction(async (tx) => {
    await tx.lockSchema();
    await tx.exec(renderSql('CREATE TABLE IF NOT EXISTS schema_migrations (version {int} PRIMARY KEY, name TEXT NOT NULL, applied_ms {int} NOT NULL)', tx.engine));
    const applied = new Set((await tx.all('SELECT version FROM schema_migrations')).map((r) => Number(r.version)));
    const newest = Math.max(0, ...applied);
    if (newest > known) throw new SchemaTooNewError(newest, known);
    const done: number[] = [];
    for (const m of steps) {
      if (applied.has(m.version)) continue;
      for (const s of m.statements) await tx.exec(renderSql(s, tx.engine));
      for (const [table, column, def] of m.ensureColumns ?? []) {
        if (!(await tx.columns(table)).includes(column)) await tx.exec(`ALTER TABLE ${table} ADD COLUMN ${column} ${renderSql(def, tx.engine)}`);
      }
      await tx.run('INSERT INTO schema_migrations (version, name, applied_ms) VALUES (?, ?, ?)', [m.version, m.name, now]);
      done.push(m.version);
    }
    return done;
  });
}

export { SCHEMA_VERSION };
