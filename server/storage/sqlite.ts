/**
 * The SQLite engine: one better-sqlite3 connection to the same file the single-node Store (before server/storage/; now test/support/legacy-store.ts) used
 * (same pragmas: WAL, synchronous = FULL, foreign keys, exclusive locking — one process at a
 * time). Calls are synchronous underneath; a transaction holds a gate so that other callers'
 * statements wait for it instead of landing inside it.
 */
import Database from 'better-sqlite3';
import type { Row, SqlExecutor, SqlValue } from './sql.js';

const bind = (params: readonly SqlValue[]): unknown[] => params.map((p) => (p instanceof Uint8Array && !Buffer.isBuffer(p) ? Buffer.from(p) : p));

/** Statements on one connection, without the gate (the transaction's own view). */
class Direct implements SqlExecutor {
  readonly engine = 'sqlite' as const;
  private readonly statements = new Map<string, Database.Statement>();

  constructor(readonly db: Database.Database) {}

  private prepared(sql: string): Database.Statement {
    let st = this.statements.get(sql);
    if (!st) {
      st = this.db.prepare(sql);
      this.statements.set(sql, st);
    }
    return st;
  }

  async all(sql: string, params: readonly SqlValue[] = []): Promise<Row[]> {
    return this.prepared(sql).all(...bind(params)) as Row[];
  }

  async get(sql: string, params: readonly SqlValue[] = []): Promise<Row | undefined> {
    return this.getNow(sql, params);
  }

  getNow(sql: string, params: readonly SqlValue[] = []): Row | undefined {
    return this.prepared(sql).get(...bind(params)) as Row | undefined;
  }

  async run(sql: string, params: readonly SqlValue[] = []): Promise<number> {
    return this.prepared(sql).run(...bind(params)).changes;
  }

  async exec(sql: string): Promise<void> {
    this.db.exec(sql);
  }

  async transaction<T>(fn: (tx: SqlExecutor) => Promise<T>): Promise<T> {
    return fn(this);
  }

  async lockSchema(): Promise<void> {
    // BEGIN IMMEDIATE already holds the database's write lock
  }

  async columns(table: string): Promise<string[]> {
    if (!/^[a-z_]+$/.test(table)) throw new RangeError(`SqliteExecutor.columns: bad table name "${table}"`);
    return (this.db.prepare(`PRAGMA table_info(${table})`).all() as { name: string }[]).map((c) => c.name);
  }

  async close(): Promise<void> {}
}

/** The connection, its statements serialized behind any running transaction. */
export class SqliteExecutor implements SqlExecutor {
  readonly engine = 'sqlite' as const;
  private readonly direct: Direct;
  private tail: Promise<unknown> = Promise.resolve();

  /** Open (creating if needed) the database file at `path` (":memory:" for tests). */
  constructor(path: string) {
    if (typeof path !== 'string' || path === '') throw new TypeError('SqliteExecutor: path must be a non-empty string');
    const db = new Database(path);
    db.pragma('journal_mode = WAL');
    db.pragma('synchronous = FULL');
    db.pragma('foreign_keys = ON');
    db.pragma('locking_mode = EXCLUSIVE');
    this.direct = new Direct(db);
  }

  /** Run `f` after everything queued before it (a transaction is one queued item). */
  private queued<T>(f: () => Promise<T>): Promise<T> {
    const run = this.tail.then(f);
    this.tail = run.then(
      () => undefined,
      () => undefined,
    );
    return run;
  }

  all(sql: string, params?: readonly SqlValue[]): Promise<Row[]> {
    return this.queued(() => this.direct.all(sql, params));
  }

  get(sql: string, params?: readonly SqlValue[]): Promise<Row | undefined> {
    return this.queued(() => this.direct.get(sql, params));
  }

  run(sql: string, params?: readonly SqlValue[]): Promise<number> {
    return this.queued(() => this.direct.run(sql, params));
  }

  getNow(sql: string, params: readonly SqlValue[] = []): Row | undefined {
    return this.direct.getNow(sql, params);
  }

  exec(sql: string): Promise<void> {
    return this.queued(() => this.direct.exec(sql));
  }

  transaction<T>(fn: (tx: SqlExecutor) => Promise<T>): Promise<T> {
    return this.queued(async () => {
      this.direct.db.exec('BEGIN IMMEDIATE');
      try {
        const out = await fn(this.direct);
        this.direct.db.exec('COMMIT');
        return out;
      } catch (e) {
        if (this.direct.db.inTransaction) this.direct.db.exec('ROLLBACK');
        throw e;
      }
    });
  }

  async lockSchema(): Promise<void> {
    throw new TypeError('SqliteExecutor.lockSchema: call it on the transaction, not the connection');
  }

  columns(table: string): Promise<string[]> {
    return this.queued(() => this.direct.columns(table));
  }

  close(): Promise<void> {
    return this.queued(async () => {
      if (this.direct.db.open) this.direct.db.close();
    });
  }
}
