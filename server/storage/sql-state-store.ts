/**
 * The StateStore written once in SQL both engines run (upserts as `ON CONFLICT`, `?`
 * placeholders): every difference between SQLite and PostgreSQL stays in their executors.
 * The replica claims are in sql-claims.ts.
 */
import { SqlIntake } from './sql-intake.js';
import type { Row, SqlExecutor } from './sql.js';
import type {
  LedgerEntry,
  ListedDevice,
  RoundPlanRecord,
  StateStore,
  StoredDevice,
  StoredProgram,
  StoredProgramAdmin,
  StoredRelease,
  StoredReleaseKey,
  StoredRound,
  StoredVersion,
} from './state-store.js';

const bytes = (b: unknown): Uint8Array => Uint8Array.from(b as Uint8Array);
const num = (v: unknown): number => Number(v);

function roundFromRow(r: Row): StoredRound {
  return {
    programId: r.program_id as string,
    roundId: r.round_id as string,
    roundNumber: num(r.round_number),
    attempt: num(r.attempt),
    state: r.state as StoredRound['state'],
    adapterVersion: num(r.adapter_version),
    updates: num(r.updates),
    selected: num(r.selected),
    failed: num(r.failed),
    bytesReceived: num(r.bytes_received),
    clipNorm: num(r.clip_norm),
    noiseMultiplier: num(r.noise_multiplier),
    epsilonSpent: num(r.epsilon_spent),
    message: r.message as string,
    openedMs: num(r.opened_ms),
    closedMs: num(r.closed_ms),
    metrics: JSON.parse((r.metrics_json as string | undefined) ?? '{}') as Record<string, number>,
  };
}

const versionFromRow = (r: Row): StoredVersion => ({ version: num(r.version), sha256: r.sha256 as string, sizeBytes: num(r.size_bytes), roundNumber: num(r.round_number) });
const deviceFromRow = (r: Row): StoredDevice => ({ id: r.id as string, programId: r.program_id as string, signPublicKey: bytes(r.sign_public), boxPublicKey: bytes(r.box_public), label: r.label as string });

/** The StateStore over one engine's executor (a connection, a pool, or a transaction on one). */
export class SqlStateStore extends SqlIntake implements StateStore {
  constructor(db: SqlExecutor) {
    super(db);
  }

  get engine(): StateStore['engine'] {
    return this.db.engine;
  }

  withTransaction<T>(fn: (tx: StateStore) => Promise<T>): Promise<T> {
    if (typeof fn !== 'function') throw new TypeError('StateStore.withTransaction: fn must be a function');
    return this.db.transaction((tx) => fn(tx === this.db ? this : new SqlStateStore(tx)));
  }

  async program(id: string): Promise<StoredProgram | undefined> {
    const r = await this.db.get('SELECT * FROM programs WHERE id = ?', [id]);
    if (!r) return undefined;
    return { id: r.id as string, configJson: r.config_json as string, baseSha256: r.base_sha256 as string, loraJson: r.lora_json as string, boxPublicKey: bytes(r.box_public), boxSecretKey: bytes(r.box_secret) };
  }

  async createProgram(p: StoredProgram, initial: Omit<StoredVersion, 'version' | 'roundNumber'>, now = Date.now()): Promise<void> {
    await this.db.transaction(async (tx) => {
      await tx.run('INSERT INTO programs (id, config_json, base_sha256, lora_json, box_public, box_secret, created_ms) VALUES (?, ?, ?, ?, ?, ?, ?)', [p.id, p.configJson, p.baseSha256, p.loraJson, p.boxPublicKey, p.boxSecretKey, now]);
      await tx.run('INSERT INTO adapter_versions (program_id, version, sha256, size_bytes, round_number, created_ms) VALUES (?, 0, ?, ?, 0, ?)', [p.id, initial.sha256, initial.sizeBytes, now]);
    });
  }

  async updateProgramConfig(id: string, configJson: string): Promise<void> {
    await this.db.run('UPDATE programs SET config_json = ? WHERE id = ?', [configJson, id]);
  }

  async enrollDevice(d: StoredDevice, now = Date.now()): Promise<StoredDevice> {
    const added = await this.db.run(
      'INSERT INTO devices (id, program_id, sign_public, box_public, label, enrolled_ms) VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (program_id, sign_public) DO NOTHING',
      [d.id, d.programId, d.signPublicKey, d.boxPublicKey, d.label, now],
    );
    if (added === 1) return d;
    const existing = await this.db.get('SELECT * FROM devices WHERE program_id = ? AND sign_public = ?', [d.programId, d.signPublicKey]);
    if (!existing) throw new Error(`StateStore.enrollDevice: device ${d.id} was neither added nor found`);
    return deviceFromRow(existing);
  }

  async device(id: string): Promise<StoredDevice | undefined> {
    const r = await this.db.get('SELECT * FROM devices WHERE id = ?', [id]);
    return r ? deviceFromRow(r) : undefined;
  }

  deviceNow(id: string): StoredDevice | undefined {
    const r = this.db.getNow?.('SELECT * FROM devices WHERE id = ?', [id]);
    return r ? deviceFromRow(r) : undefined;
  }

  deviceCountNow(programId: string): number | undefined {
    const r = this.db.getNow?.('SELECT COUNT(*) AS n FROM devices WHERE program_id = ?', [programId]);
    return r ? num(r.n) : undefined;
  }

  async deviceCount(programId: string): Promise<number> {
    return num((await this.db.get('SELECT COUNT(*) AS n FROM devices WHERE program_id = ?', [programId]))?.n);
  }

  async latestVersion(programId: string): Promise<StoredVersion> {
    const r = await this.db.get('SELECT * FROM adapter_versions WHERE program_id = ? ORDER BY version DESC LIMIT 1', [programId]);
    if (!r) throw new RangeError(`StateStore.latestVersion: program ${programId} has no adapter version`);
    return versionFromRow(r);
  }

  async programHasBlob(programId: string, sha256: string): Promise<boolean> {
    return (await this.db.get('SELECT 1 AS one FROM adapter_versions WHERE program_id = ? AND sha256 = ? LIMIT 1', [programId, sha256])) !== undefined;
  }

  async openRound(r: StoredRound, plan?: RoundPlanRecord): Promise<void> {
    if (plan && (plan.roundId !== r.roundId || plan.programId !== r.programId)) throw new RangeError(`StateStore.openRound: the plan is of round ${plan.roundId}, not ${r.roundId}`);
    if (!plan) return SqlStateStore.insertRound(this.db, r);
    await this.db.transaction(async (tx) => {
      await SqlStateStore.insertRound(tx, r);
      if (plan) await SqlIntake.insertPlan(tx, plan);
    });
  }

  private static async insertRound(db: SqlExecutor, r: StoredRound): Promise<void> {
    await db.run(
      `INSERT INTO rounds (round_id, program_id, round_number, attempt, state, adapter_version, updates, selected, failed, bytes_received,
       clip_norm, noise_multiplier, epsilon_spent, message, opened_ms, closed_ms) VALUES (?, ?, ?, ?, 'open', ?, 0, 0, 0, 0, ?, ?, ?, '', ?, 0)`,
      [r.roundId, r.programId, r.roundNumber, r.attempt, r.adapterVersion, r.clipNorm, r.noiseMultiplier, r.epsilonSpent, r.openedMs],
    );
  }

  private static async closeRound(db: SqlExecutor, r: StoredRound): Promise<void> {
    const changed = await db.run(
      `UPDATE rounds SET state = ?, adapter_version = ?, updates = ?, selected = ?, failed = ?, bytes_received = ?, clip_norm = ?,
       noise_multiplier = ?, epsilon_spent = ?, message = ?, closed_ms = ?, metrics_json = ? WHERE round_id = ? AND state = 'open'`,
      [r.state, r.adapterVersion, r.updates, r.selected, r.failed, r.bytesReceived, r.clipNorm, r.noiseMultiplier, r.epsilonSpent, r.message, r.closedMs, JSON.stringify(r.metrics ?? {}), r.roundId],
    );
    if (changed !== 1) throw new Error(`StateStore: round ${r.roundId} is not open`);
    await SqlIntake.notify(db, { programId: r.programId, roundId: r.roundId, what: r.state === 'completed' ? 'round-completed' : 'round-failed' });
  }

  async recordRoundEval(roundId: string, values: Readonly<Record<string, number>>): Promise<void> {
    await this.db.transaction(async (tx) => {
      // PostgreSQL runs READ COMMITTED: lock the row, or two replicas' merges lose one (SQLite's BEGIN IMMEDIATE already serializes)
      const row = await tx.get(`SELECT metrics_json FROM rounds WHERE round_id = ?${tx.engine === 'postgres' ? ' FOR UPDATE' : ''}`, [roundId]);
      if (!row) throw new RangeError(`StateStore.recordRoundEval: no round ${roundId}`);
      await tx.run('UPDATE rounds SET metrics_json = ? WHERE round_id = ?', [JSON.stringify({ ...(JSON.parse(row.metrics_json as string) as object), ...values }), roundId]);
    });
  }

  async failRound(r: StoredRound): Promise<void> {
    await SqlStateStore.closeRound(this.db, { ...r, state: 'failed' });
  }

  async completeRound(r: StoredRound, version: Omit<StoredVersion, 'roundNumber'>, release?: StoredRelease): Promise<void> {
    await this.db.transaction(async (tx) => {
      await tx.run('INSERT INTO adapter_versions (program_id, version, sha256, size_bytes, round_number, created_ms) VALUES (?, ?, ?, ?, ?, ?)', [r.programId, version.version, version.sha256, version.sizeBytes, r.roundNumber, r.closedMs]);
      if (release) await new SqlStateStore(tx).addRelease(release, r.closedMs);
      await SqlStateStore.closeRound(tx, { ...r, state: 'completed', adapterVersion: version.version });
    });
  }

  async version(programId: string, version: number): Promise<StoredVersion | undefined> {
    const r = await this.db.get('SELECT * FROM adapter_versions WHERE program_id = ? AND version = ?', [programId, version]);
    return r ? versionFromRow(r) : undefined;
  }

  async releaseKey(programId: string): Promise<StoredReleaseKey | undefined> {
    const r = await this.db.get('SELECT release_signing, release_public, release_secret FROM programs WHERE id = ?', [programId]);
    if (!r || !r.release_public) return undefined;
    return { signing: r.release_signing as StoredReleaseKey['signing'], publicKey: bytes(r.release_public), secretKey: r.release_secret ? bytes(r.release_secret) : undefined };
  }

  async setReleaseKey(programId: string, k: StoredReleaseKey): Promise<void> {
    await this.db.run('UPDATE programs SET release_signing = ?, release_public = ?, release_secret = ? WHERE id = ?', [k.signing, k.publicKey, k.secretKey ?? null, programId]);
  }

  async addRelease(rel: StoredRelease, now = Date.now()): Promise<void> {
    await this.db.run('INSERT INTO releases (program_id, sequence, version, kind, manifest, signature, created_ms) VALUES (?, ?, ?, ?, ?, ?, ?)', [rel.programId, rel.sequence, rel.version, rel.kind, rel.manifest, rel.signature, now]);
  }

  async signRelease(programId: string, sequence: number, signature: Uint8Array): Promise<void> {
    const changed = await this.db.run('UPDATE releases SET signature = ? WHERE program_id = ? AND sequence = ? AND length(signature) = 0', [signature, programId, sequence]);
    if (changed !== 1) throw new Error(`StateStore: release ${sequence} of ${programId} is not awaiting a signature`);
  }

  async releases(programId: string): Promise<StoredRelease[]> {
    return (await this.db.all('SELECT * FROM releases WHERE program_id = ? ORDER BY sequence', [programId])).map((r) => ({
      programId: r.program_id as string,
      sequence: num(r.sequence),
      version: num(r.version),
      kind: r.kind as StoredRelease['kind'],
      manifest: bytes(r.manifest),
      signature: bytes(r.signature),
    }));
  }

  async failOpenRounds(programId: string, now = Date.now()): Promise<number> {
    return this.db.run(`UPDATE rounds SET state = 'failed', message = 'the coordinator restarted while the round was open', closed_ms = ? WHERE program_id = ? AND state = 'open'`, [now, programId]);
  }

  async rounds(programId: string): Promise<StoredRound[]> {
    return (await this.db.all('SELECT * FROM rounds WHERE program_id = ? ORDER BY round_number, attempt', [programId])).map(roundFromRow);
  }

  async completedRounds(programId: string): Promise<number> {
    return num((await this.db.get(`SELECT COUNT(*) AS n FROM rounds WHERE program_id = ? AND state = 'completed'`, [programId]))?.n);
  }

  async appendLedger(e: LedgerEntry, now = Date.now()): Promise<void> {
    await this.db.run('INSERT INTO privacy_ledger (round_id, program_id, round_number, q, sigma, epsilon_after, delta, created_ms, population, scheme, eligible, selected) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)', [
      e.roundId, e.programId, e.roundNumber, e.q, e.sigma, e.epsilonAfter, e.delta, now, e.population, e.scheme, e.eligible, e.selected,
    ]);
  }

  async ledger(programId: string): Promise<LedgerEntry[]> {
    return (await this.db.all('SELECT * FROM privacy_ledger WHERE program_id = ? ORDER BY created_ms, round_number', [programId])).map((r) => ({
      programId: r.program_id as string,
      roundId: r.round_id as string,
      roundNumber: num(r.round_number),
      q: num(r.q),
      population: num(r.population),
      sigma: num(r.sigma),
      epsilonAfter: num(r.epsilon_after),
      delta: num(r.delta),
      scheme: String(r.scheme ?? ''),
      eligible: num(r.eligible),
      selected: num(r.selected),
    }));
  }

  async programAdmin(programId: string): Promise<StoredProgramAdmin | undefined> {
    const r = await this.db.get('SELECT * FROM program_admin WHERE program_id = ?', [programId]);
    return r ? { state: r.state as StoredProgramAdmin['state'], reason: r.reason as string, actor: r.actor as string, updatedMs: num(r.updated_ms) } : undefined;
  }

  async setProgramAdmin(programId: string, a: StoredProgramAdmin | undefined): Promise<void> {
    if (!a) await this.db.run('DELETE FROM program_admin WHERE program_id = ?', [programId]);
    else
      await this.db.run(
        `INSERT INTO program_admin (program_id, state, reason, actor, updated_ms) VALUES (?, ?, ?, ?, ?)
         ON CONFLICT (program_id) DO UPDATE SET state = excluded.state, reason = excluded.reason, actor = excluded.actor, updated_ms = excluded.updated_ms`,
        [programId, a.state, a.reason, a.actor, a.updatedMs],
      );
  }

  async revokeDevice(deviceId: string, programId: string, reason: string, actor: string, now = Date.now()): Promise<void> {
    await this.db.run('INSERT INTO device_revocations (device_id, program_id, reason, actor, revoked_ms) VALUES (?, ?, ?, ?, ?) ON CONFLICT (device_id) DO NOTHING', [deviceId, programId, reason, actor, now]);
  }

  async revokedDeviceIds(): Promise<string[]> {
    return (await this.db.all('SELECT device_id FROM device_revocations')).map((r) => r.device_id as string);
  }

  async listDevices(programId: string, limit = 10_000): Promise<ListedDevice[]> {
    const rows = await this.db.all(
      `SELECT d.*, r.revoked_ms, r.actor AS revoked_by FROM devices d LEFT JOIN device_revocations r ON r.device_id = d.id
       WHERE d.program_id = ? ORDER BY d.enrolled_ms DESC, d.id LIMIT ?`,
      [programId, limit],
    );
    return rows.map((r) => ({ ...deviceFromRow(r), enrolledMs: num(r.enrolled_ms), ...(r.revoked_ms !== null && r.revoked_ms !== undefined ? { revokedMs: num(r.revoked_ms), revokedBy: r.revoked_by as string } : {}) }));
  }

  async revokedCount(programId: string): Promise<number> {
    return num((await this.db.get('SELECT COUNT(*) AS n FROM device_revocations WHERE program_id = ?', [programId]))?.n);
  }

  async close(): Promise<void> {
    await this.db.close();
  }
}
