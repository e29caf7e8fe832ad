/**
 * The replica claims in SQL both engines run: nonces, round participation, partial sums and
 * leases. Each claim is a single statement (an insert or upsert) whose row count says who won,
 * so it is atomic across connections and replicas without an explicit transaction.
 */
import type { SqlExecutor } from './sql.js';
import type { Lease, PartialSum } from './state-store.js';

const bytes = (b: unknown): Uint8Array => Uint8Array.from(b as Uint8Array);
const num = (v: unknown): number => Number(v);

function positive(fn: string, name: string, v: number): void {
  if (!Number.isFinite(v) || v <= 0) throw new RangeError(`StateStore.${fn}: ${name} must be a positive number of milliseconds, got ${v}`);
}

function nonEmpty(fn: string, name: string, v: string): void {
  if (typeof v !== 'string' || v === '') throw new TypeError(`StateStore.${fn}: ${name} must be a non-empty string`);
}

/** The claim methods of SqlStateStore (its base class). */
export class SqlClaims {
  constructor(protected readonly db: SqlExecutor) {}

  async claimNonce(deviceId: string, nonce: string, expiresMs: number): Promise<boolean> {
    nonEmpty('claimNonce', 'deviceId', deviceId);
    nonEmpty('claimNonce', 'nonce', nonce);
    if (!Number.isFinite(expiresMs)) throw new RangeError(`StateStore.claimNonce: expiresMs must be a finite time, got ${expiresMs}`);
    return (await this.db.run('INSERT INTO request_nonces (device_id, nonce, expires_ms) VALUES (?, ?, ?) ON CONFLICT (device_id, nonce) DO NOTHING', [deviceId, nonce, expiresMs])) === 1;
  }

  async purgeExpiredNonces(now: number): Promise<number> {
    return this.db.run('DELETE FROM request_nonces WHERE expires_ms < ?', [now]);
  }

  async claimParticipation(roundId: string, deviceId: string, now = Date.now()): Promise<boolean> {
    nonEmpty('claimParticipation', 'roundId', roundId);
    nonEmpty('claimParticipation', 'deviceId', deviceId);
    return (await this.db.run('INSERT INTO round_participants (round_id, device_id, claimed_ms) VALUES (?, ?, ?) ON CONFLICT (round_id, device_id) DO NOTHING', [roundId, deviceId, now])) === 1;
  }

  async participants(roundId: string): Promise<string[]> {
    return (await this.db.all('SELECT device_id FROM round_participants WHERE round_id = ? ORDER BY device_id', [roundId])).map((r) => r.device_id as string);
  }

  async savePartialSum(roundId: string, replicaId: string, sum: Uint8Array, count: number, now = Date.now()): Promise<boolean> {
    nonEmpty('savePartialSum', 'roundId', roundId);
    nonEmpty('savePartialSum', 'replicaId', replicaId);
    if (!(sum instanceof Uint8Array)) throw new TypeError('StateStore.savePartialSum: bytes must be a Uint8Array');
    if (!Number.isInteger(count) || count < 0) throw new RangeError(`StateStore.savePartialSum: count must be a non-negative integer, got ${count}`);
    const changed = await this.db.run(
      `INSERT INTO partial_sums (round_id, replica_id, sum, count, updated_ms) VALUES (?, ?, ?, ?, ?)
       ON CONFLICT (round_id, replica_id) DO UPDATE SET sum = excluded.sum, count = excluded.count, updated_ms = excluded.updated_ms
       WHERE partial_sums.count <= excluded.count`,
      [roundId, replicaId, sum, count, now],
    );
    return changed === 1;
  }

  async partialSums(roundId: string): Promise<PartialSum[]> {
    return (await this.db.all('SELECT * FROM partial_sums WHERE round_id = ? ORDER BY replica_id', [roundId])).map((r) => ({
      roundId: r.round_id as string,
      replicaId: r.replica_id as string,
      bytes: bytes(r.sum),
      count: num(r.count),
      updatedMs: num(r.updated_ms),
    }));
  }

  async deletePartialSums(roundId: string): Promise<number> {
    return this.db.run('DELETE FROM partial_sums WHERE round_id = ?', [roundId]);
  }

  async acquireLease(programId: string, holder: string, ttlMs: number, now = Date.now()): Promise<boolean> {
    nonEmpty('acquireLease', 'programId', programId);
    nonEmpty('acquireLease', 'holder', holder);
    positive('acquireLease', 'ttlMs', ttlMs);
    const changed = await this.db.run(
      `INSERT INTO leases (program_id, holder, expires_ms, epoch) VALUES (?, ?, ?, 1)
       ON CONFLICT (program_id) DO UPDATE SET holder = excluded.holder, expires_ms = excluded.expires_ms,
         epoch = CASE WHEN leases.holder = excluded.holder THEN leases.epoch ELSE leases.epoch + 1 END
       WHERE leases.holder = excluded.holder OR leases.expires_ms <= ?`,
      [programId, holder, now + ttlMs, now],
    );
    return changed === 1;
  }

  async renewLease(programId: string, holder: string, ttlMs: number, now = Date.now()): Promise<boolean> {
    positive('renewLease', 'ttlMs', ttlMs);
    return (await this.db.run('UPDATE leases SET expires_ms = ? WHERE program_id = ? AND holder = ? AND expires_ms > ?', [now + ttlMs, programId, holder, now])) === 1;
  }

  async releaseLease(programId: string, holder: string): Promise<boolean> {
    return (await this.db.run('UPDATE leases SET expires_ms = 0 WHERE program_id = ? AND holder = ? AND expires_ms > 0', [programId, holder])) === 1;
  }

  async lease(programId: string): Promise<Lease | undefined> {
    const r = await this.db.get('SELECT * FROM leases WHERE program_id = ?', [programId]);
    return r ? { programId: r.program_id as string, holder: r.holder as string, expiresMs: num(r.expires_ms), epoch: num(r.epoch) } : undefined;
  }
}
