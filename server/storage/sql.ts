/**
 * The little each engine must provide for the shared SQL implementation (sql-state-store.ts) and
 * the migrations: statements with `?` placeholders, a row count for writes, transactions.
 */
import type { StorageEngine } from './state-store.js';

/** A result row, by lower-case column name. */
export type Row = Record<string, unknown>;

/** A statement parameter. */
export type SqlValue = string | number | Uint8Array | null;

/** One engine's connection (or pool), or a transaction on it. */
export interface SqlExecutor {
  readonly engine: StorageEngine;
  /** All rows of a query. */
  all(sql: string, params?: readonly SqlValue[]): Promise<Row[]>;
  /** The first row of a query, if any. */
  get(sql: string, params?: readonly SqlValue[]): Promise<Row | undefined>;
  /**
   * The first row of a query, synchronously — only engines that can (SQLite: one connection in
   * this process) have it; it does not wait for a running transaction (it may see its writes).
   */
  getNow?(sql: string, params?: readonly SqlValue[]): Row | undefined;
  /** Run a write; returns how many rows it changed. */
  run(sql: string, params?: readonly SqlValue[]): Promise<number>;
  /** Run parameterless statements (DDL), possibly several separated by semicolons. */
  exec(sql: string): Promise<void>;
  /** Run `fn` in a transaction (joined, if this executor is already one). */
  transaction<T>(fn: (tx: SqlExecutor) => Promise<T>): Promise<T>;
  /** Within a transaction: hold the lock that serializes schema migrations until it ends. */
  lockSchema(): Promise<void>;
  /** The column names of a table (empty if it does not exist). */
  columns(table: string): Promise<string[]>;
  /**
   * Hear the notifications of `channel` (PostgreSQL LISTEN, on a connection of its own); returns
   * the unsubscribe. `onGap`: called after the connection was lost and made again (notifications
   * may have been missed). Engines without notifications have none.
   */
  listen?(channel: string, onPayload: (payload: string) => void, onGap?: () => void): Promise<() => Promise<void>>;
  /** Release the connection (pool); a no-op on a transaction. */
  close(): Promise<void>;
}

/** Rewrite `?` placeholders as PostgreSQL's `$1, $2, …` (the statements here have no `?` in literals). */
export function numberedPlaceholders(sql: string): string {
  let n = 0;
  return sql.replace(/\?/g, () => `$${++n}`);
}
