/**
 * Rounds that every replica serves (PostgreSQL, phase 2b): the open round's plan, each device's
 * admission (its coin, claimed once for the round whichever replica it reaches) and answer, and
 * every acknowledged update as a row of its own. The invariant the upload path keeps: an update
 * is in `round_updates` — committed — before its device is told it was accepted.
 *
 * Acceptance and the close of a round's intake serialize on the round's plan row: an acceptance
 * holds it FOR SHARE (many at once), the close UPDATEs it (waiting for the acceptances in flight,
 * and making every later one see the intake closed). So an update is either in the rows the driver
 * reads after the close, or refused — never acknowledged and dropped.
 *
 * Why one row per update rather than a partial sum per replica: an insert is an append (a
 * replica's concurrent acceptances do not queue on its sum row), it serves every strategy (robust
 * rules and central DP need the updates themselves), a takeover driver finds exactly what was
 * acknowledged, and the aggregate can be recomputed from it independently. Its cost is storage:
 * a round writes one update's bytes per contribution (the driver reads them once, at the close).
 */
import type { Row, SqlExecutor } from './sql.js';
import { SqlForward } from './sql-forward.js';
import type { Acceptance, Admission, ParticipantStatus, RoundChange, RoundPlanRecord, StoredUpdate } from './state-store.js';

/** The notification channel of round changes (PostgreSQL LISTEN/NOTIFY). */
export const ROUND_CHANNEL = 'fedtune_rounds';

const num = (v: unknown): number => Number(v);

function planFromRow(r: Row): RoundPlanRecord {
  return {
    roundId: r.round_id as string,
    programId: r.program_id as string,
    roundNumber: num(r.round_number),
    adapterVersion: num(r.adapter_version),
    clipNorm: num(r.clip_norm),
    deviceNoiseStd: num(r.device_noise_std),
    deadlineMs: num(r.deadline_ms),
    selectionEndsMs: num(r.selection_ends_ms),
    cap: num(r.cap),
    driver: r.driver as string,
    intakeClosedMs: num(r.intake_closed_ms),
  };
}

/** Thrown inside a transaction to roll it back with an outcome. */
class Outcome<T> {
  constructor(readonly value: T) {}
}

/** The shared-round methods of SqlStateStore (between SqlForward and it). */
export class SqlIntake extends SqlForward {
  constructor(db: SqlExecutor) {
    super(db);
  }

  /** Tell listeners (other replicas) of a change, when the transaction `tx` commits (PostgreSQL only). */
  protected static async notify(tx: SqlExecutor, c: RoundChange): Promise<void> {
    if (tx.engine === 'postgres') await tx.get('SELECT pg_notify(?, ?) AS n', [ROUND_CHANNEL, JSON.stringify(c)]);
  }

  /** Insert a round's plan (inside openRound's transaction). */
  protected static async insertPlan(tx: SqlExecutor, p: RoundPlanRecord): Promise<void> {
    await tx.run(
      `INSERT INTO round_plans (round_id, program_id, round_number, adapter_version, clip_norm, device_noise_std, deadline_ms, selection_ends_ms, cap, admitted, driver, intake_closed_ms)
       VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, 0, ?, 0)`,
      [p.roundId, p.programId, p.roundNumber, p.adapterVersion, p.clipNorm, p.deviceNoiseStd, p.deadlineMs, p.selectionEndsMs, p.cap, p.driver],
    );
    await SqlIntake.notify(tx, { programId: p.programId, roundId: p.roundId, what: 'open' });
  }

  async openRoundPlan(programId: string): Promise<RoundPlanRecord | undefined> {
    const r = await this.db.get(
      `SELECT p.* FROM round_plans p JOIN rounds r ON r.round_id = p.round_id
       WHERE p.program_id = ? AND r.state = 'open' AND p.intake_closed_ms = 0 ORDER BY p.round_number DESC, r.attempt DESC LIMIT 1`,
      [programId],
    );
    return r ? planFromRow(r) : undefined;
  }

  async roundPlan(roundId: string): Promise<RoundPlanRecord | undefined> {
    const r = await this.db.get('SELECT * FROM round_plans WHERE round_id = ?', [roundId]);
    return r ? planFromRow(r) : undefined;
  }

  private async participantStatus(db: SqlExecutor, roundId: string, deviceId: string): Promise<ParticipantStatus | undefined> {
    return (await db.get('SELECT status FROM round_participants WHERE round_id = ? AND device_id = ?', [roundId, deviceId]))?.status as ParticipantStatus | undefined;
  }

  async admitParticipant(roundId: string, deviceId: string, replicaId: string, sampled: boolean, now = Date.now()): Promise<Admission> {
    if (typeof roundId !== 'string' || roundId === '' || typeof deviceId !== 'string' || deviceId === '') throw new TypeError('StateStore.admitParticipant: roundId and deviceId must be non-empty strings');
    const known = await this.participantStatus(this.db, roundId, deviceId);
    if (known) return { outcome: 'known', status: known };
    const plan0 = await this.db.get('SELECT program_id, cap FROM round_plans WHERE round_id = ?', [roundId]);
    if (!plan0) return { outcome: 'closed' };
    const capped = sampled && num(plan0.cap) > 0;
    const open = async (tx: SqlExecutor): Promise<boolean> => {
      const r = await tx.get(`SELECT p.intake_closed_ms, r.state FROM round_plans p JOIN rounds r ON r.round_id = p.round_id WHERE p.round_id = ?${tx.engine === 'postgres' && !capped ? ' FOR SHARE OF p' : ''}`, [roundId]);
      return r !== undefined && r.state === 'open' && num(r.intake_closed_ms) === 0;
    };
    /** A selection with an end (poisson) that has ended: no coin is claimed any more (read under the same lock). */
    const ended = async (tx: SqlExecutor): Promise<boolean> => {
      const r = await tx.get('SELECT selection_ends_ms FROM round_plans WHERE round_id = ?', [roundId]);
      const end = num(r?.selection_ends_ms);
      return end > 0 && now >= end;
    };
    try {
      return await this.db.transaction(async (tx) => {
        const status: ParticipantStatus = sampled ? 'working' : 'not-sampled';
        if (capped) {
          // a capped selection (first-come): one counter on the plan row, taken by a single UPDATE
          // (the row lock it takes serializes it with the intake's close, like FOR SHARE does)
          const took = await tx.run(
            `UPDATE round_plans SET admitted = admitted + 1 WHERE round_id = ? AND admitted < cap AND intake_closed_ms = 0
             AND EXISTS (SELECT 1 FROM rounds r WHERE r.round_id = round_plans.round_id AND r.state = 'open')`,
            [roundId],
          );
          if (took !== 1) throw new Outcome<Admission>((await open(tx)) ? { outcome: 'full' } : { outcome: 'closed' });
        } else if (!(await open(tx))) throw new Outcome<Admission>({ outcome: 'closed' });
        else if (await ended(tx)) throw new Outcome<Admission>({ outcome: 'selection-closed' });
        const added = await tx.run('INSERT INTO round_participants (round_id, device_id, claimed_ms, status, replica_id) VALUES (?, ?, ?, ?, ?) ON CONFLICT (round_id, device_id) DO NOTHING', [roundId, deviceId, now, status, replicaId]);
        if (added !== 1) throw new Outcome<undefined>(undefined); // admitted at the same moment elsewhere: read what it got
        await SqlIntake.notify(tx, { programId: plan0.program_id as string, roundId, deviceId, what: status });
        return { outcome: 'admitted', status } as Admission;
      });
    } catch (e) {
      if (!(e instanceof Outcome)) throw e;
      if (e.value) return e.value as Admission;
      const s = await this.participantStatus(this.db, roundId, deviceId);
      if (!s) throw new Error(`StateStore.admitParticipant: device ${deviceId}'s admission to ${roundId} was neither made nor found`);
      return { outcome: 'known', status: s };
    }
  }

  async acceptRoundUpdate(u: StoredUpdate, now = Date.now()): Promise<Acceptance> {
    if (!(u.update instanceof Float32Array)) throw new TypeError('StateStore.acceptRoundUpdate: update must be a Float32Array');
    const share = this.db.engine === 'postgres' ? ' FOR SHARE OF p' : '';
    try {
      return await this.db.transaction(async (tx) => {
        const plan = await tx.get(`SELECT p.program_id, r.state, p.intake_closed_ms FROM round_plans p JOIN rounds r ON r.round_id = p.round_id WHERE p.round_id = ?${share}`, [u.roundId]);
        if (!plan || plan.state !== 'open' || num(plan.intake_closed_ms) !== 0) throw new Outcome<Acceptance>('closed');
        const took = await tx.run(`UPDATE round_participants SET status = 'done', replica_id = ? WHERE round_id = ? AND device_id = ? AND status = 'working'`, [u.replicaId, u.roundId, u.deviceId]);
        if (took !== 1) {
          const s = await this.participantStatus(tx, u.roundId, u.deviceId);
          throw new Outcome<Acceptance>(s === undefined || s === 'working' ? 'not-selected' : s);
        }
        const bytes = new Uint8Array(u.update.buffer, u.update.byteOffset, u.update.byteLength);
        await tx.run('INSERT INTO round_updates (round_id, device_id, replica_id, update_f32, weight, unclipped, bytes_received, created_ms) VALUES (?, ?, ?, ?, ?, ?, ?, ?)', [
          u.roundId, u.deviceId, u.replicaId, bytes, u.weight, u.unclipped ? 1 : 0, u.bytesReceived, now,
        ]);
        await SqlIntake.notify(tx, { programId: plan.program_id as string, roundId: u.roundId, deviceId: u.deviceId, what: 'done' });
        return 'accepted' as const;
      });
    } catch (e) {
      if (e instanceof Outcome) return e.value as Acceptance;
      throw e;
    }
  }

  async failParticipant(roundId: string, deviceId: string, replicaId: string): Promise<boolean> {
    return this.db.transaction(async (tx) => {
      const changed = await tx.run(`UPDATE round_participants SET status = 'failed', replica_id = ? WHERE round_id = ? AND device_id = ? AND status = 'working'`, [replicaId, roundId, deviceId]);
      const plan = changed === 1 ? await tx.get('SELECT program_id FROM round_plans WHERE round_id = ?', [roundId]) : undefined;
      if (plan) await SqlIntake.notify(tx, { programId: plan.program_id as string, roundId, deviceId, what: 'failed' });
      return changed === 1;
    });
  }

  async endSelection(roundId: string, now = Date.now()): Promise<boolean> {
    return this.db.transaction(async (tx) => {
      const changed = await tx.run('UPDATE round_plans SET selection_ends_ms = ? WHERE round_id = ? AND selection_ends_ms > ?', [now, roundId, now]);
      const plan = changed === 1 ? await tx.get('SELECT program_id FROM round_plans WHERE round_id = ?', [roundId]) : undefined;
      if (plan) await SqlIntake.notify(tx, { programId: plan.program_id as string, roundId, what: 'selection-closed' });
      return changed === 1;
    });
  }

  async closeIntake(roundId: string, now = Date.now()): Promise<boolean> {
    return this.db.transaction(async (tx) => {
      const changed = await tx.run('UPDATE round_plans SET intake_closed_ms = ? WHERE round_id = ? AND intake_closed_ms = 0', [now, roundId]);
      const plan = await tx.get('SELECT program_id FROM round_plans WHERE round_id = ?', [roundId]);
      if (changed === 1 && plan) await SqlIntake.notify(tx, { programId: plan.program_id as string, roundId, what: 'closed' });
      return changed === 1;
    });
  }

  async roundUpdates(roundId: string, after?: string, limit?: number): Promise<StoredUpdate[]> {
    if (limit !== undefined && (!Number.isInteger(limit) || limit < 1)) throw new RangeError(`StateStore.roundUpdates: limit must be a positive integer, got ${limit}`);
    const rows =
      limit === undefined && after === undefined
        ? await this.db.all('SELECT * FROM round_updates WHERE round_id = ? ORDER BY device_id', [roundId])
        : await this.db.all('SELECT * FROM round_updates WHERE round_id = ? AND device_id > ? ORDER BY device_id LIMIT ?', [roundId, after ?? '', limit ?? 2 ** 31 - 1]);
    return rows.map((r) => {
      const b = Uint8Array.from(r.update_f32 as Uint8Array);
      return {
        roundId: r.round_id as string,
        deviceId: r.device_id as string,
        replicaId: r.replica_id as string,
        update: new Float32Array(b.buffer, 0, b.byteLength / 4),
        weight: num(r.weight),
        unclipped: num(r.unclipped) === 1,
        bytesReceived: num(r.bytes_received),
      };
    });
  }

  async participantStatuses(roundId: string): Promise<Map<string, ParticipantStatus>> {
    const rows = await this.db.all('SELECT device_id, status FROM round_participants WHERE round_id = ? ORDER BY device_id', [roundId]);
    return new Map(rows.map((r) => [r.device_id as string, r.status as ParticipantStatus]));
  }

  async onRoundChange(listener: (c: RoundChange) => void, onGap?: () => void): Promise<() => Promise<void>> {
    if (!this.db.listen) return async () => undefined; // one process (SQLite): nobody else changes its rounds
    return this.db.listen(
      ROUND_CHANNEL,
      (payload) => {
        let c: RoundChange;
        try {
          c = JSON.parse(payload) as RoundChange;
        } catch {
          return;
        }
        listener(c);
      },
      onGap,
    );
  }
}
