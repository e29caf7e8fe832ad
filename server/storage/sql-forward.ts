/**
 * Requests a follower forwards to a program's driver through PostgreSQL (rounds that stay on
 * their driver: secure aggregation, fixed-cohort sampling). The follower authenticated the request
 * (signature, nonce claimed in the database) and inserts it as a row; the driver takes the row
 * once (`taken_by`), runs it as it runs its own requests and writes the answer (a gRPC status code
 * and sentence, or the response's bytes); the follower reads the answer and deletes the row. Both
 * hear of the other's step on one NOTIFY channel; a row past its deadline is nobody's.
 */
import type { Row } from './sql.js';
import { SqlClaims } from './sql-claims.js';
import type { ForwardAnswer, ForwardedRequest, ForwardNotice } from './state-store.js';

/** The notification channel of forwarded requests and their answers. */
export const FORWARD_CHANNEL = 'fedtune_forward';

const bytes = (b: unknown): Uint8Array => Uint8Array.from(b as Uint8Array);

function requestFromRow(r: Row): ForwardedRequest {
  return {
    id: r.id as string,
    programId: r.program_id as string,
    method: r.method as string,
    deviceId: r.device_id as string,
    request: bytes(r.request),
    payload: bytes(r.payload),
    fromReplica: r.from_replica as string,
    deadlineMs: Number(r.deadline_ms),
  };
}

/** The forwarding methods of SqlStateStore (between SqlClaims and SqlIntake). */
export class SqlForward extends SqlClaims {
  private async notifyForward(n: ForwardNotice): Promise<void> {
    if (this.db.engine === 'postgres') await this.db.get('SELECT pg_notify(?, ?) AS n', [FORWARD_CHANNEL, JSON.stringify(n)]);
  }

  async forwardRequest(r: ForwardedRequest, now = Date.now()): Promise<void> {
    if (typeof r.id !== 'string' || r.id === '') throw new TypeError('StateStore.forwardRequest: r.id must be a non-empty string');
    if (!Number.isFinite(r.deadlineMs)) throw new RangeError(`StateStore.forwardRequest: r.deadlineMs must be a finite time, got ${r.deadlineMs}`);
    await this.db.run(
      `INSERT INTO forwarded_requests (id, program_id, method, device_id, request, payload, from_replica, created_ms, deadline_ms)
       VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)`,
      [r.id, r.programId, r.method, r.deviceId, r.request, r.payload, r.fromReplica, now, r.deadlineMs],
    );
    await this.notifyForward({ kind: 'request', id: r.id, programId: r.programId });
  }

  async takeForwarded(id: string, replicaId: string, now = Date.now()): Promise<ForwardedRequest | undefined> {
    const r = await this.db.get("UPDATE forwarded_requests SET taken_by = ? WHERE id = ? AND taken_by = '' AND deadline_ms > ? RETURNING *", [replicaId, id, now]);
    return r ? requestFromRow(r) : undefined;
  }

  async untakenForwarded(programIds: readonly string[], now = Date.now()): Promise<{ id: string; programId: string }[]> {
    if (programIds.length === 0) return [];
    const rows = await this.db.all(`SELECT id, program_id FROM forwarded_requests WHERE taken_by = '' AND deadline_ms > ? AND program_id IN (${programIds.map(() => '?').join(', ')})`, [now, ...programIds]);
    return rows.map((r) => ({ id: r.id as string, programId: r.program_id as string }));
  }

  async answerForwarded(id: string, replicaId: string, a: ForwardAnswer, now = Date.now()): Promise<boolean> {
    const n = await this.db.run('UPDATE forwarded_requests SET answered_ms = ?, code = ?, details = ?, response = ? WHERE id = ? AND taken_by = ? AND answered_ms = 0', [
      now,
      a.code,
      a.details,
      a.response ?? null,
      id,
      replicaId,
    ]);
    if (n === 1) await this.notifyForward({ kind: 'answer', id });
    return n === 1;
  }

  async forwardedAnswer(id: string): Promise<ForwardAnswer | undefined> {
    const r = await this.db.get('SELECT answered_ms, code, details, response FROM forwarded_requests WHERE id = ?', [id]);
    if (!r || Number(r.answered_ms) === 0) return undefined;
    return { code: Number(r.code), details: r.details as string, response: r.response == null ? undefined : bytes(r.response) };
  }

  async deleteForwarded(id: string): Promise<boolean> {
    return (await this.db.run('DELETE FROM forwarded_requests WHERE id = ?', [id])) === 1;
  }

  async purgeForwarded(before: number): Promise<number> {
    return this.db.run('DELETE FROM forwarded_requests WHERE deadline_ms < ?', [before]);
  }

  async onForward(listener: (n: ForwardNotice) => void, onGap?: () => void): Promise<() => Promise<void>> {
    if (!this.db.listen) return async () => undefined;
    return this.db.listen(
      FORWARD_CHANNEL,
      (payload) => {
        let n: ForwardNotice;
        try {
          n = JSON.parse(payload) as ForwardNotice;
        } catch {
          return;
        }
        if (n && typeof n === 'object' && typeof n.id === 'string') listener(n);
      },
      onGap,
    );
  }
}
