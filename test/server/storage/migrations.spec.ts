/**
 * Schema migrations on both engines: applied once and idempotent, all-or-nothing, refused on a
 * newer schema; on SQLite the same tables and columns today's Store creates (so its data
 * directories open, and still open in today's Store afterwards); on PostgreSQL the same columns
 * as on SQLite, and replicas migrating at once.
 */
import assert from 'node:assert/strict';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { Store } from '../../support/legacy-store.js';
import {
  appliedMigrations,
  migrate,
  MIGRATIONS,
  openExecutor,
  openStateStore,
  PostgresExecutor,
  SCHEMA_VERSION,
  SchemaTooNewError,
  SqliteExecutor,
  type SqlExecutor,
} from '../../../server/storage/index.js';
import { describeEngines } from './engines.js';

/** Every step this code knows, in order: 1 … SCHEMA_VERSION (steps are numbered without gaps). */
const ALL = Array.from({ length: SCHEMA_VERSION }, (_, i) => i + 1);

const scratch = mkdtempSync(join(tmpdir(), 'fedtune-migrations-'));
const program = { id: 'p', configJson: '{}', baseSha256: 'b'.repeat(64), loraJson: '{}', boxPublicKey: new Uint8Array(32).fill(1), boxSecretKey: new Uint8Array(32).fill(2) };
const STORE_TABLES = ['programs', 'devices', 'adapter_versions', 'rounds', 'privacy_ledger', 'releases', 'program_admin', 'device_revocations'];
const ALL_TABLES = [...STORE_TABLES, 'request_nonces', 'round_participants', 'partial_sums', 'leases', 'blobs', 'blob_chunks', 'round_plans', 'round_updates', 'forwarded_requests', 'schema_migrations'];

const executor = (location: string): SqlExecutor => (location.startsWith('postgres') ? new PostgresExecutor(location) : new SqliteExecutor(location));

describeEngines('server/storage migrations', (engine) => {
  it('applies every step once, in order, and is idempotent across re-opens', async () => {
    const location = await engine.location();
    const db = executor(location);
    try {
      assert.deepEqual(await migrate(db), MIGRATIONS.map((m) => m.version));
      assert.deepEqual(await migrate(db), []);
      assert.deepEqual(await appliedMigrations(db), ALL);
      assert.equal(SCHEMA_VERSION, 6);
      for (const t of ALL_TABLES) assert.ok((await db.columns(t)).length > 0, `table ${t} exists`);
    } finally {
      await db.close();
    }
    const s = await openStateStore(location);
    await s.createProgram(program, { sha256: 'a'.repeat(64), sizeBytes: 1 });
    await s.close();
    const again = await openStateStore(location);
    try {
      assert.equal((await again.program('p'))?.id, 'p', 'data survives re-opening');
    } finally {
      await again.close();
    }
  });

  it('refuses, in one sentence and without changing anything, a schema newer than it knows', async () => {
    const location = await engine.location();
    const db = await openExecutor(location);
    await db.run('INSERT INTO schema_migrations (version, name, applied_ms) VALUES (?, ?, ?)', [SCHEMA_VERSION + 1, 'from the future', 1]);
    await db.close();
    await assert.rejects(openStateStore(location), (e: unknown) => {
      assert.ok(e instanceof SchemaTooNewError);
      assert.match(e.message, new RegExp(`version ${SCHEMA_VERSION + 1} .*up to ${SCHEMA_VERSION}\\b`));
      assert.match(e.message, /^[^.]+\.$/, 'one sentence');
      return true;
    });
    const check = executor(location);
    try {
      assert.deepEqual(await appliedMigrations(check), [...ALL, SCHEMA_VERSION + 1]);
    } finally {
      await check.close();
    }
  });

  it('rolls a failing step back entirely', async () => {
    const db = executor(await engine.location());
    try {
      await migrate(db);
      const bad = { version: SCHEMA_VERSION + 1, name: 'broken', statements: ['CREATE TABLE half_done (a {int})', 'CREATE TABLE broken ('] };
      await assert.rejects(migrate(db, [...MIGRATIONS, bad]));
      assert.deepEqual(await db.columns('half_done'), []);
      assert.deepEqual(await appliedMigrations(db), ALL);
    } finally {
      await db.close();
    }
  });

  if (engine.name === 'sqlite') {
    it('creates exactly the tables and columns today’s Store creates', async () => {
      const refPath = await engine.location();
      new Store(refPath).close();
      const ref = new Database(refPath);
      const db = await openExecutor(await engine.location());
      try {
        for (const t of STORE_TABLES) {
          const want = ref.prepare(`PRAGMA table_info(${t})`).all();
          const got = await db.all(`PRAGMA table_info(${t})`);
          assert.deepEqual(got, want, t);
        }
      } finally {
        ref.close();
        await db.close();
      }
    });

    it('opens a data directory of today’s Store (and of one from before its added columns), which today’s Store still opens after', async () => {
      const path = await engine.location();
      const old = new Store(path);
      old.createProgram(program, { sha256: 'a'.repeat(64), sizeBytes: 7 }, 5);
      old.enrollDevice({ id: 'd1', programId: 'p', signPublicKey: new Uint8Array(32).fill(3), boxPublicKey: new Uint8Array(32).fill(4), label: 'x' }, 6);
      old.setReleaseKey('p', { signing: 'offline', publicKey: new Uint8Array(32).fill(5) });
      const want = { program: old.program('p'), devices: old.listDevices('p'), version: old.latestVersion('p'), key: old.releaseKey('p') };
      old.close();
      const s = await openStateStore(path);
      try {
        assert.deepEqual({ program: await s.program('p'), devices: await s.listDevices('p'), version: await s.latestVersion('p'), key: await s.releaseKey('p') }, want);
        assert.equal(await s.claimNonce('d1', 'n', 1), true, 'the new tables are there');
      } finally {
        await s.close();
      }
      const back = new Store(path);
      try {
        assert.deepEqual(back.listDevices('p'), want.devices);
      } finally {
        back.close();
      }

      const older = join(scratch, 'before-columns.sqlite');
      const raw = new Database(older);
      raw.exec(`CREATE TABLE programs (id TEXT PRIMARY KEY, config_json TEXT NOT NULL, base_sha256 TEXT NOT NULL, lora_json TEXT NOT NULL,
          box_public BLOB NOT NULL, box_secret BLOB NOT NULL, created_ms INTEGER NOT NULL);
        CREATE TABLE privacy_ledger (round_id TEXT PRIMARY KEY, program_id TEXT NOT NULL, round_number INTEGER NOT NULL, q REAL NOT NULL, sigma REAL NOT NULL,
          epsilon_after REAL NOT NULL, delta REAL NOT NULL, created_ms INTEGER NOT NULL);
        INSERT INTO privacy_ledger VALUES ('p.r1.a1', 'p', 1, 0.5, 1, 0.3, 1e-5, 2);`);
      raw.close();
      const upgraded = await openStateStore(older);
      try {
        assert.deepEqual(await upgraded.ledger('p'), [{ programId: 'p', roundId: 'p.r1.a1', roundNumber: 1, q: 0.5, population: 0, sigma: 1, epsilonAfter: 0.3, delta: 1e-5, scheme: '', eligible: -1, selected: -1 }]);
        assert.equal(await upgraded.releaseKey('p'), undefined);
      } finally {
        await upgraded.close();
      }
    });
  }

  if (engine.name === 'postgres') {
    it('has the same tables and columns as SQLite, with 64-bit integers and doubles', async () => {
      const lite = await openExecutor(join(scratch, 'compare.sqlite'));
      const pg = await openExecutor(await engine.location());
      try {
        for (const t of ALL_TABLES) assert.deepEqual([...(await pg.columns(t))].sort(), [...(await lite.columns(t))].sort(), t);
        const types = await pg.all("SELECT column_name, data_type FROM information_schema.columns WHERE table_schema = current_schema() AND table_name = 'rounds' AND column_name IN ('opened_ms', 'clip_norm')");
        assert.deepEqual(Object.fromEntries(types.map((r) => [r.column_name, r.data_type])), { opened_ms: 'bigint', clip_norm: 'double precision' });
      } finally {
        await lite.close();
        await pg.close();
      }
    });

    it('lets replicas that start together migrate once between them', async () => {
      const location = await engine.location();
      const replicas = [new PostgresExecutor(location), new PostgresExecutor(location), new PostgresExecutor(location)];
      try {
        const applied = await Promise.all(replicas.map((r) => migrate(r)));
        assert.deepEqual(applied.flat().sort((a, b) => a - b), ALL, 'each step applied by exactly one replica');
        assert.deepEqual(await appliedMigrations(replicas[0]), ALL);
      } finally {
        for (const r of replicas) await r.close();
      }
    });
  }
});
