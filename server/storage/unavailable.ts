/**
 * Which storage failures are an outage rather than a bug: the database went away, refused a
 * connection, is shutting down or starting, or (SQLite) another process holds the file's lock.
 * A request that failed on one of these may succeed when retried (on this replica later, or on
 * another), so the coordinator answers it UNAVAILABLE rather than INTERNAL.
 */

/** Node socket errors of a lost or refused database connection. */
const SOCKET_CODES = new Set(['ECONNREFUSED', 'ECONNRESET', 'EPIPE', 'ETIMEDOUT', 'EHOSTUNREACH', 'ENETUNREACH', 'ENOTFOUND', 'EAI_AGAIN']);
/** SQLite result codes of a file another connection holds. */
const SQLITE_CODES = new Set(['SQLITE_BUSY', 'SQLITE_LOCKED', 'SQLITE_BUSY_SNAPSHOT', 'SQLITE_BUSY_RECOVERY', 'SQLITE_BUSY_TIMEOUT']);
/** Messages node-postgres gives a lost connection or an exhausted pool (they carry no code). */
const PG_MESSAGES = [/^Connection terminated/, /timeout exceeded when trying to connect/i, /^Client has encountered a connection error/, /^Cannot use a pool after calling end/];

/**
 * True when `e` says the database is unreachable or busy: a socket error, a PostgreSQL
 * SQLSTATE of class 08 (connection exception), 53 (insufficient resources), 57P01–57P03
 * (shutdown, crash, cannot connect now) or 40001/40P01 (serialization failure, deadlock: retry
 * the transaction), node-postgres's connection messages, or SQLite's BUSY/LOCKED.
 */
export function isStorageUnavailable(e: unknown): boolean {
  if (!(e instanceof Error)) return false;
  const code = (e as { code?: unknown }).code;
  if (typeof code === 'string') {
    if (SOCKET_CODES.has(code) || SQLITE_CODES.has(code)) return true;
    if (/^(08[0-9A-Z]{3}|53[0-9A-Z]{3}|57P0[123]|40001|40P01)$/.test(code)) return true;
  }
  return PG_MESSAGES.some((re) => re.test(e.message));
}
