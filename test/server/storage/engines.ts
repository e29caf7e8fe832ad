/**
 * Run a suite against both engines: SQLite (a fresh temp file per `location()`) and PostgreSQL (a
 * fresh schema per `location()` in a throwaway server started for the suite; skipped with a
 * printed reason outside CI when PostgreSQL is absent).
 */
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { postgresOrSkip, type TestPostgres } from '../../support/postgres.js';

/** One engine as a suite sees it. */
export interface EngineUnderTest {
  readonly name: 'sqlite' | 'postgres';
  /** A fresh, empty database: a file path or a postgres:// URL. */
  location(): Promise<string>;
}

/** `body` runs twice, in a describe per engine. */
export function describeEngines(title: string, body: (engine: EngineUnderTest) => void): void {
  describe(`${title} · sqlite`, () => {
    let dir = '';
    let n = 0;
    before(() => {
      dir = mkdtempSync(join(tmpdir(), 'fedtune-storage-'));
    });
    body({ name: 'sqlite', location: async () => join(dir, `db${++n}.sqlite`) });
  });
  describe(`${title} · postgres`, function () {
    let pg: TestPostgres | undefined;
    before(async function () {
      this.timeout(60_000);
      pg = await postgresOrSkip(title);
      if (!pg) this.skip();
    });
    after(async () => {
      await pg?.stop();
    });
    body({
      name: 'postgres',
      location: async () => {
        if (!pg) throw new Error('no PostgreSQL server');
        return pg.fresh();
      },
    });
  });
}
