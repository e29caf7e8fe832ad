/**
 * The single-node Store the coordinator used before server/storage/ (kept for tests only): the
 * reference the StateStore conformance and migration specs compare with, and the writer of
 * "today's" SQLite files. The coordinator's durable state in an embedded SQLite database (better-sqlite3): programs and
 * their keys, enrolled devices, rounds, and adapter versions. Adapter bytes live in the blob
 * store; a version row is written only after its blob is on disk, in the same transaction that
 * marks its round completed, so after a crash (kill -9) every completed round is there with its
 * adapter, and nothing half-done is.
 */
import Database from 'better-sqlite3';
import type { LedgerEntry, ListedDevice, StoredDevice, StoredProgram, StoredProgramAdmin, StoredRelease, StoredReleaseKey, StoredRound, StoredVersion } from '../../server/storage/records.js';

const SCHEMA = `
CREATE TABLE IF NOT EXISTS programs (
  id TEXT PRIMARY KEY, config_json TEXT NOT NULL, base_sha256 TEXT NOT NULL, lora_json TEXT NOT NULL,
  box_public BLOB NOT NULL, box_secret BLOB NOT NULL, created_ms INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS devices (
  id TEXT PRIMARY KEY, program_id TEXT NOT NULL REFERENCES programs(id), sign_public BLOB NOT NULL,
  box_public BLOB NOT NULL, label TEXT NOT NULL, enrolled_ms INTEGER NOT NULL, UNIQUE (program_id, sign_public));
CREATE TABLE IF NOT EXISTS adapter_versions (
  program_id TEXT NOT NULL REFERENCES programs(id), version INTEGER NOT NULL, sha256 TEXT NOT NULL,
  size_bytes INTEGER NOT NULL, round_number INTEGER NOT NULL, created_ms INTEGER NOT NULL, PRIMARY KEY (program_id, version));
CREATE TABLE IF NOT EXISTS rounds (
  round_id TEXT PRIMARY KEY, program_id TEXT NOT NULL REFERENCES programs(id), round_number INTEGER NOT NULL,
  attempt INTEGER NOT NULL, state TEXT NOT NULL, adapter_version INTEGER NOT NULL, updates INTEGER NOT NULL,
  selected INTEGER NOT NULL, failed INTEGER NOT NULL, bytes_received INTEGER NOT NULL, clip_norm REAL NOT NULL,
  noise_multiplier REAL NOT NULL, epsilon_spent REAL NOT NULL, message TEXT NOT NULL, opened_ms INTEGER NOT NULL,
  closed_ms INTEGER NOT NULL, metrics_json TEXT NOT NULL DEFAULT '{}');
CREATE INDEX IF NOT EXISTS rounds_by_program ON rounds (program_id, round_number, attempt);
CREATE TABLE IF NOT EXISTS privacy_ledger (
  round_id TEXT PRIMARY KEY, program_id TEXT NOT NULL REFERENCES programs(id), round_number INTEGER NOT NULL,
  q REAL NOT NULL, sigma REAL NOT NULL, epsilon_after REAL NOT NULL, delta REAL NOT NULL, created_ms INTEGER NOT NULL,
  population INTEGER NOT NULL DEFAULT 0);
CREATE TABLE IF NOT EXISTS releases (
  program_id TEXT NOT NULL REFERENCES programs(id), sequence INTEGER NOT NULL, version INTEGER NOT NULL, kind TEXT NOT NULL,
  manifest BLOB NOT NULL, signature BLOB NOT NULL, created_ms INTEGER NOT NULL, PRIMARY KEY (program_id, sequence));
CREATE TABLE IF NOT EXISTS program_admin (
  program_id TEXT PRIMARY KEY REFERENCES programs(id), state TEXT NOT NULL, reason TEXT NOT NULL, actor TEXT NOT NULL, updated_ms INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS device_revocations (
  device_id TEXT PRIMARY KEY REFERENCES devices(id), program_id TEXT NOT NULL REFERENCES programs(id), reason TEXT NOT NULL,
  actor TEXT NOT NULL, revoked_ms INTEGER NOT NULL);
`;

/** Columns added since the first schema: (table, column, definition), added to older databases on open. */
const ADDED_COLUMNS: readonly (readonly [string, string, string])[] = [
  ['rounds', 'metrics_json', "TEXT NOT NULL DEFAULT '{}'"],
  ['privacy_ledger', 'population', 'INTEGER NOT NULL DEFAULT 0'],
  ['privacy_ledger', 'scheme', "TEXT NOT NULL DEFAULT ''"],
  ['privacy_ledger', 'eligible', 'INTEGER NOT NULL DEFAULT -1'],
  ['privacy_ledger', 'selected', 'INTEGER NOT NULL DEFAULT -1'],
  ['programs', 'release_signing', 'TEXT'],
  ['programs', 'release_public', 'BLOB'],
  ['programs', 'release_secret', 'BLOB'],
];

type Row = Record<string, unknown>;

const asBytes = (b: unknown): Uint8Array => Uint8Array.from(b as Buffer);

function roundFromRow(r: Row): StoredRound {
  return {
    programId: r.program_id as string,
    roundId: r.round_id as string,
    roundNumber: r.round_number as number,
    attempt: r.attempt as number,
    state: r.state as StoredRound['state'],
    adapterVersion: r.adapter_version as number,
    updates: r.updates as number,
    selected: r.selected as number,
    failed: r.failed as number,
    bytesReceived: r.bytes_received as number,
    clipNorm: r.clip_norm as number,
    noiseMultiplier: r.noise_multiplier as number,
    epsilonSpent: r.epsilon_spent as number,
    message: r.message as string,
    openedMs: r.opened_ms as number,
    closedMs: r.closed_ms as number,
    metrics: JSON.parse((r.metrics_json as string | undefined) ?? '{}') as Record<string, number>,
  };
}

/** The coordinator database. One process at a time: the file is opened exclusively. */
export class Store {
  private readonly db: Database.Database;
  private readonly statements = new Map<string, Database.Statement>();
  /** Each program's releases as last read outside a transaction; dropped by every release write (every check-in reads them). */
  private readonly releaseCache = new Map<string, readonly StoredRelease[]>();

  /** A statement compiled once and reused (compiling costs ~10× running a lookup). */
  private q(sql: string): Database.Statement {
    let st = this.statements.get(sql);
    if (!st) {
      st = this.db.prepare(sql);
      this.statements.set(sql, st);
    }
    return st;
  }

  /** Open (creating if needed) the database at `path` (":memory:" for tests). */
  constructor(path: string) {
    if (typeof path !== 'string' || path === '') throw new TypeError('Store: path must be a non-empty string');
    this.db = new Database(path);
    this.db.pragma('journal_mode = WAL');
    this.db.pragma('synchronous = FULL');
    this.db.pragma('foreign_keys = ON');
    this.db.pragma('locking_mode = EXCLUSIVE');
    this.db.exec(SCHEMA);
    for (const [table, column, def] of ADDED_COLUMNS) {
      const cols = this.db.prepare(`PRAGMA table_info(${table})`).all() as { name: string }[];
      if (!cols.some((c) => c.name === column)) this.db.exec(`ALTER TABLE ${table} ADD COLUMN ${column} ${def}`);
    }
  }

  /** The stored program, if any. */
  program(id: string): StoredProgram | undefined {
    const r = this.q('SELECT * FROM programs WHERE id = ?').get(id) as Row | undefined;
    if (!r) return undefined;
    return {
      id: r.id as string,
      configJson: r.config_json as string,
      baseSha256: r.base_sha256 as string,
      loraJson: r.lora_json as string,
      boxPublicKey: asBytes(r.box_public),
      boxSecretKey: asBytes(r.box_secret),
    };
  }

  /** Register a program with its initial adapter version 0 (one transaction). */
  createProgram(p: StoredProgram, initial: Omit<StoredVersion, 'version' | 'roundNumber'>, now = Date.now()): void {
    this.db.transaction(() => {
      this.q('INSERT INTO programs (id, config_json, base_sha256, lora_json, box_public, box_secret, created_ms) VALUES (?, ?, ?, ?, ?, ?, ?)')
        .run(p.id, p.configJson, p.baseSha256, p.loraJson, Buffer.from(p.boxPublicKey), Buffer.from(p.boxSecretKey), now);
      this.q('INSERT INTO adapter_versions (program_id, version, sha256, size_bytes, round_number, created_ms) VALUES (?, 0, ?, ?, 0, ?)').run(p.id, initial.sha256, initial.sizeBytes, now);
    })();
  }

  /** Record a program's current settings (they may change between runs; base and LoRA may not). */
  updateProgramConfig(id: string, configJson: string): void {
    this.q('UPDATE programs SET config_json = ? WHERE id = ?').run(configJson, id);
  }

  /** Enrol a device; returns the existing record if this key already enrolled in the program. */
  enrollDevice(d: StoredDevice, now = Date.now()): StoredDevice {
    const existing = this.q('SELECT * FROM devices WHERE program_id = ? AND sign_public = ?').get(d.programId, Buffer.from(d.signPublicKey)) as Row | undefined;
    if (existing) return this.deviceFromRow(existing);
    this.q('INSERT INTO devices (id, program_id, sign_public, box_public, label, enrolled_ms) VALUES (?, ?, ?, ?, ?, ?)').run(d.id, d.programId, Buffer.from(d.signPublicKey), Buffer.from(d.boxPublicKey), d.label, now);
    return d;
  }

  /** A device by id. */
  device(id: string): StoredDevice | undefined {
    const r = this.q('SELECT * FROM devices WHERE id = ?').get(id) as Row | undefined;
    return r ? this.deviceFromRow(r) : undefined;
  }

  /** Devices enrolled in a program. */
  deviceCount(programId: string): number {
    return (this.q('SELECT COUNT(*) AS n FROM devices WHERE program_id = ?').get(programId) as { n: number }).n;
  }

  private deviceFromRow(r: Row): StoredDevice {
    return { id: r.id as string, programId: r.program_id as string, signPublicKey: asBytes(r.sign_public), boxPublicKey: asBytes(r.box_public), label: r.label as string };
  }

  /** The newest adapter version of a program. */
  latestVersion(programId: string): StoredVersion {
    const r = this.q('SELECT * FROM adapter_versions WHERE program_id = ? ORDER BY version DESC LIMIT 1').get(programId) as Row | undefined;
    if (!r) throw new RangeError(`Store.latestVersion: program ${programId} has no adapter version`);
    return { version: r.version as number, sha256: r.sha256 as string, sizeBytes: r.size_bytes as number, roundNumber: r.round_number as number };
  }

  /** True if `sha256` is the base or an adapter version of the program (what its devices may download). */
  programHasBlob(programId: string, sha256: string): boolean {
    return this.q('SELECT 1 FROM adapter_versions WHERE program_id = ? AND sha256 = ? LIMIT 1').get(programId, sha256) !== undefined;
  }

  /** Record a round as opened. */
  openRound(r: StoredRound): void {
    this.q(
        `INSERT INTO rounds (round_id, program_id, round_number, attempt, state, adapter_version, updates, selected, failed, bytes_received,
         clip_norm, noise_multiplier, epsilon_spent, message, opened_ms, closed_ms) VALUES (?, ?, ?, ?, 'open', ?, 0, 0, 0, 0, ?, ?, ?, '', ?, 0)`,
      )
      .run(r.roundId, r.programId, r.roundNumber, r.attempt, r.adapterVersion, r.clipNorm, r.noiseMultiplier, r.epsilonSpent, r.openedMs);
  }

  private closeRound(r: StoredRound): void {
    const res = this.q(
        `UPDATE rounds SET state = ?, adapter_version = ?, updates = ?, selected = ?, failed = ?, bytes_received = ?, clip_norm = ?,
         noise_multiplier = ?, epsilon_spent = ?, message = ?, closed_ms = ?, metrics_json = ? WHERE round_id = ? AND state = 'open'`,
      )
      .run(r.state, r.adapterVersion, r.updates, r.selected, r.failed, r.bytesReceived, r.clipNorm, r.noiseMultiplier, r.epsilonSpent, r.message, r.closedMs, JSON.stringify(r.metrics ?? {}), r.roundId);
    if (res.changes !== 1) throw new Error(`Store: round ${r.roundId} is not open`);
  }

  /** Merge a completed round's server-side evaluation (held-out loss, …) into its metrics. */
  recordRoundEval(roundId: string, values: Readonly<Record<string, number>>): void {
    const row = this.q('SELECT metrics_json FROM rounds WHERE round_id = ?').get(roundId) as { metrics_json: string } | undefined;
    if (!row) throw new RangeError(`Store.recordRoundEval: no round ${roundId}`);
    this.q('UPDATE rounds SET metrics_json = ? WHERE round_id = ?').run(JSON.stringify({ ...(JSON.parse(row.metrics_json) as object), ...values }), roundId);
  }

  /** Mark a round failed. */
  failRound(r: StoredRound): void {
    this.closeRound({ ...r, state: 'failed' });
  }

  /** Atomically: add the adapter version the round produced (and its release), and mark the round completed. */
  completeRound(r: StoredRound, version: Omit<StoredVersion, 'roundNumber'>, release?: StoredRelease): void {
    this.db.transaction(() => {
      this.q('INSERT INTO adapter_versions (program_id, version, sha256, size_bytes, round_number, created_ms) VALUES (?, ?, ?, ?, ?, ?)')
        .run(r.programId, version.version, version.sha256, version.sizeBytes, r.roundNumber, r.closedMs);
      if (release) this.addRelease(release, r.closedMs);
      this.closeRound({ ...r, state: 'completed', adapterVersion: version.version });
    })();
  }

  /** One adapter version of a program, if it exists. */
  version(programId: string, version: number): StoredVersion | undefined {
    const r = this.q('SELECT * FROM adapter_versions WHERE program_id = ? AND version = ?').get(programId, version) as Row | undefined;
    return r ? { version: r.version as number, sha256: r.sha256 as string, sizeBytes: r.size_bytes as number, roundNumber: r.round_number as number } : undefined;
  }

  /** A program's release key, if one was recorded. */
  releaseKey(programId: string): StoredReleaseKey | undefined {
    const r = this.q('SELECT release_signing, release_public, release_secret FROM programs WHERE id = ?').get(programId) as Row | undefined;
    if (!r || !r.release_public) return undefined;
    return { signing: r.release_signing as StoredReleaseKey['signing'], publicKey: asBytes(r.release_public), secretKey: r.release_secret ? asBytes(r.release_secret) : undefined };
  }

  /** Record a program's release key (once; a later change is refused by the caller). */
  setReleaseKey(programId: string, k: StoredReleaseKey): void {
    this.q('UPDATE programs SET release_signing = ?, release_public = ?, release_secret = ? WHERE id = ?').run(k.signing, Buffer.from(k.publicKey), k.secretKey ? Buffer.from(k.secretKey) : null, programId);
  }

  /** Append a release (signed, or awaiting its signature). */
  addRelease(rel: StoredRelease, now = Date.now()): void {
    this.releaseCache.delete(rel.programId);
    this.q('INSERT INTO releases (program_id, sequence, version, kind, manifest, signature, created_ms) VALUES (?, ?, ?, ?, ?, ?, ?)')
      .run(rel.programId, rel.sequence, rel.version, rel.kind, Buffer.from(rel.manifest), Buffer.from(rel.signature), now);
  }

  /** Attach the offline signature to an unsigned release. */
  signRelease(programId: string, sequence: number, signature: Uint8Array): void {
    this.releaseCache.delete(programId);
    const res = this.q("UPDATE releases SET signature = ? WHERE program_id = ? AND sequence = ? AND length(signature) = 0").run(Buffer.from(signature), programId, sequence);
    if (res.changes !== 1) throw new Error(`Store: release ${sequence} of ${programId} is not awaiting a signature`);
  }

  /** A program's releases in sequence order. */
  releases(programId: string): StoredRelease[] {
    const cached = this.releaseCache.get(programId);
    if (cached) return cached.slice();
    const rows = (this.q('SELECT * FROM releases WHERE program_id = ? ORDER BY sequence').all(programId) as Row[]).map((r) => ({
      programId: r.program_id as string,
      sequence: r.sequence as number,
      version: r.version as number,
      kind: r.kind as StoredRelease['kind'],
      manifest: asBytes(r.manifest),
      signature: asBytes(r.signature),
    }));
    // inside a transaction the rows may yet roll back: cache only what is committed
    if (!this.db.inTransaction) this.releaseCache.set(programId, Object.freeze(rows.map((r) => Object.freeze(r))));
    return rows;
  }

  /** Rounds left open by a crash become failed ("the coordinator restarted"); returns how many. */
  failOpenRounds(programId: string, now = Date.now()): number {
    return this.q(`UPDATE rounds SET state = 'failed', message = 'the coordinator restarted while the round was open', closed_ms = ? WHERE program_id = ? AND state = 'open'`)
      .run(now, programId).changes;
  }

  /** A program's closed rounds in order. */
  rounds(programId: string): StoredRound[] {
    return (this.q(`SELECT * FROM rounds WHERE program_id = ? ORDER BY round_number, attempt`).all(programId) as Row[]).map(roundFromRow);
  }

  /** Rounds completed so far. */
  completedRounds(programId: string): number {
    return (this.q(`SELECT COUNT(*) AS n FROM rounds WHERE program_id = ? AND state = 'completed'`).get(programId) as { n: number }).n;
  }

  /** Append a round's spend, durably (synchronous = FULL), before its aggregate leaves the coordinator. */
  appendLedger(e: LedgerEntry, now = Date.now()): void {
    this.q('INSERT INTO privacy_ledger (round_id, program_id, round_number, q, sigma, epsilon_after, delta, created_ms, population, scheme, eligible, selected) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)').run(
      e.roundId,
      e.programId,
      e.roundNumber,
      e.q,
      e.sigma,
      e.epsilonAfter,
      e.delta,
      now,
      e.population,
      e.scheme,
      e.eligible,
      e.selected,
    );
  }

  /** A program's ledger in order. */
  ledger(programId: string): LedgerEntry[] {
    return (this.q('SELECT * FROM privacy_ledger WHERE program_id = ? ORDER BY created_ms, round_number').all(programId) as Row[]).map((r) => ({
      programId: r.program_id as string,
      roundId: r.round_id as string,
      roundNumber: r.round_number as number,
      q: r.q as number,
      population: r.population as number,
      scheme: r.scheme as string,
      eligible: r.eligible as number,
      selected: r.selected as number,
      sigma: r.sigma as number,
      epsilonAfter: r.epsilon_after as number,
      delta: r.delta as number,
    }));
  }

  /** A program's administrative state (paused or stopped), if one was set. */
  programAdmin(programId: string): StoredProgramAdmin | undefined {
    const r = this.q('SELECT * FROM program_admin WHERE program_id = ?').get(programId) as Row | undefined;
    return r ? { state: r.state as StoredProgramAdmin['state'], reason: r.reason as string, actor: r.actor as string, updatedMs: r.updated_ms as number } : undefined;
  }

  /** Record a program paused or stopped by an administrator; undefined clears it (running again). */
  setProgramAdmin(programId: string, a: StoredProgramAdmin | undefined): void {
    if (!a) this.q('DELETE FROM program_admin WHERE program_id = ?').run(programId);
    else this.q('INSERT OR REPLACE INTO program_admin (program_id, state, reason, actor, updated_ms) VALUES (?, ?, ?, ?, ?)').run(programId, a.state, a.reason, a.actor, a.updatedMs);
  }

  /** Record a device's revocation (once: a second revocation keeps the first record). */
  revokeDevice(deviceId: string, programId: string, reason: string, actor: string, now = Date.now()): void {
    this.q('INSERT OR IGNORE INTO device_revocations (device_id, program_id, reason, actor, revoked_ms) VALUES (?, ?, ?, ?, ?)').run(deviceId, programId, reason, actor, now);
  }

  /** Every revoked device id (of every program). */
  revokedDeviceIds(): string[] {
    return (this.q('SELECT device_id FROM device_revocations').all() as Row[]).map((r) => r.device_id as string);
  }

  /** A program's devices, newest enrolment first, with their revocations (at most `limit`). */
  listDevices(programId: string, limit = 10_000): ListedDevice[] {
    const rows = this.q(
      `SELECT d.*, r.revoked_ms, r.actor AS revoked_by FROM devices d LEFT JOIN device_revocations r ON r.device_id = d.id
       WHERE d.program_id = ? ORDER BY d.enrolled_ms DESC, d.id LIMIT ?`,
    ).all(programId, limit) as Row[];
    return rows.map((r) => ({ ...this.deviceFromRow(r), enrolledMs: r.enrolled_ms as number, ...(r.revoked_ms !== null ? { revokedMs: r.revoked_ms as number, revokedBy: r.revoked_by as string } : {}) }));
  }

  /** Devices of a program an administrator revoked. */
  revokedCount(programId: string): number {
    return (this.q('SELECT COUNT(*) AS n FROM device_revocations WHERE program_id = ?').get(programId) as { n: number }).n;
  }

  /** Close the database. */
  close(): void {
    if (this.db.open) this.db.close();
  }
}
