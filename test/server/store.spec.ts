/** The coordinator store (SQLite): round metrics and the ledger's population, and databases from before them. */
import assert from 'node:assert/strict';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { openStateStore } from '../../server/index.js';

const dir = mkdtempSync(join(tmpdir(), 'fedtune-store-'));
const program = { id: 'p', configJson: '{}', baseSha256: 'b'.repeat(64), loraJson: '{}', boxPublicKey: new Uint8Array(32), boxSecretKey: new Uint8Array(32) };
const round = { programId: 'p', roundId: 'p.r1.a1', roundNumber: 1, attempt: 1, state: 'open' as const, adapterVersion: 0, updates: 0, selected: 0, failed: 0, bytesReceived: 0, clipNorm: 0, noiseMultiplier: 0, epsilonSpent: 0, message: '', openedMs: 1, closedMs: 0, metrics: {} };

describe('server/store', () => {
  it('keeps a completed round’s aggregate metrics and each ledger entry’s population', async () => {
    const s = await openStateStore(join(dir, 'a.sqlite'));
    try {
      await s.createProgram(program, { sha256: 'a'.repeat(64), sizeBytes: 1 });
      await s.openRound(round);
      await s.appendLedger({ programId: 'p', roundId: round.roundId, roundNumber: 1, q: 0.2, population: 10, scheme: 'poisson', eligible: 7, selected: 3, sigma: 1, epsilonAfter: 0.5, delta: 1e-5 });
      await s.completeRound({ ...round, state: 'completed', closedMs: 2, metrics: { results: 3, examples: 12 } }, { version: 1, sha256: 'c'.repeat(64), sizeBytes: 1 });
      assert.deepEqual((await s.rounds('p'))[0].metrics, { results: 3, examples: 12 });
      const [e] = await s.ledger('p');
      assert.equal(e.population, 10);
      assert.deepEqual([e.scheme, e.eligible, e.selected], ['poisson', 7, 3]);
    } finally {
      await s.close();
    }
  });

  it('adds the new columns to a database made before them', async () => {
    const path = join(dir, 'old.sqlite');
    const old = new Database(path);
    old.exec(`CREATE TABLE rounds (round_id TEXT PRIMARY KEY, program_id TEXT NOT NULL, round_number INTEGER NOT NULL, attempt INTEGER NOT NULL, state TEXT NOT NULL,
      adapter_version INTEGER NOT NULL, updates INTEGER NOT NULL, selected INTEGER NOT NULL, failed INTEGER NOT NULL, bytes_received INTEGER NOT NULL, clip_norm REAL NOT NULL,
      noise_multiplier REAL NOT NULL, epsilon_spent REAL NOT NULL, message TEXT NOT NULL, opened_ms INTEGER NOT NULL, closed_ms INTEGER NOT NULL);
      CREATE TABLE privacy_ledger (round_id TEXT PRIMARY KEY, program_id TEXT NOT NULL, round_number INTEGER NOT NULL, q REAL NOT NULL, sigma REAL NOT NULL,
      epsilon_after REAL NOT NULL, delta REAL NOT NULL, created_ms INTEGER NOT NULL);
      INSERT INTO rounds VALUES ('p.r1.a1', 'p', 1, 1, 'completed', 1, 2, 2, 0, 10, 0, 0, 0, 'done', 1, 2);
      INSERT INTO privacy_ledger VALUES ('p.r1.a1', 'p', 1, 0.5, 1, 0.3, 1e-5, 2);`);
    old.close();
    const s = await openStateStore(path);
    try {
      assert.deepEqual((await s.rounds('p'))[0].metrics, {});
      const [e] = await s.ledger('p');
      assert.equal(e.population, 0);
      // rows from before schemes were recorded: no scheme (the coordinator refuses to account them)
      assert.deepEqual([e.scheme, e.eligible, e.selected], ['', -1, -1]);
    } finally {
      await s.close();
    }
  });
});

describe('server/store releases (every write visible at the next read)', () => {
  const rel = (sequence: number, signature: Uint8Array) => ({ programId: 'p', sequence, version: sequence, kind: 'version' as const, manifest: new TextEncoder().encode(`m${sequence}`), signature });

  it('shows every added or signed release at the next read, and none from a rolled-back transaction', async () => {
    const s = await openStateStore(':memory:');
    try {
      await s.createProgram(program, { sha256: 'a'.repeat(64), sizeBytes: 1 });
      await s.addRelease(rel(1, new Uint8Array(64).fill(1)));
      assert.deepEqual((await s.releases('p')).map((r) => r.sequence), [1]);
      await s.addRelease(rel(2, new Uint8Array(0)));
      assert.deepEqual((await s.releases('p')).map((r) => [r.sequence, r.signature.length]), [[1, 64], [2, 0]]);
      await s.signRelease('p', 2, new Uint8Array(64).fill(2));
      assert.deepEqual((await s.releases('p')).map((r) => r.signature.length), [64, 64]);
      // a caller may pop the list it gets without changing what the next caller sees
      (await s.releases('p')).pop();
      assert.equal((await s.releases('p')).length, 2);
      // a transaction that adds a release, reads it, then rolls back leaves no release behind
      await assert.rejects(
        s.withTransaction(async (tx) => {
          await tx.addRelease(rel(3, new Uint8Array(0)));
          assert.equal((await tx.releases('p')).length, 3);
          throw new Error('the commit fails');
        }),
        /the commit fails/,
      );
      assert.deepEqual((await s.releases('p')).map((r) => r.sequence), [1, 2]);
    } finally {
      await s.close();
    }
  });
});
