/**
 * What an administrator may do to a running coordinator, and the one check of the admin token:
 * list programs, pause / resume / stop one, list its devices, revoke a device, list its rounds.
 * Every action (and every refused token) is audited in the log: who (the actor the client names
 * and its address), what, when. Pause and stop are kept in the store, so they outlive a restart;
 * so is a revocation (see Coordinator.revokeDevice).
 *
 * The dashboard's HTTP server (server/dashboard/http.ts) exposes these as a JSON API; the CLI
 * (`fedtune admin`) calls it.
 */
import { createHash, timingSafeEqual } from 'node:crypto';
import type { Coordinator } from './coordinator.js';
import { quoted, refuse } from './errors.js';
import type { RunnerStatus } from './round-events.js';
import type { StoredRound } from './storage/index.js';

/** A device counts as active when it made a signed request within this many ms. */
export const ACTIVE_WINDOW_MS = 10 * 60_000;

/** Shortest admin token accepted (characters). */
export const MIN_ADMIN_TOKEN_LENGTH = 16;

/** One program as `programs list` shows it. */
export interface AdminProgram {
  readonly id: string;
  readonly status: RunnerStatus;
  readonly roundsTotal: number;
  readonly roundsCompleted: number;
  readonly adapterVersion: number;
  readonly dpMode: string;
  readonly epsilonSpent: number;
  /** Infinity (JSON: null) without a budget. */
  readonly epsilonBudget: number | null;
  readonly delta: number;
  readonly devicesEnrolled: number;
  readonly devicesActive: number;
  readonly devicesRevoked: number;
}

/** One device as `devices list` shows it. */
export interface AdminDevice {
  readonly id: string;
  readonly label: string;
  readonly enrolledMs: number;
  /** Last signed request since the coordinator started (0 = none). */
  readonly lastSeenMs: number;
  readonly active: boolean;
  readonly revoked: boolean;
  readonly revokedMs?: number;
  readonly revokedBy?: string;
}

/** One round attempt as `rounds` shows it. */
export type AdminRound = Omit<StoredRound, 'programId' | 'metrics'> & { readonly durationMs: number; readonly metrics: Readonly<Record<string, number>> };

/** Who asked, for the audit log. */
export interface AdminActor {
  /** The name the client gave (e.g. "alice@ops-laptop"); "unnamed" if none. */
  readonly name: string;
  /** The client's address. */
  readonly address: string;
}

/** Constant-time comparison of two secrets of any lengths (their SHA-256 digests are compared). */
export function sameSecret(a: string, b: string): boolean {
  const h = (x: string): Buffer => createHash('sha256').update(x, 'utf8').digest();
  return timingSafeEqual(h(a), h(b));
}

/** Check an admin token's shape; returns it. RangeError naming `source` otherwise. */
export function checkAdminToken(token: string, source: string): string {
  if (typeof token !== 'string') throw new TypeError(`checkAdminToken: ${source} must be a string`);
  if (token.length < MIN_ADMIN_TOKEN_LENGTH) throw new RangeError(`${source} must be at least ${MIN_ADMIN_TOKEN_LENGTH} characters (e.g. 32 random hex digits from \`openssl rand -hex 16\`), got ${token.length}`);
  if (/\s/.test(token)) throw new RangeError(`${source} must not contain white space`);
  return token;
}

/** The admin operations over one coordinator. Construct with the token; undefined disables every operation. */
export class Admin {
  private readonly log: (msg: string, fields?: Record<string, unknown>) => void;

  constructor(
    private readonly c: Coordinator,
    private readonly token: string | undefined,
    log?: (msg: string, fields?: Record<string, unknown>) => void,
  ) {
    if (token !== undefined) checkAdminToken(token, 'Admin: token');
    this.log = log ?? (() => {});
  }

  /** True when an admin token is configured. */
  get enabled(): boolean {
    return this.token !== undefined;
  }

  /**
   * Check a presented token (constant time). A missing or wrong token is refused
   * (UNAUTHENTICATED) and audited; no token configured is PERMISSION_DENIED.
   */
  authorize(presented: string | undefined, actor: AdminActor, action: string): void {
    if (this.token === undefined) {
      this.audit(actor, action, 'refused', { why: 'admin disabled' });
      refuse('permission-denied', 'the admin API is disabled: start the coordinator with --admin-token-file, --admin-token or FEDTUNE_ADMIN_TOKEN');
    }
    if (!presented || !sameSecret(presented, this.token)) {
      this.audit(actor, action, 'refused', { why: presented ? 'wrong token' : 'no token' });
      refuse('unauthenticated', presented ? 'the admin token is wrong' : 'the request carries no admin token (Authorization: Bearer TOKEN)');
    }
  }

  /** One audit line: who, what, when (the log line's time), and the outcome. */
  audit(actor: AdminActor, action: string, outcome: 'ok' | 'refused' | 'failed', fields: Record<string, unknown> = {}): void {
    this.log('admin action', { audit: true, actor: actor.name, address: actor.address, action, outcome, atMs: Date.now(), ...fields });
  }

  /** Every program with its state, rounds, ε and device counts. */
  programs(now = Date.now()): Promise<AdminProgram[]> {
    return Promise.all(this.c.programIds().map((id) => this.program(id, now)));
  }

  /** One program's summary; NOT_FOUND if unknown. */
  async program(id: string, now = Date.now()): Promise<AdminProgram> {
    const p = this.c.program(id);
    const devices = await this.devices(id, now);
    const budget = p.spec.dp.epsilonBudget;
    return {
      id,
      status: p.runner.status(),
      roundsTotal: p.spec.rounds,
      roundsCompleted: p.runner.completedRounds,
      adapterVersion: p.runner.latestVersion.version,
      dpMode: p.spec.dp.mode,
      epsilonSpent: p.runner.epsilonSpent(),
      epsilonBudget: Number.isFinite(budget) ? budget : null,
      delta: p.spec.dp.delta,
      devicesEnrolled: devices.length,
      devicesActive: devices.filter((d) => d.active).length,
      devicesRevoked: devices.filter((d) => d.revoked).length,
    };
  }

  /** Pause a program: no new round opens (the open one runs to its close). Kept across restarts. */
  pause(id: string, actor: AdminActor): Promise<AdminProgram> {
    return this.act(actor, 'program pause', { program: id }, async () => {
      const p = this.c.program(id);
      const s = p.runner.status();
      if (s.state === 'stopped' || s.state === 'completed') refuse('failed-precondition', `program "${id}" is ${s.state}; there is nothing to pause`);
      const reason = `paused by ${actor.name}`;
      await this.c.store.setProgramAdmin(id, { state: 'paused', reason, actor: actor.name, updatedMs: Date.now() });
      p.runner.pause(reason);
      return this.program(id);
    });
  }

  /** Resume a paused program (a no-op for a running one). */
  resume(id: string, actor: AdminActor): Promise<AdminProgram> {
    return this.act(actor, 'program resume', { program: id }, async () => {
      const p = this.c.program(id);
      const s = p.runner.status();
      if (s.state === 'stopped') refuse('failed-precondition', `program "${id}" was stopped (${s.reason}); a stopped program does not resume — start a new program id`);
      await this.c.store.setProgramAdmin(id, undefined);
      p.runner.resume();
      return this.program(id);
    });
  }

  /** Stop a program for good: its open round fails, no other opens, devices are told it is over. Kept across restarts. */
  stop(id: string, actor: AdminActor): Promise<AdminProgram> {
    return this.act(actor, 'program stop', { program: id }, async () => {
      const p = this.c.program(id);
      const reason = `program ${id} was stopped by ${actor.name}`;
      if (p.runner.status().state !== 'stopped') {
        await this.c.store.setProgramAdmin(id, { state: 'stopped', reason, actor: actor.name, updatedMs: Date.now() });
        p.runner.halt(reason);
      }
      return this.program(id);
    });
  }

  /** A program's devices, newest enrolment first. */
  async devices(id: string, now = Date.now()): Promise<AdminDevice[]> {
    this.c.program(id);
    return (await this.c.store.listDevices(id)).map((d) => {
      const lastSeenMs = this.c.lastSeen.get(d.id) ?? 0;
      const revoked = d.revokedMs !== undefined;
      return {
        id: d.id,
        label: d.label,
        enrolledMs: d.enrolledMs,
        lastSeenMs,
        active: !revoked && lastSeenMs > 0 && now - lastSeenMs <= ACTIVE_WINDOW_MS,
        revoked,
        ...(revoked ? { revokedMs: d.revokedMs, revokedBy: d.revokedBy } : {}),
      };
    });
  }

  /** Revoke a device of program `id` (see Coordinator.revokeDevice). */
  revoke(id: string, deviceId: string, actor: AdminActor): Promise<{ deviceId: string; revoked: true; already: boolean }> {
    return this.act(actor, 'device revoke', { program: id, device: deviceId }, async () => {
      this.c.program(id);
      const d = await this.c.store.device(deviceId);
      if (!d || d.programId !== id) refuse('not-found', `program "${id}" has no device "${quoted(deviceId)}"`);
      const fresh = await this.c.revokeDevice(deviceId, `revoked by ${actor.name}`, actor.name);
      return { deviceId, revoked: true as const, already: !fresh };
    });
  }

  /** A program's round attempts in order (the open one included). */
  async rounds(id: string, now = Date.now()): Promise<AdminRound[]> {
    this.c.program(id);
    return (await this.c.store.rounds(id)).map(({ programId: _p, ...r }) => ({ ...r, durationMs: (r.closedMs || now) - r.openedMs }));
  }

  private async act<T>(actor: AdminActor, action: string, fields: Record<string, unknown>, fn: () => Promise<T>): Promise<T> {
    try {
      const out = await fn();
      this.audit(actor, action, 'ok', fields);
      return out;
    } catch (e) {
      this.audit(actor, action, 'failed', { ...fields, error: (e as Error).message });
      throw e;
    }
  }
}
