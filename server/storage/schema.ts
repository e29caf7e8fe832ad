/**
 * The one schema of both engines, as numbered migration steps. Step texts name column types by
 * token — {int} (64-bit integer), {real} (double), {bytes} — rendered per engine, so SQLite gets
 * exactly the types the former single-node Store (now test/support/legacy-store.ts) creates and existing data directories open
 * unchanged. Steps are append-only: never edit a released step, add the next number.
 */
import type { StorageEngine } from './state-store.js';

/** One migration step. */
export interface Migration {
  readonly version: number;
  readonly name: string;
  /** DDL statements; every one idempotent (IF NOT EXISTS), so a database from before migrations takes step 1. */
  readonly statements: readonly string[];
  /** Columns to add if missing (databases made by older code): (table, column, definition). */
  readonly ensureColumns?: readonly (readonly [string, string, string])[];
}

const TYPES: Record<StorageEngine, Record<string, string>> = {
  sqlite: { int: 'INTEGER', real: 'REAL', bytes: 'BLOB' },
  postgres: { int: 'BIGINT', real: 'DOUBLE PRECISION', bytes: 'BYTEA' },
};

/** A step's text with its type tokens rendered for `engine`. */
export function renderSql(sql: string, engine: StorageEngine): string {
  return sql.replace(/\{(int|real|bytes)\}/g, (_, t: string) => TYPES[engine][t]);
}

/** Every step, in order. */
export const MIGRATIONS: readonly Migration[] = [
  {
    version: 1,
    name: 'coordinator state (the single-node store as of issue 13)',
    statements: [
      `CREATE TABLE IF NOT EXISTS programs (
        id TEXT PRIMARY KEY, config_json TEXT NOT NULL, base_sha256 TEXT NOT NULL, lora_json TEXT NOT NULL,
        box_public {bytes} NOT NULL, box_secret {bytes} NOT NULL, created_ms {int} NOT NULL)`,
      `CREATE TABLE IF NOT EXISTS devices (
        id TEXT PRIMARY KEY, program_id TEXT NOT NULL REFERENCES programs(id), sign_public {bytes} NOT NULL,
        box_public {bytes} NOT NULL, label TEXT NOT NULL, enrolled_ms {int} NOT NULL, UNIQUE (program_id, sign_public))`,
      `CREATE TABLE IF NOT EXISTS adapter_versions (
        program_id TEXT NOT NULL REFERENCES programs(id), version {int} NOT NULL, sha256 TEXT NOT NULL,
        size_bytes {int} NOT NULL, round_number {int} NOT NULL, created_ms {int} NOT NULL, PRIMARY KEY (program_id, version))`,
      `CREATE TABLE IF NOT EXISTS rounds (
        round_id TEXT PRIMARY KEY, program_id TEXT NOT NULL REFERENCES programs(id), round_number {int} NOT NULL,
        attempt {int} NOT NULL, state TEXT NOT NULL, adapter_version {int} NOT NULL, updates {int} NOT NULL,
        selected {int} NOT NULL, failed {int} NOT NULL, bytes_received {int} NOT NULL, clip_norm {real} NOT NULL,
        noise_multiplier {real} NOT NULL, epsilon_spent {real} NOT NULL, message TEXT NOT NULL, opened_ms {int} NOT NULL,
        closed_ms {int} NOT NULL, metrics_json TEXT NOT NULL DEFAULT '{}')`,
      `CREATE INDEX IF NOT EXISTS rounds_by_program ON rounds (program_id, round_number, attempt)`,
      `CREATE TABLE IF NOT EXISTS privacy_ledger (
        round_id TEXT PRIMARY KEY, program_id TEXT NOT NULL REFERENCES programs(id), round_number {int} NOT NULL,
        q {real} NOT NULL, sigma {real} NOT NULL, epsilon_after {real} NOT NULL, delta {real} NOT NULL, created_ms {int} NOT NULL,
        population {int} NOT NULL DEFAULT 0)`,
      `CREATE TABLE IF NOT EXISTS releases (
        program_id TEXT NOT NULL REFERENCES programs(id), sequence {int} NOT NULL, version {int} NOT NULL, kind TEXT NOT NULL,
        manifest {bytes} NOT NULL, signature {bytes} NOT NULL, created_ms {int} NOT NULL, PRIMARY KEY (program_id, sequence))`,
      `CREATE TABLE IF NOT EXISTS program_admin (
        program_id TEXT PRIMARY KEY REFERENCES programs(id), state TEXT NOT NULL, reason TEXT NOT NULL, actor TEXT NOT NULL,
        updated_ms {int} NOT NULL)`,
      `CREATE TABLE IF NOT EXISTS device_revocations (
        device_id TEXT PRIMARY KEY REFERENCES devices(id), program_id TEXT NOT NULL REFERENCES programs(id), reason TEXT NOT NULL,
        actor TEXT NOT NULL, revoked_ms {int} NOT NULL)`,
    ],
    // added in this order by today's Store too, so a fresh file has its columns in the same places
    ensureColumns: [
      ['rounds', 'metrics_json', "TEXT NOT NULL DEFAULT '{}'"],
      ['privacy_ledger', 'population', '{int} NOT NULL DEFAULT 0'],
      ['programs', 'release_signing', 'TEXT'],
      ['programs', 'release_public', '{bytes}'],
      ['programs', 'release_secret', '{bytes}'],
    ],
  },
  {
    version: 2,
    name: 'replica agreement: nonces, round participation, partial sums, leases',
    statements: [
      `CREATE TABLE IF NOT EXISTS request_nonces (
        device_id TEXT NOT NULL, nonce TEXT NOT NULL, expires_ms {int} NOT NULL, PRIMARY KEY (device_id, nonce))`,
      `CREATE INDEX IF NOT EXISTS request_nonces_by_expiry ON request_nonces (expires_ms)`,
      `CREATE TABLE IF NOT EXISTS round_participants (
        round_id TEXT NOT NULL, device_id TEXT NOT NULL, claimed_ms {int} NOT NULL, PRIMARY KEY (round_id, device_id))`,
      `CREATE TABLE IF NOT EXISTS partial_sums (
        round_id TEXT NOT NULL, replica_id TEXT NOT NULL, sum {bytes} NOT NULL, count {int} NOT NULL, updated_ms {int} NOT NULL,
        PRIMARY KEY (round_id, replica_id))`,
      `CREATE TABLE IF NOT EXISTS leases (
        program_id TEXT PRIMARY KEY, holder TEXT NOT NULL, expires_ms {int} NOT NULL, epoch {int} NOT NULL)`,
    ],
  },
  {
    version: 3,
    name: 'content-addressed blobs in chunked rows',
    statements: [
      `CREATE TABLE IF NOT EXISTS blobs (
        sha256 TEXT PRIMARY KEY, size {int} NOT NULL, chunk_bytes {int} NOT NULL, created_ms {int} NOT NULL)`,
      `CREATE TABLE IF NOT EXISTS blob_chunks (
        sha256 TEXT NOT NULL, idx {int} NOT NULL, data {bytes} NOT NULL, PRIMARY KEY (sha256, idx))`,
    ],
  },
  {
    version: 4,
    name: 'the sampling a ledger row was charged for: scheme, eligible and selected counts',
    statements: [],
    // added in this order by today's Store too
    ensureColumns: [
      ['privacy_ledger', 'scheme', "TEXT NOT NULL DEFAULT ''"],
      ['privacy_ledger', 'eligible', '{int} NOT NULL DEFAULT -1'],
      ['privacy_ledger', 'selected', '{int} NOT NULL DEFAULT -1'],
    ],
  },
  {
    version: 5,
    name: 'rounds every replica serves: the open round\'s plan, participants\' coins and answers, acknowledged updates',
    // the plan is a table of its own (the rounds table keeps exactly the single-node Store's columns);
    // its row is also what an acceptance (FOR SHARE) and the intake's close (an UPDATE) serialize on
    statements: [
      `CREATE TABLE IF NOT EXISTS round_plans (
        round_id TEXT PRIMARY KEY, program_id TEXT NOT NULL, round_number {int} NOT NULL, adapter_version {int} NOT NULL,
        clip_norm {real} NOT NULL, device_noise_std {real} NOT NULL, deadline_ms {int} NOT NULL, selection_ends_ms {int} NOT NULL,
        cap {int} NOT NULL, admitted {int} NOT NULL DEFAULT 0, driver TEXT NOT NULL, intake_closed_ms {int} NOT NULL DEFAULT 0)`,
      `CREATE TABLE IF NOT EXISTS round_updates (
        round_id TEXT NOT NULL, device_id TEXT NOT NULL, replica_id TEXT NOT NULL, update_f32 {bytes} NOT NULL, weight {real} NOT NULL,
        unclipped {int} NOT NULL, bytes_received {int} NOT NULL, created_ms {int} NOT NULL, PRIMARY KEY (round_id, device_id))`,
    ],
    ensureColumns: [
      ['round_participants', 'status', "TEXT NOT NULL DEFAULT 'working'"],
      ['round_participants', 'replica_id', "TEXT NOT NULL DEFAULT ''"],
    ],
  },
  {
    version: 6,
    name: 'requests a follower forwards to a program\'s driver (secure aggregation, fixed-cohort rounds) and their answers',
    // one row per forwarded request: the follower inserts it (already authenticated there), the
    // driver takes it (taken_by, once) and writes its answer; the follower reads it and deletes the row
    statements: [
      `CREATE TABLE IF NOT EXISTS forwarded_requests (
        id TEXT PRIMARY KEY, program_id TEXT NOT NULL, method TEXT NOT NULL, device_id TEXT NOT NULL, request {bytes} NOT NULL,
        payload {bytes} NOT NULL, from_replica TEXT NOT NULL, created_ms {int} NOT NULL, deadline_ms {int} NOT NULL,
        taken_by TEXT NOT NULL DEFAULT '', answered_ms {int} NOT NULL DEFAULT 0, code {int} NOT NULL DEFAULT 0,
        details TEXT NOT NULL DEFAULT '', response {bytes})`,
      `CREATE INDEX IF NOT EXISTS forwarded_requests_by_deadline ON forwarded_requests (deadline_ms)`,
    ],
  },
];

/** The newest schema version this code knows. */
export const SCHEMA_VERSION = MIGRATIONS[MIGRATIONS.length - 1].version;
