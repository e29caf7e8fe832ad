/**
 * The PostgreSQL engine: a `pg` connection pool. 64-bit integers (BIGINT, COUNT) come back as
 * JavaScript numbers (exact below 2^53: milliseconds, byte counts, row counts), and `?`
 * placeholders are rewritten as `$n`. A transaction holds one pooled client from BEGIN to
 * COMMIT; schema migrations serialize on a transaction-scoped advisory lock.
 */
import pg from 'pg';
import { numberedPlaceholders, type Row, type SqlExecutor, type SqlValue } from './sql.js';

const INT8_OID = 20;
const types: pg.CustomTypesConfig = {
  getTypeParser: ((oid: number, format?: string) => (oid === INT8_OID ? (v: string) => Number(v) : pg.types.getTypeParser(oid, format as 'text'))) as pg.CustomTypesConfig['getTypeParser'],
};

/** The advisory-lock key migrations hold (any constant the application does not otherwise use). */
const MIGRATION_LOCK = 7_130_013;

const bind = (params: readonly SqlValue[]): unknown[] => params.map((p) => (p instanceof Uint8Array && !Buffer.isBuffer(p) ? Buffer.from(p) : p));

type Queryable = pg.Pool | pg.PoolClient;

class On implements SqlExecutor {
  readonly engine = 'postgres' as const;
  private readonly texts = new Map<string, string>();

  constructor(
    protected readonly conn: Queryable,
    private readonly inTransaction: boolean,
  ) {}

  private text(sql: string): string {
    let t = this.texts.get(sql);
    if (t === undefined) {
      t = numberedPlaceholders(sql);
      this.texts.set(sql, t);
    }
    return t;
  }

  async all(sql: string, params: readonly SqlValue[] = []): Promise<Row[]> {
    return (await this.conn.query(this.text(sql), bind(params))).rows as Row[];
  }

  async get(sql: string, params: readonly SqlValue[] = []): Promise<Row | undefined> {
    return (await this.all(sql, params))[0];
  }

  async run(sql: string, params: readonly SqlValue[] = []): Promise<number> {
    return (await this.conn.query(this.text(sql), bind(params))).rowCount ?? 0;
  }

  async exec(sql: string): Promise<void> {
    await this.conn.query(sql);
  }

  async transaction<T>(fn: (tx: SqlExecutor) => Promise<T>): Promise<T> {
    if (this.inTransaction) return fn(this);
    const client = await (this.conn as pg.Pool).connect();
    let broken: unknown;
    try {
      await client.query('BEGIN');
      const out = await fn(new On(client, true));
      await client.query('COMMIT');
      return out;
    } catch (e) {
      try {
        await client.query('ROLLBACK');
      } catch (rollbackError) {
        broken = rollbackError;
      }
      throw e;
    } finally {
      client.release(broken instanceof Error ? broken : undefined);
    }
  }

  async lockSchema(): Promise<void> {
    if (!this.inTransaction) throw new TypeError('PostgresExecutor.lockSchema: call it on the transaction, not the pool');
    await this.conn.query('SELECT pg_advisory_xact_lock($1)', [MIGRATION_LOCK]);
  }

  async columns(table: string): Promise<string[]> {
    const rows = await this.all('SELECT column_name FROM information_schema.columns WHERE table_schema = current_schema() AND table_name = ? ORDER BY ordinal_position', [table]);
    return rows.map((r) => r.column_name as string);
  }

  async close(): Promise<void> {}
}

/** A pool on one PostgreSQL database. */
export class PostgresExecutor extends On {
  /** The underlying pool (shared with the PostgreSQL blob store). */
  readonly pool: pg.Pool;
  /** The last error an idle pooled connection reported (a restarted server, say); the pool replaces the connection. */
  lastIdleError: Error | undefined;

  private readonly listeners = new Map<string, Set<(payload: string) => void>>();
  private listener?: Promise<pg.Client>;
  private closed = false;

  /** Connect lazily to `url` (postgres://user@host:port/db) with at most `max` connections. */
  constructor(
    private readonly url: string,
    max = 10,
  ) {
    if (typeof url !== 'string' || !/^postgres(ql)?:\/\//.test(url)) throw new TypeError(`PostgresExecutor: url must be a postgres:// URL, got "${String(url)}"`);
    if (!Number.isInteger(max) || max < 1) throw new RangeError(`PostgresExecutor: max must be a positive integer, got ${max}`);
    const pool = new pg.Pool({ connectionString: url, max, types });
    super(pool, false);
    this.pool = pool;
    pool.on('error', (e) => {
      this.lastIdleError = e;
    });
  }

  /**
   * LISTEN on a connection of its own (outside the pool), shared by every channel. If it breaks,
   * it is made again (every second until it connects), every channel is listened to again, and
   * `onGap` is called: notifications sent meanwhile were missed, so a listener that keeps state
   * from them reads the database again.
   */
  async listen(channel: string, onPayload: (payload: string) => void, onGap?: () => void): Promise<() => Promise<void>> {
    if (!/^[a-z_][a-z0-9_]*$/.test(channel)) throw new TypeError(`PostgresExecutor.listen: channel must be a lower-case identifier, got "${channel}"`);
    let set = this.listeners.get(channel);
    const fresh = !set;
    if (!set) this.listeners.set(channel, (set = new Set()));
    set.add(onPayload);
    if (onGap) this.gapListeners.add(onGap);
    const client = await this.listening();
    if (fresh) await client.query(`LISTEN ${channel}`);
    return async () => {
      set.delete(onPayload);
      if (onGap) this.gapListeners.delete(onGap);
    };
  }

  private readonly gapListeners = new Set<() => void>();

  private listening(): Promise<pg.Client> {
    this.listener ??= (async () => {
      const client = new pg.Client({ connectionString: this.url, types });
      client.on('notification', (n) => {
        for (const l of this.listeners.get(n.channel) ?? []) l(n.payload ?? '');
      });
      let lost = false;
      const onLost = (e?: Error): void => {
        if (lost) return;
        lost = true;
        if (e) this.lastIdleError = e;
        this.listener = undefined;
        client.end().catch(() => undefined);
        this.relisten();
      };
      client.on('error', onLost);
      client.on('end', () => onLost());
      try {
        await client.connect();
      } catch (e) {
        lost = true;
        this.listener = undefined;
        throw e;
      }
      return client;
    })();
    return this.listener;
  }

  /** Connect the listening connection again (retried every second), LISTEN again, then tell the gap listeners. */
  private relisten(): void {
    if (this.closed) return;
    setTimeout(() => {
      if (this.closed || this.listener) return;
      this.listening()
        .then(async (c) => {
          for (const ch of this.listeners.keys()) await c.query(`LISTEN ${ch}`);
          for (const g of this.gapListeners) g();
        })
        .catch((e: unknown) => {
          this.lastIdleError = e as Error;
          this.listener = undefined;
          this.relisten();
        });
    }, 1000).unref();
  }

  override async close(): Promise<void> {
    this.closed = true;
    const l = this.listener;
    this.listener = undefined;
    if (l) await (await l.catch(() => undefined))?.end().catch(() => undefined);
    await this.pool.end();
  }
}
