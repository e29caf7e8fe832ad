/**
 * A throwaway PostgreSQL server for tests: `initdb` into a temporary directory, `pg_ctl` on a free
 * loopback port (listening on 127.0.0.1 only, trust authentication), stopped and deleted after.
 * As root (CI runs as root and initdb refuses it), the server runs as the `postgres` user through
 * `runuser`, in a directory that user owns. With FEDTUNE_PG=postgres://… set, an existing server is
 * used instead: a fresh database is created in it and dropped after.
 *
 * `postgresOrSkip` decides what a spec does without PostgreSQL: outside CI (CI unset) it skips with
 * a printed reason; in CI it fails, because there the tests must run.
 */
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { chownSync, existsSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pg from 'pg';

/** A running test server (or a fresh database in FEDTUNE_PG's server). */
export interface TestPostgres {
  /** Connection URL of a fresh, empty schema (the first `fresh()`). */
  readonly url: string;
  /**
   * The URL of another fresh, empty schema in the test database (its search_path set through the
   * URL's `options`): as isolated as a new database for the store, and ~100× faster to make.
   */
  fresh(): Promise<string>;
  /** Stop the server and delete its directory (or drop the database made in FEDTUNE_PG). */
  stop(): Promise<void>;
}

/** The directory holding initdb and pg_ctl, if PostgreSQL is installed here. */
export function postgresBinDir(): string | undefined {
  const fromPath = (() => {
    try {
      return execFileSync('pg_config', ['--bindir'], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).trim();
    } catch {
      return undefined;
    }
  })();
  if (fromPath && existsSync(join(fromPath, 'initdb'))) return fromPath;
  const root = '/usr/lib/postgresql';
  if (!existsSync(root)) return undefined;
  const versions = readdirSync(root).filter((v) => existsSync(join(root, v, 'bin', 'initdb'))).sort((a, b) => Number(b) - Number(a));
  return versions.length > 0 ? join(root, versions[0], 'bin') : undefined;
}

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const addr = s.address();
      const port = typeof addr === 'object' && addr ? addr.port : 0;
      s.close(() => resolve(port));
    });
  });
}

const isRoot = (): boolean => typeof process.getuid === 'function' && process.getuid() === 0;

/** Run a PostgreSQL binary, as the `postgres` user when we are root. */
function runPg(bin: string, args: string[]): void {
  const cmd = isRoot() ? ['runuser', ['-u', 'postgres', '--', bin, ...args]] as const : [bin, args] as const;
  execFileSync(cmd[0], [...cmd[1]], { stdio: ['ignore', 'pipe', 'pipe'], cwd: tmpdir() });
}

async function inServer(adminUrl: string, sql: string): Promise<void> {
  const c = new pg.Client({ connectionString: adminUrl });
  await c.connect();
  try {
    await c.query(sql);
  } finally {
    await c.end();
  }
}

function withDatabase(url: string, name: string): string {
  const u = new URL(url);
  u.pathname = `/${name}`;
  return u.toString();
}

/** One test database in the server at `adminUrl`, a fresh schema per call; `stop` drops it and runs `after`. */
async function databases(adminUrl: string, after: () => Promise<void>): Promise<TestPostgres> {
  const name = `fedtune_test_${randomBytes(6).toString('hex')}`;
  await inServer(adminUrl, `CREATE DATABASE ${name}`);
  const dbUrl = withDatabase(adminUrl, name);
  let n = 0;
  const fresh = async (): Promise<string> => {
    const schema = `s${++n}`;
    await inServer(dbUrl, `CREATE SCHEMA ${schema}`);
    const u = new URL(dbUrl);
    u.searchParams.set('options', `-c search_path=${schema}`);
    return u.toString();
  };
  const url = await fresh();
  return {
    url,
    fresh,
    async stop() {
      await inServer(adminUrl, `DROP DATABASE IF EXISTS ${name} WITH (FORCE)`).catch(() => undefined);
      await after();
    },
  };
}

/** Start a throwaway server (or use FEDTUNE_PG's); throws if PostgreSQL is not installed. */
export async function startPostgres(): Promise<TestPostgres> {
  const external = process.env.FEDTUNE_PG;
  if (external) return databases(external, async () => undefined);
  const bin = postgresBinDir();
  if (!bin) throw new Error('startPostgres: PostgreSQL is not installed (no initdb in pg_config --bindir or /usr/lib/postgresql/*/bin)');
  const dir = mkdtempSync(join(tmpdir(), 'fedtune-pg-'));
  if (isRoot()) {
    const ids = execFileSync('id', ['-u', 'postgres'], { encoding: 'utf8' }).trim();
    const gid = execFileSync('id', ['-g', 'postgres'], { encoding: 'utf8' }).trim();
    chownSync(dir, Number(ids), Number(gid));
  }
  const data = join(dir, 'data');
  const port = await freePort();
  const user = 'fedtune';
  runPg(join(bin, 'initdb'), ['-D', data, '-U', user, '--auth-local=trust', '--auth-host=trust', '--no-sync', '-E', 'UTF8', '--locale=C']);
  const opts = `-c listen_addresses=127.0.0.1 -p ${port} -k ${dir} -c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_connections=40`;
  runPg(join(bin, 'pg_ctl'), ['-D', data, '-l', join(dir, 'log'), '-o', opts, '-w', '-t', '30', 'start']);
  // a test process that dies without calling stop() must not leave the server running
  const stopSync = (): void => {
    try {
      runPg(join(bin, 'pg_ctl'), ['-D', data, '-m', 'immediate', '-w', 'stop']);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  };
  process.once('exit', stopSync);
  const stopServer = async (): Promise<void> => {
    process.removeListener('exit', stopSync);
    stopSync();
  };
  try {
    return await databases(`postgres://${user}@127.0.0.1:${port}/postgres`, stopServer);
  } catch (e) {
    await stopServer();
    throw e;
  }
}

/**
 * For a spec's `before`: a server, or — when PostgreSQL is absent outside CI — undefined after
 * printing why the PostgreSQL half is skipped. In CI (process.env.CI set) absence is an error.
 */
export async function postgresOrSkip(what: string): Promise<TestPostgres | undefined> {
  if (!process.env.FEDTUNE_PG && !postgresBinDir()) {
    if (process.env.CI) throw new Error(`${what}: PostgreSQL is required in CI (install Debian's postgresql package)`);
    console.log(`      (skipping ${what} on PostgreSQL: no initdb found and FEDTUNE_PG is unset)`);
    return undefined;
  }
  return startPostgres();
}
