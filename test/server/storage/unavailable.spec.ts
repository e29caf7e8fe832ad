/**
 * A database outage is UNAVAILABLE (retryable), not INTERNAL: errors raised by the real engines —
 * a refused PostgreSQL connection, a backend terminated by the server, SQLite's lock held by
 * another connection — are recognised, and real programming errors (a SQL syntax error, a
 * TypeError) are not.
 */
import assert from 'node:assert/strict';
import { mkdtempSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as grpc from '@grpc/grpc-js';
import Database from 'better-sqlite3';
import pg from 'pg';
import { toStatus } from '../../../server/errors.js';
import { isStorageUnavailable } from '../../../server/storage/index.js';
import { postgresOrSkip, type TestPostgres } from '../../support/postgres.js';

async function rejection(p: Promise<unknown>): Promise<Error> {
  try {
    await p;
  } catch (e) {
    return e as Error;
  }
  throw new Error('expected a rejection');
}

/** A loopback port nothing listens on (bound, then released). */
async function closedPort(): Promise<number> {
  const s = createServer();
  await new Promise<void>((resolve) => s.listen(0, '127.0.0.1', resolve));
  const port = (s.address() as { port: number }).port;
  await new Promise<void>((resolve) => s.close(() => resolve()));
  return port;
}

function assertOutage(e: Error): void {
  assert.equal(isStorageUnavailable(e), true, `${(e as { code?: string }).code}: ${e.message}`);
  const st = toStatus(e);
  assert.equal(st.code, grpc.status.UNAVAILABLE);
  assert.match(st.details, /database is unavailable/);
}

function assertBug(e: Error): void {
  assert.equal(isStorageUnavailable(e), false, e.message);
  assert.equal(toStatus(e).code, grpc.status.INTERNAL);
}

describe('server/storage: a database outage is UNAVAILABLE, a bug is INTERNAL', () => {
  it('SQLite: a write while another connection holds the lock (SQLITE_BUSY)', () => {
    const file = join(mkdtempSync(join(tmpdir(), 'fedtune-busy-')), 'db.sqlite');
    const a = new Database(file);
    const b = new Database(file, { timeout: 0 });
    try {
      a.exec('CREATE TABLE t (x INTEGER)');
      a.exec('BEGIN EXCLUSIVE');
      let err: Error | undefined;
      try {
        b.exec('INSERT INTO t VALUES (1)');
      } catch (e) {
        err = e as Error;
      }
      assert.ok(err, 'the second connection wrote through an exclusive lock');
      assertOutage(err);
      a.exec('ROLLBACK');
      let syntax: Error | undefined;
      try {
        b.exec('INSERT INTO nowhere VALUES (1)');
      } catch (e) {
        syntax = e as Error;
      }
      assertBug(syntax as Error);
    } finally {
      a.close();
      b.close();
    }
  });

  it('PostgreSQL: a refused connection (nothing listens on the port)', async () => {
    const client = new pg.Client({ host: '127.0.0.1', port: await closedPort(), user: 'x', database: 'x', connectionTimeoutMillis: 5000 });
    assertOutage(await rejection(client.connect()));
  });

  describe('on a real server', function () {
    let server: TestPostgres | undefined;
    before(async function () {
      this.timeout(60_000);
      server = await postgresOrSkip('storage outage errors');
      if (!server) this.skip();
    });
    after(async () => {
      await server?.stop();
    });

    it('a backend the server terminates (57P01 / connection terminated), and not a syntax error', async () => {
      const victim = new pg.Client({ connectionString: server!.url });
      const admin = new pg.Client({ connectionString: server!.url });
      victim.on('error', () => undefined); // the terminated connection also emits 'error'
      await victim.connect();
      await admin.connect();
      try {
        assertBug(await rejection(victim.query('SELEC 1')));
        const { rows } = await victim.query<{ pid: number }>('SELECT pg_backend_pid() AS pid');
        await admin.query('SELECT pg_terminate_backend($1)', [rows[0].pid]);
        assertOutage(await rejection(victim.query('SELECT 1')));
      } finally {
        await victim.end().catch(() => undefined);
        await admin.end();
      }
    });
  });

  it('plain programming errors stay INTERNAL', () => {
    assertBug(new TypeError('x is not a function'));
    assertBug(Object.assign(new Error('duplicate key value violates unique constraint'), { code: '23505' }));
  });
});
